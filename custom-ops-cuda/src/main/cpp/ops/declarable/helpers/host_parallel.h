// Host-side data-parallel loops over rows, for the O((n + m) d) preparation of inputs and outputs
// around a solve (checks, bounding box, centring, gradients): on a GPU these passes would otherwise
// take longer than a short solve itself.
#ifndef SINKHORN_HELPERS_HOST_PARALLEL_H
#define SINKHORN_HELPERS_HOST_PARALLEL_H

#include <algorithm>
#include <cstdint>

#include "cpu/cpu_backend.h"

namespace sinkhorn {
namespace helpers {

constexpr int64_t kElementsPerHostChunk = int64_t(1) << 17;  // below this a thread costs more than it saves

// How many contiguous chunks forRowChunks cuts `rows` rows of `rowElements` values into.
inline int hostChunkCount(int64_t rows, int64_t rowElements) {
  const int64_t byWork = std::max<int64_t>(1, rows * std::max<int64_t>(1, rowElements) / kElementsPerHostChunk);
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>({byWork, int64_t(cpuThreadCount()), rows})));
}

// fn(chunk, begin, end) for chunk = 0..chunks-1 covering [0, rows) in order, one thread per chunk.
template <typename Fn>
void forRowChunks(int64_t rows, int chunks, Fn&& fn) {
  auto bound = [&](int c) { return rows * c / chunks; };
  runOnThreads(chunks, [&](int c) { fn(c, bound(c), bound(c + 1)); });
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
