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
#include <vector>

#include "backend.h"
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

// One cloud in host memory: points (rows x d), log weights (-100000 for zero weights), potential.
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

// Preconditioned CG for A u = rhs from u = 0, A symmetric positive (semi-)definite given by its
// product; invDiag is the Jacobi preconditioner (0 for unknowns A does not see). The recursively
// updated residual drifts from the true one in finite precision, so the outcome reports the true one.
template <typename Product>
CgOutcome conjugateGradient(Product&& apply, const std::vector<double>& invDiag, const std::vector<double>& rhs,
                            double tol, int maxIters, std::vector<double>& u) {
  const size_t n = rhs.size();
  u.assign(n, 0.0);
  const double rhsNorm = std::sqrt(innerProduct(rhs, rhs));
  if (rhsNorm == 0) return {};
  std::vector<double> r = rhs, z(n), p(n), ap(n);
  for (size_t i = 0; i < n; ++i) p[i] = z[i] = invDiag[i] * r[i];
  double rz = innerProduct(r, z), rr = rhsNorm * rhsNorm;
  CgOutcome out;
  while (out.iterations < maxIters && std::sqrt(rr) > tol * rhsNorm) {
    apply(p, ap);
    const double curvature = innerProduct(p, ap);
    if (!(curvature > 0)) break;  // only at the rounding floor: A is positive definite on the Krylov space
    const double alpha = rz / curvature;
    double rzPart[4] = {0, 0, 0, 0}, rrPart[4] = {0, 0, 0, 0};  // r.z and r.r of the update, as innerProduct
    for (size_t i = 0; i < n; ++i) {
      u[i] += alpha * p[i];
      r[i] -= alpha * ap[i];
      z[i] = invDiag[i] * r[i];
      rzPart[i & 3] += r[i] * z[i];
      rrPart[i & 3] += r[i] * r[i];
    }
    const double rzNext = (rzPart[0] + rzPart[1]) + (rzPart[2] + rzPart[3]), beta = rzNext / rz;
    rr = (rrPart[0] + rrPart[1]) + (rrPart[2] + rrPart[3]);
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

  // A cloud on the backend with host copies (double) of what the host-side algebra reads.
  struct Cloud {
    int64_t rows = 0;
    std::vector<double> points, sqNorms, logWeights, potential;  // sqNorms: c |p|^2
    Vec devPoints, devSqNorms, devLogWeights, devPotential;
    Buffer<int64_t, Backend> offsets;
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
    x_ = cloud(moving, moving.potential);
    y_ = cloud(fixed, fixed.potential);
    if (st_.debias) self_ = cloud(moving, selfPotential);
  }

  // out (rows x d, host) = H v for a direction v (rows x d, host) on the moving cloud.
  HvpReport apply(const T* v, T* out) {
    const int64_t n = x_.rows, d = d_;
    const std::vector<double> dir(v, v + n * d);
    std::vector<double> hv(n * d, 0.0);
    HvpReport report;
    report.add(addCrossTerm(dir, hv));
    if (st_.debias) report.add(addSelfTerm(dir, hv));
    for (int64_t i = 0; i < n * d; ++i) out[i] = T(hv[i]);
    return report;
  }

 private:
  static double lambdaTerm(double eps, double rho) { return std::isinf(rho) ? 0.0 : eps / rho; }

  Cloud cloud(const HvpCloud<T>& h, const T* potential) {
    Cloud c;
    const int64_t rows = h.rows, d = d_;
    c.rows = rows;
    c.points.assign(h.points, h.points + rows * d);
    c.logWeights.assign(h.logWeights, h.logWeights + rows);
    c.potential.assign(potential, potential + rows);
    c.devPoints = Vec(be_, rows * d), c.devSqNorms = Vec(be_, rows);
    c.devPoints.upload(h.points);
    be_.squaredNorms(c.devPoints.get(), rows, d, T(st_.cost), c.devSqNorms.get());
    const std::vector<T> sq = c.devSqNorms.toHost();
    c.sqNorms.assign(sq.begin(), sq.end());
    c.devLogWeights = toDevice(c.logWeights);
    c.devPotential = toDevice(c.potential);
    c.offsets = Buffer<int64_t, Backend>(be_, std::vector<int64_t>{0, rows});
    return c;
  }

  Vec toDevice(const std::vector<double>& host) {
    return Vec(be_, std::vector<T>(host.begin(), host.end()));
  }
  static std::vector<double> toDoubles(const Vec& v) {
    const std::vector<T> host = v.toHost();
    return std::vector<double>(host.begin(), host.end());
  }

  // Softmin at the rows of `at` over `over` with over's potential: p_ij ~ w_j exp((h_j - C_ij)/eps),
  // w = logWeights (over's own unless given).
  SoftminPass<T> pass(const Cloud& at, const Cloud& over, double eps, const T* logWeights, const Averages& a,
                      PassOutputs& o) {
    o.potential = Vec(be_, at.rows), o.lse = Vec(be_, at.rows);  // a pass always writes its softmin; only LSE is read
    SoftminPass<T> p{};
    p.x = at.devPoints.get(), p.y = over.devPoints.get(), p.d = d_;
    p.xOffsets = at.offsets.get(), p.yOffsets = over.offsets.get(), p.segments = 1, p.n = at.rows, p.m = over.rows;
    p.xSqNorm = at.devSqNorms.get(), p.ySqNorm = over.devSqNorms.get();
    p.yLogWeights = logWeights ? logWeights : over.devLogWeights.get(), p.yPotential = over.devPotential.get();
    p.eps = T(eps), p.cost = T(st_.cost), p.damping = T(1), p.out = o.potential.get(), p.lse = o.lse.get();
    if (a.k) {
      o.avg = Vec(be_, at.rows * a.k);
      p.v = a.v, p.k = a.k, p.avg = o.avg.get();
    }
    if (a.pairK) {
      o.pairAvg = Vec(be_, at.rows * a.pairK);
      p.pairRow = a.pairRow, p.pairCol = a.pairCol, p.q = a.q, p.pairK = a.pairK, p.pairAvg = o.pairAvg.get();
    }
    return p;
  }

  // Row masses of the plan behind a pass at temperature eps: a_i exp((f_i - c|x_i|^2)/eps + LSE_i) (plan_product.h).
  std::vector<double> masses(const Cloud& at, const Vec& lse) const {
    const std::vector<T> l = lse.toHost();
    std::vector<double> mass(at.rows);
    for (int64_t i = 0; i < at.rows; ++i)
      mass[i] = std::exp(at.logWeights[i] + (at.potential[i] - at.sqNorms[i]) / st_.eps + double(l[i]));
    return mass;
  }

  // The support of the plan behind pass p (its LSE in lse), when it fits the budget.
  bool support(const SoftminPass<T>& p, const Vec& lse, PlanSupport& out) {
    if (st_.maxPlanEntries <= 0 || !be_.planSupport(p, lse.get(), kSupportWeight, st_.maxPlanEntries, out)) return false;
    out.finish();
    return true;
  }

  // Jacobi preconditioner; unknowns with no mass are never touched (their row of the system is zero).
  static std::vector<double> inverse(const std::vector<double>& diagonal) {
    std::vector<double> inv(diagonal.size());
    for (size_t i = 0; i < diagonal.size(); ++i) inv[i] = diagonal[i] > 0 ? 1 / diagonal[i] : 0.0;
    return inv;
  }

  // hv += H v for the cross term OT(x, y).
  CgOutcome addCrossTerm(const std::vector<double>& v, std::vector<double>& hv) {
    const int64_t n = x_.rows, m = y_.rows, d = d_;
    const double eps = st_.eps, lx = lambdaMoving_, ly = lambdaFixed_;
    const bool balanced = lx == 1 && ly == 1;
    std::vector<double> xv(n);
    for (int64_t i = 0; i < n; ++i) xv[i] = rowDot(x_.points, v, i, i);

    // Pass at x over y: barycentres, and E_p[Cdot_ij y_j] / 2c through the pair weights
    // <[x_i.v_i, v_i], [1, -y_j]> = (x_i - y_j).v_i.
    std::vector<T> pairRow(n * (d + 1)), pairCol(m * (d + 1));
    for (int64_t i = 0; i < n; ++i) {
      pairRow[i * (d + 1)] = xv[i];
      for (int64_t t = 0; t < d; ++t) pairRow[i * (d + 1) + 1 + t] = v[i * d + t];
    }
    for (int64_t j = 0; j < m; ++j) {
      pairCol[j * (d + 1)] = 1;
      for (int64_t t = 0; t < d; ++t) pairCol[j * (d + 1) + 1 + t] = -y_.points[j * d + t];
    }
    const Vec devPairRow(be_, pairRow), devPairCol(be_, pairCol);
    PassOutputs atX;
    Averages moments;
    moments.v = y_.devPoints.get(), moments.k = d;
    moments.pairRow = devPairRow.get(), moments.pairCol = devPairCol.get(), moments.q = d + 1, moments.pairK = d;
    SoftminPass<T> first = pass(x_, y_, eps, nullptr, moments, atX);
    be_.softmin(&first, 1);
    const std::vector<double> r = masses(x_, atX.lse), bary = toDoubles(atX.avg), pairAvg = toDoubles(atX.pairAvg);
    const std::vector<double> lseX = toDoubles(atX.lse);
    std::vector<double> cdot(n);  // E_p[Cdot_ij] / 2c = (x_i - bary_i).v_i
    for (int64_t i = 0; i < n; ++i) cdot[i] = xv[i] - rowDot(bary, v, i, i);

    // Pass at y over x with [v, x.v, s / (lambda_x r)] gives t and pi^T (s / (lambda_x r)); the same
    // launch sums pi_ij^2 / (lambda_x r_i) over i for S's diagonal: a pass at eps/2 with weights
    // a_i^2 / (lambda_x r_i) and potential f, as pi_ij^2 = a_i^2 b_j^2 exp((f_i + g_j - C_ij)/(eps/2)).
    std::vector<T> colInput(n * (d + 2)), diagLogWeights(n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t t = 0; t < d; ++t) colInput[i * (d + 2) + t] = v[i * d + t];
      colInput[i * (d + 2) + d] = xv[i];
      colInput[i * (d + 2) + d + 1] = c2_ * cdot[i] / lx;  // s_i / (lambda_x r_i), s_i = 2c r_i cdot_i
      // log(a_i^2 / (lambda_x r_i)), with log r_i = log a_i + (f_i - c|x_i|^2)/eps + LSE_i
      diagLogWeights[i] = x_.logWeights[i] - std::log(lx) - (x_.potential[i] - x_.sqNorms[i]) / eps - lseX[i];
    }
    const Vec devColInput(be_, colInput), devDiagLogWeights(be_, diagLogWeights);
    PassOutputs atY, squared;
    Averages colAverages;
    colAverages.v = devColInput.get(), colAverages.k = d + 2;
    SoftminPass<T> second[2] = {pass(y_, x_, eps, nullptr, colAverages, atY),
                                pass(y_, x_, eps / 2, devDiagLogWeights.get(), Averages{}, squared)};
    be_.softmin(second, 2);
    const std::vector<double> col = masses(y_, atY.lse), colAvg = toDoubles(atY.avg), lseSq = toDoubles(squared.lse);

    std::vector<double> rhs(m), diagonal(m);
    const double reg = balanced ? st_.regularization : 0.0, diagFloor = 64 * std::numeric_limits<T>::epsilon();
    for (int64_t j = 0; j < m; ++j) {
      const double* e = &colAvg[j * (d + 2)];
      double yDotEv = 0;
      for (int64_t t = 0; t < d; ++t) yDotEv += y_.points[j * d + t] * e[t];
      rhs[j] = col[j] * (c2_ * (e[d] - yDotEv) - e[d + 1]);
      const double full = ly * (1 + reg) * col[j];
      const double piSquared = std::exp(2 * y_.logWeights[j] + 2 * (y_.potential[j] - y_.sqNorms[j]) / eps + lseSq[j]);
      diagonal[j] = std::max(full - piSquared, diagFloor * full);
    }
    if (balanced) {  // sum_j rhs_j = sum_ij pi_ij Cdot_ij - sum_i s_i = 0: remove the rounding along S's null vector
      double total = 0, mass = 0;
      for (int64_t j = 0; j < m; ++j) total += rhs[j], mass += col[j];
      for (int64_t j = 0; j < m; ++j) rhs[j] -= total / mass * col[j];
    }

    // S u = lambda_y (1 + reg) col u - pi^T (pi u / (lambda_x r)): the first pass's average is already pi u / r.
    PlanSupport plan;
    const bool sparse = support(first, atX.lse, plan);
    std::vector<double> rowAvg, back, supportCol;
    if (sparse) plan.columnSum(std::vector<double>(n, 1.0), r, m, supportCol);
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
    CgOutcome cg = conjugateGradient(schur, inverse(diagonal), rhs, st_.cgTol, st_.cgMaxIters, gdot);
    cg.planEntries = sparse ? plan.entries() : 0;

    // E_p[gdot_j] and E_p[gdot_j y_j] with gdot centred by mu: the expression below only depends on
    // fdot_i + gdot_j, and centring keeps a large gauge component from cancelling in it.
    double mu = 0, mass = 0;
    for (int64_t j = 0; j < m; ++j) mu += col[j] * gdot[j], mass += col[j];
    mu /= mass;
    std::vector<T> gInput(m * (d + 1));
    for (int64_t j = 0; j < m; ++j) {
      const double gc = gdot[j] - mu;
      gInput[j * (d + 1)] = gc;
      for (int64_t t = 0; t < d; ++t) gInput[j * (d + 1) + 1 + t] = gc * y_.points[j * d + t];
    }
    const Vec devGInput(be_, gInput);
    PassOutputs tangent;
    Averages ofG;
    ofG.v = devGInput.get(), ofG.k = d + 1;
    SoftminPass<T> last = pass(x_, y_, eps, nullptr, ofG, tangent);
    be_.softmin(&last, 1);
    const std::vector<double> eg = toDoubles(tangent.avg);

    // H v_i = 2c r_i [ v_i + ( fdot'_i (x_i - bary_i) + E[gc] x_i - E[gc y] - 2c (cdot_i x_i - E[(Cdot/2c) y]) ) / eps ]
    // with fdot'_i = fdot_i + mu = (2c cdot_i - E[gc] - mu) / lambda_x + mu.
    for (int64_t i = 0; i < n; ++i) {
      const double* e = &eg[i * (d + 1)];
      const double fdot = (c2_ * cdot[i] - e[0] - mu) / lx + mu;
      for (int64_t t = 0; t < d; ++t) {
        const int64_t it = i * d + t;
        const double xi = x_.points[it];
        const double inner = fdot * (xi - bary[it]) + e[0] * xi - e[1 + t] - c2_ * (cdot[i] * xi - pairAvg[it]);
        hv[it] += c2_ * r[i] * (v[it] + inner / eps);
      }
    }
    return cg;
  }

  // hv -= H^a v for the self term OT(x, x) / 2.
  CgOutcome addSelfTerm(const std::vector<double>& v, std::vector<double>& hv) {
    const int64_t n = x_.rows, d = d_, k = 2 * d + 1, q = 2 * d + 2;
    const double eps = st_.eps, lx = lambdaMoving_;
    std::vector<double> xv(n);
    for (int64_t i = 0; i < n; ++i) xv[i] = rowDot(x_.points, v, i, i);

    // One pass averages [x, v, x.v], and x_j under the pair weights
    // <[x_i.v_i, x_i, v_i, 1], [1, -v_j, -x_j, x_j.v_j]> = (x_i - x_j).(v_i - v_j).
    std::vector<T> input(n * k), pairRow(n * q), pairCol(n * q);
    for (int64_t i = 0; i < n; ++i) {
      T* in = &input[i * k];
      T* pr = &pairRow[i * q];
      T* pc = &pairCol[i * q];
      pr[0] = xv[i], pc[0] = 1;
      for (int64_t t = 0; t < d; ++t) {
        const double xi = x_.points[i * d + t], vi = v[i * d + t];
        in[t] = xi, in[d + t] = vi;
        pr[1 + t] = xi, pr[1 + d + t] = vi;
        pc[1 + t] = -vi, pc[1 + d + t] = -xi;
      }
      in[2 * d] = xv[i];
      pr[q - 1] = 1, pc[q - 1] = xv[i];
    }
    const Vec devInput(be_, input), devPairRow(be_, pairRow), devPairCol(be_, pairCol);
    PassOutputs moments;
    Averages a;
    a.v = devInput.get(), a.k = k, a.pairRow = devPairRow.get(), a.pairCol = devPairCol.get(), a.q = q, a.pairK = d;
    SoftminPass<T> first = pass(self_, self_, eps, nullptr, a, moments);
    be_.softmin(&first, 1);
    const std::vector<double> r = masses(self_, moments.lse), avg = toDoubles(moments.avg),
                              pairAvg = toDoubles(moments.pairAvg);

    // cdot_i = E[(x_i - x_j).(v_i - v_j)] = x_i.v_i - x_i.E[v] - E[x].v_i + E[x.v]; s^a_i = 2c r_i cdot_i.
    std::vector<double> cdot(n), rhs(n), diagonal(n);
    for (int64_t i = 0; i < n; ++i) {
      const double* e = &avg[i * k];
      double xEv = 0, exV = 0;
      for (int64_t t = 0; t < d; ++t) xEv += x_.points[i * d + t] * e[d + t], exV += e[t] * v[i * d + t];
      cdot[i] = xv[i] - xEv - exV + e[2 * d];
      rhs[i] = c2_ * r[i] * cdot[i];
      // pi^a_ii = a_i^2 exp(2 h_i / eps), as C_ii = 0
      diagonal[i] = lx * r[i] + std::exp(2 * self_.logWeights[i] + 2 * self_.potential[i] / eps);
    }

    // (lambda_x D_r + pi^a) u = lambda_x r u + r E_p[u]: positive definite, no regularisation needed.
    PlanSupport plan;
    const bool sparse = support(first, moments.lse, plan);
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
    CgOutcome cg = conjugateGradient(system, inverse(diagonal), rhs, st_.cgTol, st_.cgMaxIters, h);
    cg.planEntries = sparse ? plan.entries() : 0;

    std::vector<T> hInput(n * (d + 1));
    for (int64_t i = 0; i < n; ++i) {
      hInput[i * (d + 1)] = h[i];
      for (int64_t t = 0; t < d; ++t) hInput[i * (d + 1) + 1 + t] = h[i] * x_.points[i * d + t];
    }
    const Vec devHInput(be_, hInput);
    PassOutputs tangent;
    Averages ofH;
    ofH.v = devHInput.get(), ofH.k = d + 1;
    SoftminPass<T> last = pass(self_, self_, eps, nullptr, ofH, tangent);
    be_.softmin(&last, 1);
    const std::vector<double> eh = toDoubles(tangent.avg);

    // H^a v_i = 2c r_i [ v_i - E[v] + ( h_i (x_i - E[x]) + E[h] x_i - E[h x] - 2c (cdot_i x_i - E[(Cdot/2c) x]) ) / eps ]
    for (int64_t i = 0; i < n; ++i) {
      const double* e = &avg[i * k];
      const double* f = &eh[i * (d + 1)];
      for (int64_t t = 0; t < d; ++t) {
        const int64_t it = i * d + t;
        const double xi = x_.points[it];
        const double inner = h[i] * (xi - e[t]) + f[0] * xi - f[1 + t] - c2_ * (cdot[i] * xi - pairAvg[it]);
        hv[it] -= c2_ * r[i] * (v[it] - e[d + t] + inner / eps);
      }
    }
    return cg;
  }

  // Row i of a (rows x d) times row j of b.
  double rowDot(const std::vector<double>& a, const std::vector<double>& b, int64_t i, int64_t j) const {
    double s = 0;
    for (int64_t t = 0; t < d_; ++t) s += a[i * d_ + t] * b[j * d_ + t];
    return s;
  }

  Backend& be_;
  const HvpSettings st_;
  const int64_t d_;
  const double c2_;  // 2c: grad_1 C(x, y) = 2c (x - y)
  const double lambdaMoving_, lambdaFixed_;
  Cloud x_, y_, self_;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
