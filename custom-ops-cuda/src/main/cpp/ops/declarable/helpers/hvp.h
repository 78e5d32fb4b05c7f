// Hessian-vector products of the Sinkhorn loss with respect to one cloud, at converged potentials,
// by implicit differentiation of the dual optimality conditions. Written once for every backend:
// the only n x m work is streamed softmin passes (softmin.h); Krylov vectors live on the host in
// double (O(n + m) per CG iteration, one transfer each way, which a device-side dot product would
// need anyway).
//
// The moving cloud x (weights a, potential f) and the fixed cloud y (weights b, potential g) define
// pi_ij = a_i b_j exp((f_i + g_j - C_ij)/eps), C_ij = c|x_i - y_j|^2, with row sums r, column sums
// col and row softmax p_ij = pi_ij / r_i. The loss's gradient is G_i = sum_j pi_ij grad_1 C(x_i, y_j)
// (exact weighting on relaxed sides), minus the same for the self plan of x when debiased. Along a
// direction v, Cdot_ij = 2c (x_i - y_j).v_i, and the optimality conditions
//   sum_j pi_ij = a_i e^{-f_i/rho_x},  sum_i pi_ij = b_j e^{-g_j/rho_y}
// (balanced: rho = inf) give the potentials' tangent (fdot, gdot) through, with lambda = 1 + eps/rho,
//   [lambda_x D_r   pi        ] [fdot]   [s = sum_j pi_ij Cdot_ij]
//   [pi^T      lambda_y D_col ] [gdot] = [t = sum_i pi_ij Cdot_ij].
// Eliminating fdot = (s - pi gdot) / (lambda_x r) leaves the Schur complement
//   S gdot = t - pi^T (s / (lambda_x r)),  S = lambda_y D_col - pi^T (lambda_x D_r)^{-1} pi,
// solved by CG with S's exact diagonal as preconditioner. Balanced, S has the null vector 1 (f + k,
// g - k): the right-hand side is made orthogonal to it and a Tikhonov term reg * lambda_y D_col added.
// Then, differentiating G,
//   H v_i = 2c r_i [ v_i + E_p[(fdot_i + gdot_j - Cdot_ij)(x_i - y_j)] / eps ],
// expectations under p_i. The self term of x (plan pi^a from f_aa, x in both slots, Cdot^a_ij =
// 2c (x_i - x_j).(v_i - v_j)) has a symmetric tangent h (fdot = gdot = h), solving the definite
// system (lambda_x D_r^a + pi^a) h = s^a, and
//   H^a v_i = 2c r^a_i [ v_i - E[v] + E[(h_i + h_j - Cdot^a_ij)(x_i - x_j)] / eps ];
// the debiased loss has H v - H^a v. The second moments E[Cdot_ij (x_i - y_j)] come from the softmin
// pass's pair-weighted average with <pairRow_i, pairCol_j> = Cdot_ij / 2c.
// CG's products: with pi_ij = r_i p_ij, S u = lambda_y (1 + reg) col u - P^T (r (P u)) / lambda_x and
// the self system's r (lambda_x u + P^a u). Where the plan's support (plan_support.h: entries
// p_ij >= kSupportWeight) fits the budget maxPlanEntries, they read it on the host, O(entries) per
// product; otherwise every product streams two passes (one for the self system). At small eps the
// support is nearly one-to-one, which is exactly where CG needs many iterations. On the support the
// systems are built from one matrix, rows normalised: S with col = P^T r, so S 1 = reg col exactly,
// and the self plan symmetrised, (D_r P^a + P^a^T D_r) / 2: both exactly symmetric.
#ifndef SINKHORN_HELPERS_HVP_H
#define SINKHORN_HELPERS_HVP_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <vector>

#include "backend.h"
#include "incomplete_cholesky.h"
#include "plan_support.h"
#include "softmin.h"

namespace sinkhorn {
namespace helpers {

struct HvpSettings {
  double eps;        // temperature of the potentials
  double cost;       // c in C = c |x - y|^2
  double rhoMoving;  // relaxation of the differentiated cloud's marginal, +inf when balanced
  double rhoFixed;
  bool debias;
  double cgTol;           // relative residual |A u - rhs| <= cgTol |rhs|
  int cgMaxIters;
  double regularization;  // Tikhonov weight on the balanced gauge, relative to the diagonal
  int64_t maxPlanEntries;  // per plan support kept for CG (0: every CG product is streamed)
};

// Entries of a row's softmax kept in a plan support: a row loses less than m * 1e-15 of its mass,
// far below the rounding of float32 products and of CG's float64 tolerances.
constexpr double kSupportWeight = 1e-15;
// The support's Schur matrix is factored for CG when its lower triangle has at most this many
// times (entries + m) entries.
constexpr int64_t kSchurFill = 16;

struct CgOutcome {
  int iterations = 0;
  double residual = 0;  // true relative residual |A u - rhs| / |rhs| of the returned solution
  bool converged = true;
  int64_t planEntries = 0;  // entries of the plan support its products read (0: streamed)
};

// What one Hessian-vector product reports: both CG solves together.
struct HvpReport {
  int iterations = 0;
  double residual = 0;  // the larger of the two final relative residuals
  bool converged = true;
  int64_t planEntries = 0;  // entries of the plan supports CG used (0: streamed products)

  void add(const CgOutcome& cg) {
    iterations += cg.iterations;
    residual = std::isnan(cg.residual) || cg.residual > residual ? cg.residual : residual;  // NaN sticks
    converged = converged && cg.converged;
    planEntries += cg.planEntries;
  }
};

// One cloud in host memory: points (rows x d), log weights (-100000 for zero weights), potential;
// HessianVectorProduct reads them until it is destroyed.
template <typename T>
struct HvpCloud {
  const T* points;
  const T* logWeights;
  const T* potential;
  int64_t rows;
};

// Four independent partial sums: CG's reductions are latency-bound chains otherwise, and with the
// plan's support they are most of an iteration.
inline double innerProduct(const std::vector<double>& a, const std::vector<double>& b) {
  double s[4] = {0, 0, 0, 0};
  const size_t n = a.size(), n4 = n - n % 4;
  for (size_t i = 0; i < n4; i += 4)
    for (int k = 0; k < 4; ++k) s[k] += a[i + k] * b[i + k];
  for (size_t i = n4; i < n; ++i) s[0] += a[i] * b[i];
  return (s[0] + s[1]) + (s[2] + s[3]);
}

// z = M^{-1} r for the Jacobi preconditioner M^{-1} = invDiag (0 for unknowns A does not see).
inline auto jacobi(const std::vector<double>& invDiag) {
  return [&invDiag](const std::vector<double>& r, std::vector<double>& z) {
    for (size_t i = 0; i < r.size(); ++i) z[i] = invDiag[i] * r[i];
  };
}

// Preconditioned CG for A u = rhs from u = 0, A symmetric positive (semi-)definite given by its
// product, precondition(r, z) applying a symmetric positive definite M^{-1}. The recursively
// updated residual drifts from the true one in finite precision, so the outcome reports the true one.
template <typename Product, typename Precondition>
CgOutcome conjugateGradient(Product&& apply, Precondition&& precondition, const std::vector<double>& rhs,
                            double tol, int maxIters, std::vector<double>& u) {
  const size_t n = rhs.size();
  u.assign(n, 0.0);
  const double rhsNorm = std::sqrt(innerProduct(rhs, rhs));
  if (rhsNorm == 0) return {};
  std::vector<double> r = rhs, z(n), p(n), ap(n);
  precondition(r, z);
  p = z;
  double rz = innerProduct(r, z), rr = rhsNorm * rhsNorm;
  CgOutcome out;
  while (out.iterations < maxIters && std::sqrt(rr) > tol * rhsNorm) {
    apply(p, ap);
    const double curvature = innerProduct(p, ap);
    if (!(curvature > 0)) break;  // only at the rounding floor: A is positive definite on the Krylov space
    const double alpha = rz / curvature;
    double rrPart[4] = {0, 0, 0, 0};  // r.r of the update, as innerProduct
    for (size_t i = 0; i < n; ++i) {
      u[i] += alpha * p[i];
      r[i] -= alpha * ap[i];
      rrPart[i & 3] += r[i] * r[i];
    }
    rr = (rrPart[0] + rrPart[1]) + (rrPart[2] + rrPart[3]);
    precondition(r, z);
    const double rzNext = innerProduct(r, z), beta = rzNext / rz;
    rz = rzNext;
    for (size_t i = 0; i < n; ++i) p[i] = z[i] + beta * p[i];
    ++out.iterations;
  }
  apply(u, ap);
  for (size_t i = 0; i < n; ++i) r[i] = rhs[i] - ap[i];
  out.residual = std::sqrt(innerProduct(r, r)) / rhsNorm;
  out.converged = out.residual <= tol;
  return out;
}

template <typename T, typename Backend>
class HessianVectorProduct {
  using Vec = Buffer<T, Backend>;

  // Points on the backend, with what the host-side algebra reads: the caller's arrays (borrowed for
  // the object's lifetime) and c |p|^2 as the backend computes it.
  struct Points {
    int64_t rows = 0;
    const T* host = nullptr;  // rows x d
    const T* logWeights = nullptr;
    std::vector<T> sqNorms;
    Vec dev, devSqNorms, devLogWeights;
    Buffer<int64_t, Backend> offsets;
  };

  // One side of a plan: points and a potential (host: the caller's).
  struct Cloud {
    const Points* points = nullptr;
    const T* potential = nullptr;
    Vec devPotential;
  };

  // The optional averages of a pass (softmin.h): v is rows-of-the-summed-cloud x k.
  struct Averages {
    const T* v = nullptr;
    int64_t k = 0;
    const T* pairRow = nullptr;
    const T* pairCol = nullptr;
    int64_t q = 0;
    int64_t pairK = 0;
  };

  struct PassOutputs {
    Vec potential, lse, avg, pairAvg;
  };

 public:
  HessianVectorProduct(Backend& backend, const HvpCloud<T>& moving, const HvpCloud<T>& fixed, const T* selfPotential,
                       int64_t d, const HvpSettings& settings)
      : be_(backend), st_(settings), d_(d), c2_(2 * settings.cost),
        lambdaMoving_(1 + lambdaTerm(settings.eps, settings.rhoMoving)),
        lambdaFixed_(1 + lambdaTerm(settings.eps, settings.rhoFixed)) {
    const int64_t n = moving.rows, m = fixed.rows;
    xPoints_ = points(moving), yPoints_ = points(fixed);
    x_ = cloud(xPoints_, moving.potential), y_ = cloud(yPoints_, fixed.potential);
    if (st_.debias) self_ = cloud(xPoints_, selfPotential);
    // The host stages one array at a time (the largest: the column pass's inputs or averages, or the
    // self pair weights), the backend every input of a pass (the largest: the first pass's pair
    // weights or the self pass's inputs).
    const int64_t hostSize = std::max({n * (d + 3), m * (d + 2), st_.debias ? n * (2 * d + 2) : 0}),
                  devSize = std::max({(n + m) * (d + 1), n * (d + 3), st_.debias ? n * (6 * d + 5) : 0});
    staged_.reset(new T[hostSize]);
    devStaged_ = Vec(be_, devSize);
    averages_.reset(new T[n * (st_.debias ? 2 * d + 1 : d)]);
    pairAverages_.reset(new T[n * d]);
  }
  HessianVectorProduct(const HessianVectorProduct&) = delete;  // its clouds point at its own members
  HessianVectorProduct& operator=(const HessianVectorProduct&) = delete;

  // out (rows x d, host) = H v for a direction v (rows x d, host) on the moving cloud.
  HvpReport apply(const T* v, T* out) {
    const int64_t n = xPoints_.rows, d = d_;
    std::vector<double> xv(n);  // x_i.v_i
    for (int64_t i = 0; i < n; ++i) xv[i] = rowDot(xPoints_.host, v, i);
    HvpReport report;
    if (!st_.debias) {
      report.add(crossTerm(v, xv, [&](int64_t it, double h) { out[it] = T(h); }));
      return report;
    }
    const std::unique_ptr<double[]> cross(new double[n * d]);  // H v - H^a v is formed in double, then rounded
    report.add(crossTerm(v, xv, [&](int64_t it, double h) { cross[it] = h; }));
    report.add(selfTerm(v, xv, [&](int64_t it, double h) { out[it] = T(cross[it] - h); }));
    return report;
  }

 private:
  static double lambdaTerm(double eps, double rho) { return std::isinf(rho) ? 0.0 : eps / rho; }

  Points points(const HvpCloud<T>& h) {
    Points p;
    p.rows = h.rows, p.host = h.points, p.logWeights = h.logWeights;
    p.dev = Vec(be_, h.rows * d_), p.devSqNorms = Vec(be_, h.rows), p.devLogWeights = Vec(be_, h.rows);
    p.dev.upload(h.points);
    p.devLogWeights.upload(h.logWeights);
    be_.squaredNorms(p.dev.get(), h.rows, d_, T(st_.cost), p.devSqNorms.get());
    p.sqNorms = p.devSqNorms.toHost();
    p.offsets = Buffer<int64_t, Backend>(be_, std::vector<int64_t>{0, h.rows});
    return p;
  }

  Cloud cloud(const Points& points, const T* potential) {
    Cloud c;
    c.points = &points, c.potential = potential;
    c.devPotential = Vec(be_, points.rows);
    c.devPotential.upload(potential);
    return c;
  }

  // Uploads staged_[0, count) to devStaged_ + at: the passes' inputs are staged in one host array
  // and placed at offsets of one backend array, both reused by every phase (fresh arrays per phase
  // cost more than the algebra that fills them). Outputs read once are downloaded into staged_ too.
  void uploadStaged(int64_t count, int64_t at) { be_.upload(devStaged_.get() + at, staged_.get(), count * sizeof(T)); }

  // Softmin at the rows of `at` over `over` with over's potential: p_ij ~ w_j exp((h_j - C_ij)/eps),
  // w = logWeights (over's own unless given).
  SoftminPass<T> pass(const Cloud& at, const Cloud& over, double eps, const T* logWeights, const Averages& a,
                      PassOutputs& o) {
    const int64_t rows = at.points->rows;
    o.potential = Vec(be_, rows), o.lse = Vec(be_, rows);  // a pass always writes its softmin; only LSE is read
    SoftminPass<T> p{};
    p.x = at.points->dev.get(), p.y = over.points->dev.get(), p.d = d_;
    p.xOffsets = at.points->offsets.get(), p.yOffsets = over.points->offsets.get(), p.segments = 1;
    p.n = rows, p.m = over.points->rows;
    p.xSqNorm = at.points->devSqNorms.get(), p.ySqNorm = over.points->devSqNorms.get();
    p.yLogWeights = logWeights ? logWeights : over.points->devLogWeights.get(), p.yPotential = over.devPotential.get();
    p.eps = T(eps), p.cost = T(st_.cost), p.damping = T(1), p.out = o.potential.get(), p.lse = o.lse.get();
    if (a.k) {
      o.avg = Vec(be_, rows * a.k);
      p.v = a.v, p.k = a.k, p.avg = o.avg.get();
    }
    if (a.pairK) {
      o.pairAvg = Vec(be_, rows * a.pairK);
      p.pairRow = a.pairRow, p.pairCol = a.pairCol, p.q = a.q, p.pairK = a.pairK, p.pairAvg = o.pairAvg.get();
    }
    return p;
  }

  // Row masses of the plan behind a pass at temperature eps: a_i exp((f_i - c|x_i|^2)/eps + LSE_i) (plan_product.h).
  std::vector<double> masses(const Cloud& at, const std::vector<T>& lse) const {
    const Points& p = *at.points;
    std::vector<double> mass(p.rows);
    for (int64_t i = 0; i < p.rows; ++i)
      mass[i] = std::exp(double(p.logWeights[i]) + (double(at.potential[i]) - double(p.sqNorms[i])) / st_.eps +
                         double(lse[i]));
    return mass;
  }

  // IC(0) of the support's Schur matrix S = diagScale D_col - P^T D_r P / lambda_x (P the support's
  // row softmax: S_jk = diagScale col_j [j = k] - sum_i r_i p_ij p_ik / lambda_x), assembled by rows
  // of its lower triangle. An M-matrix; at small eps its graph is nearly a forest, so IC(0) is
  // nearly exact and CG needs a few iterations instead of hundreds. False when the assembly would
  // exceed a few times the support (rows of many entries) or a pivot fails: Jacobi then.
  static bool factorSchur(const PlanSupport& plan, const std::vector<double>& r, const std::vector<double>& col,
                          double diagScale, double lambdaX, IncompleteCholesky& ic) {
    const int64_t m = static_cast<int64_t>(col.size());
    int64_t pairs = 0;
    for (int64_t i = 0; i < plan.rows(); ++i) {
      const int64_t k = plan.rowStart[i + 1] - plan.rowStart[i];
      pairs += k * (k + 1) / 2;
    }
    if (pairs > kSchurFill * (plan.entries() + m)) return false;
    struct Entry {
      int32_t row, col;
      double value;
    };
    std::vector<Entry> entries;
    entries.reserve(pairs + m);
    for (int64_t j = 0; j < m; ++j)  // a column the support misses is decoupled: identity there
      entries.push_back({int32_t(j), int32_t(j), col[j] > 0 ? diagScale * col[j] : 1.0});
    for (int64_t i = 0; i < plan.rows(); ++i)
      for (int64_t a = plan.rowStart[i]; a < plan.rowStart[i + 1]; ++a)
        for (int64_t b = plan.rowStart[i]; b <= a; ++b)  // columns ascending: col[b] <= col[a]
          entries.push_back({plan.col[a], plan.col[b], -r[i] * plan.weight[a] * plan.weight[b] / lambdaX});
    std::sort(entries.begin(), entries.end(),
              [](const Entry& p, const Entry& q) { return p.row != q.row ? p.row < q.row : p.col < q.col; });
    std::vector<int64_t> rowStart(m + 1, 0);
    std::vector<int32_t> cols;
    std::vector<double> values;
    for (size_t e = 0; e < entries.size(); ++e) {  // every row holds its diagonal, last
      if (e > 0 && entries[e].row == entries[e - 1].row && entries[e].col == entries[e - 1].col) {
        values.back() += entries[e].value;
        continue;
      }
      cols.push_back(entries[e].col);
      values.push_back(entries[e].value);
      rowStart[entries[e].row + 1] = static_cast<int64_t>(cols.size());
    }
    return ic.factor(std::move(rowStart), std::move(cols), std::move(values));
  }

  // The support of the plan behind pass p (its LSE in lse), when it fits the budget.
  bool support(const SoftminPass<T>& p, const Vec& lse, PlanSupport& out) {
    if (st_.maxPlanEntries <= 0 || !be_.planSupport(p, lse.get(), kSupportWeight, st_.maxPlanEntries, out)) return false;
    out.finish();
    return true;
  }

  // Jacobi preconditioner; unknowns with no mass are never touched (their row of the system is zero).
  static double inverseOrZero(double diagonal) { return diagonal > 0 ? 1 / diagonal : 0.0; }

  Vec toDevice(const std::vector<double>& host) { return Vec(be_, std::vector<T>(host.begin(), host.end())); }

  // H v for the cross term OT(x, y): emit(i * d + t, (H v)_it).
  template <typename Emit>
  CgOutcome crossTerm(const T* v, const std::vector<double>& xv, Emit&& emit) {
    const int64_t n = xPoints_.rows, m = yPoints_.rows, d = d_;
    const T *x = xPoints_.host, *y = yPoints_.host;
    const double eps = st_.eps, lx = lambdaMoving_, ly = lambdaFixed_;
    const bool balanced = lx == 1 && ly == 1;
    T* staged = staged_.get();
    const T* devStaged = devStaged_.get();

    // Pass at x over y: barycentres, and E_p[Cdot_ij y_j] / 2c through the pair weights
    // <[x_i.v_i, v_i], [1, -y_j]> = (x_i - y_j).v_i.
    for (int64_t i = 0; i < n; ++i) {
      staged[i * (d + 1)] = T(xv[i]);
      std::copy(v + i * d, v + (i + 1) * d, staged + i * (d + 1) + 1);
    }
    uploadStaged(n * (d + 1), 0);
    for (int64_t j = 0; j < m; ++j) {
      staged[j * (d + 1)] = 1;
      for (int64_t t = 0; t < d; ++t) staged[j * (d + 1) + 1 + t] = -y[j * d + t];
    }
    uploadStaged(m * (d + 1), n * (d + 1));
    PassOutputs atX;
    Averages moments;
    moments.v = yPoints_.dev.get(), moments.k = d;
    moments.pairRow = devStaged, moments.pairCol = devStaged + n * (d + 1), moments.q = d + 1, moments.pairK = d;
    SoftminPass<T> first = pass(x_, y_, eps, nullptr, moments, atX);
    be_.softmin(&first, 1);
    PlanSupport plan;
    const bool sparse = support(first, atX.lse, plan);
    const std::vector<T> lseX = atX.lse.toHost();
    const std::vector<double> r = masses(x_, lseX);
    const T* bary = averages_.get();
    const T* pairAvg = pairAverages_.get();
    atX.avg.download(averages_.get());
    atX.pairAvg.download(pairAverages_.get());

    // Pass at y over x with [v, x.v, s / (lambda_x r)] gives t and pi^T (s / (lambda_x r)). Streamed
    // products also need S's diagonal: the same launch sums pi_ij^2 / (lambda_x r_i) over i, a pass at
    // eps/2 with weights a_i^2 / (lambda_x r_i) and potential f, as
    // pi_ij^2 = a_i^2 b_j^2 exp((f_i + g_j - C_ij)/(eps/2)). On the support the diagonal is exact.
    std::vector<double> cdot(n);  // E_p[Cdot_ij] / 2c = (x_i - bary_i).v_i
    T *colInput = staged, *diagLogWeights = staged + n * (d + 2);
    for (int64_t i = 0; i < n; ++i) {
      cdot[i] = xv[i] - rowDot(bary, v, i);
      std::copy(v + i * d, v + (i + 1) * d, colInput + i * (d + 2));
      colInput[i * (d + 2) + d] = T(xv[i]);
      colInput[i * (d + 2) + d + 1] = T(c2_ * cdot[i] / lx);  // s_i / (lambda_x r_i), s_i = 2c r_i cdot_i
      // log(a_i^2 / (lambda_x r_i)), with log r_i = log a_i + (f_i - c|x_i|^2)/eps + LSE_i
      diagLogWeights[i] = T(double(xPoints_.logWeights[i]) - std::log(lx) -
                            (double(x_.potential[i]) - double(xPoints_.sqNorms[i])) / eps - double(lseX[i]));
    }
    uploadStaged(n * (d + 3), 0);
    PassOutputs atY, squared;
    Averages colAverages;
    colAverages.v = devStaged, colAverages.k = d + 2;
    SoftminPass<T> second[2] = {pass(y_, x_, eps, nullptr, colAverages, atY),
                                pass(y_, x_, eps / 2, devStaged + n * (d + 2), Averages{}, squared)};
    be_.softmin(second, sparse ? 1 : 2);
    const std::vector<double> col = masses(y_, atY.lse.toHost());
    atY.avg.download(staged);

    // S's diagonal lambda_y (1 + reg) col_j - sum_i pi_ij^2 / (lambda_x r_i): on the support, with
    // its own column masses supportCol = P^T r (those its products use), pi_ij = r_i p_ij.
    const double reg = balanced ? st_.regularization : 0.0, diagFloor = 64 * std::numeric_limits<T>::epsilon();
    std::vector<double> supportCol, piSquared(m, 0.0);
    if (sparse) {
      plan.columnSum(std::vector<double>(n, 1.0), r, m, supportCol);
      for (int64_t e = 0; e < plan.entries(); ++e) {
        const double w = plan.weight[e];
        piSquared[plan.col[e]] += r[plan.row[e]] * w * w / lx;
      }
    } else {
      const std::vector<T> lseSq = squared.lse.toHost();
      for (int64_t j = 0; j < m; ++j)
        piSquared[j] = std::exp(2 * double(yPoints_.logWeights[j]) +
                                2 * (double(y_.potential[j]) - double(yPoints_.sqNorms[j])) / eps + double(lseSq[j]));
    }
    std::vector<double> rhs(m), invDiagonal(m);
    for (int64_t j = 0; j < m; ++j) {
      const T* e = staged + j * (d + 2);
      double yDotEv = 0;
      for (int64_t t = 0; t < d; ++t) yDotEv += double(y[j * d + t]) * double(e[t]);
      rhs[j] = col[j] * (c2_ * (double(e[d]) - yDotEv) - double(e[d + 1]));
      const double full = ly * (1 + reg) * (sparse ? supportCol[j] : col[j]);
      invDiagonal[j] = inverseOrZero(std::max(full - piSquared[j], diagFloor * full));
    }
    if (balanced) {  // sum_j rhs_j = sum_ij pi_ij Cdot_ij - sum_i s_i = 0: remove the rounding along S's null vector
      double total = 0, mass = 0;
      for (int64_t j = 0; j < m; ++j) total += rhs[j], mass += col[j];
      for (int64_t j = 0; j < m; ++j) rhs[j] -= total / mass * col[j];
    }

    // S u = lambda_y (1 + reg) col u - pi^T (pi u / (lambda_x r)): the first pass's average is already pi u / r.
    std::vector<double> rowAvg, back;
    auto schur = [&](const std::vector<double>& u, std::vector<double>& out) {
      if (sparse) {
        plan.rowAverage(u, rowAvg);
        plan.columnSum(rowAvg, r, m, back);
        for (int64_t j = 0; j < m; ++j) out[j] = supportCol[j] * ly * (1 + reg) * u[j] - back[j] / lx;
        return;
      }
      const Vec devU = toDevice(u);
      PassOutputs rows, cols;
      Averages ofU, ofRows;
      ofU.v = devU.get(), ofU.k = 1;
      SoftminPass<T> a = pass(x_, y_, eps, nullptr, ofU, rows);
      be_.softmin(&a, 1);
      ofRows.v = rows.avg.get(), ofRows.k = 1;
      SoftminPass<T> b = pass(y_, x_, eps, nullptr, ofRows, cols);
      be_.softmin(&b, 1);
      const std::vector<T> back = cols.avg.toHost();
      for (int64_t j = 0; j < m; ++j) out[j] = col[j] * (ly * (1 + reg) * u[j] - double(back[j]) / lx);
    };
    std::vector<double> gdot;
    IncompleteCholesky ic;
    const bool factored = sparse && factorSchur(plan, r, supportCol, ly * (1 + reg), lx, ic);
    CgOutcome cg = factored ? conjugateGradient(schur, [&](const std::vector<double>& res, std::vector<double>& z) {
                                ic.solve(res, z);
                              }, rhs, st_.cgTol, st_.cgMaxIters, gdot)
                            : conjugateGradient(schur, jacobi(invDiagonal), rhs, st_.cgTol, st_.cgMaxIters, gdot);
    cg.planEntries = sparse ? plan.entries() : 0;

    // E_p[gdot_j] and E_p[gdot_j y_j] with gdot centred by mu: the expression below only depends on
    // fdot_i + gdot_j, and centring keeps a large gauge component from cancelling in it.
    double mu = 0, mass = 0;
    for (int64_t j = 0; j < m; ++j) mu += col[j] * gdot[j], mass += col[j];
    mu /= mass;
    for (int64_t j = 0; j < m; ++j) {
      const double gc = gdot[j] - mu;
      staged[j * (d + 1)] = T(gc);
      for (int64_t t = 0; t < d; ++t) staged[j * (d + 1) + 1 + t] = T(gc * double(y[j * d + t]));
    }
    uploadStaged(m * (d + 1), 0);
    PassOutputs tangent;
    Averages ofG;
    ofG.v = devStaged, ofG.k = d + 1;
    SoftminPass<T> last = pass(x_, y_, eps, nullptr, ofG, tangent);
    be_.softmin(&last, 1);
    tangent.avg.download(staged);

    // H v_i = 2c r_i [ v_i + ( fdot'_i (x_i - bary_i) + E[gc] x_i - E[gc y] - 2c (cdot_i x_i - E[(Cdot/2c) y]) ) / eps ]
    // with fdot'_i = fdot_i + mu = (2c cdot_i - E[gc] - mu) / lambda_x + mu.
    for (int64_t i = 0; i < n; ++i) {
      const T* e = staged + i * (d + 1);
      const double e0 = e[0], fdot = (c2_ * cdot[i] - e0 - mu) / lx + mu;
      for (int64_t t = 0; t < d; ++t) {
        const int64_t it = i * d + t;
        const double xi = x[it];
        const double inner = fdot * (xi - double(bary[it])) + e0 * xi - double(e[1 + t]) -
                             c2_ * (cdot[i] * xi - double(pairAvg[it]));
        emit(it, c2_ * r[i] * (double(v[it]) + inner / eps));
      }
    }
    return cg;
  }

  // H^a v for the self term OT(x, x) / 2: emit(i * d + t, (H^a v)_it).
  template <typename Emit>
  CgOutcome selfTerm(const T* v, const std::vector<double>& xv, Emit&& emit) {
    const int64_t n = xPoints_.rows, d = d_, k = 2 * d + 1, q = 2 * d + 2;
    const T* x = xPoints_.host;
    const double eps = st_.eps, lx = lambdaMoving_;
    T* staged = staged_.get();
    const T* devStaged = devStaged_.get();

    // One pass averages [x, v, x.v], and x_j under the pair weights
    // <[x_i.v_i, x_i, v_i, 1], [1, -v_j, -x_j, x_j.v_j]> = (x_i - x_j).(v_i - v_j).
    for (int64_t i = 0; i < n; ++i) {
      T* in = staged + i * k;
      std::copy(x + i * d, x + (i + 1) * d, in);
      std::copy(v + i * d, v + (i + 1) * d, in + d);
      in[2 * d] = T(xv[i]);
    }
    uploadStaged(n * k, 0);
    for (int64_t i = 0; i < n; ++i) {
      T* pr = staged + i * q;
      pr[0] = T(xv[i]);
      std::copy(x + i * d, x + (i + 1) * d, pr + 1);
      std::copy(v + i * d, v + (i + 1) * d, pr + 1 + d);
      pr[q - 1] = 1;
    }
    uploadStaged(n * q, n * k);
    for (int64_t i = 0; i < n; ++i) {
      T* pc = staged + i * q;
      pc[0] = 1;
      for (int64_t t = 0; t < d; ++t) pc[1 + t] = -v[i * d + t], pc[1 + d + t] = -x[i * d + t];
      pc[q - 1] = T(xv[i]);
    }
    uploadStaged(n * q, n * (k + q));
    PassOutputs moments;
    Averages a;
    a.v = devStaged, a.k = k, a.pairRow = devStaged + n * k, a.pairCol = devStaged + n * (k + q), a.q = q, a.pairK = d;
    SoftminPass<T> first = pass(self_, self_, eps, nullptr, a, moments);
    be_.softmin(&first, 1);
    PlanSupport plan;
    const bool sparse = support(first, moments.lse, plan);
    const std::vector<double> r = masses(self_, moments.lse.toHost());
    const T* avg = averages_.get();
    const T* pairAvg = pairAverages_.get();
    moments.avg.download(averages_.get());
    moments.pairAvg.download(pairAverages_.get());

    // cdot_i = E[(x_i - x_j).(v_i - v_j)] = x_i.v_i - x_i.E[v] - E[x].v_i + E[x.v]; s^a_i = 2c r_i cdot_i.
    std::vector<double> cdot(n), rhs(n), invDiagonal(n);
    for (int64_t i = 0; i < n; ++i) {
      const T* e = avg + i * k;
      double xEv = 0, exV = 0;
      for (int64_t t = 0; t < d; ++t)
        xEv += double(x[i * d + t]) * double(e[d + t]), exV += double(e[t]) * double(v[i * d + t]);
      cdot[i] = xv[i] - xEv - exV + double(e[2 * d]);
      rhs[i] = c2_ * r[i] * cdot[i];
      // pi^a_ii = a_i^2 exp(2 h_i / eps), as C_ii = 0
      invDiagonal[i] = inverseOrZero(lx * r[i] + std::exp(2 * double(xPoints_.logWeights[i]) +
                                                          2 * double(self_.potential[i]) / eps));
    }

    // (lambda_x D_r + pi^a) u = lambda_x r u + r E_p[u]: positive definite, no regularisation needed.
    std::vector<double> rowAvg, colSum;
    auto system = [&](const std::vector<double>& u, std::vector<double>& out) {
      if (sparse) {
        plan.rowAverage(u, rowAvg);
        plan.columnSum(u, r, n, colSum);
        for (int64_t i = 0; i < n; ++i) out[i] = r[i] * (lx * u[i] + 0.5 * rowAvg[i]) + 0.5 * colSum[i];
        return;
      }
      const Vec devU = toDevice(u);
      PassOutputs o;
      Averages ofU;
      ofU.v = devU.get(), ofU.k = 1;
      SoftminPass<T> p = pass(self_, self_, eps, nullptr, ofU, o);
      be_.softmin(&p, 1);
      const std::vector<T> e = o.avg.toHost();
      for (int64_t i = 0; i < n; ++i) out[i] = r[i] * (lx * u[i] + double(e[i]));
    };
    std::vector<double> h;
    CgOutcome cg = conjugateGradient(system, jacobi(invDiagonal), rhs, st_.cgTol, st_.cgMaxIters, h);
    cg.planEntries = sparse ? plan.entries() : 0;

    for (int64_t i = 0; i < n; ++i) {
      staged[i * (d + 1)] = T(h[i]);
      for (int64_t t = 0; t < d; ++t) staged[i * (d + 1) + 1 + t] = T(h[i] * double(x[i * d + t]));
    }
    uploadStaged(n * (d + 1), 0);
    PassOutputs tangent;
    Averages ofH;
    ofH.v = devStaged, ofH.k = d + 1;
    SoftminPass<T> last = pass(self_, self_, eps, nullptr, ofH, tangent);
    be_.softmin(&last, 1);
    tangent.avg.download(staged);

    // H^a v_i = 2c r^a_i [ v_i - E[v] + ( h_i (x_i - E[x]) + E[h] x_i - E[h x] - 2c (cdot_i x_i - E[(Cdot/2c) x]) ) / eps ]
    for (int64_t i = 0; i < n; ++i) {
      const T* e = avg + i * k;
      const T* f = staged + i * (d + 1);
      const double f0 = f[0];
      for (int64_t t = 0; t < d; ++t) {
        const int64_t it = i * d + t;
        const double xi = x[it];
        const double inner = h[i] * (xi - double(e[t])) + f0 * xi - double(f[1 + t]) -
                             c2_ * (cdot[i] * xi - double(pairAvg[it]));
        emit(it, c2_ * r[i] * (double(v[it]) - double(e[d + t]) + inner / eps));
      }
    }
    return cg;
  }

  // Row i of a (rows x d) times row i of b, in double.
  double rowDot(const T* a, const T* b, int64_t i) const {
    double s = 0;
    for (int64_t t = 0; t < d_; ++t) s += double(a[i * d_ + t]) * double(b[i * d_ + t]);
    return s;
  }

  Backend& be_;
  const HvpSettings st_;
  const int64_t d_;
  const double c2_;  // 2c: grad_1 C(x, y) = 2c (x - y)
  const double lambdaMoving_, lambdaFixed_;
  Points xPoints_, yPoints_;
  Cloud x_, y_, self_;  // self_: x with the self potential, when debiased
  std::unique_ptr<T[]> staged_;
  Vec devStaged_;
  // The first pass's averages, read again by the final algebra: the barycentres (cross term) or
  // [E x, E v, E x.v] (self term), and the pair-weighted averages.
  std::unique_ptr<T[]> averages_, pairAverages_;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
