// Small kernels of the CUDA backend: squared norms and the per-segment largest change.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "softmin_common.cuh"
#include "softmin_launch.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

constexpr int kReduceThreads = 256;
constexpr int64_t kMaxReduceBlocks = 4096;

// One warp per row: out_i = scale |x_i|^2.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    squaredNormsKernel(const T* __restrict__ x, int64_t rows, int64_t d, T scale, T* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
  for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += warps) {
    T s = 0;
    for (int64_t c = lane; c < d; c += 32) {
      const T v = x[row * d + c];
      s = fma(v, v, s);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if (lane == 0) out[row] = scale * s;
  }
}

// Non-negative doubles compare as their bit patterns; NaN is mapped above +inf.
__device__ __forceinline__ unsigned long long orderedBits(double v) {
  return v != v ? 0x7ff8000000000000ull : static_cast<unsigned long long>(__double_as_longlong(v));
}

template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    maxAbsDiffKernel(const T* __restrict__ a, const T* __restrict__ b, int64_t n, const int64_t* __restrict__ offsets,
                     int64_t segments, unsigned long long* __restrict__ out) {
  const int lane = threadIdx.x & 31;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t base = int64_t(blockIdx.x) * blockDim.x + (threadIdx.x & ~31); base < n; base += stride) {
    const int64_t i = base + lane;
    unsigned long long bits = 0;
    int64_t seg = 0;
    if (i < n) {
      bits = orderedBits(fabs(double(a[i]) - double(b[i])));
      if (segments > 1) seg = segmentOfRow(offsets, segments, i);
    } else if (segments > 1) {
      seg = segmentOfRow(offsets, segments, n - 1);
    }
    const int64_t seg0 = __shfl_sync(0xffffffffu, seg, 0);
    if (__all_sync(0xffffffffu, seg == seg0)) {
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long other = __shfl_xor_sync(0xffffffffu, bits, o);
        bits = other > bits ? other : bits;
      }
      if (lane == 0 && bits) atomicMax(out + seg0, bits);
    } else if (i < n && bits) {
      atomicMax(out + seg, bits);
    }
  }
}

unsigned blocksFor(int64_t work) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((work + kReduceThreads - 1) / kReduceThreads,
                                                                      kMaxReduceBlocks)));
}

}  // namespace

template <typename T>
void launchSquaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out, void* stream) {
  if (rows <= 0) return;
  squaredNormsKernel<T><<<blocksFor(rows * 32), kReduceThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, rows, d,
                                                                                                       scale, out);
}

template <typename T>
void launchMaxAbsDiff(const T* a, const T* b, int64_t n, const int64_t* offsets, int64_t segments,
                      unsigned long long* out, void* stream) {
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  cudaMemsetAsync(out, 0, sizeof(unsigned long long) * size_t(segments), st);
  if (n <= 0) return;
  maxAbsDiffKernel<T><<<blocksFor(n), kReduceThreads, 0, st>>>(a, b, n, offsets, segments, out);
}

template void launchSquaredNorms<float>(const float*, int64_t, int64_t, float, float*, void*);
template void launchSquaredNorms<double>(const double*, int64_t, int64_t, double, double*, void*);
template void launchMaxAbsDiff<float>(const float*, const float*, int64_t, const int64_t*, int64_t,
                                      unsigned long long*, void*);
template void launchMaxAbsDiff<double>(const double*, const double*, int64_t, const int64_t*, int64_t,
                                       unsigned long long*, void*);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
