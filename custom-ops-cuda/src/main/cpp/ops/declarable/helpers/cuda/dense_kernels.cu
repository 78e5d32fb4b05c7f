// CUDA kernels of the dense solver (../dense.h): the passes over C, the plan, plan products, and
// the resident solve that runs the whole loop with each item's costs in shared memory.
//
// Every reduction is a base-2 log-sum-exp with an online maximum, updated once per few scores (a
// warp's lane holds kRowUnroll columns or kColumnUnroll rows at a time): one exponential per score
// plus one per group.
//  - Row pass: a warp per row, lanes over consecutive columns (coalesced), a warp shuffle merge.
//  - Column pass: a CTA per (item, 32 columns, range of rows): each lane owns a column and its warp
//    streams rows, so that a warp reads 32 consecutive values of a row (coalesced, row-major C);
//    the 8 warps merge through shared memory, and the ranges of rows through a workspace merged by
//    the last CTA of the chunk to arrive (a threadfence reduction).
//  - Resident solve: a cluster of K CTAs per item (K = 1 before Hopper), CTA r keeping rows
//    [r R, (r + 1) R) of the item in shared memory. A row pass is local; a column pass leaves each
//    CTA's partial per column, CTA r merges columns [r M/K, (r + 1) M/K) from every CTA's shared
//    memory (distributed shared memory) and writes their biases into every CTA. Two cluster
//    barriers per iteration; the threshold is checked on the device, so the loop needs no host.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "dense_launch.h"
#include "softmin_common.cuh"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kRowUnroll = 8;       // columns per lane per step of a row reduction
constexpr int kColumnUnroll = 4;    // rows per step of a column reduction
constexpr int kChunk = 32;          // columns per CTA of a column pass
constexpr int64_t kMinSplitRows = 64;
constexpr int kMaxCluster = 8;      // the portable cluster size
// The resident solve has one CTA per SM (its slab fills the shared memory): more warps hide the
// latency of its dependent exponentials, shuffles and cluster reads.
constexpr int kResidentThreads = 512;
constexpr int kResidentWarps = kResidentThreads / 32;
constexpr int kProductColumns = 8;  // columns of v per plan-product launch slice

// A running base-2 log-sum-exp: sum 2^(s - max).
template <typename T>
struct Lse2 {
  T max = -INFINITY;
  T sum = 0;

  template <int U>
  __device__ __forceinline__ void add(const T (&s)[U]) {
    T top = s[0];
#pragma unroll
    for (int u = 1; u < U; ++u) top = fmax(top, s[u]);
    const T next = fmax(max, top);
    if (next == -INFINITY) return;
    T acc = sum * exp2Of<T>(max - next);
#pragma unroll
    for (int u = 0; u < U; ++u) acc += exp2Of<T>(s[u] - next);
    sum = acc, max = next;
  }

  __device__ __forceinline__ void merge(T otherMax, T otherSum) {
    const T next = fmax(max, otherMax);
    if (next == -INFINITY) return;
    sum = sum * exp2Of<T>(max - next) + otherSum * exp2Of<T>(otherMax - next);
    max = next;
  }

  __device__ __forceinline__ void warpMerge() {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) merge(__shfl_xor_sync(0xffffffffu, max, o), __shfl_xor_sync(0xffffffffu, sum, o));
  }

  __device__ __forceinline__ T log2() const { return max + log2Of<T>(sum); }
};

// The score 2^(bias - c s), -inf where the bias is (a masked or zero-weight entry: c is not used).
template <typename T>
__device__ __forceinline__ T score(T bias, T c, T scale2) {
  return bias > -INFINITY ? fma(-c, scale2, bias) : T(-INFINITY);
}

// Lane's share of a row: columns lane, lane + 32, ... < m of c, with the column biases.
template <typename T>
__device__ __forceinline__ void accumulateRow(Lse2<T>& acc, const T* c, const T* bias, int64_t m, T scale2, int lane) {
  for (int64_t j0 = 0; j0 < m; j0 += 32 * kRowUnroll) {
    T s[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      const int64_t j = j0 + u * 32 + lane;
      s[u] = j < m ? score(bias[j], c[j], scale2) : T(-INFINITY);
    }
    acc.add(s);
  }
}

// A column's share of rows begin, begin + stride, ... < end: c points at the column's entry of row
// 0, rows ld apart; bias holds the row biases.
template <typename T>
__device__ __forceinline__ void accumulateColumn(Lse2<T>& acc, const T* c, int64_t ld, const T* bias, int64_t begin,
                                                 int64_t end, int64_t stride, T scale2) {
  for (int64_t i0 = begin; i0 < end; i0 += stride * kColumnUnroll) {
    T s[kColumnUnroll];
#pragma unroll
    for (int u = 0; u < kColumnUnroll; ++u) {
      const int64_t i = i0 + u * stride;
      s[u] = i < end ? score(bias[i], c[i * ld], scale2) : T(-INFINITY);
    }
    acc.add(s);
  }
}

// Entry `at` of the updated side from its log2-sum-exp (as the CPU backend's writeSide).
template <typename T>
__device__ __forceinline__ void writeSide(const DenseLsePass<T>& p, int64_t at, bool present, T log2W, T log2Sum) {
  const T lse = present ? T(kLn2) * log2Sum : T(0);
  const T potential = present ? -p.epsDamping * lse : T(0);
  if (p.out) p.out[at] = potential;
  if (p.bias) p.bias[at] = present ? fma(potential, p.scale2, log2W) : T(-INFINITY);
  if (p.lse) p.lse[at] = lse;
}

template <typename T>
__device__ __forceinline__ T planEntry(T biasA, T biasB, T c, T scale2) {
  return biasA > -INFINITY && biasB > -INFINITY ? exp2Of<T>(fma(-c, scale2, biasA + biasB)) : T(0);
}

template <typename T>
__global__ void __launch_bounds__(kThreads) denseRowKernel(const DenseBatch<T> b, const DenseLsePass<T> p) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = b.batch * b.n, warps = int64_t(gridDim.x) * kWarps;
  for (int64_t r = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t item = r / b.n;
    if (p.active && !p.active[item]) {
      if (lane == 0 && p.out && p.prev) p.out[r] = p.prev[r];
      continue;
    }
    const bool present = b.maskA[r];
    T log2Sum = 0;
    if (present) {
      Lse2<T> acc;
      accumulateRow(acc, b.cost + r * b.m, p.otherBias + item * b.m, b.m, p.scale2, lane);
      acc.warpMerge();
      log2Sum = acc.log2();
    }
    if (lane == 0) writeSide(p, r, present, b.log2A[r], log2Sum);
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads) denseColumnKernel(const DenseBatch<T> b, const DenseLsePass<T> p,
                                                              const DenseColumnLayout layout, T* partials,
                                                              unsigned* counters) {
  __shared__ T warpMax[kWarps][32], warpSum[kWarps][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t split = blockIdx.x % layout.splits, task = blockIdx.x / layout.splits;
  const int64_t chunk = task % layout.chunks, item = task / layout.chunks;
  const int64_t j = chunk * kChunk + lane;
  const bool inRange = j < b.m;
  const int64_t column = item * b.m + j;
  if (p.active && !p.active[item]) {
    if (split == 0 && warp == 0 && inRange && p.out && p.prev) p.out[column] = p.prev[column];
    return;
  }
  const int64_t perSplit = (b.n + layout.splits - 1) / layout.splits;
  const int64_t begin = split * perSplit, end = min(b.n, begin + perSplit);
  Lse2<T> acc;
  // Lanes past the last column read column m - 1 again (in bounds) and drop the result.
  const T* c = b.cost + item * b.n * b.m + (inRange ? j : b.m - 1);
  accumulateColumn(acc, c, b.m, p.otherBias + item * b.n, begin + warp, end, int64_t(kWarps), p.scale2);
  warpMax[warp][lane] = acc.max;
  warpSum[warp][lane] = acc.sum;
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int w = 1; w < kWarps; ++w) acc.merge(warpMax[w][lane], warpSum[w][lane]);
  if (layout.splits > 1) {
    const int64_t slots = b.batch * layout.splits * b.m;
    T* partialMax = partials;
    T* partialSum = partials + slots;
    if (inRange) {
      partialMax[(item * layout.splits + split) * b.m + j] = acc.max;
      partialSum[(item * layout.splits + split) * b.m + j] = acc.sum;
    }
    __threadfence();
    __syncwarp();
    unsigned* counter = counters + item * layout.chunks + chunk;
    unsigned arrived = 0;
    if (lane == 0) arrived = atomicAdd(counter, 1u);
    arrived = __shfl_sync(0xffffffffu, arrived, 0);
    if (arrived != unsigned(layout.splits - 1)) return;
    __threadfence();
    acc = Lse2<T>();
    if (inRange) {
      for (int64_t s = 0; s < layout.splits; ++s) {
        const int64_t at = (item * layout.splits + s) * b.m + j;
        acc.merge(__ldcg(partialMax + at), __ldcg(partialSum + at));
      }
    }
    if (lane == 0) *counter = 0;  // zero again for the next launch
  }
  if (!inRange) return;
  const bool present = b.maskB[column];
  writeSide(p, column, present, b.log2B[column], present ? acc.log2() : T(0));
}

template <typename T>
__global__ void __launch_bounds__(kThreads) densePlanKernel(const DenseBatch<T> b, const T* biasA, const T* biasB,
                                                            T scale2, T* out) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = b.batch * b.n, warps = int64_t(gridDim.x) * kWarps;
  for (int64_t r = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5; r < rows; r += warps) {
    const T* bias = biasB + (r / b.n) * b.m;
    const T* c = b.cost + r * b.m;
    for (int64_t j = lane; j < b.m; j += 32) out[r * b.m + j] = planEntry(biasA[r], bias[j], c[j], scale2);
  }
}

// out (rows x k) = P @ v, columns kBegin.. of v and out per launch slice (blockIdx.y).
template <typename T>
__global__ void __launch_bounds__(kThreads) densePlanRowsProductKernel(const DenseBatch<T> b, const T* biasA,
                                                                       const T* biasB, T scale2, int64_t k, const T* v,
                                                                       T* out) {
  const int lane = threadIdx.x & 31;
  const int64_t kBegin = int64_t(blockIdx.y) * kProductColumns;
  const int width = int(min(int64_t(kProductColumns), k - kBegin));
  const int64_t rows = b.batch * b.n, warps = int64_t(gridDim.x) * kWarps;
  for (int64_t r = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5; r < rows; r += warps) {
    const int64_t item = r / b.n;
    T acc[kProductColumns] = {};
    for (int64_t j = lane; j < b.m; j += 32) {
      const T bj = biasB[item * b.m + j];
      if (!(biasA[r] > -INFINITY && bj > -INFINITY)) continue;
      const T pij = planEntry(biasA[r], bj, b.cost[r * b.m + j], scale2);
      const T* vj = v + (item * b.m + j) * k + kBegin;
#pragma unroll
      for (int t = 0; t < kProductColumns; ++t)
        if (t < width) acc[t] = fma(pij, vj[t], acc[t]);
    }
#pragma unroll
    for (int t = 0; t < kProductColumns; ++t) {
      for (int o = 16; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(0xffffffffu, acc[t], o);
      if (lane == 0 && t < width) out[r * k + kBegin + t] = acc[t];
    }
  }
}

// out (columns x k) = P^T @ v: a CTA per (item, 32 columns), warps over rows, merged in shared memory.
template <typename T>
__global__ void __launch_bounds__(kThreads) densePlanColumnsProductKernel(const DenseBatch<T> b, const T* biasA,
                                                                          const T* biasB, T scale2, int64_t k,
                                                                          const T* v, T* out) {
  __shared__ T partial[kWarps][kProductColumns][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t chunks = (b.m + kChunk - 1) / kChunk;
  const int64_t chunk = blockIdx.x % chunks, item = blockIdx.x / chunks;
  const int64_t kBegin = int64_t(blockIdx.y) * kProductColumns;
  const int width = int(min(int64_t(kProductColumns), k - kBegin));
  const int64_t j = chunk * kChunk + lane;
  const bool inRange = j < b.m;
  const T bj = inRange ? biasB[item * b.m + j] : T(-INFINITY);
  T acc[kProductColumns] = {};
  for (int64_t i = warp; i < b.n; i += kWarps) {
    const int64_t row = item * b.n + i;
    if (!(biasA[row] > -INFINITY && bj > -INFINITY)) continue;
    const T pij = planEntry(biasA[row], bj, b.cost[row * b.m + j], scale2);
    const T* vi = v + row * k + kBegin;
#pragma unroll
    for (int t = 0; t < kProductColumns; ++t)
      if (t < width) acc[t] = fma(pij, vi[t], acc[t]);
  }
#pragma unroll
  for (int t = 0; t < kProductColumns; ++t) partial[warp][t][lane] = acc[t];
  __syncthreads();
  if (warp != 0 || !inRange) return;
  for (int t = 0; t < width; ++t) {
    T s = 0;
    for (int w = 0; w < kWarps; ++w) s += partial[w][t][lane];
    out[(item * b.m + j) * k + kBegin + t] = s;
  }
}

// How an item is laid out over a cluster in the resident solve.
struct ResidentShape {
  int cluster;     // K CTAs per item
  int rowsPerCta;  // R
  int colsPerCta;  // columns each CTA merges
  size_t smemBytes;
};

template <typename T>
ResidentShape residentShape(int64_t n, int64_t m, int cluster) {
  ResidentShape s;
  s.cluster = cluster;
  s.rowsPerCta = int((n + cluster - 1) / cluster);
  s.colsPerCta = int((m + cluster - 1) / cluster);
  // slab R x m; column biases, partial maxima and sums (3 m); row biases, f, log2 a (3 R); g (M/K);
  // the cluster's change slots (K) and a reduction scratch; then R presence bytes.
  const size_t values = size_t(s.rowsPerCta) * size_t(m) + 3 * size_t(m) + 3 * size_t(s.rowsPerCta) +
                        size_t(s.colsPerCta) + size_t(cluster) + kResidentWarps;
  s.smemBytes = values * sizeof(T) + size_t(s.rowsPerCta);
  return s;
}

__device__ __forceinline__ unsigned clusterRank(int cluster) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  return cluster > 1 ? cg::this_cluster().block_rank() : 0u;
#else
  return 0u;
#endif
}

__device__ __forceinline__ void clusterSync(int cluster) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (cluster > 1) {
    cg::this_cluster().sync();
    return;
  }
#endif
  __syncthreads();
}

// p (in this CTA's shared memory) in the shared memory of the cluster's CTA of rank q.
template <typename U>
__device__ __forceinline__ U* inCta(U* p, int q, int cluster) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  if (cluster > 1) return cg::this_cluster().map_shared_rank(p, q);
#endif
  return p;
}

template <typename T>
__global__ void __launch_bounds__(kResidentThreads) denseResidentKernel(const DenseBatch<T> b, const DenseResidentSolve<T> r,
                                                                const ResidentShape shape) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  const int K = shape.cluster, R = shape.rowsPerCta, MC = shape.colsPerCta;
  const int rank = int(clusterRank(K));
  const int64_t item = blockIdx.x / K, n = b.n, m = b.m;
  const int64_t row0 = int64_t(rank) * R, col0 = int64_t(rank) * MC;
  const int rows = int(max(int64_t(0), min(int64_t(R), n - row0)));
  const int cols = int(max(int64_t(0), min(int64_t(MC), m - col0)));
  T* slab = reinterpret_cast<T*>(smemRaw);  // rows x m
  T* colBias = slab + size_t(R) * size_t(m);
  T* partMax = colBias + m;
  T* partSum = partMax + m;
  T* rowBias = partSum + m;
  T* f = rowBias + R;
  T* log2a = f + R;
  T* g = log2a + R;                          // the columns this CTA merges
  T* slots = g + MC;                         // each CTA's largest change, per rank
  T* scratch = slots + K;
  uint8_t* present = reinterpret_cast<uint8_t*>(scratch + kResidentWarps);
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

  const T* source = b.cost + (item * n + row0) * m;
  for (int64_t e = tid; e < int64_t(rows) * m; e += kResidentThreads) slab[e] = source[e];
  for (int64_t j = tid; j < m; j += kResidentThreads) colBias[j] = b.log2B[item * m + j];  // g = 0
  for (int i = tid; i < rows; i += kResidentThreads) {
    log2a[i] = b.log2A[item * n + row0 + i];
    present[i] = b.maskA[item * n + row0 + i];
    f[i] = 0;
  }
  for (int jj = tid; jj < cols; jj += kResidentThreads) g[jj] = 0;
  __syncthreads();

  int it = 0;
  bool converged = false;
  while (it < r.maxIters) {
    ++it;
    const bool check = r.threshold > 0 && it % r.checkEvery == 0;
    T change = 0;
    for (int i = warp; i < rows; i += kResidentWarps) {
      T fNew = 0, bias = -INFINITY;
      if (present[i]) {
        Lse2<T> acc;
        accumulateRow(acc, slab + size_t(i) * size_t(m), colBias, m, r.scale2, lane);
        acc.warpMerge();
        fNew = -r.epsDampingA * T(kLn2) * acc.log2();
        bias = fma(fNew, r.scale2, log2a[i]);
      }
      if (lane == 0) {
        change = fmax(change, fabs(fNew - f[i]));
        f[i] = fNew;
        rowBias[i] = bias;
      }
    }
    __syncthreads();
    for (int64_t j = tid; j < m; j += kResidentThreads) {
      Lse2<T> acc;
      accumulateColumn(acc, slab + j, m, rowBias, 0, rows, 1, r.scale2);
      partMax[j] = acc.max;
      partSum[j] = acc.sum;
    }
    clusterSync(K);  // every CTA's partials are complete
    for (int jj = tid; jj < cols; jj += kResidentThreads) {
      const int64_t j = col0 + jj;
      // Every CTA's partial first (K loads in flight), then the merge.
      T maxes[kMaxCluster], sums[kMaxCluster];
#pragma unroll
      for (int q = 0; q < kMaxCluster; ++q)
        if (q < K) maxes[q] = *inCta(partMax + j, q, K), sums[q] = *inCta(partSum + j, q, K);
      Lse2<T> acc;
#pragma unroll
      for (int q = 0; q < kMaxCluster; ++q)
        if (q < K) acc.merge(maxes[q], sums[q]);
      const bool valid = b.maskB[item * m + j];
      const T gNew = valid ? -r.epsDampingB * T(kLn2) * acc.log2() : T(0);
      const T bias = valid ? fma(gNew, r.scale2, b.log2B[item * m + j]) : T(-INFINITY);
      change = fmax(change, fabs(gNew - g[jj]));
      g[jj] = gNew;
      for (int q = 0; q < K; ++q) *inCta(colBias + j, q, K) = bias;
    }
    if (check) {
      T top = change;
#pragma unroll
      for (int o = 16; o > 0; o >>= 1) top = fmax(top, __shfl_xor_sync(0xffffffffu, top, o));
      if (lane == 0) scratch[warp] = top;
      __syncthreads();
      if (tid == 0) {
        for (int w = 1; w < kResidentWarps; ++w) top = fmax(top, scratch[w]);
        for (int q = 0; q < K; ++q) *inCta(slots + rank, q, K) = top;
      }
    }
    clusterSync(K);  // the column biases (and the changes) are everywhere
    if (check) {
      T top = 0;
      for (int q = 0; q < K; ++q) top = fmax(top, slots[q]);
      if (double(top) < r.threshold) {
        converged = true;
        break;
      }
    }
  }
  for (int i = tid; i < rows; i += kResidentThreads) {
    r.f[item * n + row0 + i] = f[i];
    r.biasA[item * n + row0 + i] = rowBias[i];
  }
  for (int jj = tid; jj < cols; jj += kResidentThreads) {
    r.g[item * m + col0 + jj] = g[jj];
    r.biasB[item * m + col0 + jj] = colBias[col0 + jj];
  }
  if (rank == 0 && tid == 0) {
    r.iterations[item] = it;
    r.converged[item] = converged ? 1 : 0;
  }
}

unsigned gridFor(int64_t warpsOfWork) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>((warpsOfWork + kWarps - 1) / kWarps, 1 << 20)));
}

}  // namespace

DenseColumnLayout denseColumnLayout(int64_t batch, int64_t n, int64_t m, int smCount) {
  DenseColumnLayout l;
  l.chunks = (m + kChunk - 1) / kChunk;
  // Enough CTAs for every SM to hold several, in ranges of at least kMinSplitRows rows.
  const int64_t wanted = 8 * int64_t(smCount), tasks = batch * l.chunks;
  l.splits = std::max<int64_t>(1, std::min((wanted + tasks - 1) / tasks, n / kMinSplitRows));
  return l;
}

size_t denseColumnPartials(const DenseColumnLayout& l, int64_t batch, int64_t m) {
  return l.splits > 1 ? 2 * size_t(batch) * size_t(l.splits) * size_t(m) : 0;
}

size_t denseColumnCounters(const DenseColumnLayout& l, int64_t batch) {
  return l.splits > 1 ? size_t(batch) * size_t(l.chunks) : 0;
}

template <typename T>
void launchDenseRows(const DenseBatch<T>& b, const DenseLsePass<T>& p, void* stream) {
  denseRowKernel<T><<<gridFor(b.batch * b.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(b, p);
}

template <typename T>
void launchDenseColumns(const DenseBatch<T>& b, const DenseLsePass<T>& p, const DenseColumnLayout& layout, T* partials,
                        unsigned* counters, void* stream) {
  const int64_t grid = b.batch * layout.chunks * layout.splits;
  denseColumnKernel<T><<<static_cast<unsigned>(grid), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(b, p, layout,
                                                                                                      partials, counters);
}

template <typename T>
void launchDensePlan(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, T* out, void* stream) {
  densePlanKernel<T><<<gridFor(b.batch * b.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(b, biasA, biasB, scale2,
                                                                                               out);
}

template <typename T>
void launchDensePlanProduct(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, bool transpose, int64_t k,
                            const T* v, T* out, void* stream) {
  const unsigned slices = static_cast<unsigned>((k + kProductColumns - 1) / kProductColumns);
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (!transpose) {
    densePlanRowsProductKernel<T><<<dim3(gridFor(b.batch * b.n), slices), kThreads, 0, st>>>(b, biasA, biasB, scale2, k,
                                                                                            v, out);
  } else {
    const unsigned grid = static_cast<unsigned>(b.batch * ((b.m + kChunk - 1) / kChunk));
    densePlanColumnsProductKernel<T><<<dim3(grid, slices), kThreads, 0, st>>>(b, biasA, biasB, scale2, k, v, out);
  }
}

template <typename T>
bool launchDenseResident(const DenseBatch<T>& b, const DenseResidentSolve<T>& solve, const DenseDevice& device,
                         void* stream) {
  const int largest = device.computeMajor >= 9 ? kMaxCluster : 1;
  // The smallest cluster that holds an item, then larger ones while the batch leaves SMs idle
  // and every CTA keeps a few rows per warp.
  int cluster = 1;
  while (cluster <= largest && residentShape<T>(b.n, b.m, cluster).smemBytes > size_t(device.maxSharedPerBlock))
    cluster *= 2;
  if (cluster > largest) return false;
  while (cluster < largest && b.batch * cluster < device.smCount && b.n >= int64_t(kResidentWarps) * cluster) cluster *= 2;
  const ResidentShape shape = residentShape<T>(b.n, b.m, cluster);
  auto kernel = denseResidentKernel<T>;
  if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shape.smemBytes)) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(b.batch * cluster));
  config.blockDim = dim3(kResidentThreads);
  config.dynamicSmemBytes = shape.smemBytes;
  config.stream = static_cast<cudaStream_t>(stream);
  cudaLaunchAttribute attribute[1];
  attribute[0].id = cudaLaunchAttributeClusterDimension;
  attribute[0].val.clusterDim.x = static_cast<unsigned>(cluster);
  attribute[0].val.clusterDim.y = 1;
  attribute[0].val.clusterDim.z = 1;
  config.attrs = attribute;
  config.numAttrs = cluster > 1 ? 1 : 0;
  if (cluster > 1) {
    int active = 0;
    if (cudaOccupancyMaxActiveClusters(&active, kernel, &config) != cudaSuccess || active < 1) {
      cudaGetLastError();
      return false;
    }
  }
  cudaLaunchKernelEx(&config, kernel, b, solve, shape);
  return true;
}

#define SINKHORN_DENSE_INSTANTIATE(T)                                                                             \
  template void launchDenseRows<T>(const DenseBatch<T>&, const DenseLsePass<T>&, void*);                         \
  template void launchDenseColumns<T>(const DenseBatch<T>&, const DenseLsePass<T>&, const DenseColumnLayout&, T*, \
                                      unsigned*, void*);                                                          \
  template void launchDensePlan<T>(const DenseBatch<T>&, const T*, const T*, T, T*, void*);                       \
  template void launchDensePlanProduct<T>(const DenseBatch<T>&, const T*, const T*, T, bool, int64_t, const T*,  \
                                          T*, void*);                                                             \
  template bool launchDenseResident<T>(const DenseBatch<T>&, const DenseResidentSolve<T>&, const DenseDevice&,    \
                                       void*);
SINKHORN_DENSE_INSTANTIATE(float)
SINKHORN_DENSE_INSTANTIATE(double)

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
