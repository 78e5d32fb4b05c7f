// Internal interface between the CUDA backend (cuda_backend.cu) and the dense solver's kernels
// (dense_kernels.cu): the launchers. Not part of the library's API.
#ifndef SINKHORN_HELPERS_CUDA_DENSE_LAUNCH_H
#define SINKHORN_HELPERS_CUDA_DENSE_LAUNCH_H

#include <cstddef>
#include <cstdint>
#include <map>
#include <tuple>

#include "../dense.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {

// A column pass cuts each item's columns into chunks of 32 (a warp's width) and, to fill the GPU,
// its rows into `splits` ranges; split partial results go to a workspace and the last CTA of a chunk
// to arrive merges them.
struct DenseColumnLayout {
  int64_t chunks;
  int64_t splits;
};
DenseColumnLayout denseColumnLayout(int64_t batch, int64_t n, int64_t m, int smCount);
// Workspace of a layout: partials (2 x batch x splits x m values) and one arrival counter per
// (item, chunk). The counters must be zero before a launch; every launch leaves them zero.
size_t denseColumnPartials(const DenseColumnLayout& layout, int64_t batch, int64_t m);
size_t denseColumnCounters(const DenseColumnLayout& layout, int64_t batch);

template <typename T>
void launchDenseRows(const DenseBatch<T>& batch, const DenseLsePass<T>& pass, void* stream);
template <typename T>
void launchDenseColumns(const DenseBatch<T>& batch, const DenseLsePass<T>& pass, const DenseColumnLayout& layout,
                        T* partials, unsigned* counters, void* stream);
template <typename T>
void launchDensePlan(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, T* out, void* stream);
// *first = min(*first, the flat index of each entry of C that is NaN or infinite at a present row
// and column).
template <typename T>
void launchDenseFirstNonFinite(const DenseBatch<T>& batch, unsigned long long* first, void* stream);
template <typename T>
void launchDensePlanProduct(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, bool transpose,
                            int64_t k, const T* v, T* out, void* stream);

// What the resident solve needs to know about the device.
struct DenseDevice {
  int smCount;
  int computeMajor;        // clusters of CTAs from 9 (Hopper) on
  int maxSharedPerBlock;   // opt-in bytes of dynamic shared memory per CTA
};
// What the resident solve learns once per backend state rather than on every call: the device,
// the kernels' attributes, and how many clusters of each shape run at once.
struct DenseResidentState {
  DenseDevice device{};
  // Per precision (float, double): 0 until the kernel's attributes are set, then its largest
  // cluster, or -1 where the kernel cannot take the device's shared memory.
  int largestCluster[2] = {0, 0};
  // (sizeof(T), cluster, bytes, column slab) -> clusters
  std::map<std::tuple<int, int, size_t, bool>, int> activeClusters;
};
// The whole loop in one launch, each item held in the shared memory of a cluster of CTAs. Returns
// false, launching nothing, when no cluster holds an item on this device.
template <typename T>
bool launchDenseResident(const DenseBatch<T>& batch, const DenseResidentSolve<T>& solve, DenseResidentState& state,
                         void* stream);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn

#endif
