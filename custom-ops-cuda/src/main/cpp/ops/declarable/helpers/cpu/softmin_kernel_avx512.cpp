// The softmin kernels for AVX-512 (x86-64-v4, built with -march=x86-64-v4 and called only where the
// processor has it): 32 vector registers hold 8 rows x 2 vectors of scores, and the Gram kernel's
// column-side terms beside them.
#define SINKHORN_VECTOR_BYTES 64
#define SINKHORN_BLOCK_ROWS 8
#define SINKHORN_GRAM_ROWS 8
#include "softmin_kernel_impl.h"

namespace sinkhorn {
namespace helpers {
namespace cpu {

const KernelTable& avx512Kernels() {
  static const KernelTable table{"avx512", kRows, &softminRows<float>, &softminRows<double>,
                                     &gramRows<float>,    &gramRows<double>,
                                     &mergeStats<float>,  &mergeStats<double>};
  return table;
}

}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn
