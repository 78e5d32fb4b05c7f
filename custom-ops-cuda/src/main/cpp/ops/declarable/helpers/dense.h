// The primitives of the dense solver (dense_solver.h), which every backend implements, over a batch
// of explicit cost matrices C (batch x n x m, row-major) with masks. All pointers are backend memory.
//
// Everything is in base 2. A side's bias is u_i = log2 a_i + f_i log2(e)/eps (-inf for a masked
// row or a zero weight), and likewise v_j = log2 b_j + g_j log2(e)/eps for the columns, so that
//   P_ij = a_i b_j exp((f_i + g_j - C_ij)/eps) = 2^(u_i + v_j - C_ij s),   s = log2(e)/eps.
// A log-sum-exp pass reduces C along its rows (updates f from v) or its columns (updates g from u):
//   L_i = ln 2 * log2 sum_j 2^(v_j - C_ij s),   f_i = -eps damp L_i,
// and writes this side's new bias for the next pass. Entries of C whose row or column is masked
// never reach a result (NaN there is harmless); masked entries of a potential are 0.
#ifndef SINKHORN_HELPERS_DENSE_H
#define SINKHORN_HELPERS_DENSE_H

#include <cstdint>

namespace sinkhorn {
namespace helpers {

template <typename T>
struct DenseBatch {
  const T* cost;            // batch x n x m
  int64_t batch, n, m;
  const T* log2A;           // batch x n: log2 a_i, -inf for zero weights and masked rows
  const T* log2B;           // batch x m
  const uint8_t* maskA;     // batch x n: 1 present, 0 masked
  const uint8_t* maskB;     // batch x m
};

// One half-iteration: every row of every item (columns false: f from the column biases) or every
// column (columns true: g from the row biases).
template <typename T>
struct DenseLsePass {
  bool columns;
  const T* otherBias;       // the other side's biases: batch x m for rows, batch x n for columns
  T scale2;                 // s = log2(e) / eps
  T epsDamping;             // eps * damp of this side: potential = -epsDamping * L
  const uint8_t* active;    // per item, or nullptr: an inactive item copies prev into out, writes nothing else
  const T* prev;
  T* out;                   // this side's potentials, or nullptr
  T* bias;                  // this side's biases for the next pass, or nullptr
  T* lse;                   // L (natural log, 0 where masked), or nullptr
};

// The whole iteration loop of dense_solver.h in one device launch, for backends that can keep an
// item's costs on chip (CudaBackend::denseResident); the outputs are those of the loop.
template <typename T>
struct DenseResidentSolve {
  T scale2, epsDampingA, epsDampingB;
  int32_t maxIters, checkEvery;
  double threshold;         // > 0: an item stops at the first check whose largest change is below it
  T* f;                     // batch x n
  T* g;                     // batch x m
  T* biasA;                 // batch x n: the row biases of the final f
  T* biasB;                 // batch x m: the column biases of the final g
  int32_t* iterations;      // per item
  int32_t* converged;       // per item
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
