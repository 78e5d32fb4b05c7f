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
  int blockRows;  // rows computed together: work items should be multiples of it
  void (*rowsFloat)(const RowBlock<float>&);
  void (*rowsDouble)(const RowBlock<double>&);
};

const KernelTable& avx2Kernels();
const KernelTable& avx512Kernels();

}  // namespace cpu
}  // namespace helpers
}  // namespace sinkhorn

#endif
