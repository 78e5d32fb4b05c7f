// The softmin kernels for AVX2 + FMA (x86-64-v3, the library's baseline): 16 vector registers hold
// 6 rows x 2 vectors of scores, or 4 rows in the Gram kernel, which also needs room for the column side.
#define SINKHORN_VECTOR_BYTES 32
#define SINKHORN_BLOCK_ROWS 6
#define SINKHORN_GRAM_ROWS 4
#include "softmin_kernel_impl.h"

namespace sinkhorn {
namespace helpers {
namespace cpu {

const KernelTable& avx2Kernels() {
  static const KernelTable table{"avx2", kRows, &softminRows<float>, &softminRows<double>,
                                     &gramRows<float>,    &gramRows<double>,
                                     &mergeStats<float>,  &mergeStats<double>};
  return table;
}

}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn
