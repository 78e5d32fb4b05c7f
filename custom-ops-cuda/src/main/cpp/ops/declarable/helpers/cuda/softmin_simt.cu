// The CUDA-core softmin kernel: strict float32 (allowTf32 = false) and float64.
//
// A CTA of 128 threads owns BM = 64 rows; column tiles of BN = 64 rows of y. Thread (tr = tid/8,
// tc = tid%8) computes the 4 x 8 scores of rows 4tr..4tr+3 and columns 8tc..8tc+7 with FMAs on
// register tiles: per dimension step one 16-byte shared load of x (broadcast), two of y, 32 FMAs.
// x and y go through shared memory transposed (dimension-major), KC dimensions at a time, so any d
// works. Scores in base 2 (x is scaled by 2c/eps log2 e when staged); the update is the exact online
// max / sum. The optional average of v: P goes to shared memory transposed, then the same register
// tile computes P (4 rows) x V (8 columns of v).
#include <cuda_runtime.h>

#include "softmin_common.cuh"
#include "softmin_launch.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

template <typename T, int KV>
struct SimtConfig {
  static constexpr int kThreads = 128;
  static constexpr int kBM = 64, kBN = 64;
  static constexpr int kKC = sizeof(T) == 4 ? 16 : 8;  // dimensions staged at a time
  static constexpr int kLdX = kBM + 4;                  // transposed x: kKC x kLdX
  static constexpr int kLdY = kBN + 4;
  static constexpr int kKV = KV > 0 ? KV : 8;
  static constexpr int kLdP = kBM + 4;                  // transposed P: kBN x kLdP
  static constexpr int kLdV = kKV + 4;
  static constexpr size_t kSmemBytes =
      sizeof(T) * (size_t(kKC) * kLdX + size_t(kKC) * kLdY + kBN +
                   (KV > 0 ? size_t(kBN) * kLdP + size_t(kBN) * kLdV : 0));
};

template <typename T>
__device__ __forceinline__ T groupMax8(T v) {
  v = max(v, __shfl_xor_sync(0xffffffffu, v, 1));
  v = max(v, __shfl_xor_sync(0xffffffffu, v, 2));
  return max(v, __shfl_xor_sync(0xffffffffu, v, 4));
}
template <typename T>
__device__ __forceinline__ T groupSum8(T v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v + __shfl_xor_sync(0xffffffffu, v, 4);
}

template <typename T, int KV>
__global__ void __launch_bounds__(128) softminSimtKernel(const __grid_constant__ LaunchArgs<T> a) {
  using C = SimtConfig<T, KV>;
  constexpr bool AVG = KV > 0;
  extern __shared__ __align__(16) unsigned char smemRaw[];
  T* xs = reinterpret_cast<T*>(smemRaw);   // kKC x kLdX
  T* ys = xs + C::kKC * C::kLdX;           // kKC x kLdY
  T* us = ys + C::kKC * C::kLdY;           // kBN
  T* pt = us + C::kBN;                     // kBN x kLdP (AVG)
  T* vs = pt + C::kBN * C::kLdP;           // kBN x kLdV (AVG)
  const int tid = threadIdx.x;
  const int tr = tid >> 3, tc = tid & 7;

  forEachPiece<C::kBM, C::kBN>(a, [&](const Piece& pc) {
    const DevicePass<T>& ps = a.pass[pc.pass];
    if (!segmentActive(ps, pc.segment)) {
      if (pc.slot < 0 && a.kvBegin == 0)
        for (int64_t i = pc.rowLo + tid; i < pc.rowHi; i += C::kThreads) writeInactiveRow(ps, i);
      return;
    }
    const int64_t d = ps.d;
    const T scale2 = ps.scale2;
    const T uScale = ps.invEps * T(kLog2e);
    T m[4], sum[4];
    T acc[AVG ? 4 : 1][AVG ? 8 : 1];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      m[r] = -INFINITY;
      sum[r] = 0;
    }
    if constexpr (AVG) {
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < 8; ++q) acc[r][q] = 0;
    }

    for (int64_t ct = pc.ctBegin; ct < pc.ctEnd; ++ct) {
      const int64_t colBase = pc.colBegin + ct * C::kBN;
      T S[4][8];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < 8; ++q) S[r][q] = 0;
      for (int64_t k0 = 0; k0 < d; k0 += C::kKC) {
        __syncthreads();
        const int kc = static_cast<int>(min(int64_t(C::kKC), d - k0));
        for (int e = tid; e < C::kBM * C::kKC; e += C::kThreads) {
          const int r = e / C::kKC, c = e - r * C::kKC;
          const int64_t row = pc.rowBase + r;
          T v = 0;
          if (c < kc && row < ps.n) v = ps.x[row * d + k0 + c] * scale2;
          xs[c * C::kLdX + r] = v;
        }
        for (int e = tid; e < C::kBN * C::kKC; e += C::kThreads) {
          const int j = e / C::kKC, c = e - j * C::kKC;
          const int64_t col = colBase + j;
          T v = 0;
          if (c < kc && col < ps.m) v = ps.y[col * d + k0 + c];
          ys[c * C::kLdY + j] = v;
        }
        if (k0 == 0 && tid < C::kBN) {
          const int64_t col = colBase + tid;
          T u = -INFINITY;
          if (col < pc.colEnd) {
            const T h = ps.yPotential ? ps.yPotential[col] : T(0);
            u = ps.yLogWeights[col] * T(kLog2e) + (h - ps.ySqNorm[col]) * uScale;
          }
          us[tid] = u;
        }
        __syncthreads();
#pragma unroll 4
        for (int c = 0; c < kc; ++c) {
          T xv[4], yv[8];
#pragma unroll
          for (int r = 0; r < 4; ++r) xv[r] = xs[c * C::kLdX + 4 * tr + r];
#pragma unroll
          for (int q = 0; q < 8; ++q) yv[q] = ys[c * C::kLdY + 8 * tc + q];
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < 8; ++q) S[r][q] = fma(xv[r], yv[q], S[r][q]);
        }
      }
      if (d == 0) {  // no dimensions: scores are the biases alone
        __syncthreads();
        if (tid < C::kBN) {
          const int64_t col = colBase + tid;
          T u = -INFINITY;
          if (col < pc.colEnd) {
            const T h = ps.yPotential ? ps.yPotential[col] : T(0);
            u = ps.yLogWeights[col] * T(kLog2e) + (h - ps.ySqNorm[col]) * uScale;
          }
          us[tid] = u;
        }
        __syncthreads();
      }
      // Online update.
      T scale[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        T tmax = -INFINITY;
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          S[r][q] += us[8 * tc + q];
          tmax = max(tmax, S[r][q]);
        }
        tmax = groupMax8(tmax);
        const T mNew = max(m[r], tmax);
        if (mNew == -INFINITY) {
          scale[r] = 1;
#pragma unroll
          for (int q = 0; q < 8; ++q) S[r][q] = 0;
          continue;
        }
        scale[r] = exp2Of<T>(m[r] - mNew);
        m[r] = mNew;
        T rs = 0;
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          S[r][q] = exp2Of<T>(S[r][q] - mNew);
          rs += S[r][q];
        }
        sum[r] = sum[r] * scale[r] + rs;
      }
      if constexpr (AVG) {
        // P^T to shared memory, the v tile beside it.
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int q = 0; q < 8; ++q) pt[(8 * tc + q) * C::kLdP + 4 * tr + r] = S[r][q];
        for (int e = tid; e < C::kBN * C::kKV; e += C::kThreads) {
          const int j = e / C::kKV, c = e - j * C::kKV;
          const int64_t col = colBase + j, kv = a.kvBegin + c;
          vs[j * C::kLdV + c] = (col < pc.colEnd && kv < ps.k) ? ps.v[col * ps.k + kv] : T(0);
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int q = 0; q < 8; ++q) acc[r][q] *= scale[r];
#pragma unroll 4
        for (int j = 0; j < C::kBN; ++j) {
          T pv[4], vv[8];
#pragma unroll
          for (int r = 0; r < 4; ++r) pv[r] = pt[j * C::kLdP + 4 * tr + r];
#pragma unroll
          for (int q = 0; q < 8; ++q) vv[q] = vs[j * C::kLdV + 8 * tc + q];
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < 8; ++q) acc[r][q] = fma(pv[r], vv[q], acc[r][q]);
        }
        __syncthreads();
      }
    }

    // Results.
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      const T total = groupSum8(sum[r]);
      const T lse2 = m[r] + log2Of<T>(total);
      const int rowInTile = 4 * tr + r;
      const int64_t row = pc.rowBase + rowInTile;
      if (row < pc.rowLo || row >= pc.rowHi) continue;
      if (tc == 0) {
        if (pc.slot < 0) {
          if (a.kvBegin == 0) finalizeRow(ps, row, lse2);
        } else {
          a.wsLse[static_cast<int64_t>(pc.slot) * C::kBM + rowInTile] = lse2;
        }
      }
      if constexpr (AVG) {
        const T inv = T(1) / total;
#pragma unroll
        for (int q = 0; q < 8; ++q) {
          const int c = 8 * tc + q;
          const T v = acc[r][q] * inv;
          if (pc.slot < 0) {
            const int64_t kv = a.kvBegin + c;
            if (c < C::kKV && kv < ps.k) ps.avg[row * ps.k + kv] = v;
          } else if (c < C::kKV) {
            a.wsAvg[(static_cast<int64_t>(pc.slot) * C::kBM + rowInTile) * C::kKV + c] = v;
          }
        }
      }
    }
    __syncthreads();
  });
}

template <typename T, int KV>
KernelShape shapeOf() {
  using C = SimtConfig<T, KV>;
  auto kernel = softminSimtKernel<T, KV>;
  KernelShape s{C::kBM, C::kBN, KV, C::kThreads, C::kSmemBytes, 0};
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kSmemBytes));
  if (err == cudaSuccess)
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&s.blocksPerSm, kernel, C::kThreads, C::kSmemBytes);
  if (err != cudaSuccess) s.blocksPerSm = -static_cast<int>(err);
  return s;
}

template <typename T, int KV>
void launchOne(const LaunchArgs<T>& a, cudaStream_t stream) {
  using C = SimtConfig<T, KV>;
  softminSimtKernel<T, KV><<<a.grid, C::kThreads, C::kSmemBytes, stream>>>(a);
  if (a.streamK) combinePartials<T, C::kBM, C::kKV><<<a.grid, C::kBM, 0, stream>>>(a);
}

}  // namespace

template <typename T>
KernelShape simtShape(int kv) {
  return kv == 0 ? shapeOf<T, 0>() : shapeOf<T, 64>();
}

template <typename T>
void simtLaunch(int kv, const LaunchArgs<T>& a, void* stream) {
  if (kv == 0) launchOne<T, 0>(a, static_cast<cudaStream_t>(stream));
  else launchOne<T, 64>(a, static_cast<cudaStream_t>(stream));
}

template KernelShape simtShape<float>(int);
template KernelShape simtShape<double>(int);
template void simtLaunch<float>(int, const LaunchArgs<float>&, void*);
template void simtLaunch<double>(int, const LaunchArgs<double>&, void*);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
