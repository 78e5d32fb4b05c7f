// The tensor-core softmin kernels (float, allowTf32): FlashAttention-style fused passes.
//
// A CTA of 4 warps owns BM = 64 * MT rows of x; each warp owns 16 * MT rows. Column tiles of BN = 64
// rows of y (prepared beforehand, see prepare*Kernel) stream through shared memory with cp.async,
// double buffered. Scores in base 2,
//   S_ij = scale2 <x_i, y_j> + u_j - m_i,   u_j = log2(e) (w_j + (h_j - c|y_j|^2)/eps),
// come out of mma.sync with the accumulators initialised to u_j - m_i, where m_i is the row's
// reference (a running estimate of its maximum).
//
// Dot-product precision ("TF32 class"): operands carry 10 explicit mantissa bits, rounded to nearest.
//  - Resident kernels (d <= 64): x and y as FP16 scaled by powers of two (exact) chosen from each
//    cloud's largest |value| (and 2c/eps for x), so that no operand overflows; an element keeps the
//    11-bit precision of TF32 unless it is 2^-29 below its cloud's largest, and then contributes
//    less than the rounding of the largest. mma m16n8k16: twice the rate of TF32's m16n8k8. The
//    accumulator is rescaled by one FMUL per score. The x fragments of a warp stay in registers for
//    the whole sweep.
//  - Chunked kernels (d > 64): TF32 (m16n8k8); x and y tiles of 64 columns both stream through
//    shared memory and the scores accumulate over the chunks.
//
// Lazy reference (resident kernels): 2^S is summed straight away, with no per-element maximum. A warp
// recomputes a step exactly (row max over the step, new reference m' = max(m + log2 sum, max),
// rescale) only when a running sum leaves [.., 2^kLazyLimit) (overflow, NaN) and at the first step of each
// piece. So most scores cost one MUFU.EX2 and three FP32 operations beyond the mma, and no FMNMX.
// Chunked kernels always update exactly.
//
// Carried reference (value passes): the exact redos are a running maximum climbing over a row's
// first tiles (~4 % of the tiles at d = 64, ~7 % of the time). When the pass ran before at this eps,
// its row log-sum-exps L' (lseCarry) and the largest change of a bias since, D = max_j |u_j - u'_j|
// (drift, from the bias kernel), bound the new one: |L - L'| <= D. The reference
// m = L' - D - 1 + kHeadroom is then never above L + kHeadroom (the exact path's bound: no more is
// flushed) and no sum exceeds 2^(2 D + 2 - kHeadroom): every tile, the first included, sums lazily.
//
// Fragment layout (in 32-bit words: a word is one TF32 value or two FP16 values). For k-steps 2q and
// 2q+1, thread (g = lane/4, t = lane%4) holds the words 16q + 4t .. 16q + 4t + 3 of a row (one 16-byte
// shared load): words (c, c+1) feed the fragment registers (0, 1) of B and (0|1, 2|3) of A, with
// c = 16q + 4t + 2(ks%2). A single k-step uses words 2t, 2t+1. Shared rows are strided by 16 (mod 32)
// words, so the 16-byte loads of 8 rows x 4 threads are free of bank conflicts.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "cuda_intrinsics.cuh"
#include "softmin_common.cuh"
#include "softmin_launch.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {
namespace {

constexpr int kMaxResidentDim = 64;
constexpr float kHalfTarget = 14.f;  // FP16 x operands stay below 2^14 (general scaling)
constexpr float kHalfTargetY = 7.f;  // prepared FP16 clouds below 2^7: room for K = 1 (residentScales)
constexpr float kMaxScaleExp = 60.f;
// The reference sits kHeadroom above the running log-sum-exp (base 2): terms then stay >= 2^-80 of the
// sum, and the ones flushed to zero (< 2^-126) are below 2^-46 of it. A lazy sum may grow to
// 2^kLazyLimit (single terms up to 2^128 stay finite, larger ones give inf, which the check catches),
// so a column must beat the reference by kHeadroom + kLazyLimit before the warp redoes a tile.
constexpr float kHeadroom = 80.f;
// With an average the lazy weights also multiply v: a lower limit keeps sum_j p_ij |v_j| finite for
// |v| < 2^28.
constexpr float kLazyLimitValue = 0x1p120f;
constexpr float kLazyLimitAvg = 0x1p100f;
// A carried reference (see the kernel) needs 2 drift + 2 - kHeadroom below log2(kLazyLimitValue).
constexpr float kMaxCarryDrift = 96.f;

// Power of two bringing max |v| to at most 2^target (1 for zero or non-finite maxima).
__device__ __forceinline__ float halfScaleFor(float maxAbs, float target = kHalfTarget) {
  if (!(maxAbs > 0.f) || !(maxAbs < INFINITY)) return 1.f;
  const float e = fminf(fmaxf(target - ceilf(log2f(maxAbs)), -kMaxScaleExp), kMaxScaleExp);
  return exp2f(e);
}

template <int KS, bool RES, int MT, int KV>
struct TensorConfig {
  static constexpr bool kAvg = KV > 0;
  static constexpr int kWarps = 4;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kWM = 16 * MT;        // rows per warp
  static constexpr int kBM = kWarps * kWM;   // rows per CTA
  static constexpr int kBN = RES && KS <= 2 && KV == 0 ? 128 : 64;  // columns per tile
  static constexpr int kKW = 8 * KS;         // prepared words per chunk (KS k-steps)
  static constexpr int kLdS = KS == 1 ? 8 : ((kKW + 15) / 32) * 32 + 16;  // shared row stride (words)
  static constexpr int kNT = kBN / 8;        // n8 tiles per tile
  static constexpr int kStages = RES && KV == 0 ? 4 : 3;  // shared-memory buffers
  static constexpr int kAhead = 2;           // stages loaded ahead: warps may drift kStages - kAhead tiles
  static constexpr int kKV = KV > 0 ? KV : 8;  // columns of v per launch
  static constexpr int kKVT = kKV / 8;
  static constexpr int kLdV = kKV + 4;       // 2 ldV = +-8 or 8 (mod 32): conflict-free B loads of v
  static constexpr int kYWords = kBN * kLdS;
  static constexpr int kXWords = RES ? 0 : kBM * kLdS;
  static constexpr int kVWords = kAvg ? kBN * kLdV : 0;
  static constexpr int kStageWords = kYWords + kXWords + kVWords + kBN;
  static constexpr size_t kSmemBytes = kStages * size_t(kStageWords) * 4 + 2 * kStages * sizeof(uint64_t);
  // Exponentials per 8 computed by polynomial on the FMA pipe (the rest on MUFU): the special
  // function unit is the bottleneck of the small-d kernels.
  static constexpr int kPoly = KS == 1 ? 2 : 0;
  // CTAs per SM the register allocation must allow (spill-free at these bounds, see ptxas -v).
  static constexpr int kMinBlocks = !RES ? 1 : KV == 64 ? 2 : KS == 1 ? 4 : 3;
  static_assert(KS == 1 || KS % 2 == 0, "k-steps come in pairs (or a single one)");
};

// Words of k-step ks held by thread t: (c, c + 1).
template <int KS>
__device__ __forceinline__ int fragWord(int ks, int t) {
  return KS == 1 ? 2 * t : 16 * (ks >> 1) + 4 * t + 2 * (ks & 1);
}

__device__ __forceinline__ float quadMax(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quadSum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

__device__ __forceinline__ uint32_t packHalf2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

__device__ __forceinline__ float maxNaN(float a, float b) {
  float r;
  asm("max.NaN.f32 %0, %1, %2;\n" : "=f"(r) : "f"(a), "f"(b));
  return r;
}
__device__ __forceinline__ float minNaN(float a, float b) {
  float r;
  asm("min.NaN.f32 %0, %1, %2;\n" : "=f"(r) : "f"(a), "f"(b));
  return r;
}

// 2^x on the FMA pipe: x clamped to [-126, 127] (NaN kept), x = j + r with j integer and |r| <= 1/2
// (rounding by the 1.5 * 2^23 shift), 2^r by a degree-3 minimax polynomial (relative error 8.4e-5,
// far below the TF32-class error of the scores), j added to the exponent field.
__device__ __forceinline__ float polyExp2(float x) {
  constexpr float kShift = 12582912.f;
  x = minNaN(maxNaN(x, -126.f), 127.f);
  const float t = __fadd_rn(x, kShift);
  const float r = __fsub_rn(x, __fsub_rn(t, kShift));
  const float p = fmaf(fmaf(fmaf(0.055212993174791336f, r, 0.24271413683891296f), r, 0.6932621598243713f), r,
                       0.999919593334198f);
  return __int_as_float(__float_as_int(p) + (__float_as_int(t) << 23));
}

// D = A (16x16, row) * B (16x8, col) + D, FP16 inputs, float accumulators.
__device__ __forceinline__ void mmaF16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#ifdef SINKHORN_SOFTMIN_STATS
// Counters for the check harness: [0] exact updates (per warp), [1] resident tiles (per warp).
__device__ unsigned long long g_softminStats[2];
#endif

// Scale of the resident kernels' scores: the mma yields K (scale2 <x, y>) with the x operand
// x * scale2 * xScale; K = 1 whenever x * scale2 / yScale fits FP16 with room to spare (typical data),
// which saves a multiplication per score. Deterministic: the bias kernel and the softmin kernel agree.
__device__ __forceinline__ void residentScales(const DevicePass<float>& ps, float& xScale, float& K) {
  const float yScale = ps.yInfo[1];
  const float mx = ps.xInfo[0] * ps.scale2 / yScale;  // largest |x operand| when K = 1
  if (mx >= 0x1p-4f && mx <= 0x1p14f) {
    xScale = 1.f / yScale;
    K = 1.f;
  } else {
    xScale = halfScaleFor(ps.xInfo[0] * ps.scale2);
    K = xScale * yScale;
  }
}

template <int KS, bool RES, int MT, int KV>
__global__ void __launch_bounds__(128, (TensorConfig<KS, RES, MT, KV>::kMinBlocks))
    softminTensorKernel(const __grid_constant__ LaunchArgs<float> a) {
  using C = TensorConfig<KS, RES, MT, KV>;
  constexpr bool AVG = C::kAvg;
  constexpr int kStages = C::kStages;
  constexpr int kAhead = C::kAhead;
  extern __shared__ __align__(16) uint32_t smem[];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  // Stage buffers with a "full" barrier (the copies of every thread landed) and an "empty" barrier
  // (every thread is done reading) each: no CTA-wide barrier per tile.
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + kStages * C::kStageWords);
  uint64_t* empty = full + kStages;
  if (tid < kStages) {
    mbarInit(full + tid, C::kThreads);
    mbarInit(empty + tid, C::kThreads);
  }
  __syncthreads();
  uint32_t seq = 0;  // stages produced (and consumed) so far by this CTA, over all pieces

  forEachPiece<C::kBM, C::kBN>(a, [&](const Piece& pc) {
    const DevicePass<float>& ps = a.pass[pc.pass];
    if (!segmentActive(ps, pc.segment)) {
      if (pc.slot < 0 && a.kvBegin == 0)
        for (int64_t i = pc.rowLo + tid; i < pc.rowHi; i += C::kThreads) writeInactiveRow(ps, i);
      return;
    }
    const int64_t ld = ps.ldPrep;
    const int nChunks = RES ? 1 : static_cast<int>(ld / C::kKW);
    const int64_t nStages = (pc.ctEnd - pc.ctBegin) * nChunks;
    const uint32_t* __restrict__ xPrep = static_cast<const uint32_t*>(ps.xPrep);
    const uint32_t* __restrict__ yPrep = static_cast<const uint32_t*>(ps.yPrep);
    const float* __restrict__ bias = ps.bias;
    const float scale2 = ps.scale2;
    float xScale = 1.f, K = 1.f;
    if constexpr (RES) residentScales(ps, xScale, K);
    const float unscale = 1.f / K;  // a power of two: exact
    const int64_t colEnd = pc.colEnd;
    const bool vVector = AVG && (ps.k % 4 == 0) && (a.kvBegin % 4 == 0) &&
                         (reinterpret_cast<uintptr_t>(ps.v) % 16 == 0);

    // Row state: reference m (base 2), this thread's partial sums, v accumulators.
    float m[MT][2], sum[MT][2];
    float acc[AVG ? MT : 1][AVG ? C::kKVT : 1][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      m[mt][0] = m[mt][1] = 0.f;
      sum[mt][0] = sum[mt][1] = 0.f;
    }
    if constexpr (AVG) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int j = 0; j < C::kKVT; ++j) acc[mt][j][0] = acc[mt][j][1] = acc[mt][j][2] = acc[mt][j][3] = 0.f;
    }

    bool carried = false;  // m starts from the carried reference (see the top of the file)
    if constexpr (RES && !AVG) {
      if (ps.lseCarry && ps.yPotentialPrev) {
        const float drift = *ps.drift;
        bool ok = drift <= kMaxCarryDrift;  // false for NaN
        float carry[MT][2];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int h = 0; h < 2; ++h) {
            const int64_t row = pc.rowBase + warp * C::kWM + mt * 16 + g + 8 * h;
            carry[mt][h] = ok && row >= pc.rowLo && row < pc.rowHi ? ps.lseCarry[row] : NAN;
            ok = ok && isfinite(carry[mt][h]);
          }
        carried = __all_sync(0xffffffffu, ok);
        if (carried) {
#pragma unroll
          for (int mt = 0; mt < MT; ++mt)
#pragma unroll
            for (int h = 0; h < 2; ++h) m[mt][h] = carry[mt][h] - drift - 1.f + kHeadroom;
        }
      }
    }

    // Resident x fragments: FP16 pairs of x * scale2 * xScale, built once per piece.
    uint32_t xa[RES ? MT : 1][RES ? KS : 1][4];
    if constexpr (RES) {
      const float sx = scale2 * xScale;
      const int64_t d = ps.d;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        const int64_t r0 = pc.rowBase + warp * C::kWM + mt * 16 + g;
        const int64_t r1 = r0 + 8;
        auto at = [&](int64_t r, int64_t c) { return (r < ps.n && c < d) ? ps.x[r * d + c] * sx : 0.f; };
#pragma unroll
        for (int ks = 0; ks < KS; ++ks) {
          const int64_t c = 2 * fragWord<KS>(ks, t);  // first of the 4 dimensions of the two words
          xa[mt][ks][0] = packHalf2(at(r0, c), at(r0, c + 1));
          xa[mt][ks][1] = packHalf2(at(r1, c), at(r1, c + 1));
          xa[mt][ks][2] = packHalf2(at(r0, c + 2), at(r0, c + 3));
          xa[mt][ks][3] = packHalf2(at(r1, c + 2), at(r1, c + 3));
        }
      }
    }

    auto stageBase = [&](int buf) { return smem + buf * C::kStageWords; };
    // Resident kernels: this thread's first 16-byte chunk of a y tile (row tid / kVec, chunk tid % kVec).
    const int copyShared = (tid / (C::kKW / 4)) * C::kLdS + 4 * (tid % (C::kKW / 4));
    const int copyGlobal = (tid / (C::kKW / 4)) * C::kKW + 4 * (tid % (C::kKW / 4));
    // Loads stage s (column tile, chunk) into buffer buf.
    auto issue = [&](int64_t s, int buf) {
      const int64_t ct = pc.ctBegin + s / nChunks;
      const int ch = static_cast<int>(s % nChunks);
      const int64_t colBase = pc.colBegin + ct * C::kBN;
      uint32_t* ys = stageBase(buf);
      constexpr int kVec = C::kKW / 4;
      if constexpr (RES) {
        // ld == kKW: thread tid copies 16-byte chunk tid % kVec of rows tid / kVec + i * (128 / kVec).
        static_assert((C::kThreads % kVec) == 0 && (C::kBN * kVec) % C::kThreads == 0, "copy pattern");
        constexpr int kRowStep = C::kThreads / kVec;
        const uint32_t* src = yPrep + colBase * C::kKW + copyGlobal;
        uint32_t* dst = ys + copyShared;
#pragma unroll
        for (int i = 0; i < C::kBN * kVec / C::kThreads; ++i)
          cpAsync16(dst + i * kRowStep * C::kLdS, src + i * kRowStep * C::kKW);
      } else {
        for (int e = tid; e < C::kBN * kVec; e += C::kThreads) {
          const int j = e / kVec, c4 = e - j * kVec;
          cpAsync16(ys + j * C::kLdS + 4 * c4, yPrep + (colBase + j) * ld + ch * C::kKW + 4 * c4);
        }
      }
      if (ch == 0) {
        uint32_t* us = ys + C::kStageWords - C::kBN;
        if ((colBase & 3) == 0) {
          if (tid < C::kBN / 4) cpAsync16(us + 4 * tid, bias + colBase + 4 * tid);
        } else if (tid < C::kBN) {
          cpAsync4(us + tid, bias + colBase + tid);
        }
      }
      if constexpr (!RES) {
        uint32_t* xs = ys + C::kYWords;
        for (int e = tid; e < C::kBM * kVec; e += C::kThreads) {
          const int r = e / kVec, c4 = e - r * kVec;
          cpAsync16(xs + r * C::kLdS + 4 * c4, xPrep + (pc.rowBase + r) * ld + ch * C::kKW + 4 * c4);
        }
      }
      if constexpr (AVG) {
        if (ch == nChunks - 1) {
          float* vs = reinterpret_cast<float*>(ys + C::kYWords + C::kXWords);
          if (vVector) {
            constexpr int kV4 = C::kKV / 4;
            for (int e = tid; e < C::kBN * kV4; e += C::kThreads) {
              const int j = e / kV4, c4 = e - j * kV4;
              const int64_t col = colBase + j, kv = a.kvBegin + 4 * c4;
              const bool ok = col < colEnd && kv < ps.k;
              cpAsync16(vs + j * C::kLdV + 4 * c4, ok ? ps.v + col * ps.k + kv : ps.v, ok);
            }
          } else {
            for (int e = tid; e < C::kBN * C::kKV; e += C::kThreads) {
              const int j = e / C::kKV, c = e - j * C::kKV;
              const int64_t col = colBase + j, kv = a.kvBegin + c;
              const bool ok = col < colEnd && kv < ps.k;
              cpAsync4(vs + j * C::kLdV + c, ok ? ps.v + col * ps.k + kv : ps.v, ok);
            }
          }
        }
      }
    };

    // Exact update: S holds (scores - m) * K; turns S into 2^(score - m') and folds it in. The new
    // reference m' sits kHeadroom above the row's log-sum-exp so far, so that later columns must beat
    // it by 120 + kHeadroom before the lazy sum overflows. S: float[MT][NT][4], any NT.
    auto exactUpdate = [&](auto& S) {
      constexpr int NT = sizeof(S[0]) / sizeof(S[0][0]);
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          float tmax = -INFINITY;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            S[mt][nt][2 * h] *= unscale;
            S[mt][nt][2 * h + 1] *= unscale;
            tmax = fmaxf(tmax, fmaxf(S[mt][nt][2 * h], S[mt][nt][2 * h + 1]));
          }
          tmax = quadMax(tmax);
          const float qsum = quadSum(sum[mt][h]);  // 0 or normal: a sum of MUFU.EX2 results
          const float lsePrev = qsum > 0.f ? m[mt][h] + __log2f(qsum) : -INFINITY;
          const float best = fmaxf(lsePrev, m[mt][h] + tmax);
          const float mNew = best == -INFINITY ? m[mt][h] : best + kHeadroom;
          const float delta = m[mt][h] - mNew;
          // The sums rescale by 2^delta in two halves: 2^delta may underflow while sum 2^delta
          // (<= 2^-kHeadroom) does not. No rescale when the sums are all zero (delta may be huge).
          const float half = qsum > 0.f ? fastExp2(0.5f * delta) : 0.f;
          m[mt][h] = mNew;
          sum[mt][h] = (sum[mt][h] * half) * half;
          if constexpr (AVG) {
#pragma unroll
            for (int j = 0; j < C::kKVT; ++j) {
              acc[mt][j][2 * h] = (acc[mt][j][2 * h] * half) * half;
              acc[mt][j][2 * h + 1] = (acc[mt][j][2 * h + 1] * half) * half;
            }
          }
#ifdef SINKHORN_SOFTMIN_STATS
          if (lane == 0 && mt == 0 && h == 0) atomicAdd(&g_softminStats[0], 1ull);
#endif
          float rs[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
          for (int nt = 0; nt < NT; ++nt) {
            const float p0 = fastExp2(S[mt][nt][2 * h] + delta);
            const float p1 = fastExp2(S[mt][nt][2 * h + 1] + delta);
            S[mt][nt][2 * h] = p0;
            S[mt][nt][2 * h + 1] = p1;
            rs[nt & 3] += p0 + p1;
          }
          sum[mt][h] += (rs[0] + rs[1]) + (rs[2] + rs[3]);
        }
    };

    // P (in S, columns ntBase*8 ..) times the v rows of those columns (TF32 mma).
    auto accumulateV = [&](auto& S, const float* vs, int ntBase) {
      if constexpr (AVG) {
        constexpr int NT = sizeof(S[0]) / sizeof(S[0][0]);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) {
          uint32_t pa[MT][4];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            pa[mt][0] = toTf32(S[mt][nt][0]);
            pa[mt][1] = toTf32(S[mt][nt][2]);
            pa[mt][2] = toTf32(S[mt][nt][1]);
            pa[mt][3] = toTf32(S[mt][nt][3]);
          }
          const float* v0 = vs + (8 * (ntBase + nt) + 2 * t) * C::kLdV + g;
#pragma unroll
          for (int j = 0; j < C::kKVT; ++j) {
            const uint32_t b0 = __float_as_uint(v0[8 * j]);
            const uint32_t b1 = __float_as_uint(v0[C::kLdV + 8 * j]);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) mmaTf32(acc[mt][j], pa[mt], b0, b1);
          }
        }
      }
    };

    // Scores start from the biases: S = (u - m) K, u masked beyond the segment.
    auto initScores = [&](auto& S, const float* us, int64_t colBase, int ntBase) {
      constexpr int NT = sizeof(S[0]) / sizeof(S[0][0]);
      float mK[MT][2];
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        mK[mt][0] = m[mt][0] * K;
        mK[mt][1] = m[mt][1] * K;
      }
      const bool full = colBase + C::kBN <= colEnd;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        float2 u = *reinterpret_cast<const float2*>(us + 8 * (ntBase + nt) + 2 * t);
        if (!full) {
          const int64_t c = colBase + 8 * (ntBase + nt) + 2 * t;
          if (c >= colEnd) u.x = -INFINITY;
          if (c + 1 >= colEnd) u.y = -INFINITY;
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          S[mt][nt][0] = u.x - mK[mt][0];
          S[mt][nt][1] = u.y - mK[mt][0];
          S[mt][nt][2] = u.x - mK[mt][1];
          S[mt][nt][3] = u.y - mK[mt][1];
        }
      }
    };

    // Folds the lazy sums in unless one overflowed (then the warp redoes the columns exactly).
    auto commitLazy = [&](float (&rs)[MT][2][4]) -> bool {
      float tot[MT][2];
      bool bad = false;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          tot[mt][h] = sum[mt][h] + ((rs[mt][h][0] + rs[mt][h][1]) + (rs[mt][h][2] + rs[mt][h][3]));
          bad |= !(tot[mt][h] < (AVG ? kLazyLimitAvg : kLazyLimitValue));
        }
      if (__any_sync(0xffffffffu, bad)) return false;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        sum[mt][0] = tot[mt][0];
        sum[mt][1] = tot[mt][1];
      }
      return true;
    };

    // One n8 tile (nt of the block starting at ntBase) of resident scores: B fragments and mma.
    auto hmmaNt = [&](auto& S, const uint32_t* ys, int ntBase, int nt) {
      if constexpr (RES) {
        const uint32_t* yrow = ys + (8 * (ntBase + nt) + g) * C::kLdS;
        uint32_t b[KS][2];
        if constexpr (KS == 1) {
          const uint2 v = *reinterpret_cast<const uint2*>(yrow + 2 * t);
          b[0][0] = v.x;
          b[0][1] = v.y;
        } else {
#pragma unroll
          for (int q = 0; q < KS / 2; ++q) {
            const uint4 v = *reinterpret_cast<const uint4*>(yrow + 16 * q + 4 * t);
            b[2 * q][0] = v.x;
            b[2 * q][1] = v.y;
            b[2 * q + 1][0] = v.z;
            b[2 * q + 1][1] = v.w;
          }
        }
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int ks = 0; ks < KS; ++ks) mmaF16(S[mt][nt], xa[mt][ks], b[ks][0], b[ks][1]);
      }
    };
    // Scores of the resident kernels for the n8 tiles ntBase.., x fragments from registers.
    auto residentScores = [&](auto& S, const uint32_t* ys, const float* us, int64_t colBase, int ntBase) {
      constexpr int NT = sizeof(S[0]) / sizeof(S[0][0]);
      initScores(S, us, colBase, ntBase);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) hmmaNt(S, ys, ntBase, nt);
    };
    // Lazy exponentials of one n8 tile (UNIT: K = 1): S becomes 2^S, rs[mt][h][*] collects the row
    // sums on four independent accumulators (short dependency chains; first: they start here). A
    // fraction of the exponentials (kPoly of every 8) run on the FMA pipe as a polynomial, the rest
    // on the special function unit.
    auto expNt = [&](auto& S, int nt, float (&rs)[MT][2][4], auto unitTag, bool first) {
      constexpr bool UNIT = decltype(unitTag)::value;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float x = UNIT ? S[mt][nt][e] : S[mt][nt][e] * unscale;
          const float p = ((nt * 4 + e) & 7) < C::kPoly ? polyExp2(x) : fastExp2(x);
          S[mt][nt][e] = p;
          float& r = rs[mt][e >> 1][(nt & 1) * 2 + (e & 1)];
          r = first ? p : r + p;
        }
    };
    // The lazy exponentials of a block of n8 tiles (the accumulators start at its first two).
    auto lazyExp = [&](auto& S, float (&rs)[MT][2][4], auto unitTag) {
      constexpr int NT = sizeof(S[0]) / sizeof(S[0][0]);
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) expNt(S, nt, rs, unitTag, nt < 2);
    };
    // Lazy pass over a resident tile in blocks of kIl n8 tiles, software-pipelined: the mma of block
    // b + 1 interleaved with the exponentials of block b, so that the tensor pipe and the special
    // function unit work at the same time within a warp.
    auto lazyTile = [&](const uint32_t* ys, const float* us, int64_t colBase, float (&rs)[MT][2][4],
                        auto unitTag) {
      constexpr int kIl = 2;
      constexpr int kNB = C::kNT / kIl;
      float S[2][MT][kIl][4];
      initScores(S[0], us, colBase, 0);
#pragma unroll
      for (int nt = 0; nt < kIl; ++nt) hmmaNt(S[0], ys, 0, nt);
#pragma unroll
      for (int b = 0; b < kNB; ++b) {
        if (b + 1 < kNB) initScores(S[(b + 1) & 1], us, colBase, (b + 1) * kIl);
#pragma unroll
        for (int nt = 0; nt < kIl; ++nt) {
          if (b + 1 < kNB) hmmaNt(S[(b + 1) & 1], ys, (b + 1) * kIl, nt);
          expNt(S[b & 1], nt, rs, unitTag, b == 0);
        }
      }
    };

    // Scores of the chunked kernels persist over the chunks of a tile.
    float Sc[RES ? 1 : MT][RES ? 1 : C::kNT][4];

    // Pipeline: the stage of sequence number q (over the CTA's life) lives in buffer q % kStages;
    // kAhead stages are loaded ahead of the one computed.
    auto produce = [&](int64_t s) {
      const uint32_t q = seq + static_cast<uint32_t>(s);
      const int b = static_cast<int>(q % kStages);
      const uint32_t use = q / kStages;
      if (use > 0) mbarWait(empty + b, (use - 1) & 1);
      issue(s, b);
      cpAsyncArrive(full + b);
    };
#pragma unroll
    for (int i = 0; i < kAhead; ++i)
      if (i < nStages) produce(i);
    for (int64_t s = 0; s < nStages; ++s) {
      if (s + kAhead < nStages) produce(s + kAhead);
      const uint32_t q = seq + static_cast<uint32_t>(s);
      const int buf = static_cast<int>(q % kStages);
      mbarWait(full + buf, (q / kStages) & 1);
      const uint32_t* ys = stageBase(buf);
      const uint32_t* xs = ys + C::kYWords;
      const float* vs = reinterpret_cast<const float*>(ys + C::kYWords + C::kXWords);
      const float* us = reinterpret_cast<const float*>(ys + C::kStageWords - C::kBN);
      const int ch = static_cast<int>(s % nChunks);
      const int64_t colBase = pc.colBegin + (pc.ctBegin + s / nChunks) * C::kBN;

      if constexpr (RES) {
#ifdef SINKHORN_SOFTMIN_STATS
        if (lane == 0) atomicAdd(&g_softminStats[1], 1ull);
#endif
        // The tile in blocks of kNH n8 tiles (32 columns): few scores in registers at a time.
        constexpr int kNH = 4;
        constexpr int kBlocks = C::kNT / kNH;
        const bool unit = K == 1.f;
        if constexpr (!AVG) {
          bool done = false;
          if (s != 0 || carried) {  // lazy: one vote per tile
            float rs[MT][2][4];
            if (unit) lazyTile(ys, us, colBase, rs, std::true_type{});
            else lazyTile(ys, us, colBase, rs, std::false_type{});
            done = commitLazy(rs);
          }
          if (!done) {
#pragma unroll 1
            for (int hf = 0; hf < kBlocks; ++hf) {
              float S[MT][kNH][4];
              residentScores(S, ys, us, colBase, hf * kNH);
              exactUpdate(S);
            }
          }
        } else {  // the average needs P before the next block: one vote per block
#pragma unroll 1
          for (int hf = 0; hf < kBlocks; ++hf) {
            float S[MT][kNH][4];
            residentScores(S, ys, us, colBase, hf * kNH);
            bool done = false;
            if (s != 0) {
              float rs[MT][2][4];
              if (unit) lazyExp(S, rs, std::true_type{});
              else lazyExp(S, rs, std::false_type{});
              done = commitLazy(rs);
              if (!done) residentScores(S, ys, us, colBase, hf * kNH);
            }
            if (!done) exactUpdate(S);
            accumulateV(S, vs, hf * kNH);
          }
        }
      } else {
        if (ch == 0) initScores(Sc, us, colBase, 0);
#pragma unroll
        for (int q = 0; q < KS / 2; ++q) {
          uint32_t xf[MT][2][4];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            const uint32_t* r0 = xs + (warp * C::kWM + mt * 16 + g) * C::kLdS + 16 * q + 4 * t;
            const float4 v0 = *reinterpret_cast<const float4*>(r0);
            const float4 v1 = *reinterpret_cast<const float4*>(r0 + 8 * C::kLdS);
            xf[mt][0][0] = toTf32(v0.x * scale2);
            xf[mt][0][1] = toTf32(v1.x * scale2);
            xf[mt][0][2] = toTf32(v0.y * scale2);
            xf[mt][0][3] = toTf32(v1.y * scale2);
            xf[mt][1][0] = toTf32(v0.z * scale2);
            xf[mt][1][1] = toTf32(v1.z * scale2);
            xf[mt][1][2] = toTf32(v0.w * scale2);
            xf[mt][1][3] = toTf32(v1.w * scale2);
          }
#pragma unroll
          for (int nt = 0; nt < C::kNT; ++nt) {
            const uint4 v = *reinterpret_cast<const uint4*>(ys + (8 * nt + g) * C::kLdS + 16 * q + 4 * t);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              mmaTf32(Sc[mt][nt], xf[mt][0], v.x, v.y);
              mmaTf32(Sc[mt][nt], xf[mt][1], v.z, v.w);
            }
          }
        }
        if (ch == nChunks - 1) {
          exactUpdate(Sc);
          accumulateV(Sc, vs, 0);
        }
      }
      mbarArrive(empty + buf);
    }
    seq += static_cast<uint32_t>(nStages);

    // Results of the piece.
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const float total = quadSum(sum[mt][h]);
        const float lse2 = m[mt][h] + log2f(total);
        const int rowInTile = warp * C::kWM + mt * 16 + g + 8 * h;
        const int64_t row = pc.rowBase + rowInTile;
        const bool mine = row >= pc.rowLo && row < pc.rowHi;
        if (mine && t == 0) {
          if (pc.slot < 0) {
            if (a.kvBegin == 0) finalizeRow(ps, row, lse2);
          } else {
            a.wsLse[static_cast<int64_t>(pc.slot) * C::kBM + rowInTile] = lse2;
          }
        }
        if constexpr (AVG) {
          if (mine) {
            const float inv = 1.f / total;
#pragma unroll
            for (int j = 0; j < C::kKVT; ++j) {
              const int c = 8 * j + 2 * t;
              const float v0 = acc[mt][j][2 * h] * inv, v1 = acc[mt][j][2 * h + 1] * inv;
              if (pc.slot < 0) {
                const int64_t kv = a.kvBegin + c;
                if (kv < ps.k) ps.avg[row * ps.k + kv] = v0;
                if (kv + 1 < ps.k) ps.avg[row * ps.k + kv + 1] = v1;
              } else {
                float* w = a.wsAvg + (static_cast<int64_t>(pc.slot) * C::kBM + rowInTile) * C::kKV + c;
                w[0] = v0;
                w[1] = v1;
              }
            }
          }
        }
      }
  });
}

// Biases of the tensor-core kernels: bias_j = K log2(e) (w_j + (h_j - c|y_j|^2)/eps) for j < m, -inf
// for the kPrepRowPadding columns after; with yPotentialPrev, the drift max_j |h_j - hPrev_j| log2(e)/eps
// (NaN if a difference is).
__global__ void biasKernel(const __grid_constant__ LaunchArgs<float> a) {
  const DevicePass<float>& ps = a.pass[blockIdx.y];
  float xScale = 1.f, K = 1.f;
  if (ps.d <= kMaxResidentDim) residentScales(ps, xScale, K);
  const float uScale = ps.invEps * float(kLog2e);
  float* bias = const_cast<float*>(ps.bias);
  float drift = 0.f;
  for (int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; j < ps.m + kPrepRowPadding;
       j += int64_t(gridDim.x) * blockDim.x) {
    float u = -INFINITY;
    if (j < ps.m) {
      const float h = ps.yPotential ? ps.yPotential[j] : 0.f;
      u = (ps.yLogWeights[j] * float(kLog2e) + (h - ps.ySqNorm[j]) * uScale) * K;
      if (ps.yPotentialPrev) drift = maxNaN(drift, fabsf(h - ps.yPotentialPrev[j]) * uScale);
    }
    bias[j] = u;
  }
  if (ps.yPotentialPrev) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) drift = maxNaN(drift, __shfl_xor_sync(0xffffffffu, drift, o));
    // Non-negative floats (NaN above +inf) order as their bit patterns.
    if ((threadIdx.x & 31) == 0 && drift != 0.f) atomicMax(reinterpret_cast<int*>(ps.drift), __float_as_int(drift));
  }
}

// info[0] = max |src| (info zeroed beforehand).
__global__ void maxAbsKernel(const float* __restrict__ src, int64_t count, float* info) {
  float mx = 0.f;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < count; e += int64_t(gridDim.x) * blockDim.x)
    mx = fmaxf(mx, fabsf(src[e]));
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  if ((threadIdx.x & 31) == 0 && mx > 0.f) atomicMax(reinterpret_cast<int*>(info), __float_as_int(mx));
}

// FP16 copy scaled by halfScaleFor(info[0], kHalfTargetY); words of two values; zeros elsewhere.
__global__ void prepareHalfKernel(const float* __restrict__ src, int64_t rows, int64_t d, uint32_t* __restrict__ dst,
                                  int64_t rowsPadded, int64_t ld, float* info) {
  const float scale = halfScaleFor(info[0], kHalfTargetY);
  if (blockIdx.x == 0 && threadIdx.x == 0) info[1] = scale;
  const int64_t total = rowsPadded * ld;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / ld, c = 2 * (e - r * ld);
    float lo = 0.f, hi = 0.f;
    if (r < rows) {
      if (c < d) lo = src[r * d + c] * scale;
      if (c + 1 < d) hi = src[r * d + c + 1] * scale;
    }
    dst[e] = packHalf2(lo, hi);
  }
}

// TF32-rounded copy; zeros elsewhere.
__global__ void prepareTf32Kernel(const float* __restrict__ src, int64_t rows, int64_t d, uint32_t* __restrict__ dst,
                                  int64_t rowsPadded, int64_t ld, float* info) {
  if (blockIdx.x == 0 && threadIdx.x == 0) info[1] = 1.f;
  const int64_t total = rowsPadded * ld;
  for (int64_t e = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    const int64_t r = e / ld, c = e - r * ld;
    dst[e] = (r < rows && c < d) ? toTf32(src[r * d + c]) : 0u;
  }
}

template <int KS, bool RES, int MT, int KV>
KernelShape shapeOf() {
  using C = TensorConfig<KS, RES, MT, KV>;
  auto kernel = softminTensorKernel<KS, RES, MT, KV>;
  KernelShape s{C::kBM, C::kBN, KV, C::kThreads, C::kSmemBytes, 0};
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(C::kSmemBytes));
  if (err == cudaSuccess)
    err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&s.blocksPerSm, kernel, C::kThreads, C::kSmemBytes);
  if (err != cudaSuccess) s.blocksPerSm = -static_cast<int>(err);
  return s;
}

template <int KS, bool RES, int MT, int KV>
void launchOne(const LaunchArgs<float>& a, cudaStream_t stream) {
  using C = TensorConfig<KS, RES, MT, KV>;
  int64_t maxM = 0;
  for (int i = 0; i < a.count; ++i) maxM = std::max(maxM, a.pass[i].m);
  const dim3 biasGrid(static_cast<unsigned>(std::min<int64_t>((maxM + kPrepRowPadding + 255) / 256, 1024)),
                      static_cast<unsigned>(a.count));
  biasKernel<<<biasGrid, 256, 0, stream>>>(a);
  softminTensorKernel<KS, RES, MT, KV><<<a.grid, C::kThreads, C::kSmemBytes, stream>>>(a);
  if (a.streamK) combinePartials<float, C::kBM, C::kKV><<<a.grid, C::kBM, 0, stream>>>(a);
}

// Resident: KS FP16 k-steps of 16 dimensions; chunked: TF32, 8 k-steps of 8 per 64-dimension chunk.
template <int KV>
KernelShape shapeFor(int64_t d) {
  constexpr int MT = KV > 0 ? 1 : 2;
  if (d <= 16) return shapeOf<1, true, MT, KV>();
  if (d <= 32) return shapeOf<2, true, MT, KV>();
  if (d <= kMaxResidentDim) return shapeOf<4, true, MT, KV>();
  return shapeOf<8, false, MT, KV>();
}

template <int KV>
void launchFor(int64_t d, const LaunchArgs<float>& a, cudaStream_t stream) {
  constexpr int MT = KV > 0 ? 1 : 2;
  if (d <= 16) launchOne<1, true, MT, KV>(a, stream);
  else if (d <= 32) launchOne<2, true, MT, KV>(a, stream);
  else if (d <= kMaxResidentDim) launchOne<4, true, MT, KV>(a, stream);
  else launchOne<8, false, MT, KV>(a, stream);
}

}  // namespace

#ifdef SINKHORN_SOFTMIN_STATS
void softminStats(unsigned long long* out, bool reset) {
  cudaMemcpyFromSymbol(out, g_softminStats, sizeof(g_softminStats));
  if (reset) {
    const unsigned long long zero[2] = {0, 0};
    cudaMemcpyToSymbol(g_softminStats, zero, sizeof(zero));
  }
}
#endif

PreparedFormat preparedFormat(int64_t d) {
  if (d <= 16) return {true, 8};
  if (d <= 32) return {true, 16};
  if (d <= kMaxResidentDim) return {true, 32};
  return {false, (d + 63) / 64 * 64};
}

void launchPrepare(const float* src, int64_t rows, int64_t d, void* dst, float* info, void* stream) {
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const PreparedFormat f = preparedFormat(d);
  const int64_t rowsPadded = rows + kPrepRowPadding;
  const int threads = 256;
  cudaMemsetAsync(info, 0, 2 * sizeof(float), st);
  if (rows > 0) {
    const int64_t count = rows * d;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((count + threads - 1) / threads, 2048));
    maxAbsKernel<<<blocks, threads, 0, st>>>(src, count, info);
  }
  const int64_t total = rowsPadded * f.ldWords;
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((total + threads - 1) / threads, 8192));
  if (f.half)
    prepareHalfKernel<<<blocks, threads, 0, st>>>(src, rows, d, static_cast<uint32_t*>(dst), rowsPadded, f.ldWords,
                                                  info);
  else
    prepareTf32Kernel<<<blocks, threads, 0, st>>>(src, rows, d, static_cast<uint32_t*>(dst), rowsPadded, f.ldWords,
                                                  info);
}

// kv: 0 (no average), 8 (k <= 8) or 64.
KernelShape tensorShape(int64_t d, int kv) {
  return kv == 0 ? shapeFor<0>(d) : kv == 8 ? shapeFor<8>(d) : shapeFor<64>(d);
}

void tensorLaunch(int64_t d, int kv, const LaunchArgs<float>& a, void* stream) {
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  if (kv == 0) launchFor<0>(d, a, st);
  else if (kv == 8) launchFor<8>(d, a, st);
  else launchFor<64>(d, a, st);
}

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn
