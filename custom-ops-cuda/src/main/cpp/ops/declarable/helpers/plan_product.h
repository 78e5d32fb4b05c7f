// Transport-plan products from potentials, streamed:
//   (pi @ v)_i = a_i exp((f_i - c|x_i|^2)/eps + LSE_i) * avg_i,
// where LSE_i and avg_i = sum_j p_ij v_j come from one softmin pass over y with potential g, since
// pi_ij = a_i b_j exp((f_i + g_j - C_ij)/eps) = a_i exp((f_i - c|x_i|^2)/eps + LSE_i) p_ij.
// pi^T @ u is the same with the roles of (x, a, f) and (y, b, g) exchanged.
#ifndef SINKHORN_HELPERS_PLAN_PRODUCT_H
#define SINKHORN_HELPERS_PLAN_PRODUCT_H

#include <cmath>
#include <cstdint>
#include <vector>

#include "backend.h"
#include "softmin.h"

namespace sinkhorn {
namespace helpers {

// One side of the plan: the rows the product is evaluated at, and the columns it sums over.
template <typename T>
struct PlanSide {
  const T* points;
  const T* logWeights;
  const T* potential;
  int64_t rows;
  const std::vector<int64_t>* offsets;
};

template <typename T, typename Backend>
void planProduct(Backend& be, const PlanSide<T>& rowsSide, const PlanSide<T>& colsSide, int64_t d, double eps,
                 double cost, int64_t k, const T* v, T* out) {
  using Vec = Buffer<T, Backend>;
  const int64_t n = rowsSide.rows, m = colsSide.rows;
  Vec x(be, n * d), y(be, m * d), xSq(be, n), ySq(be, m), logB(be, m), g(be, m), vv(be, m * k);
  Vec lse(be, n), potential(be, n), avg(be, n * k);
  Buffer<int64_t, Backend> xOff(be, *rowsSide.offsets), yOff(be, *colsSide.offsets);
  x.upload(rowsSide.points), y.upload(colsSide.points), logB.upload(colsSide.logWeights);
  g.upload(colsSide.potential), vv.upload(v);
  be.squaredNorms(x.get(), n, d, T(cost), xSq.get());
  be.squaredNorms(y.get(), m, d, T(cost), ySq.get());

  SoftminPass<T> p{};
  p.x = x.get(), p.y = y.get(), p.d = d, p.xOffsets = xOff.get(), p.yOffsets = yOff.get();
  p.segments = static_cast<int64_t>(rowsSide.offsets->size()) - 1, p.n = n, p.m = m;
  p.xSqNorm = xSq.get(), p.ySqNorm = ySq.get(), p.yLogWeights = logB.get(), p.yPotential = g.get();
  p.eps = T(eps), p.cost = T(cost), p.damping = T(1), p.out = potential.get(), p.lse = lse.get();
  p.v = vv.get(), p.k = k, p.avg = avg.get();
  be.softmin(&p, 1);

  const std::vector<T> lseHost = lse.toHost(), xSqHost = xSq.toHost(), avgHost = avg.toHost();
  for (int64_t i = 0; i < n; ++i) {
    const double logMass = double(rowsSide.logWeights[i]) + (double(rowsSide.potential[i]) - double(xSqHost[i])) / eps +
                           double(lseHost[i]);
    const double mass = std::exp(logMass);
    for (int64_t c = 0; c < k; ++c) out[i * k + c] = T(mass * double(avgHost[i * k + c]));
  }
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
