// Device code shared by the softmin kernels: how a CTA finds its work, how results are written,
// and the stream-K combine kernel.
//
// Work decomposition. A pass is cut into row tiles of BM rows and column tiles of BN columns.
//  - stream-K (every pass has one segment): the (pass, row tile, column tile) iterations, row tile
//    major, are split evenly among `grid` persistent CTAs. A CTA walks its range as pieces (a row tile
//    and a run of its column tiles). A piece that covers a whole row tile writes the result; other
//    pieces write a partial (log-sum-exp and normalised average) into the workspace slot
//    (cta, first piece of the CTA ? 0 : 1), and the combine kernel merges them.
//  - plain (segments): one CTA per row tile of the flattened rows; the CTA sweeps, for each segment
//    its rows touch, that segment's columns.
#ifndef SINKHORN_HELPERS_CUDA_SOFTMIN_COMMON_CUH
#define SINKHORN_HELPERS_CUDA_SOFTMIN_COMMON_CUH

#include <cstdint>

#include "softmin_launch.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {

struct Piece {
  int pass;
  int64_t segment;
  int64_t rowBase;          // first row of the tile (global row index)
  int64_t rowLo, rowHi;     // rows of the tile this piece owns
  int64_t colBegin, colEnd; // columns of the segment (global)
  int64_t ctBegin, ctEnd;   // column tiles of this piece (relative to colBegin)
  int slot;                 // -1: complete, else workspace slot for the partial
};

__device__ __forceinline__ int64_t ctaIterBegin(int64_t total, int grid, int64_t g) {
  return static_cast<int64_t>((static_cast<unsigned long long>(total) * static_cast<unsigned long long>(g)) /
                              static_cast<unsigned long long>(grid));
}

template <typename T>
__device__ __forceinline__ int passOfIter(const LaunchArgs<T>& a, int64_t it) {
  int p = 0;
#pragma unroll
  for (int q = 1; q < kMaxPasses; ++q)
    if (q < a.count && it >= a.pass[q].iterBegin) p = q;
  return p;
}

// Largest s in [0, segments) with offsets[s] <= row (offsets non-decreasing, offsets[0] = 0).
__device__ __forceinline__ int64_t segmentOfRow(const int64_t* offsets, int64_t segments, int64_t row) {
  int64_t lo = 0, hi = segments;  // invariant: offsets[lo] <= row, answer in [lo, hi)
  while (hi - lo > 1) {
    const int64_t mid = (lo + hi) >> 1;
    if (offsets[mid] <= row) lo = mid; else hi = mid;
  }
  return lo;
}

// Calls body(const Piece&) for each piece of this CTA, in order. Uniform across the CTA.
template <int BM, int BN, typename T, typename Body>
__device__ __forceinline__ void forEachPiece(const LaunchArgs<T>& a, Body&& body) {
  const int64_t g = blockIdx.x;
  if (a.streamK) {
    const int64_t it0 = ctaIterBegin(a.totalIters, a.grid, g);
    const int64_t it1 = ctaIterBegin(a.totalIters, a.grid, g + 1);
    bool first = true;
    for (int64_t it = it0; it < it1;) {
      const int p = passOfIter(a, it);
      const DevicePass<T>& ps = a.pass[p];
      const int64_t local = it - ps.iterBegin;
      const int64_t rt = local / ps.colTiles;
      const int64_t ct0 = local - rt * ps.colTiles;
      const int64_t ct1 = min(ps.colTiles, ct0 + (it1 - it));
      Piece pc;
      pc.pass = p;
      pc.segment = 0;
      pc.rowBase = rt * BM;
      pc.rowLo = pc.rowBase;
      pc.rowHi = min(ps.n, pc.rowBase + BM);
      pc.colBegin = 0;
      pc.colEnd = ps.m;
      pc.ctBegin = ct0;
      pc.ctEnd = ct1;
      pc.slot = (ct0 == 0 && ct1 == ps.colTiles) ? -1 : static_cast<int>(g * 2 + (first ? 0 : 1));
      body(pc);
      it += ct1 - ct0;
      first = false;
    }
  } else {
    int p = 0;
    int64_t rt = g;
    while (p + 1 < a.count && rt >= a.pass[p].rowTiles) {
      rt -= a.pass[p].rowTiles;
      ++p;
    }
    const DevicePass<T>& ps = a.pass[p];
    if (rt >= ps.rowTiles) return;
    const int64_t r0 = rt * BM, r1 = min(ps.n, r0 + BM);
    for (int64_t s = segmentOfRow(ps.xOffsets, ps.segments, r0); s < ps.segments; ++s) {
      const int64_t xs = ps.xOffsets[s], xe = ps.xOffsets[s + 1];
      if (xs >= r1) break;
      const int64_t lo = max(r0, xs), hi = min(r1, xe);
      if (lo >= hi) continue;
      Piece pc;
      pc.pass = p;
      pc.segment = s;
      pc.rowBase = r0;
      pc.rowLo = lo;
      pc.rowHi = hi;
      pc.colBegin = ps.yOffsets[s];
      pc.colEnd = ps.yOffsets[s + 1];
      pc.ctBegin = 0;
      pc.ctEnd = (pc.colEnd - pc.colBegin + BN - 1) / BN;
      pc.slot = -1;
      body(pc);
    }
  }
}

template <typename T>
__device__ __forceinline__ bool segmentActive(const DevicePass<T>& p, int64_t segment) {
  return p.active == nullptr || p.active[segment] != 0;
}

// Row i of an inactive segment: out_i = prev_i.
template <typename T>
__device__ __forceinline__ void writeInactiveRow(const DevicePass<T>& p, int64_t i) {
  if (p.prev && p.prev != p.out) p.out[i] = p.prev[i];
}

template <typename T>
__device__ __forceinline__ T exp2Of(T v);
template <>
__device__ __forceinline__ float exp2Of<float>(float v) { return exp2f(v); }
template <>
__device__ __forceinline__ double exp2Of<double>(double v) { return exp2(v); }
template <typename T>
__device__ __forceinline__ T log2Of(T v);
template <>
__device__ __forceinline__ float log2Of<float>(float v) { return log2f(v); }
template <>
__device__ __forceinline__ double log2Of<double>(double v) { return log2(v); }

// Row i: lse2 is the base-2 log-sum-exp of the scores.
template <typename T>
__device__ __forceinline__ void finalizeRow(const DevicePass<T>& p, int64_t i, T lse2) {
  const T lse = lse2 * T(kLn2);
  const T softmin = p.xSqNorm[i] - p.eps * lse;
  const T updated = p.damping * softmin;
  p.out[i] = p.prev && p.blend != T(0) ? p.blend * p.prev[i] + (T(1) - p.blend) * updated : updated;
  if (p.lse) p.lse[i] = lse;
  if (p.lseCarry) p.lseCarry[i] = lse2;
}

// Merges the stream-K partials of row tiles split between CTAs. A split tile is merged by the CTA
// that holds its last iteration: that is the tile of the CTA's first iteration, when the tile began
// in an earlier CTA and ends in this one. One thread per row.
template <typename T, int BM, int KV>
__global__ void __launch_bounds__(BM) combinePartials(const __grid_constant__ LaunchArgs<T> a) {
  const int64_t g = blockIdx.x;
  const int64_t it0 = ctaIterBegin(a.totalIters, a.grid, g);
  const int64_t it1 = ctaIterBegin(a.totalIters, a.grid, g + 1);
  if (it1 <= it0) return;
  const int p = passOfIter(a, it0);
  const DevicePass<T>& ps = a.pass[p];
  const int64_t rt = (it0 - ps.iterBegin) / ps.colTiles;
  const int64_t tileBegin = ps.iterBegin + rt * ps.colTiles;
  const int64_t tileEnd = tileBegin + ps.colTiles;
  if (tileBegin >= it0 || tileEnd > it1) return;  // not split, or not ending here
  const int64_t row = rt * BM + threadIdx.x;
  if (row >= ps.n) return;
  if (!segmentActive(ps, 0)) {
    if (a.kvBegin == 0) writeInactiveRow(ps, row);
    return;
  }
  // CTAs g0..g cover the tile; g0 is the last whose range starts at or before tileBegin.
  int64_t g0 = g;
  while (g0 > 0 && ctaIterBegin(a.totalIters, a.grid, g0) > tileBegin) --g0;
  T best = -INFINITY;
  for (int64_t q = g0; q <= g; ++q) {
    const int slot = static_cast<int>(q * 2 + (ctaIterBegin(a.totalIters, a.grid, q) >= tileBegin ? 0 : 1));
    best = max(best, a.wsLse[static_cast<int64_t>(slot) * BM + threadIdx.x]);
  }
  T total = 0;
  for (int64_t q = g0; q <= g; ++q) {
    const int slot = static_cast<int>(q * 2 + (ctaIterBegin(a.totalIters, a.grid, q) >= tileBegin ? 0 : 1));
    total += exp2Of<T>(a.wsLse[static_cast<int64_t>(slot) * BM + threadIdx.x] - best);
  }
  const T lse2 = best + log2Of<T>(total);
  if (a.kvBegin == 0) finalizeRow(ps, row, lse2);
  if (ps.avg) {
    const int64_t kvEnd = min(ps.k, a.kvBegin + int64_t(KV));
    const T inv = T(1) / total;
    for (int64_t c = a.kvBegin; c < kvEnd; ++c) {
      T s = 0;
      for (int64_t q = g0; q <= g; ++q) {
        const int slot = static_cast<int>(q * 2 + (ctaIterBegin(a.totalIters, a.grid, q) >= tileBegin ? 0 : 1));
        const int64_t base = static_cast<int64_t>(slot) * BM + threadIdx.x;
        s += exp2Of<T>(a.wsLse[base] - best) * a.wsAvg[base * KV + (c - a.kvBegin)];
      }
      ps.avg[row * ps.k + c] = s * inv;
    }
  }
}

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn

#endif
