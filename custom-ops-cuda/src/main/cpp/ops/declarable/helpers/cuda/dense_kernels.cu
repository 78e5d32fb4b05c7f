// CUDA kernels of the dense solver (../dense.h): the passes over C, the plan, plan products, and
// the resident solve that runs the whole loop with each item's costs in shared memory.
//
// Every reduction is a base-2 log-sum-exp with an online maximum, updated once per few scores (a
// warp's lane holds kRowUnroll columns or kColumnUnroll rows at a time): one exponential per score
// plus one per group. A resident line is summed against its previous log-sum-exp instead (no
// maximum), with the exact reduction (maximum first for lines of at most 32 kRowUnroll values)
// where that sum leaves its window.
//  - Row pass: a warp per row, lanes over consecutive columns (coalesced), a warp shuffle merge.
//  - Column pass: a CTA per (item, 32 columns, range of rows): each lane owns a column and its warp
//    streams rows, so that a warp reads 32 consecutive values of a row (coalesced, row-major C);
//    the 8 warps merge through shared memory, and the ranges of rows through a workspace merged by
//    the last CTA of the chunk to arrive (a threadfence reduction).
//  - Resident solve: a cluster of K CTAs per item (K = 1 before Hopper, up to 16 on it), CTA r
//    keeping rows [r R, (r + 1) R) of the item in shared memory, and owning columns
//    [r M/K, (r + 1) M/K). Two layouts; the threshold is checked on the device, so the loop needs no
//    host.
//    Rows only: a row pass is local; a column pass pushes each CTA's partial per column into the
//    shared memory of the CTA that owns the column (distributed shared memory), which merges the K
//    partials and writes the column's bias into every CTA; two cluster barriers per iteration.
//    Rows and columns: CTA r also keeps its columns, transposed, so both passes are local warp-per-
//    line reductions and each new bias is written into every CTA by st.async, counted on the
//    receiver's mbarrier; twice the shared memory, no merge step and no cluster barrier on the
//    iteration's dependent chain. Taken when the whole batch still runs at once.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "cuda_intrinsics.cuh"
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
constexpr int kPortableCluster = 8;
// Clusters of 16 (non-portable, Hopper) put a small batch of large items on every SM in the rows-only
// layout: 8 items fill 128 SMs instead of 64, with half the rows per CTA on each iteration's
// dependent chain.
constexpr int kMaxCluster = 16;
// The resident solve has one CTA per SM (its slab fills the shared memory, or its registers the
// register file): more warps hide the latency of its dependent exponentials, shuffles and cluster
// stores. Float: 1024 threads of 64 registers (on the H200, B = 8, N = M = 256: 3.49 us per
// iteration against 3.95 with 512; B = 64, N = M = 512: 56.2 against 60.5). Double needs more
// registers per thread: 512.
template <typename T>
constexpr int kResidentThreads = sizeof(T) == sizeof(float) ? 1024 : 512;
template <typename T>
constexpr int kResidentWarps = kResidentThreads<T> / 32;
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

// Each v[p] becomes its sum over the warp, bit-identical on every lane (a butterfly: every lane adds
// the same pairs in the same order).
template <typename T, int P>
__device__ __forceinline__ void warpSum(T (&v)[P]) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
#pragma unroll
    for (int p = 0; p < P; ++p) v[p] += __shfl_xor_sync(0xffffffffu, v[p], o);
}

// A resident slab's copy of a cost: masked entries (the only ones that may be non-finite) become 0,
// which their -inf biases then ignore.
template <typename T>
__device__ __forceinline__ T finiteOrZero(T c) {
  return fabs(c) < T(INFINITY) ? c : T(0);
}

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
  __shared__ T warpsMax[kWarps][32], warpsSum[kWarps][32];
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
  warpsMax[warp][lane] = acc.max;
  warpsSum[warp][lane] = acc.sum;
  __syncthreads();
  if (warp != 0) return;
#pragma unroll
  for (int w = 1; w < kWarps; ++w) acc.merge(warpsMax[w][lane], warpsSum[w][lane]);
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

// *first = the smallest flat index of an entry of C that is NaN or infinite where its row and its
// column are present (left as it is when there is none): a warp per row, lanes over its columns.
template <typename T>
__global__ void __launch_bounds__(kThreads) denseFirstNonFiniteKernel(const DenseBatch<T> b,
                                                                      unsigned long long* first) {
  const int lane = threadIdx.x & 31;
  const int64_t rows = b.batch * b.n, warps = int64_t(gridDim.x) * kWarps;
  for (int64_t r = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> 5; r < rows; r += warps) {
    if (!b.maskA[r]) continue;
    const uint8_t* columns = b.maskB + (r / b.n) * b.m;
    const T* c = b.cost + r * b.m;
    for (int64_t j = lane; j < b.m; j += 32)
      if (columns[j] && !isfinite(c[j])) atomicMin(first, static_cast<unsigned long long>(r * b.m + j));
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
    warpSum(acc);
#pragma unroll
    for (int t = 0; t < kProductColumns; ++t)
      if (lane == 0 && t < width) out[r * k + kBegin + t] = acc[t];
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

// Values between consecutive lines of a resident slab of lines of len values: whole 16-byte words,
// so that lanes read lines in vector loads.
template <typename T>
__host__ __device__ constexpr size_t residentStride(int64_t len) {
  return size_t((len + 16 / int64_t(sizeof(T)) - 1) / (16 / int64_t(sizeof(T))) * (16 / int64_t(sizeof(T))));
}

// The same for the transposed column slab, whose lines are written a 16-byte word per lane at the
// same offset of consecutive lines: a stride of 16 bytes more than a multiple of 128 puts each
// quarter warp's words on distinct banks.
template <typename T>
__host__ __device__ constexpr size_t transposedStride(int64_t len) {
  constexpr size_t word = 16 / sizeof(T), bankRow = 128 / sizeof(T);
  const size_t padded = residentStride<T>(len);
  return padded + (word + bankRow - padded % bankRow) % bankRow;
}

// A 16-byte word of a resident slab, the unit of its vector loads and stores.
template <typename T>
union ResidentWord {
  using Word = typename std::conditional<sizeof(T) == sizeof(float), float4, double2>::type;
  static constexpr int kValues = 16 / sizeof(T);
  Word word;
  T v[kValues];
};

// How an item is laid out over a cluster in the resident solve.
struct ResidentShape {
  int cluster;       // K CTAs per item
  int rowsPerCta;    // R
  int colsPerCta;    // MC: the columns each CTA owns
  bool columnSlab;   // the CTA also keeps its MC columns (transposed, MC x n)
  size_t arrivalsAt; // byte offset of the column-slab layout's two mbarriers (row, column biases in)
  size_t smemBytes;
};

template <typename T>
ResidentShape residentShape(int64_t n, int64_t m, int cluster, bool columnSlab) {
  ResidentShape s;
  // Slices of whole 16-byte words, so that biases are broadcast in vector stores.
  constexpr int64_t vec = 16 / sizeof(T);
  s.cluster = cluster;
  s.rowsPerCta = int(((n + cluster - 1) / cluster + vec - 1) / vec * vec);
  s.colsPerCta = int(((m + cluster - 1) / cluster + vec - 1) / vec * vec);
  s.columnSlab = columnSlab;
  const size_t R = size_t(s.rowsPerCta), MC = size_t(s.colsPerCta), K = size_t(cluster);
  // Both: every CTA's column biases (K MC), then the row biases: every CTA's (K R) with the column
  // slab, this CTA's (R) without; slab R x m (lines padded to whole 16-byte words); f, log2 a
  // (2 R); g, log2 b of the owned columns (2 MC); every warp's largest change (K x warps). Then the
  // column slab MC x n (padded likewise), or the partials every CTA pushes for the owned columns
  // (max and sum, 2 K MC). Then the presence bytes of the R rows and MC columns, and two mbarriers.
  const size_t common = K * MC + R * residentStride<T>(m) + 2 * R + 2 * MC + K * kResidentWarps<T>;
  const size_t values = common + (columnSlab ? K * R + MC * transposedStride<T>(n) : R + 2 * K * MC);
  s.arrivalsAt = (values * sizeof(T) + R + MC + 7) / 8 * 8;
  s.smemBytes = s.arrivalsAt + 2 * sizeof(uint64_t);
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

// A float's bits as an int that orders like the float (a negative value's magnitude bits flipped):
// a warp's largest float is then one redux instruction instead of five shuffle rounds.
__device__ __forceinline__ int orderedKey(float v) {
  const int bits = __float_as_int(v);
  return bits >= 0 ? bits : bits ^ 0x7fffffff;
}

__device__ __forceinline__ float fromOrderedKey(int key) { return __int_as_float(key >= 0 ? key : key ^ 0x7fffffff); }

// Each v[p] becomes its maximum over the warp (every lane active).
template <int P>
__device__ __forceinline__ void warpMax(float (&v)[P]) {
#pragma unroll
  for (int p = 0; p < P; ++p) v[p] = fromOrderedKey(__reduce_max_sync(0xffffffffu, orderedKey(v[p])));
}

template <int P>
__device__ __forceinline__ void warpMax(double (&v)[P]) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1)
#pragma unroll
    for (int p = 0; p < P; ++p) v[p] = fmax(v[p], __shfl_xor_sync(0xffffffffu, v[p], o));
}

// One side's lines in a CTA of the resident solve: a slab of lines x len costs (row-major), the
// other side's len biases it reads, and this side's potentials, weights, presence and biases.
template <typename T>
struct ResidentSide {
  const T* slab;  // line l at slab + l stride
  int lines, len, stride;
  const T* otherBias;
  T* potential;
  const T* log2w;
  const uint8_t* present;
  T* bias;  // line l's bias at bias[l]
  T epsDamping;
  T log2SumPerPotential;  // -1 / (epsDamping ln 2): a line's log2-sum-exp from its potential
};

// This CTA's slice [slice, slice + count) of a bias array (count values of whole 16-byte words,
// 16-byte aligned) copied to the same place in every other CTA of the cluster: warp q < K - 1
// sends it to the q-th other CTA in vector stores, a quarter of the distributed shared memory
// transactions of one store per value, and no index arithmetic on the iteration's chain.
template <typename T>
__device__ __forceinline__ void broadcastSlice(T* slice, int count, int K, int rank, int warp, int lane) {
  static_assert(kMaxCluster - 1 <= kResidentWarps<double>, "a warp per receiving CTA");
  if (warp >= K - 1) return;
  const int words = count * int(sizeof(T)) / 16;
  const float4* from = reinterpret_cast<const float4*>(slice);
  float4* to = inCta(reinterpret_cast<float4*>(slice), warp < rank ? warp : warp + 1, K);
  for (int w = lane; w < words; w += 32) to[w] = from[w];
}

// The column-slab layout's exchange of one side's new biases: this CTA's slice [slice, slice + count)
// (count values of whole 16-byte words, 16-byte aligned) stored by st.async at the same place in
// every other CTA, warp q < K - 1 sending to the q-th other CTA, each word counted on the receiver's
// mbarrier `arrivals`; then the wait for the K - 1 slices coming here (a phase per half-iteration,
// of parity (it - 1) & 1). No cluster barrier: a CTA overwrites another's copy of a slice only after
// it has received the biases that CTA computed from that copy, so after the copy was read; and a
// phase's words cannot come before the previous phase completed here, for the same reason.
template <typename T>
__device__ __forceinline__ void exchangeSlices(T* slice, int count, uint64_t* arrivals, unsigned parity, int K,
                                               int rank, int warp, int lane) {
  if (K == 1) return;  // the CTA barrier before made the biases visible to every warp
  static_assert(kMaxCluster - 1 <= kResidentWarps<double>, "a warp per receiving CTA");
  if (warp < K - 1) {
    const unsigned q = unsigned(warp < rank ? warp : warp + 1);
    const unsigned remoteArrivals = clusterAddress(arrivals, q);
    const uint4* words = reinterpret_cast<const uint4*>(slice);
    const int wordCount = count * int(sizeof(T)) / 16;
    for (int w = lane; w < wordCount; w += 32) storeAsync16(clusterAddress(words + w, q), words[w], remoteArrivals);
  }
  if (threadIdx.x == 0) mbarArriveExpectTx(arrivals, unsigned((K - 1) * count * int(sizeof(T))));
  mbarWaitCluster(arrivals, parity);
}

// Scores of lines l0, l0 + warps, ... (P of them) at the kRowUnroll columns of this lane in the
// step at k0: 16-byte words lane, lane + 32, ... of the step (vector loads, conflict-free). A word
// that starts past the line scores -inf; the rest of a line's last word is padding whose costs are
// 0 and whose other-side biases are -inf, so no per-value test. Costs are finite (non-finite
// masked costs became 0 when the slab was loaded), hence no -inf test either.
template <typename T, int P>
__device__ __forceinline__ void lineScores(const ResidentSide<T>& side, int l0, int k0, T scale2, int lane,
                                           T (&s)[P][kRowUnroll]) {
  constexpr int kWord = ResidentWord<T>::kValues, kWords = kRowUnroll / kWord;
  using Values = ResidentWord<T>;
  Values other[kWords];
#pragma unroll
  for (int w = 0; w < kWords; ++w) {
    const int k = k0 + (w * 32 + lane) * kWord;
    if (k < side.len) {
      other[w].word = *reinterpret_cast<const typename Values::Word*>(side.otherBias + k);
    } else {
#pragma unroll
      for (int e = 0; e < kWord; ++e) other[w].v[e] = T(-INFINITY);
    }
  }
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const T* line = side.slab + size_t(l0 + p * kResidentWarps<T>) * side.stride;
#pragma unroll
    for (int w = 0; w < kWords; ++w) {
      const int k = k0 + (w * 32 + lane) * kWord;
      Values c;
      if (k < side.len) {
        c.word = *reinterpret_cast<const typename Values::Word*>(line + k);
      } else {
#pragma unroll
        for (int e = 0; e < kWord; ++e) c.v[e] = T(0);
      }
#pragma unroll
      for (int e = 0; e < kWord; ++e) s[p][w * kWord + e] = fma(-c.v[e], scale2, other[w].v[e]);
    }
  }
}

// Base-2 log-sum-exps of P lines of at most 32 kRowUnroll values: the scores stay in registers,
// so the line's maximum t comes first and then sum_k 2^(s_k - t), one exponential per score and
// no rescaling on the dependent chain.
template <typename T, int P>
__device__ __forceinline__ void shortLinesLog2SumExp(const ResidentSide<T>& side, int l0, T scale2, int lane,
                                                     T (&log2Sum)[P]) {
  T s[P][kRowUnroll], top[P], sum[P];
  lineScores(side, l0, 0, scale2, lane, s);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    top[p] = s[p][0];
#pragma unroll
    for (int u = 1; u < kRowUnroll; ++u) top[p] = fmax(top[p], s[p][u]);
  }
  warpMax(top);
#pragma unroll
  for (int p = 0; p < P; ++p) {
    sum[p] = 0;
    if (top[p] > -INFINITY)
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) sum[p] += exp2Of<T>(s[p][u] - top[p]);
  }
  warpSum(sum);
#pragma unroll
  for (int p = 0; p < P; ++p) log2Sum[p] = top[p] + log2Of<T>(sum[p]);  // -inf when every score is
}

// The same for longer lines: an online log-sum-exp per lane over steps of 32 kRowUnroll values,
// then merged over the warp (the warp's maximum, then one sum of the lanes' rescaled sums).
template <typename T, int P>
__device__ __forceinline__ void longLinesLog2SumExp(const ResidentSide<T>& side, int l0, T scale2, int lane,
                                                    T (&log2Sum)[P]) {
  Lse2<T> acc[P];
  for (int k0 = 0; k0 < side.len; k0 += 32 * kRowUnroll) {
    T s[P][kRowUnroll];
    lineScores(side, l0, k0, scale2, lane, s);
#pragma unroll
    for (int p = 0; p < P; ++p) acc[p].add(s[p]);
  }
  T top[P], sum[P];
#pragma unroll
  for (int p = 0; p < P; ++p) top[p] = acc[p].max;
  warpMax(top);
#pragma unroll
  for (int p = 0; p < P; ++p) sum[p] = top[p] == -INFINITY ? T(0) : acc[p].sum * exp2Of<T>(acc[p].max - top[p]);
  warpSum(sum);
#pragma unroll
  for (int p = 0; p < P; ++p) log2Sum[p] = top[p] + log2Of<T>(sum[p]);
}

// Base-2 log-sum-exps of P lines against a reference per line, the line's previous log2-sum-exp
// (its previous potential over -epsDamping ln 2): sum_k 2^(s_k - ref) needs neither a maximum nor
// rescaling while ref stays near the new value, which it does once the potentials settle. False
// (the same for the whole warp: butterfly sums agree bit for bit) when a sum leaves [2^-40, 2^40],
// outside which terms could overflow or be lost; the exact passes above are then taken instead.
template <typename T, int P>
__device__ __forceinline__ bool referencedLog2SumExp(const ResidentSide<T>& side, int l0, const T (&previous)[P],
                                                     T scale2, int lane, T (&log2Sum)[P]) {
  T reference[P], sum[P];
#pragma unroll
  for (int p = 0; p < P; ++p) reference[p] = previous[p] * side.log2SumPerPotential, sum[p] = 0;
  for (int k0 = 0; k0 < side.len; k0 += 32 * kRowUnroll) {
    T s[P][kRowUnroll];
    lineScores(side, l0, k0, scale2, lane, s);
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) sum[p] += exp2Of<T>(s[p][u] - reference[p]);
  }
  warpSum(sum);
  bool inWindow = true;
#pragma unroll
  for (int p = 0; p < P; ++p) {
    inWindow = inWindow && sum[p] >= T(0x1p-40) && sum[p] <= T(0x1p40);
    log2Sum[p] = reference[p] + log2Of<T>(sum[p]);
  }
  return inWindow;
}

// Lines l0, l0 + warps, ... (P of them, all < lines) by one warp, P lines sharing each load of the
// other side's biases, their reductions interleaved (P independent chains per lane):
//   p_l = -epsDamping ln 2 log2 sum_k 2^(otherBias_k - scale2 c_lk),  bias_l = scale2 p_l + log2 w_l.
template <typename T, int P>
__device__ __forceinline__ void updateLines(const ResidentSide<T>& side, int l0, T scale2, int lane, T& change) {
  T previous[P], log2Sum[P];
#pragma unroll
  for (int p = 0; p < P; ++p) previous[p] = side.potential[l0 + p * kResidentWarps<T>];
  if (!referencedLog2SumExp(side, l0, previous, scale2, lane, log2Sum)) {
    // One line at a time: the fallback's registers stay few beside the fast path's.
#pragma unroll
    for (int p = 0; p < P; ++p) {
      T exact[1];
      if (side.len <= 32 * kRowUnroll)
        shortLinesLog2SumExp(side, l0 + p * kResidentWarps<T>, scale2, lane, exact);
      else
        longLinesLog2SumExp(side, l0 + p * kResidentWarps<T>, scale2, lane, exact);
      log2Sum[p] = exact[0];
    }
  }
  __syncwarp();  // every lane has read the previous potentials that lane 0 now overwrites
#pragma unroll
  for (int p = 0; p < P; ++p) {
    const int l = l0 + p * kResidentWarps<T>;
    const bool present = side.present[l];
    const T next = present ? -side.epsDamping * T(kLn2) * log2Sum[p] : T(0);
    const T bias = present ? fma(next, scale2, side.log2w[l]) : T(-INFINITY);
    if (lane == 0) {
      change = fmax(change, fabs(next - previous[p]));
      side.potential[l] = next;
      side.bias[l] = bias;
    }
  }
}

// Every line of a side, warp w taking lines w, w + warps, ... in pairs.
template <typename T>
__device__ __forceinline__ void updateSide(const ResidentSide<T>& side, T scale2, int warp, int lane, T& change) {
  int l = warp;
  for (; l + kResidentWarps<T> < side.lines; l += 2 * kResidentWarps<T>) updateLines<T, 2>(side, l, scale2, lane, change);
  if (l < side.lines) updateLines<T, 1>(side, l, scale2, lane, change);
}

// The column pass of the rows-only layout: one CTA's partials pushed to the columns' owners, and
// the owner's merges.
template <typename T>
struct ColumnMerge {
  int K, MC, rank, rows, m, stride;
  T scale2;
  const T* slab;  // rows x m, lines stride apart
  T* colBias;     // every CTA's columns (K MC), written by their owners
  const T* rowBias;
  T* inboxMax;    // K x MC: each CTA's partial for this CTA's columns
  T* inboxSum;
  T* g;           // this CTA's columns
  const T* log2b;
  const uint8_t* colPresent;

  // Column j's partial over this CTA's rows, pushed to the inbox of the CTA that merges column j.
  // Two accumulators over alternate groups of rows halve the dependent chain.
  __device__ __forceinline__ void pushColumnPartial(int j) const {
    Lse2<T> even, odd;
    const T* c = slab + j;
    for (int i0 = 0; i0 < rows; i0 += 2 * kColumnUnroll) {
      T s0[kColumnUnroll], s1[kColumnUnroll];
#pragma unroll
      for (int u = 0; u < kColumnUnroll; ++u) {
        const int i = i0 + u, i1 = i0 + kColumnUnroll + u;
        s0[u] = i < rows ? score(rowBias[i], c[i * stride], scale2) : T(-INFINITY);
        s1[u] = i1 < rows ? score(rowBias[i1], c[i1 * stride], scale2) : T(-INFINITY);
      }
      even.add(s0);
      odd.add(s1);
    }
    even.merge(odd.max, odd.sum);
    const int owner = j / MC, at = rank * MC + (j - owner * MC);
    *inCta(inboxMax + at, owner, K) = even.max;
    *inCta(inboxSum + at, owner, K) = even.sum;
  }

  // Column col0 + jj from the K partials in the inbox (the maximum, then independent rescaled
  // terms); its bias is written here, then broadcast with the slice.
  __device__ __forceinline__ void mergeColumn(int jj, int col0, T epsDamping, T& change) const {
    T top = -INFINITY;
#pragma unroll
    for (int q = 0; q < kMaxCluster; ++q)
      if (q < K) top = fmax(top, inboxMax[q * MC + jj]);
    T total = 0;
    if (top > -INFINITY) {
#pragma unroll
      for (int q = 0; q < kMaxCluster; ++q)
        if (q < K) total += inboxSum[q * MC + jj] * exp2Of<T>(inboxMax[q * MC + jj] - top);
    }
    const bool valid = colPresent[jj];
    const T gNew = valid ? -epsDamping * T(kLn2) * (top + log2Of<T>(total)) : T(0);
    const T bias = valid ? fma(gNew, scale2, log2b[jj]) : T(-INFINITY);
    change = fmax(change, fabs(gNew - g[jj]));
    g[jj] = gNew;
    colBias[col0 + jj] = bias;
  }
};

// Per iteration, rows only: the row pass (local), the column partials pushed to their owners'
// inboxes, a cluster barrier, the owners' merges writing every column's bias into every CTA, a
// cluster barrier. Two barriers rather than one: with one, every CTA would merge all m columns
// itself from all K partials, K times the distributed shared memory traffic. Rows and columns: the
// row pass, its biases sent to every CTA (exchangeSlices), the wait for the others', the column
// pass likewise; a cluster barrier only where the threshold is checked. Partials and biases travel
// as remote stores, so no CTA waits on a remote load; the barriers' release/acquire, or the
// mbarriers' transaction counts, order them.
template <typename T, bool kColumnSlab>
__global__ void __launch_bounds__(kResidentThreads<T>) denseResidentKernel(const DenseBatch<T> b, const DenseResidentSolve<T> r,
                                                                const ResidentShape shape) {
  extern __shared__ __align__(16) unsigned char smemRaw[];
  const int K = shape.cluster, R = shape.rowsPerCta, MC = shape.colsPerCta;
  const int rank = int(clusterRank(K));
  const int64_t item = blockIdx.x / K, n = b.n;
  const int m = int(b.m);
  const int64_t row0 = int64_t(rank) * R, col0 = int64_t(rank) * MC;
  const int rows = int(max(int64_t(0), min(int64_t(R), n - row0)));
  const int cols = int(max(int64_t(0), min(int64_t(MC), int64_t(m) - col0)));
  const T scale2 = r.scale2;

  // Shared memory as residentShape lays it out (the bias arrays first: 16-byte aligned slices).
  T* colBias = reinterpret_cast<T*>(smemRaw);          // every CTA's columns, K MC
  T* rowBias = colBias + K * MC;                        // kColumnSlab: every CTA's rows (K R), else R
  const int rowStride = int(residentStride<T>(m)), colStride = int(transposedStride<T>(n));
  T* slab = rowBias + (kColumnSlab ? K * R : R);        // R x m, lines rowStride apart
  T* f = slab + size_t(R) * size_t(rowStride);
  T* log2a = f + R;
  T* g = log2a + R;  // the owned columns
  T* log2b = g + MC;
  T* slots = log2b + MC;  // K x warps: every warp's largest change, per rank
  T* columnSlab = slots + K * kResidentWarps<T>;          // kColumnSlab: MC x n, lines colStride apart
  T* inboxMax = columnSlab;                             // rows only: K x MC
  T* inboxSum = inboxMax + K * MC;
  uint8_t* rowPresent =
      reinterpret_cast<uint8_t*>(kColumnSlab ? columnSlab + size_t(MC) * size_t(colStride) : inboxSum + K * MC);
  uint8_t* colPresent = rowPresent + R;
  uint64_t* arrivals = reinterpret_cast<uint64_t*>(smemRaw + shape.arrivalsAt);  // row, column biases
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  if (kColumnSlab && tid == 0) {
    mbarInit(arrivals, 1);
    mbarInit(arrivals + 1, 1);
    mbarInitClusterFence();
  }

  // Costs as lineScores reads them: masked (the only non-finite) costs and the lines' padding 0;
  // the bias arrays' padding -inf. A warp per line, every load of a lane's share in flight at once.
  const T* source = b.cost + (item * n + row0) * m;
  for (int i = warp; i < rows; i += kResidentWarps<T>) {
#pragma unroll 4
    for (int j = lane; j < rowStride; j += 32) slab[i * rowStride + j] = j < m ? finiteOrZero(source[int64_t(i) * m + j]) : T(0);
  }
  if (kColumnSlab) {
    // The owned columns transposed: lane jj gathers the rows of one 16-byte word of its column
    // (each a coalesced warp load of a row) and stores the word into line jj; lines
    // transposedStride apart put the 8 lanes of a quarter warp on distinct banks. Rows past n fill
    // the last word with 0.
    using Values = ResidentWord<T>;
    constexpr int kWord = Values::kValues;
    const T* columns = b.cost + item * n * m + col0;
    for (int i0 = kWord * warp; i0 < int(n); i0 += kWord * kResidentWarps<T>) {
      for (int jj = lane; jj < cols; jj += 32) {
        Values v;
#pragma unroll
        for (int e = 0; e < kWord; ++e) v.v[e] = i0 + e < int(n) ? finiteOrZero(columns[int64_t(i0 + e) * m + jj]) : T(0);
        reinterpret_cast<typename Values::Word*>(columnSlab + size_t(jj) * size_t(colStride) + i0)[0] = v.word;
      }
    }
  }
  for (int i = tid; i < (kColumnSlab ? K * R : R); i += kResidentThreads<T>) rowBias[i] = T(-INFINITY);
  for (int j = tid; j < K * MC; j += kResidentThreads<T>) colBias[j] = j < m ? b.log2B[item * m + j] : T(-INFINITY);  // g = 0
  for (int i = tid; i < rows; i += kResidentThreads<T>) {
    log2a[i] = b.log2A[item * n + row0 + i];
    rowPresent[i] = b.maskA[item * n + row0 + i];
    f[i] = 0;
  }
  for (int jj = tid; jj < cols; jj += kResidentThreads<T>) {
    g[jj] = 0;
    log2b[jj] = b.log2B[item * m + col0 + jj];
    colPresent[jj] = b.maskB[item * m + col0 + jj];
  }
  const ResidentSide<T> rowSide{slab,       rows,      m,          rowStride,
                                colBias,    f,         log2a,      rowPresent,
                                kColumnSlab ? rowBias + row0 : rowBias, r.epsDampingA,
                                T(-1) / (r.epsDampingA * T(kLn2))};
  const ResidentSide<T> colSide{columnSlab, cols, int(n), colStride, rowBias, g, log2b, colPresent, colBias + col0,
                                r.epsDampingB, T(-1) / (r.epsDampingB * T(kLn2))};
  const ColumnMerge<T> merge{K,       MC,      rank,     rows,     m, rowStride, scale2, slab, colBias, rowBias,
                             inboxMax, inboxSum, g,       log2b,    colPresent};
  // Every CTA's shared memory (its mbarriers included) is initialised before any CTA writes into it.
  clusterSync(K);

  int it = 0, untilCheck = r.checkEvery;
  bool converged = false;
  while (it < r.maxIters) {
    ++it;
    const bool check = r.threshold > 0 && --untilCheck == 0;
    if (check) untilCheck = r.checkEvery;
    T change = 0;
    const unsigned parity = unsigned(it - 1) & 1u;
    updateSide(rowSide, scale2, warp, lane, change);
    __syncthreads();
    if (kColumnSlab) {
      exchangeSlices(rowSide.bias, R, arrivals, parity, K, rank, warp, lane);  // every row bias is here
      updateSide(colSide, scale2, warp, lane, change);
    } else {
      for (int j = tid; j < m; j += kResidentThreads<T>) merge.pushColumnPartial(j);
      clusterSync(K);  // every partial is in its owner's inbox
      for (int jj = tid; jj < cols; jj += kResidentThreads<T>) merge.mergeColumn(jj, int(col0), r.epsDampingB, change);
    }
    __syncthreads();
    if (kColumnSlab)
      exchangeSlices(colSide.bias, MC, arrivals + 1, parity, K, rank, warp, lane);  // every column bias is here
    else
      broadcastSlice(colSide.bias, MC, K, rank, warp, lane);
    if (check) {
      T top[1] = {change};
      warpMax(top);
      if (lane == 0)
        for (int q = 0; q < K; ++q) *inCta(slots + rank * kResidentWarps<T> + warp, q, K) = top[0];
    }
    if (check || !kColumnSlab) clusterSync(K);  // the column biases (rows only) and the changes are everywhere
    if (check) {
      // Every warp reduces the same slots: the whole cluster takes the same decision.
      T top[1] = {0};
      for (int q = lane; q < K * kResidentWarps<T>; q += 32) top[0] = fmax(top[0], slots[q]);
      warpMax(top);
      if (double(top[0]) < r.threshold) {
        converged = true;
        break;
      }
    }
  }
  // No CTA leaves while another may still store into its shared memory.
  if (kColumnSlab) clusterSync(K);
  for (int i = tid; i < rows; i += kResidentThreads<T>) {
    r.f[item * n + row0 + i] = f[i];
    r.biasA[item * n + row0 + i] = rowSide.bias[i];
  }
  for (int jj = tid; jj < cols; jj += kResidentThreads<T>) {
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
void launchDenseFirstNonFinite(const DenseBatch<T>& b, unsigned long long* first, void* stream) {
  denseFirstNonFiniteKernel<T><<<gridFor(b.batch * b.n), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(b, first);
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

namespace {

template <typename T>
cudaLaunchConfig_t residentConfig(const ResidentShape& shape, int64_t items, cudaStream_t stream,
                                  cudaLaunchAttribute& attribute) {
  cudaLaunchConfig_t config = {};
  config.gridDim = dim3(static_cast<unsigned>(items * shape.cluster));
  config.blockDim = dim3(kResidentThreads<T>);
  config.dynamicSmemBytes = shape.smemBytes;
  config.stream = stream;
  attribute.id = cudaLaunchAttributeClusterDimension;
  attribute.val.clusterDim.x = static_cast<unsigned>(shape.cluster);
  attribute.val.clusterDim.y = 1;
  attribute.val.clusterDim.z = 1;
  config.attrs = &attribute;
  config.numAttrs = shape.cluster > 1 ? 1 : 0;
  return config;
}

template <typename T>
auto residentKernel(bool columnSlab) {
  return columnSlab ? denseResidentKernel<T, true> : denseResidentKernel<T, false>;
}

// Clusters of this shape the device runs at once (0 if none), asked once per shape.
template <typename T>
int activeClusters(const ResidentShape& shape, DenseResidentState& state) {
  if (shape.smemBytes > size_t(state.device.maxSharedPerBlock)) return 0;
  const auto key = std::make_tuple(int(sizeof(T)), shape.cluster, shape.smemBytes, shape.columnSlab);
  const auto known = state.activeClusters.find(key);
  if (known != state.activeClusters.end()) return known->second;
  cudaLaunchAttribute attribute;
  const cudaLaunchConfig_t config = residentConfig<T>(shape, 1, nullptr, attribute);
  const auto kernel = residentKernel<T>(shape.columnSlab);
  int active = 0, perSm = 0;
  if (shape.cluster == 1) {
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSm, kernel, kResidentThreads<T>, shape.smemBytes) != cudaSuccess)
      perSm = 0;
    active = perSm * state.device.smCount;
    cudaGetLastError();
  } else if (cudaOccupancyMaxActiveClusters(&active, kernel, &config) != cudaSuccess) {
    cudaGetLastError();
    active = 0;
  }
  state.activeClusters.emplace(key, active);
  return active;
}

}  // namespace

template <typename T>
bool launchDenseResident(const DenseBatch<T>& b, const DenseResidentSolve<T>& solve, DenseResidentState& state,
                         void* stream) {
  const DenseDevice& device = state.device;
  const int precision = sizeof(T) == sizeof(double) ? 1 : 0;
  if (state.largestCluster[precision] == 0) {
    // Once per precision, for both layouts' kernels: the largest dynamic shared memory (every shape
    // fits under it) and, on Hopper, clusters of 16 where the device allows them.
    int largest = device.computeMajor >= 9 ? kMaxCluster : 1;
    for (const bool columnSlab : {false, true}) {
      const auto kernel = residentKernel<T>(columnSlab);
      if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, device.maxSharedPerBlock) !=
          cudaSuccess) {
        largest = -1;
      } else if (largest > 1 && cudaFuncSetAttribute(kernel, cudaFuncAttributeNonPortableClusterSizeAllowed, 1) !=
                                    cudaSuccess) {
        largest = kPortableCluster;
      }
    }
    cudaGetLastError();
    state.largestCluster[precision] = largest;
  }
  const int largest = state.largestCluster[precision];
  if (largest < 0) return false;
  // The smallest portable cluster that holds an item; then larger ones while the batch leaves SMs
  // idle, every CTA keeps a few rows per warp, and the whole batch still runs at once (a second
  // wave would cost more than the larger cluster saves).
  // Then the rows-and-columns layout, in clusters of at most 8, if the whole batch still runs at
  // once with it: its broadcasts grow as K^2, and 8 items in clusters of 16 cannot each have an SM
  // per CTA (a GPC has 16-18), so CTAs would share SMs (on the H200 at B = 8, N = M = 256, 3.56 us
  // per iteration in clusters of 8 against 3.69 in clusters of 16, with 512 threads).
  int cluster = 1;
  const int fitting = std::min(largest, kPortableCluster);
  while (cluster <= fitting && residentShape<T>(b.n, b.m, cluster, false).smemBytes > size_t(device.maxSharedPerBlock))
    cluster *= 2;
  if (cluster > fitting || activeClusters<T>(residentShape<T>(b.n, b.m, cluster, false), state) < 1) return false;
  while (cluster < largest && b.batch * cluster < device.smCount && b.n >= int64_t(kResidentWarps<T>) * cluster &&
         activeClusters<T>(residentShape<T>(b.n, b.m, 2 * cluster, false), state) >= b.batch)
    cluster *= 2;
  const ResidentShape both = residentShape<T>(b.n, b.m, std::min(cluster, kPortableCluster), true);
  const ResidentShape shape = activeClusters<T>(both, state) >= b.batch ? both : residentShape<T>(b.n, b.m, cluster, false);
  cudaLaunchAttribute attribute;
  const cudaLaunchConfig_t config = residentConfig<T>(shape, b.batch, static_cast<cudaStream_t>(stream), attribute);
  cudaLaunchKernelEx(&config, residentKernel<T>(shape.columnSlab), b, solve, shape);
  return true;
}

#define SINKHORN_DENSE_INSTANTIATE(T)                                                                             \
  template void launchDenseRows<T>(const DenseBatch<T>&, const DenseLsePass<T>&, void*);                          \
  template void launchDenseColumns<T>(const DenseBatch<T>&, const DenseLsePass<T>&, const DenseColumnLayout&, T*, \
                                      unsigned*, void*);                                                          \
  template void launchDensePlan<T>(const DenseBatch<T>&, const T*, const T*, T, T*, void*);                       \
  template void launchDenseFirstNonFinite<T>(const DenseBatch<T>&, unsigned long long*, void*);                   \
  template void launchDensePlanProduct<T>(const DenseBatch<T>&, const T*, const T*, T, bool, int64_t, const T*,   \
                                          T*, void*);                                                             \
  template bool launchDenseResident<T>(const DenseBatch<T>&, const DenseResidentSolve<T>&, DenseResidentState&,   \
                                       void*);
SINKHORN_DENSE_INSTANTIATE(float)
SINKHORN_DENSE_INSTANTIATE(double)

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
