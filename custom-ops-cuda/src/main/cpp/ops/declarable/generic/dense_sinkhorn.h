// The dense_sinkhorn op and its plan-product op: argument checks (shapes, masks, finite costs at
// present entries, weights), the choice of precision and backend, and the call into the dense solver
// (helpers/dense_solver.h).
#ifndef SINKHORN_GENERIC_DENSE_SINKHORN_H
#define SINKHORN_GENERIC_DENSE_SINKHORN_H

#include "sinkhorn4j.h"

namespace sinkhorn {

void denseSinkhornOp(const sk_dense_options& options, const sk_dense_inputs& inputs, sk_dense_outputs& outputs);
void densePlanProductOp(const sk_dense_options& options, const sk_dense_inputs& inputs, const void* f, const void* g,
                        bool transpose, int64_t k, const void* v, void* out);

}  // namespace sinkhorn

#endif
