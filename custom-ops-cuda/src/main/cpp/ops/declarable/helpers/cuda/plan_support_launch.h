// Internal interface between the CUDA backend (cuda_backend.cu) and the plan-support kernel
// (plan_support.cu): the launcher. Not part of the library's API.
#ifndef SINKHORN_HELPERS_CUDA_PLAN_SUPPORT_LAUNCH_H
#define SINKHORN_HELPERS_CUDA_PLAN_SUPPORT_LAUNCH_H

#include <cstdint>

#include "../softmin.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {

// One streamed pass over the rows of a single-segment softmin pass p: the entries with
// score_ij - lse_i >= logMinWeight either counted per row (rowStart null: counts[i] += 1, counts
// zeroed beforehand) or written at rowStart[i] + counts[i]++ as (j, exp(score_ij - lse_i)).
template <typename T>
void launchPlanSupport(const SoftminPass<T>& p, const T* lse, T logMinWeight, unsigned* counts, const int64_t* rowStart,
                       int32_t* col, T* weight, void* stream);

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn

#endif
