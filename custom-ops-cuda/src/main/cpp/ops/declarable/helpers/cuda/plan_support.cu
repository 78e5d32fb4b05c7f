// The plan-support kernel (see ../plan_support.h): scores of a softmin pass in tiles of 32 x 32 pairs
// (dot products over 32-dimension chunks staged in shared memory, exact float32 / float64 FMAs),
// each kept entry counted or written with one atomic per entry: the support is sparse, so the
// atomics are few.
#include <cuda_runtime.h>

#include <algorithm>

#include "plan_support_launch.h"
#include "softmin_common.cuh"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

constexpr int kTile = 32;         // rows and columns of a tile, dimensions of a chunk
constexpr int kRowsPerThread = 4;  // a thread holds 4 rows of one column
constexpr int kThreadRows = kTile / kRowsPerThread;
constexpr unsigned kMaxColumnBlocks = 64;  // CTAs along the columns; each loops over its tiles

template <typename T>
__global__ void __launch_bounds__(kTile * kThreadRows) planSupportKernel(const SoftminPass<T> p, const T* __restrict__ lse,
                                                                         T logMinWeight, unsigned* counts,
                                                                         const int64_t* __restrict__ rowStart,
                                                                         int32_t* col, T* weight) {
  __shared__ T xs[kTile][kTile + 1], ys[kTile][kTile + 1];  // +1: conflict-free column reads
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t rowBase = int64_t(blockIdx.x) * kTile;
  // score_ij = (2c/eps) <x_i, y_j> + u_j,  u_j = w_j + (h_j - c|y_j|^2)/eps
  const T scale = T(2) * p.cost / p.eps;
  for (int64_t colBase = int64_t(blockIdx.y) * kTile; colBase < p.m; colBase += int64_t(gridDim.y) * kTile) {
    T acc[kRowsPerThread] = {};
    for (int64_t k0 = 0; k0 < p.d; k0 += kTile) {
      for (int r = ty; r < kTile; r += kThreadRows) {
        const int64_t i = rowBase + r, j = colBase + r, k = k0 + tx;
        xs[r][tx] = (i < p.n && k < p.d) ? p.x[i * p.d + k] : T(0);
        ys[r][tx] = (j < p.m && k < p.d) ? p.y[j * p.d + k] : T(0);
      }
      __syncthreads();
#pragma unroll 8
      for (int k = 0; k < kTile; ++k) {
        const T yv = ys[tx][k];
#pragma unroll
        for (int q = 0; q < kRowsPerThread; ++q) acc[q] = fma(xs[ty + kThreadRows * q][k], yv, acc[q]);
      }
      __syncthreads();
    }
    const int64_t j = colBase + tx;
    if (j >= p.m) continue;
    const T u = p.yLogWeights[j] + ((p.yPotential ? p.yPotential[j] : T(0)) - p.ySqNorm[j]) / p.eps;
#pragma unroll
    for (int q = 0; q < kRowsPerThread; ++q) {
      const int64_t i = rowBase + ty + kThreadRows * q;
      if (i >= p.n) continue;
      const T s = scale * acc[q] + u - lse[i];
      if (!(s >= logMinWeight)) continue;
      const unsigned slot = atomicAdd(counts + i, 1u);
      if (rowStart) {
        col[rowStart[i] + slot] = static_cast<int32_t>(j);
        weight[rowStart[i] + slot] = exp2Of<T>(s * T(kLog2e));
      }
    }
  }
}

}  // namespace

template <typename T>
void launchPlanSupport(const SoftminPass<T>& p, const T* lse, T logMinWeight, unsigned* counts, const int64_t* rowStart,
                       int32_t* col, T* weight, void* stream) {
  if (p.n == 0 || p.m == 0) return;
  const dim3 grid(static_cast<unsigned>((p.n + kTile - 1) / kTile),
                  static_cast<unsigned>(std::min<int64_t>((p.m + kTile - 1) / kTile, kMaxColumnBlocks)));
  planSupportKernel<T><<<grid, dim3(kTile, kThreadRows), 0, static_cast<cudaStream_t>(stream)>>>(
      p, lse, logMinWeight, counts, rowStart, col, weight);
}

template void launchPlanSupport<float>(const SoftminPass<float>&, const float*, float, unsigned*, const int64_t*,
                                       int32_t*, float*, void*);
template void launchPlanSupport<double>(const SoftminPass<double>&, const double*, double, unsigned*, const int64_t*,
                                        int32_t*, double*, void*);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
