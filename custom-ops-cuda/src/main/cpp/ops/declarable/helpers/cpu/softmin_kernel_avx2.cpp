// The softmin kernel for AVX2 + FMA (x86-64-v3, the library's baseline): 16 vector registers hold
// 6 rows x 2 vectors of scores.
#define SINKHORN_VECTOR_BYTES 32
#define SINKHORN_BLOCK_ROWS 6
#include "softmin_kernel_impl.h"

namespace sinkhorn {
namespace helpers {
namespace cpu {

const KernelTable& avx2Kernels() {
  static const KernelTable table{"avx2", kRows, &softminRows<float>, &softminRows<double>};
  return table;
}

}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn
