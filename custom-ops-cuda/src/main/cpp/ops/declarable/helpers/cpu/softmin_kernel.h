// The CPU softmin kernels' interface. The kernels themselves (softmin_kernel_impl.h) are compiled
// once per instruction set, AVX2 + FMA (softmin_kernel_avx2.cpp) and AVX-512 (softmin_kernel_avx512.cpp),
// and cpu_backend.cpp picks one at run time: the library stays portable to any x86-64-v3 machine.
#ifndef SINKHORN_HELPERS_CPU_SOFTMIN_KERNEL_H
#define SINKHORN_HELPERS_CPU_SOFTMIN_KERNEL_H

#include <cstddef>
#include <cstdint>

#include "../softmin.h"

namespace sinkhorn {
namespace helpers {
namespace cpu {

// Columns are packed in panels of kPanelBytes: panel p holds, for each dimension t, the values of
// columns p*width .. p*width + width - 1 contiguously (width = kPanelBytes / sizeof(T)), so that the
// kernels stream each panel once per block of rows. Padding columns carry bias -inf.
constexpr int64_t kPanelBytes = 128;
// Columns per chunk: one chunk's scores of a block of rows stay in L1 between the max and exp sweeps.
constexpr int64_t kChunkColumns = 256;

template <typename T>
constexpr int64_t panelWidth() {
  return kPanelBytes / static_cast<int64_t>(sizeof(T));
}

// One segment's columns: y packed in panels and the bias of the scores, both in base-2 units
// (scaled by log2 e): score_ij = <x_i * scale2, y_j> + bias_j, scale2 = (2c/eps) log2 e.
template <typename T>
struct PackedColumns {
  const T* panels;       // (padded / panelWidth) x d x panelWidth
  const T* bias;         // padded
  const T* valuePanels;  // the pass's v packed the same way (k values per column), or null
  const T* pairPanels;   // the pass's pairCol packed the same way (q values per column), or null
  int64_t count;         // real columns
  int64_t padded;        // a multiple of the panel width
};

// Rows rowBegin..rowEnd of one pass against one segment's columns. scratch holds
// scratchElements<T>(d, k) values, 64-byte aligned, owned by the calling thread.
template <typename T>
struct RowBlock {
  const SoftminPass<T>* pass;
  const PackedColumns<T>* columns;
  int64_t rowBegin, rowEnd;
  T* scratch;
};

// Both reductions of Gram tiles g_ij = scale2 <x_i, y_j> for a block of rows of x:
//   row side:    for each row i,    the base-2 max and sum over columns j of g_ij + bias_j (the
//                columns' bias): the pass x <- y;
//   column side: for each column j, the running base-2 max and sum over rows i of g_ij + rowBias_i:
//                the pass y <- x, which needs the same dot products (or, when y is x, the other
//                triangle of a self pass).
// One sweep of the dot products serves two passes: the symmetric solver's f and g updates share
// them, and so do both triangles of a debiasing self pass.
template <typename T>
struct GramBlock {
  const T* x;                       // rows of x, d values each
  int64_t d;
  T scale2;                         // (2c/eps) log2 e
  const PackedColumns<T>* columns;  // y, with the row side's bias
  const T* rowBias;                 // the column side's bias of each row of x
  int64_t rowBegin, rowEnd;         // rows of x
  int64_t firstColumn;              // a multiple of the panel width: columns before it are skipped
  int64_t columnSideFrom;           // columns before it get the row side only
  T* rowMax;                        // per row of x: the row side's result
  T* rowSum;
  T* columnMax;                     // per column: this thread's running column side
  T* columnSum;
  T* scratch;                       // scratchElements<T>(d, 0, 0) values, 64-byte aligned
};

// Merges `parts` partial base-2 reductions of `count` entries (the column sides of several groups of
// rows, and a row side): max = max_p max_p[j], sum = sum_p sum_p[j] 2^(max_p[j] - max).
template <typename T>
struct StatsMerge {
  const T* const* maxes;
  const T* const* sums;
  int parts;
  int64_t count;
  T* max;
  T* sum;
};

// Rows per Gram work item: a multiple of every panel width, so that a self pass's triangle starts
// on a panel.
constexpr int64_t kGramTaskRows = 32;

// The outputs of row i of a pass from its natural-log LSE (both the kernels and the Gram merge write
// through it; internal linkage keeps one copy per instruction set).
template <typename T>
static inline void writeSoftmin(const SoftminPass<T>& p, int64_t i, T lse) {
  const T updated = p.damping * (p.xSqNorm[i] - p.eps * lse);
  p.out[i] = p.prev && p.blend != T(0) ? p.blend * p.prev[i] + (T(1) - p.blend) * updated : updated;
  if (p.lse) p.lse[i] = lse;
}

constexpr int kMaxBlockRows = 8;      // rows the widest kernel computes together
constexpr int kMaxVectorBytes = 64;   // its vectors

// Scores of a chunk, the block's rows of x, and lane-wise sums of the average; with a pair-weighted
// average (q > 0) the same again for the pair weights, the block's rows of pairRow and their sums.
template <typename T>
constexpr size_t scratchElements(int64_t d, int64_t k, int64_t q) {
  const int64_t sums = k * (kMaxVectorBytes / int64_t(sizeof(T)));
  return static_cast<size_t>(kMaxBlockRows * (kChunkColumns + d + sums + (q > 0 ? kChunkColumns + q + sums : 0)));
}

struct KernelTable {
  const char* isa;
  int blockRows;  // rows computed together by the softmin kernel: work items should be multiples of it
  void (*rowsFloat)(const RowBlock<float>&);
  void (*rowsDouble)(const RowBlock<double>&);
  void (*gramFloat)(const GramBlock<float>&);
  void (*gramDouble)(const GramBlock<double>&);
  void (*mergeFloat)(const StatsMerge<float>&);
  void (*mergeDouble)(const StatsMerge<double>&);
};

const KernelTable& avx2Kernels();
const KernelTable& avx512Kernels();

}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn

#endif
