// Incomplete Cholesky factorisation IC(0) of a sparse symmetric positive definite matrix: L with
// the sparsity of A's lower triangle and L L^T = A on that pattern. Exact where the pattern has no
// fill-in (a forest); it exists for every M-matrix (Meijerink and van der Vorst, 1977), and factor()
// reports a non-positive pivot otherwise. The HVP's CG uses it as preconditioner on the plan
// support's Schur matrix (hvp.h), a weakly diagonally dominant M-matrix.
#ifndef SINKHORN_HELPERS_INCOMPLETE_CHOLESKY_H
#define SINKHORN_HELPERS_INCOMPLETE_CHOLESKY_H

#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace sinkhorn {
namespace helpers {

class IncompleteCholesky {
 public:
  // A's lower triangle by rows: the entries of row i at [rowStart[i], rowStart[i + 1]), columns
  // ascending, the diagonal last. False (no factor) on a pivot that is not positive.
  bool factor(std::vector<int64_t> rowStart, std::vector<int32_t> col, std::vector<double> value) {
    start_ = std::move(rowStart), col_ = std::move(col), l_ = std::move(value);
    const int64_t n = static_cast<int64_t>(start_.size()) - 1;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t begin = start_[i], diag = start_[i + 1] - 1;
      if (diag < begin || col_[diag] != i) return false;
      // L_ik = (A_ik - sum_{j < k} L_ij L_kj) / L_kk over the common pattern of rows i and k
      for (int64_t e = begin; e < diag; ++e) {
        const int64_t k = col_[e];
        double s = l_[e];
        for (int64_t p = begin, q = start_[k]; p < e && q < start_[k + 1] - 1;) {
          if (col_[p] == col_[q]) s -= l_[p++] * l_[q++];
          else if (col_[p] < col_[q]) ++p;
          else ++q;
        }
        l_[e] = s / l_[start_[k + 1] - 1];
      }
      double pivot = l_[diag];
      for (int64_t e = begin; e < diag; ++e) pivot -= l_[e] * l_[e];
      if (!(pivot > 0)) return false;
      l_[diag] = std::sqrt(pivot);
    }
    return true;
  }

  // z = (L L^T)^{-1} r: forward substitution by rows, then the transposed one by rows backwards.
  void solve(const std::vector<double>& r, std::vector<double>& z) const {
    const int64_t n = static_cast<int64_t>(start_.size()) - 1;
    z.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      double s = r[i];
      const int64_t diag = start_[i + 1] - 1;
      for (int64_t e = start_[i]; e < diag; ++e) s -= l_[e] * z[col_[e]];
      z[i] = s / l_[diag];
    }
    for (int64_t i = n - 1; i >= 0; --i) {
      const int64_t diag = start_[i + 1] - 1;
      z[i] /= l_[diag];
      for (int64_t e = start_[i]; e < diag; ++e) z[col_[e]] -= l_[e] * z[i];
    }
  }

 private:
  std::vector<int64_t> start_;
  std::vector<int32_t> col_;
  std::vector<double> l_;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
