// The CPU softmin kernel, written once with GCC vector extensions and compiled once per instruction
// set: the including file defines SINKHORN_VECTOR_BYTES (32: AVX2, 64: AVX-512) and
// SINKHORN_BLOCK_ROWS. Everything here has internal linkage, so that no function compiled for
// AVX-512 can be merged by the linker into the AVX2 path; for the same reason nothing from the
// standard library is used, only compiler built-ins.
//
// A block of rows sweeps the columns chunk by chunk (kChunkColumns, so that the block's scores stay in
// L1): (1) the scores of a tile of kRows rows x 2 vectors of columns are accumulated in registers over
// the dimension, each loaded vector of y feeding kRows FMAs; (2) the row maxima of the chunk; (3)
// 2^(score - max) summed in vectors, with the online rescaling of FlashAttention when a maximum
// grows; (4) optionally the exponentials weight rows of v (barycentres, plan products), packed in
// panels like y; (5) optionally, for a pair-weighted average, a second score tile of the pair
// weights <pairRow_i, pairCol_j> (pairCol packed like y) multiplies the exponentials before they
// weight the first pairK values of v.
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
static_assert(kRows <= kMaxBlockRows, "scratchElements() is sized for kMaxBlockRows rows");

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

// Scores of kRows rows (xs: kRows x d, scaled) against 2 vectors of columns starting at `panel`
// (stride: the panel width), plus the bias, stored into rows of `out` (stride kChunkColumns).
template <typename T>
inline void scoreTile(const T* xs, int64_t d, const T* panel, const T* bias, T* out) {
  using S = Simd<T>;
  using V = typename S::V;
  constexpr int W = S::lanes;
  constexpr int64_t P = panelWidth<T>();
  const V b0 = load(bias), b1 = load(bias + W);
  V a0[kRows], a1[kRows];
  for (int r = 0; r < kRows; ++r) a0[r] = b0, a1[r] = b1;
  for (int64_t t = 0; t < d; ++t) {
    const V y0 = load(panel + t * P), y1 = load(panel + t * P + W);
    for (int r = 0; r < kRows; ++r) {
      const V xv = S::broadcast(xs[r * d + t]);
      a0[r] += xv * y0;
      a1[r] += xv * y1;
    }
  }
  for (int r = 0; r < kRows; ++r) {
    store(out + r * kChunkColumns, a0[r]);
    store(out + r * kChunkColumns + W, a1[r]);
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
  const int64_t d = p.d, k = p.avg ? p.k : 0, pairK = p.pairAvg ? p.pairK : 0, q = pairK ? p.q : 0;
  const T scale2 = T(2) * p.cost / p.eps * T(kLog2e);
  T* scores = job.scratch;                            // kRows x kChunkColumns
  T* xs = scores + kRows * kChunkColumns;             // kRows x d
  T* acc = xs + kRows * d;                            // kRows x k x W, lane-wise sums of the average
  T* pairWeights = acc + kRows * k * W;               // kRows x kChunkColumns, then times the exponentials
  T* pairRows = pairWeights + kRows * kChunkColumns;  // kRows x q
  T* pairAcc = pairRows + kRows * q;                  // kRows x k x W (the first pairK values of each row)
  const T zeroBias[kTile] = {};

  for (int64_t i0 = job.rowBegin; i0 < job.rowEnd; i0 += kRows) {
    // Every sweep covers kRows rows, the spare ones repeating the last row: fixed trip counts keep
    // the tiles in registers.
    const int rows = static_cast<int>(minimum<int64_t>(kRows, job.rowEnd - i0));
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = i0 + minimum(r, rows - 1);
      for (int64_t t = 0; t < d; ++t) xs[r * d + t] = p.x[i * d + t] * scale2;
      for (int64_t t = 0; t < q; ++t) pairRows[r * q + t] = p.pairRow[i * q + t];
    }
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
        scoreTile(xs, d, cols.panels + (col / P) * d * P + col % P, cols.bias + col, scores + q);
      }
      if (pairK)
        for (int64_t t = 0; t < width; t += kTile) {
          const int64_t col = c0 + t;
          scoreTile(pairRows, q, cols.pairPanels + (col / P) * q * P + col % P, zeroBias, pairWeights + t);
        }
      for (int r = 0; r < kRows; ++r) {
        T* s = scores + r * kChunkColumns;
        V mv = load(s);
        for (int64_t q = W; q < width; q += W) mv = S::max(mv, load(s + q));
        const T chunkMax = horizontalMax<T>(mv);
        if (chunkMax > maxScore[r]) {
          const T rescale = T(__builtin_exp2(double(maxScore[r] - chunkMax)));
          sum[r] *= rescale;
          for (int64_t c = 0; c < k * W; ++c) acc[r * k * W + c] *= rescale;
          for (int64_t c = 0; c < pairK * W; ++c) pairAcc[r * k * W + c] *= rescale;
          maxScore[r] = chunkMax;
        }
        const V m = S::broadcast(maxScore[r]);
        V total = sum[r];
        if (k) {
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
      const T lse = T(kLn2) * (maxScore[r] + T(__builtin_log2(double(total))));
      const T softmin = p.xSqNorm[i] - p.eps * lse;
      const T updated = p.damping * softmin;
      p.out[i] = p.prev && p.blend != T(0) ? p.blend * p.prev[i] + (T(1) - p.blend) * updated : updated;
      if (p.lse) p.lse[i] = lse;
      if (k) {
        const T inv = T(1) / total;
        for (int64_t c = 0; c < k; ++c) p.avg[i * k + c] = horizontalSum<T>(load(acc + (r * k + c) * W)) * inv;
        for (int64_t c = 0; c < pairK; ++c)
          p.pairAvg[i * pairK + c] = horizontalSum<T>(load(pairAcc + (r * k + c) * W)) * inv;
      }
    }
  }
}

}  // namespace
}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn
