// Small kernels of the CUDA backend: squared norms, the per-segment largest change, and the O(n d)
// preparation and finishing of a solve (extent of a cloud, translation, point gradients).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "../softmin.h"
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

// Per-column extent of rows [b * rowsPerBlock, ...) into parts[b * 2d + c] (minimum) and
// parts[b * 2d + d + c] (maximum), and whether a value is not finite. With d below the block size,
// blockDim / d threads share a column (rows strided among them) and are folded through shared
// memory; otherwise each thread owns columns c, c + blockDim...
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    columnExtentKernel(const T* __restrict__ x, int64_t rows, int64_t d, int64_t rowsPerBlock, T* __restrict__ parts,
                       int* __restrict__ nonFinite) {
  T* lo = parts + blockIdx.x * 2 * d;
  T* hi = lo + d;
  __shared__ T sLo[kReduceThreads], sHi[kReduceThreads];
  const int t = threadIdx.x;
  const int64_t begin = int64_t(blockIdx.x) * rowsPerBlock, end = min(rows, begin + rowsPerBlock);
  const bool shared = d < kReduceThreads;
  const int64_t lanes = shared ? kReduceThreads / d : 1;
  bool bad = false;
  for (int64_t c0 = 0; c0 < d; c0 += shared ? d : kReduceThreads) {
    const int64_t c = shared ? t % d : c0 + t, lane = shared ? t / d : 0;
    T l = INFINITY, h = -INFINITY;
    if (lane < lanes && c < d)
      for (int64_t r = begin + lane; r < end; r += lanes) {
        const T v = x[r * d + c];
        bad = bad || !isfinite(v);
        l = min(l, v);
        h = max(h, v);
      }
    if (shared) {
      sLo[t] = l, sHi[t] = h;
      __syncthreads();
      if (t < d) {
        for (int64_t k = 1; k < lanes; ++k) l = min(l, sLo[t + k * d]), h = max(h, sHi[t + k * d]);
        lo[t] = l, hi[t] = h;
      }
    } else if (c < d) {
      lo[c] = l, hi[c] = h;
    }
  }
  if (__syncthreads_or(bad) && t == 0) *nonFinite = 1;
}

// Folds the blocks' extents into block 0's (in place): parts[c] = min_b parts[b * 2d + c], the same
// for the maxima at d + c. One CTA per column, its threads striding over the blocks: a single thread
// walking 1024 blocks' partials waits on that many dependent L2 round trips (~70 us).
template <typename T>
__global__ void __launch_bounds__(kReduceThreads) foldExtentKernel(T* parts, int64_t d, int64_t blocks) {
  __shared__ T sLo[kReduceThreads], sHi[kReduceThreads];
  const int64_t c = blockIdx.x;
  const int t = threadIdx.x;
  T l = INFINITY, h = -INFINITY;
  for (int64_t b = t; b < blocks; b += kReduceThreads) l = min(l, parts[b * 2 * d + c]), h = max(h, parts[b * 2 * d + d + c]);
  sLo[t] = l, sHi[t] = h;
  for (int width = kReduceThreads / 2; width > 0; width /= 2) {
    __syncthreads();
    if (t < width) sLo[t] = min(sLo[t], sLo[t + width]), sHi[t] = max(sHi[t], sHi[t + width]);
  }
  if (t == 0) parts[c] = sLo[0], parts[d + c] = sHi[0];
}

// x_ij -= shift_j
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    translateKernel(T* __restrict__ x, int64_t count, int64_t d, const T* __restrict__ shift) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) x[e] -= shift[e % d];
}

// In double for both precisions, as the host's logWeightsOnHost (up to the device log's last-bit
// rounding).
template <typename T>
__global__ void __launch_bounds__(kReduceThreads) logWeightsKernel(const T* __restrict__ w, int64_t rows, T* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows; i += stride)
    out[i] = T(w[i] > 0 ? log(double(w[i])) : kZeroWeightLog);
}

// out_ij = cp_i (x_ij - bary_ij) - cq_i (x_ij - selfBary_ij), the second term only with selfBary.
template <typename T>
__global__ void __launch_bounds__(kReduceThreads)
    pointGradientKernel(const T* __restrict__ x, const T* __restrict__ bary, const T* __restrict__ cp,
                        const T* __restrict__ selfBary, const T* __restrict__ cq, int64_t count, int64_t d,
                        T* __restrict__ out) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < count; e += stride) {
    const int64_t i = e / d;
    const T xe = x[e];
    T g = cp[i] * (xe - bary[e]);
    if (selfBary) g -= cq[i] * (xe - selfBary[e]);
    out[e] = g;
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

int64_t extentBlocks(int64_t rows) { return std::max<int64_t>(1, std::min<int64_t>(rows / 64, 1024)); }

template <typename T>
void launchColumnExtent(const T* x, int64_t rows, int64_t d, T* parts, int* nonFinite, void* stream) {
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const int64_t blocks = extentBlocks(rows);
  cudaMemsetAsync(nonFinite, 0, sizeof(int), st);
  columnExtentKernel<T><<<unsigned(blocks), kReduceThreads, 0, st>>>(x, rows, d, (rows + blocks - 1) / blocks, parts,
                                                                     nonFinite);
  foldExtentKernel<T><<<unsigned(d), kReduceThreads, 0, st>>>(parts, d, blocks);
}

template <typename T>
void launchTranslate(T* x, int64_t rows, int64_t d, const T* shift, void* stream) {
  if (rows <= 0) return;
  translateKernel<T><<<blocksFor(rows * d), kReduceThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, rows * d, d, shift);
}

template <typename T>
void launchLogWeights(const T* w, int64_t rows, T* out, void* stream) {
  if (rows <= 0) return;
  logWeightsKernel<T><<<blocksFor(rows), kReduceThreads, 0, static_cast<cudaStream_t>(stream)>>>(w, rows, out);
}

template <typename T>
void launchPointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows, int64_t d,
                         T* out, void* stream) {
  if (rows <= 0) return;
  pointGradientKernel<T><<<blocksFor(rows * d), kReduceThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      x, bary, cp, selfBary, cq, rows * d, d, out);
}

#define SINKHORN_CUDA_PREPARATION(T)                                                                              \
  template void launchColumnExtent<T>(const T*, int64_t, int64_t, T*, int*, void*);                               \
  template void launchTranslate<T>(T*, int64_t, int64_t, const T*, void*);                                        \
  template void launchLogWeights<T>(const T*, int64_t, T*, void*);                                                \
  template void launchPointGradient<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*, void*);
SINKHORN_CUDA_PREPARATION(float)
SINKHORN_CUDA_PREPARATION(double)

template void launchSquaredNorms<float>(const float*, int64_t, int64_t, float, float*, void*);
template void launchSquaredNorms<double>(const double*, int64_t, int64_t, double, double*, void*);
template void launchMaxAbsDiff<float>(const float*, const float*, int64_t, const int64_t*, int64_t,
                                      unsigned long long*, void*);
template void launchMaxAbsDiff<double>(const double*, const double*, int64_t, const int64_t*, int64_t,
                                       unsigned long long*, void*);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
