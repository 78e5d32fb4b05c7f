// Log weights on the host, as the softmin passes take them (softmin.h): log w_i, kZeroWeightLog for
// w_i = 0. The CPU backend's logWeights, and the host-side consumers' (plan products, HVPs).
#ifndef SINKHORN_HELPERS_LOG_WEIGHTS_H
#define SINKHORN_HELPERS_LOG_WEIGHTS_H

#include <cmath>
#include <cstdint>

#include "host_parallel.h"
#include "softmin.h"

namespace sinkhorn {
namespace helpers {

// A log costs about what copying kLogCost values does: the rows are split over host threads by that
// work (0.7 ms of one thread at n = 50000 otherwise).
constexpr int64_t kLogCost = 8;

template <typename T>
void logWeightsOnHost(const T* w, int64_t rows, T* out) {
  forRowChunks(rows, hostChunkCount(rows, kLogCost), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = T(w[i] > 0 ? std::log(double(w[i])) : kZeroWeightLog);
  });
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
