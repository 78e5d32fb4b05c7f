// The CUDA-core softmin kernel: strict float32 (allowTf32 = false) and float64.
//
// A CTA of 128 threads owns BM = 64 rows; column tiles of BN = 64 rows of y. Thread (tr = tid/8,
// tc = tid%8) computes the 4 x 8 scores of rows 4tr..4tr+3 and columns 8tc..8tc+7 with FMAs on
// register tiles: per dimension step one 16-byte shared load of x (broadcast), two of y, 32 FMAs.
// x and y go through shared memory transposed (dimension-major), KC dimensions at a time, so any d
// works. Scores in base 2 (x is scaled by 2c/eps log2 e when staged); the update is the exact online
// max / sum. The optional average of v: P goes to shared memory transposed, then the same register
// tile computes P (4 rows) x V (KV / 8 columns of v: KV = 64, or 8 for k <= 8). The optional pair-weighted average (PAIR) stages
// pairRow and pairCol like x and y, forms Q_ij = <pairRow_i, pairCol_j> on the same register tile,
// and accumulates (P o Q) x V beside P x V.
#include <cuda_runtime.h>

#include "softmin_common.cuh"
#include "softmin_launch.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

template <typename T, int KV, bool PAIR>
struct SimtConfig {
  static constexpr int kThreads = 128;
  static constexpr int kBM = 64, kBN = 64;
  static constexpr int kKC = sizeof(T) == 4 ? 16 : 8;  // dimensions staged at a time
  static constexpr int kLdX = kBM + 4;                  // transposed x: kKC x kLdX
  static constexpr int kLdY = kBN + 4;
  static constexpr int kKV = KV > 0 ? KV : 8;
  static constexpr int kVC = kKV / 8;                  // columns of v per thread (8 threads per row group)
  static constexpr int kLdP = kBM + 4;                  // transposed P: kBN x kLdP
  static constexpr int kLdV = kKV + 4;
  static constexpr size_t kSmemBytes =
      sizeof(T) * (size_t(kKC) * kLdX + size_t(kKC) * kLdY + kBN +
                   (KV > 0 ? size_t(kBN) * kLdP + size_t(kBN) * kLdV : 0) + (PAIR ? size_t(kBN) * kLdP : 0));
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

// Register tile of a product of two row-major operands over `dims` columns, staged dimension-major
// through xs and ys: S[r][q] += sum_c rowsOf[rowBase + 4tr + r][c] * colsOf[colBase + 8tc + q][c].
// Rows past nRows and columns past nCols read as 0; rows are multiplied by rowScale when staged.
// stageAlso() runs in the first staging phase (between the same barriers), also when dims == 0.
template <typename C, typename T, typename StageAlso>
__device__ __forceinline__ void tileProduct(const T* rowsOf, int64_t nRows, int64_t rowBase, T rowScale, const T* colsOf,
                                            int64_t nCols, int64_t colBase, int64_t dims, T* xs, T* ys, T (&S)[4][8],
                                            StageAlso&& stageAlso) {
  const int tid = threadIdx.x;
  const int tr = tid >> 3, tc = tid & 7;
  if (dims == 0) {
    __syncthreads();
    stageAlso();
    __syncthreads();
  }
  for (int64_t k0 = 0; k0 < dims; k0 += C::kKC) {
    __syncthreads();
    const int kc = static_cast<int>(min(int64_t(C::kKC), dims - k0));
    for (int e = tid; e < C::kBM * C::kKC; e += C::kThreads) {
      const int r = e / C::kKC, c = e - r * C::kKC;
      const int64_t row = rowBase + r;
      xs[c * C::kLdX + r] = (c < kc && row < nRows) ? rowsOf[row * dims + k0 + c] * rowScale : T(0);
    }
    for (int e = tid; e < C::kBN * C::kKC; e += C::kThreads) {
      const int j = e / C::kKC, c = e - j * C::kKC;
      const int64_t col = colBase + j;
      ys[c * C::kLdY + j] = (c < kc && col < nCols) ? colsOf[col * dims + k0 + c] : T(0);
    }
    if (k0 == 0) stageAlso();
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
}

template <typename T, int KV, bool PAIR>
__global__ void __launch_bounds__(128) softminSimtKernel(const __grid_constant__ LaunchArgs<T> a) {
  using C = SimtConfig<T, KV, PAIR>;
  constexpr bool AVG = KV > 0;
  static_assert(!PAIR || AVG, "the pair-weighted average comes with the average");
  extern __shared__ __align__(16) unsigned char smemRaw[];
  T* xs = reinterpret_cast<T*>(smemRaw);   // kKC x kLdX
  T* ys = xs + C::kKC * C::kLdX;           // kKC x kLdY
  T* us = ys + C::kKC * C::kLdY;           // kBN
  T* pt = us + C::kBN;                     // kBN x kLdP (AVG)
  T* vs = pt + C::kBN * C::kLdP;           // kBN x kLdV (AVG)
  T* pw = vs + C::kBN * C::kLdV;           // kBN x kLdP (PAIR): (P o Q)^T
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
    T acc[AVG ? 4 : 1][AVG ? C::kVC : 1];
    T pairAcc[PAIR ? 4 : 1][PAIR ? C::kVC : 1];
#pragma unroll
    for (int r = 0; r < 4; ++r) {
      m[r] = -INFINITY;
      sum[r] = 0;
    }
    if constexpr (AVG) {
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < C::kVC; ++q) acc[r][q] = 0;
    }
    if constexpr (PAIR) {
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < C::kVC; ++q) pairAcc[r][q] = 0;
    }

    for (int64_t ct = pc.ctBegin; ct < pc.ctEnd; ++ct) {
      const int64_t colBase = pc.colBegin + ct * C::kBN;
      T S[4][8];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int q = 0; q < 8; ++q) S[r][q] = 0;
      // The scores' dot products, and the biases of the tile's columns staged with the first chunk.
      tileProduct<C>(ps.x, ps.n, pc.rowBase, scale2, ps.y, ps.m, colBase, d, xs, ys, S, [&] {
        if (tid < C::kBN) {
          const int64_t col = colBase + tid;
          T u = -INFINITY;
          if (col < pc.colEnd) {
            const T h = ps.yPotential ? ps.yPotential[col] : T(0);
            u = ps.yLogWeights[col] * T(kLog2e) + (h - ps.ySqNorm[col]) * uScale;
          }
          us[tid] = u;
        }
      });
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
        if constexpr (PAIR) {
          // Q reuses S's registers: P is in shared memory now. Each thread reads back its own P entries.
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < 8; ++q) S[r][q] = 0;
          tileProduct<C>(ps.pairRow, ps.n, pc.rowBase, T(1), ps.pairCol, pc.colEnd, colBase, ps.q, xs, ys, S, [] {});
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < 8; ++q) {
              const int at = (8 * tc + q) * C::kLdP + 4 * tr + r;
              pw[at] = pt[at] * S[r][q];
            }
        }
        __syncthreads();
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int q = 0; q < C::kVC; ++q) acc[r][q] *= scale[r];
        if constexpr (PAIR) {
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < C::kVC; ++q) pairAcc[r][q] *= scale[r];
        }
#pragma unroll 4
        for (int j = 0; j < C::kBN; ++j) {
          T pv[4], vv[C::kVC];
#pragma unroll
          for (int r = 0; r < 4; ++r) pv[r] = pt[j * C::kLdP + 4 * tr + r];
#pragma unroll
          for (int q = 0; q < C::kVC; ++q) vv[q] = vs[j * C::kLdV + C::kVC * tc + q];
#pragma unroll
          for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int q = 0; q < C::kVC; ++q) acc[r][q] = fma(pv[r], vv[q], acc[r][q]);
          if constexpr (PAIR) {
#pragma unroll
            for (int r = 0; r < 4; ++r) pv[r] = pw[j * C::kLdP + 4 * tr + r];
#pragma unroll
            for (int r = 0; r < 4; ++r)
#pragma unroll
              for (int q = 0; q < C::kVC; ++q) pairAcc[r][q] = fma(pv[r], vv[q], pairAcc[r][q]);
          }
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
        for (int q = 0; q < C::kVC; ++q) {
          const int c = C::kVC * tc + q;
          const T v = acc[r][q] * inv;
          if (pc.slot < 0) {
            const int64_t kv = a.kvBegin + c;
            if (c < C::kKV && kv < ps.k) ps.avg[row * ps.k + kv] = v;
            if constexpr (PAIR)
              if (c < C::kKV && kv < ps.pairK) ps.pairAvg[row * ps.pairK + kv] = pairAcc[r][q] * inv;
          } else if (c < C::kKV) {
            a.wsAvg[(static_cast<int64_t>(pc.slot) * C::kBM + rowInTile) * C::kKV + c] = v;
          }
        }
      }
    }
    __syncthreads();
  });
}

template <typename T, int KV, bool PAIR>
KernelShape shapeOf() {
  using C = SimtConfig<T, KV, PAIR>;
  auto kernel = softminSimtKernel<T, KV, PAIR>;
  KernelShape s{C::kBM, C::kBN, KV, C::kThreads, C::kSmemBytes, 0};
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kSmemBytes));
  if (err == cudaSuccess)
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&s.blocksPerSm, kernel, C::kThreads, C::kSmemBytes);
  if (err != cudaSuccess) s.blocksPerSm = -static_cast<int>(err);
  return s;
}

template <typename T, int KV, bool PAIR>
void launchOne(const LaunchArgs<T>& a, cudaStream_t stream) {
  using C = SimtConfig<T, KV, PAIR>;
  softminSimtKernel<T, KV, PAIR><<<a.grid, C::kThreads, C::kSmemBytes, stream>>>(a);
  if (a.streamK) combinePartials<T, C::kBM, C::kKV><<<a.grid, C::kBM, 0, stream>>>(a);
}

}  // namespace

template <typename T>
KernelShape simtShape(int kv, bool pair) {
  if (kv == 0) return shapeOf<T, 0, false>();
  if (kv == 8) return pair ? shapeOf<T, 8, true>() : shapeOf<T, 8, false>();
  return pair ? shapeOf<T, 64, true>() : shapeOf<T, 64, false>();
}

template <typename T>
void simtLaunch(int kv, bool pair, const LaunchArgs<T>& a, void* stream) {
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  if (kv == 0) launchOne<T, 0, false>(a, s);
  else if (kv == 8) pair ? launchOne<T, 8, true>(a, s) : launchOne<T, 8, false>(a, s);
  else pair ? launchOne<T, 64, true>(a, s) : launchOne<T, 64, false>(a, s);
}

template KernelShape simtShape<float>(int, bool);
template KernelShape simtShape<double>(int, bool);
template void simtLaunch<float>(int, bool, const LaunchArgs<float>&, void*);
template void simtLaunch<double>(int, bool, const LaunchArgs<double>&, void*);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
