// The sinkhorn_divergence op and the plan-product op: argument checks, choice of precision and
// backend, and the call into the solver loops (helpers/).
#ifndef SINKHORN_GENERIC_SINKHORN_DIVERGENCE_H
#define SINKHORN_GENERIC_SINKHORN_DIVERGENCE_H

#include "sinkhorn4j.h"

namespace sinkhorn {

void divergenceOp(const sk_options& options, const sk_clouds& clouds, sk_outputs& outputs);
void planProductOp(const sk_options& options, const sk_clouds& clouds, const void* f, const void* g, bool transpose,
                   int64_t k, const void* v, void* out);
// The potentials of one solve (sk_outputs' f_ba, g_ab, f_aa, g_bb).
struct Potentials {
  const void* fBa;
  const void* gAb;
  const void* fAa;
  const void* gBb;
};
void hvpOp(const sk_options& options, const sk_clouds& clouds, const Potentials& potentials,
           const sk_hvp_options& hvpOptions, const void* v, void* out, sk_hvp_report& report);
int32_t cudaDevices();

}  // namespace sinkhorn

#endif
