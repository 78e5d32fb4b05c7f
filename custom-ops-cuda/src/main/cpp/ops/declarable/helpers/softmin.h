// The one primitive every backend implements: a streaming log-sum-exp pass over a pair of clouds.
//
// With c = 1/2 (half cost) or 1, C_ij = c|x_i - y_j|^2 and a potential h on y,
//   softmin_i = -eps LSE_j( w_j + (h_j - C_ij)/eps )
//             =  c|x_i|^2 - eps LSE_j( (2c/eps) <x_i, y_j> + u_j ),   u_j = w_j + (h_j - c|y_j|^2)/eps,
// the FlashAttention form: scores are biased dot products, reduced by an online max and sum, so the
// n x m matrix is never stored. The same pass optionally averages rows of v under the softmax
// weights p_ij = exp(score_ij - LSE_i), which gives barycentric maps, gradients and plan products.
// A pair-weighted average sum_j p_ij <pairRow_i, pairCol_j> v_j gives the plan's second moments along
// a direction (Hessian-vector products, hvp.h) without an n x m or m x d x d intermediate.
#ifndef SINKHORN_HELPERS_SOFTMIN_H
#define SINKHORN_HELPERS_SOFTMIN_H

#include <cstdint>

namespace sinkhorn {
namespace helpers {

// log w of a zero weight (GeomLoss's): the column drops out of every log-sum-exp with no -inf.
constexpr double kZeroWeightLog = -100000.0;

// All pointers are backend memory (device memory on CUDA). Batches are independent segments:
// rows xOffsets[s]..xOffsets[s+1] of x only see columns yOffsets[s]..yOffsets[s+1] of y.
template <typename T>
struct SoftminPass {
  const T* x;              // evaluation points, rows of d values
  const T* y;              // source points
  int64_t d;
  const int64_t* xOffsets;  // segments + 1 entries
  const int64_t* yOffsets;
  int64_t segments;
  int64_t n;               // xOffsets[segments]
  int64_t m;               // yOffsets[segments]
  const T* xSqNorm;        // c|x_i|^2
  const T* ySqNorm;        // c|y_j|^2
  const T* yLogWeights;    // w_j = log b_j (kZeroWeightLog for zero weights)
  const T* yPotential;     // h_j, or nullptr for h = 0
  T eps;
  T cost;                  // c
  T damping;               // 1 / (1 + eps/rho) of the side being updated, 1 when balanced
  // out_i = blend * prev_i + (1 - blend) * damping * softmin_i; prev may alias out, yPotential may not.
  const T* prev;           // nullptr: blend is ignored
  T blend;
  T* out;
  T* lse;                  // optional: LSE_i itself (nullptr to skip)
  // Optional average: avg_i = sum_j p_ij v_j, v is m x k.
  const T* v;
  int64_t k;
  T* avg;
  // Optional pair-weighted average, with avg: pairAvg_i = sum_j p_ij <pairRow_i, pairCol_j> v_j over
  // the first pairK <= k columns of avg's v; pairRow is n x q, pairCol m x q.
  const T* pairRow;
  const T* pairCol;
  int64_t q;
  int64_t pairK;
  T* pairAvg;
  // Optional per-segment flags: an inactive segment writes out_i = prev_i (or nothing without prev).
  const uint8_t* active;
  // Optional reference carry between the runs of one pass at one eps (value passes; backends may
  // ignore it): lseCarry (n values) holds what this pass's previous run left there, and this run
  // overwrites it. yPotentialPrev is the potential that run read, or nullptr when there was none at
  // this eps (the run then only writes lseCarry). The CUDA tensor-core kernels keep each row's
  // base-2 log-sum-exp there and start the next run's reference from it (cuda/softmin_tensor.cu).
  T* lseCarry;
  const T* yPotentialPrev;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
