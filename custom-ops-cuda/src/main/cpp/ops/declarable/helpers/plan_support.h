// The support of a transport plan: the entries of a pass's row softmax p_ij = exp(score_ij - LSE_i)
// (softmin.h) that reach a minimum weight, as compressed rows in host memory, columns ascending.
//
// Where eps is small against the spacing of the points the plan is nearly one-to-one: its support
// has O(n + m) entries, and a product with it costs O(n + m) instead of the O(n m d) of a streamed
// pass. The entries left out weigh less than minWeight each, so a row loses less than m minWeight
// of its unit mass. Backends extract it in two streamed passes (count, then fill) and give up when
// it exceeds a budget, so its memory stays bounded (hvp.h then streams its products).
#ifndef SINKHORN_HELPERS_PLAN_SUPPORT_H
#define SINKHORN_HELPERS_PLAN_SUPPORT_H

#include <algorithm>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "softmin.h"
#include "system/status.h"

namespace sinkhorn {
namespace helpers {

struct PlanSupport {
  std::vector<int64_t> rowStart;  // rows + 1 offsets into col and weight
  std::vector<int32_t> col;
  std::vector<double> weight;     // p_ij
  std::vector<int32_t> row;       // row of each entry (finish())

  int64_t rows() const { return static_cast<int64_t>(rowStart.size()) - 1; }
  int64_t entries() const { return static_cast<int64_t>(col.size()); }

  // The products loop over the entries, not the rows: rows hold one or two entries where the
  // support pays, and a loop per row would be mostly mispredicted branches.
  // out_i = sum_j p_ij u_j
  void rowAverage(const std::vector<double>& u, std::vector<double>& out) const {
    out.assign(rows(), 0.0);
    for (int64_t e = 0; e < entries(); ++e) out[row[e]] += weight[e] * u[col[e]];
  }

  // out_j = sum_i rowScale_i p_ij w_i over columns [0, columns)
  void columnSum(const std::vector<double>& w, const std::vector<double>& rowScale, int64_t columns,
                 std::vector<double>& out) const {
    out.assign(columns, 0.0);
    for (int64_t e = 0; e < entries(); ++e) out[col[e]] += weight[e] * (rowScale[row[e]] * w[row[e]]);
  }

  // Scales each row to unit sum and indexes the entries by row. With unit rows the support's plan
  // r_i p_ij has row sums r exactly, which keeps CG's systems semi-definite with the gauge null
  // vector they are built around (rounding and the dropped entries would otherwise leave them
  // indefinite by more than the regularisation).
  void finish() {
    row.resize(col.size());
    for (int64_t i = 0; i < rows(); ++i) {
      double s = 0;
      for (int64_t e = rowStart[i]; e < rowStart[i + 1]; ++e) s += weight[e], row[e] = static_cast<int32_t>(i);
      if (s > 0)
        for (int64_t e = rowStart[i]; e < rowStart[i + 1]; ++e) weight[e] /= s;
    }
  }

  // Orders each row's entries by column: backends fill a row in any order, and a fixed order makes
  // the products reproducible.
  void sortRows() {
    std::vector<int64_t> order;
    std::vector<int32_t> c;
    std::vector<double> w;
    for (int64_t i = 0; i < rows(); ++i) {
      const int64_t b = rowStart[i], len = rowStart[i + 1] - b;
      order.resize(len);
      std::iota(order.begin(), order.end(), b);
      std::sort(order.begin(), order.end(), [&](int64_t p, int64_t q) { return col[p] < col[q]; });
      c.resize(len);
      w.resize(len);
      for (int64_t e = 0; e < len; ++e) c[e] = col[order[e]], w[e] = weight[order[e]];
      std::copy(c.begin(), c.end(), col.begin() + b);
      std::copy(w.begin(), w.end(), weight.begin() + b);
    }
  }
};

// The passes a support is taken of: one segment, rows and columns indexable by int32.
template <typename T>
void requireSupportPass(const SoftminPass<T>& p) {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  if (p.segments != 1 || p.n > kMax || p.m > kMax)
    throw Error(SK_INTERNAL_ERROR, "plan support: one segment of fewer than 2^31 rows and columns");
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
