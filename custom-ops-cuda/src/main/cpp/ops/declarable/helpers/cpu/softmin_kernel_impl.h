// The CPU softmin kernels, written once with GCC vector extensions and compiled once per instruction
// set: the including file defines SINKHORN_VECTOR_BYTES (32: AVX2, 64: AVX-512), SINKHORN_BLOCK_ROWS
// and SINKHORN_GRAM_ROWS. Everything here has internal linkage, so that no function compiled for
// AVX-512 can be merged by the linker into the AVX2 path; for the same reason nothing from the
// standard library is used, only compiler built-ins.
//
// A block of rows sweeps the columns chunk by chunk (kChunkColumns, so that the block's scores stay in
// L1): (1) the dot products of a tile of rows x 2 vectors of columns are accumulated in registers
// over the dimension, each loaded vector of y feeding one FMA per row; (2) the row maxima of the
// chunk; (3) 2^(score - max) summed in vectors, with the online rescaling of FlashAttention when a
// maximum grows; (4) optionally the exponentials weight rows of v (barycentres, plan products),
// packed in panels like y; (5) optionally, for a pair-weighted average, a second tile of the pair
// weights <pairRow_i, pairCol_j> (pairCol packed like y) multiplies the exponentials before they
// weight the first pairK values of v. The Gram kernel also reduces each tile along its columns
// (softmin_kernel.h).
// Scores are kept in base 2 (the scale and the bias carry log2 e), so the exponentials are exp2:
// round, a polynomial on [-1/2, 1/2], and an integer add into the exponent field.
#ifndef SINKHORN_VECTOR_BYTES
#error "define SINKHORN_VECTOR_BYTES before including softmin_kernel_impl.h"
#endif

#if SINKHORN_VECTOR_BYTES == 64
// GCC 12 warns about the deliberately undefined pass-through operand inside its AVX-512 max intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>

#include "softmin_kernel.h"

namespace sinkhorn {
namespace helpers {
namespace cpu {
namespace {

constexpr int kBytes = SINKHORN_VECTOR_BYTES;
constexpr int kRows = SINKHORN_BLOCK_ROWS;
constexpr int kGramRows = SINKHORN_GRAM_ROWS;
static_assert(kRows <= kMaxBlockRows && kGramRows <= kMaxBlockRows, "scratchElements() is sized for kMaxBlockRows rows");
static_assert(kGramTaskRows % kGramRows == 0, "Gram work items hold whole blocks of rows");

constexpr double kLog2e = 1.44269504088896340736;
constexpr double kLn2 = 0.69314718055994530942;

// Polynomials p(r) ~ 2^r on [-1/2, 1/2], fitted for this library (weighted least squares on
// Chebyshev nodes, reweighted to equalise the relative error): degree 6 for float (max relative
// error 1.9e-9) and 11 for double (3.1e-18).
template <typename T>
struct Simd;

template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(kBytes)));
  typedef uint32_t U __attribute__((vector_size(kBytes)));
  static constexpr int lanes = kBytes / 4;
  static constexpr int mantissaBits = 23;
  static constexpr float lowest = -125.0f;         // 2^lowest is the smallest result: still a normal number
  static constexpr float roundShift = 12582912.0f;  // 1.5 * 2^23: x + it holds round(x) in the low mantissa bits
  static V exp2Fraction(V r) {
    V p = broadcast(1.53457983123e-4f);
    p = p * r + 1.33999311098e-3f;
    p = p * r + 9.61848900802e-3f;
    p = p * r + 5.55032877731e-2f;
    p = p * r + 2.40226468902e-1f;
    p = p * r + 6.93147205737e-1f;
    return p * r + 1.0f;
  }
  static V broadcast(float s) { return s - V{}; }  // s - 0 is exactly s: folds to one broadcast
  // The compiler keeps `a > b ? a : b` as compare and blend: the max instruction is one.
#if SINKHORN_VECTOR_BYTES == 64
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
#else
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
#endif
};

template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(kBytes)));
  typedef uint64_t U __attribute__((vector_size(kBytes)));
  static constexpr int lanes = kBytes / 8;
  static constexpr int mantissaBits = 52;
  static constexpr double lowest = -1021.0;
  static constexpr double roundShift = 6755399441055744.0;  // 1.5 * 2^52
  static V exp2Fraction(V r) {
    V p = broadcast(4.4352793700821073189e-10);
    p = p * r + 7.0741056191171608682e-9;
    p = p * r + 1.017819804403755099e-7;
    p = p * r + 1.3215433089640468189e-6;
    p = p * r + 1.5252733489934377185e-5;
    p = p * r + 1.5403530462514508565e-4;
    p = p * r + 1.3333558146789978764e-3;
    p = p * r + 9.6181291075883351815e-3;
    p = p * r + 5.5504108664819921359e-2;
    p = p * r + 2.4022650695910156204e-1;
    p = p * r + 6.9314718055994533046e-1;
    return p * r + 0.9999999999999999971;
  }
  static V broadcast(double s) { return s - V{}; }  // s - 0 is exactly s: folds to one broadcast
#if SINKHORN_VECTOR_BYTES == 64
  static V max(V a, V b) { return _mm512_max_pd(a, b); }
#else
  static V max(V a, V b) { return _mm256_max_pd(a, b); }
#endif
};

template <typename T>
inline typename Simd<T>::V load(const T* p) {
  typename Simd<T>::V v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void store(T* p, typename Simd<T>::V v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

template <typename T>
inline T horizontalMax(typename Simd<T>::V v) {
  T m = v[0];
  for (int i = 1; i < Simd<T>::lanes; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

template <typename T>
inline T horizontalSum(typename Simd<T>::V v) {
  T s = v[0];
  for (int i = 1; i < Simd<T>::lanes; ++i) s += v[i];
  return s;
}

// 2^x for x <= 0 (x = -inf included). Below 2^lowest it returns 2^lowest rather than 0, ~1e-38
// (float) or ~1e-307 (double) next to sums of at least 1: no effect, and no subnormal slowdown.
template <typename T>
inline typename Simd<T>::V exp2NonPositive(typename Simd<T>::V x) {
  using S = Simd<T>;
  using V = typename S::V;
  using U = typename S::U;
  const V xc = S::max(x, S::broadcast(S::lowest));
  const V shifted = xc + S::roundShift;
  const V r = xc - (shifted - S::roundShift);
  const V p = S::exp2Fraction(r);
  // The low mantissa bits of `shifted` hold round(x) (two's complement): shifted into the exponent
  // field and added to p in [2^-1/2, 2^1/2], they multiply it by 2^round(x).
  return (V)((U)p + ((U)shifted << S::mantissaBits));
}

template <typename T>
inline T minimum(T a, T b) {
  return a < b ? a : b;
}

// Dot products of R rows (xs: R x d, scaled) with 2 vectors of columns starting at `panel` (stride:
// the panel width), added to the initial values a0 (first vector) and a1 (second).
template <typename T, int R>
inline void gramTile(const T* xs, int64_t d, const T* panel, typename Simd<T>::V (&a0)[R],
                     typename Simd<T>::V (&a1)[R]) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::lanes;
  constexpr int64_t P = panelWidth<T>();
  for (int64_t t = 0; t < d; ++t) {
    const V y0 = load(panel + t * P), y1 = load(panel + t * P + W);
    for (int r = 0; r < R; ++r) {
      const V xv = S::broadcast(xs[r * d + t]);
      a0[r] += xv * y0;
      a1[r] += xv * y1;
    }
  }
}

// Online base-2 log-sum-exp of R rows over one chunk of scores (rows of `scores`, stride
// kChunkColumns): folds the chunk into the running maxima and lane-wise sums; where `keep`, the
// exponentials replace the scores. rescale[r] is the factor a grown maximum applied to row r's sums
// (1 when it did not grow), for the caller's other running sums.
template <typename T, int R>
inline void rowSweep(T* scores, int64_t width, T (&maxScore)[R], typename Simd<T>::V (&sum)[R], bool keep,
                     T (&rescale)[R]) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::lanes;
  for (int r = 0; r < R; ++r) {
    T* s = scores + r * kChunkColumns;
    V mv = load(s);
    for (int64_t q = W; q < width; q += W) mv = S::max(mv, load(s + q));
    const T chunkMax = horizontalMax<T>(mv);
    rescale[r] = T(1);
    if (chunkMax > maxScore[r]) {
      rescale[r] = T(__builtin_exp2(double(maxScore[r] - chunkMax)));
      sum[r] *= rescale[r];
      maxScore[r] = chunkMax;
    }
    const V m = S::broadcast(maxScore[r]);
    V total = sum[r];
    if (keep) {
      for (int64_t q = 0; q < width; q += W) {
        const V e = exp2NonPositive<T>(load(s + q) - m);
        total += e;
        store(s + q, e);
      }
    } else {
      for (int64_t q = 0; q < width; q += W) total += exp2NonPositive<T>(load(s + q) - m);
    }
    sum[r] = total;
  }
}

// acc[r][c] (lane-wise, kRows x k x W) += e[r][q] v[q][c] over a chunk's columns, for kValues
// consecutive values c of v at a time: each loaded vector of exponentials feeds kValues FMAs.
template <typename T, int kValues>
inline void accumulateValues(const T* e, const T* valuePanels, int64_t k, int64_t c, int64_t width, T* acc) {
  using V = typename Simd<T>::V;
  constexpr int W = Simd<T>::lanes;
  constexpr int64_t P = panelWidth<T>();
  V a[kRows][kValues];
  for (int r = 0; r < kRows; ++r)
    for (int u = 0; u < kValues; ++u) a[r][u] = load(acc + ((r * k) + c + u) * W);
  for (int64_t q = 0; q < width; q += W) {
    const T* panel = valuePanels + (q / P) * k * P + q % P + c * P;
    V v[kValues];
    for (int u = 0; u < kValues; ++u) v[u] = load(panel + u * P);
    for (int r = 0; r < kRows; ++r) {
      const V er = load(e + r * kChunkColumns + q);
      for (int u = 0; u < kValues; ++u) a[r][u] += er * v[u];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int u = 0; u < kValues; ++u) store(acc + ((r * k) + c + u) * W, a[r][u]);
}

// Rows i0.. of x scaled into xs (R x d); spare rows repeat the last real one.
template <typename T, int R>
inline void loadRows(const T* x, int64_t d, int64_t i0, int rows, T scale, T* xs) {
  for (int r = 0; r < R; ++r) {
    const int64_t i = i0 + minimum(r, rows - 1);
    for (int64_t t = 0; t < d; ++t) xs[r * d + t] = x[i * d + t] * scale;
  }
}

template <typename T>
void softminRows(const RowBlock<T>& job) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::lanes;
  constexpr int64_t P = panelWidth<T>();
  constexpr int64_t kTile = 2 * W;
  static_assert(P % kTile == 0 && kChunkColumns % P == 0, "register tiles and chunks must not straddle panels");

  const SoftminPass<T>& p = *job.pass;
  const PackedColumns<T>& cols = *job.columns;
  const int64_t d = p.d, k = p.avg ? p.k : 0, pairK = p.pairAvg ? p.pairK : 0, pairDims = pairK ? p.q : 0;
  const T scale2 = T(2) * p.cost / p.eps * T(kLog2e);
  T* scores = job.scratch;                            // kRows x kChunkColumns
  T* xs = scores + kRows * kChunkColumns;             // kRows x d
  T* acc = xs + kRows * d;                            // kRows x k x W, lane-wise sums of the average
  T* pairWeights = acc + kRows * k * W;               // kRows x kChunkColumns, then times the exponentials
  T* pairRows = pairWeights + kRows * kChunkColumns;  // kRows x pairDims
  T* pairAcc = pairRows + kRows * pairDims;           // kRows x k x W (the first pairK values of each row)

  for (int64_t i0 = job.rowBegin; i0 < job.rowEnd; i0 += kRows) {
    // Every sweep covers kRows rows, the spare ones repeating the last row: fixed trip counts keep
    // the tiles in registers.
    const int rows = static_cast<int>(minimum<int64_t>(kRows, job.rowEnd - i0));
    loadRows<T, kRows>(p.x, d, i0, rows, scale2, xs);
    if (pairK) loadRows<T, kRows>(p.pairRow, pairDims, i0, rows, T(1), pairRows);
    T maxScore[kRows];
    V sum[kRows];
    for (int r = 0; r < kRows; ++r) maxScore[r] = -__builtin_inf(), sum[r] = S::broadcast(T(0));
    for (int64_t c = 0; c < kRows * k * W; ++c) acc[c] = T(0);
    if (pairK)
      for (int64_t c = 0; c < kRows * k * W; ++c) pairAcc[c] = T(0);

    for (int64_t c0 = 0; c0 < cols.padded; c0 += kChunkColumns) {
      const int64_t width = minimum(kChunkColumns, cols.padded - c0);
      for (int64_t q = 0; q < width; q += kTile) {
        const int64_t col = c0 + q;
        const V b0 = load(cols.bias + col), b1 = load(cols.bias + col + W);
        V a0[kRows], a1[kRows];
        for (int r = 0; r < kRows; ++r) a0[r] = b0, a1[r] = b1;
        gramTile<T, kRows>(xs, d, cols.panels + (col / P) * d * P + col % P, a0, a1);
        for (int r = 0; r < kRows; ++r) {
          store(scores + r * kChunkColumns + q, a0[r]);
          store(scores + r * kChunkColumns + q + W, a1[r]);
        }
        if (pairK) {
          for (int r = 0; r < kRows; ++r) a0[r] = a1[r] = S::broadcast(T(0));
          gramTile<T, kRows>(pairRows, pairDims, cols.pairPanels + (col / P) * pairDims * P + col % P, a0, a1);
          for (int r = 0; r < kRows; ++r) {
            store(pairWeights + r * kChunkColumns + q, a0[r]);
            store(pairWeights + r * kChunkColumns + q + W, a1[r]);
          }
        }
      }
      T rescale[kRows];
      rowSweep<T, kRows>(scores, width, maxScore, sum, k != 0, rescale);
      for (int r = 0; r < kRows; ++r) {
        if (rescale[r] == T(1)) continue;
        for (int64_t c = 0; c < k * W; ++c) acc[r * k * W + c] *= rescale[r];
        for (int64_t c = 0; c < pairK * W; ++c) pairAcc[r * k * W + c] *= rescale[r];
      }
      if (k) {
        const T* values = cols.valuePanels + (c0 / P) * k * P;
        int64_t c = 0;
        for (; c + 2 <= k; c += 2) accumulateValues<T, 2>(scores, values, k, c, width, acc);
        if (c < k) accumulateValues<T, 1>(scores, values, k, c, width, acc);
      }
      if (pairK) {
        for (int r = 0; r < kRows; ++r)
          for (int64_t t = 0; t < width; t += W) {
            T* w = pairWeights + r * kChunkColumns + t;
            store(w, load(w) * load(scores + r * kChunkColumns + t));
          }
        const T* values = cols.valuePanels + (c0 / P) * k * P;
        int64_t c = 0;
        for (; c + 2 <= pairK; c += 2) accumulateValues<T, 2>(pairWeights, values, k, c, width, pairAcc);
        if (c < pairK) accumulateValues<T, 1>(pairWeights, values, k, c, width, pairAcc);
      }
    }

    for (int r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      const T total = horizontalSum<T>(sum[r]);
      writeSoftmin(p, i, T(kLn2) * (maxScore[r] + T(__builtin_log2(double(total)))));
      if (k) {
        const T inv = T(1) / total;
        for (int64_t c = 0; c < k; ++c) p.avg[i * k + c] = horizontalSum<T>(load(acc + (r * k + c) * W)) * inv;
        for (int64_t c = 0; c < pairK; ++c)
          p.pairAvg[i * pairK + c] = horizontalSum<T>(load(pairAcc + (r * k + c) * W)) * inv;
      }
    }
  }
}

// Column side of one vector of a Gram tile: the running base-2 maxima and sums of W columns over
// R more rows, t_rj = a_rj + rowBias_r.
template <typename T, int R>
inline void columnSide(const typename Simd<T>::V (&a)[R], const T* rowBias, T* columnMax, T* columnSum) {
  using S = Simd<T>;
  using V = typename S::V;
  V t[R];
  for (int r = 0; r < R; ++r) t[r] = a[r] + S::broadcast(rowBias[r]);
  V tileMax = t[0];
  for (int r = 1; r < R; ++r) tileMax = S::max(tileMax, t[r]);
  const V before = load(columnMax);
  const V m = S::max(before, tileMax);
  V total = load(columnSum) * exp2NonPositive<T>(before - m);
  for (int r = 0; r < R; ++r) total += exp2NonPositive<T>(t[r] - m);
  store(columnMax, m);
  store(columnSum, total);
}

template <typename T>
void gramRows(const GramBlock<T>& job) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int R = kGramRows;
  constexpr int W = S::lanes;
  constexpr int64_t P = panelWidth<T>();
  constexpr int64_t kTile = 2 * W;
  static_assert(P % kTile == 0 && kChunkColumns % P == 0, "register tiles and chunks must not straddle panels");

  const PackedColumns<T>& cols = *job.columns;
  const int64_t d = job.d;
  T* scores = job.scratch;              // R x kChunkColumns
  T* xs = scores + R * kChunkColumns;   // R x d

  for (int64_t i0 = job.rowBegin; i0 < job.rowEnd; i0 += R) {
    const int rows = static_cast<int>(minimum<int64_t>(R, job.rowEnd - i0));
    loadRows<T, R>(job.x, d, i0, rows, job.scale2, xs);
    // Spare rows must not reach the columns: their bias is -inf.
    T rowBias[R];
    for (int r = 0; r < R; ++r) rowBias[r] = r < rows ? job.rowBias[i0 + r] : -__builtin_inf();
    T maxScore[R];
    V sum[R];
    for (int r = 0; r < R; ++r) maxScore[r] = -__builtin_inf(), sum[r] = S::broadcast(T(0));

    for (int64_t c0 = job.firstColumn; c0 < cols.padded; c0 += kChunkColumns) {
      const int64_t width = minimum(kChunkColumns, cols.padded - c0);
      for (int64_t q = 0; q < width; q += kTile) {
        const int64_t col = c0 + q;
        V a0[R], a1[R];
        for (int r = 0; r < R; ++r) a0[r] = a1[r] = S::broadcast(T(0));
        gramTile<T, R>(xs, d, cols.panels + (col / P) * d * P + col % P, a0, a1);
        if (col >= job.columnSideFrom) {
          columnSide<T, R>(a0, rowBias, job.columnMax + col, job.columnSum + col);
          columnSide<T, R>(a1, rowBias, job.columnMax + col + W, job.columnSum + col + W);
        }
        const V b0 = load(cols.bias + col), b1 = load(cols.bias + col + W);
        for (int r = 0; r < R; ++r) {
          store(scores + r * kChunkColumns + q, a0[r] + b0);
          store(scores + r * kChunkColumns + q + W, a1[r] + b1);
        }
      }
      T rescale[R];
      rowSweep<T, R>(scores, width, maxScore, sum, false, rescale);
    }
    for (int r = 0; r < rows; ++r) {
      job.rowMax[i0 + r] = maxScore[r];
      job.rowSum[i0 + r] = horizontalSum<T>(sum[r]);
    }
  }
}

template <typename T>
void mergeStats(const StatsMerge<T>& job) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::lanes;
  int64_t j = 0;
  for (; j + W <= job.count; j += W) {
    V m = load(job.maxes[0] + j);
    for (int p = 1; p < job.parts; ++p) m = S::max(m, load(job.maxes[p] + j));
    // A part that saw none of these entries has max -inf and sum 0: it adds 2^-125 * 0.
    V total = S::broadcast(T(0));
    for (int p = 0; p < job.parts; ++p) total += load(job.sums[p] + j) * exp2NonPositive<T>(load(job.maxes[p] + j) - m);
    store(job.max + j, m);
    store(job.sum + j, total);
  }
  for (; j < job.count; ++j) {
    T m = job.maxes[0][j];
    for (int p = 1; p < job.parts; ++p) m = job.maxes[p][j] > m ? job.maxes[p][j] : m;
    T total = T(0);
    for (int p = 0; p < job.parts; ++p)  // empty parts skipped: no libm call, no -inf - -inf
      if (job.sums[p][j] != T(0)) total += job.sums[p][j] * T(__builtin_exp2(double(job.maxes[p][j] - m)));
    job.max[j] = m;
    job.sum[j] = total;
  }
}

}  // namespace
}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn
