// The Sinkhorn loops, written once for every backend and precision.
//
// Notation (GeomLoss's): f_ba lives on x and is updated from g_ab, g_ab lives on y and is updated
// from f_ba, f_aa and g_bb are the self potentials of the debiasing terms. With rho_x = reach_x^2
// (+inf when balanced), the update of a potential on x is damped by 1 / (1 + eps / rho_x).
//   symmetric (GeomLoss): every step updates all potentials from the previous ones and averages,
//                         f <- (f + damp * softmin(g)) / 2, ...; then one last extrapolation.
//   alternating (OTT):    f <- damp * softmin(g), then g <- damp * softmin(f); self terms averaged.
// The loss and gradients come from the final potentials (Danskin): each point moves only through the
// potential that lives on it, grad_x_i = 2c * damp * coef_i (x_i - sum_j p_ij y_j), where p is the
// softmax of the last softmin at x_i (the pass also averages y under it).
// Every O((n + m) d) step runs on the backend: the clouds are uploaded as given, checked, measured
// (bounding box) and centred there, and the gradients are formed there from the barycentres.
#ifndef SINKHORN_HELPERS_SINKHORN_SOLVER_H
#define SINKHORN_HELPERS_SINKHORN_SOLVER_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend.h"
#include "bounding_box.h"
#include "softmin.h"
#include "system/status.h"

namespace sinkhorn {
namespace helpers {

struct SolverSettings {
  std::vector<double> epsList;   // one entry per iteration
  size_t firstCheck = 0;         // iterations from this index on run at the final eps: the threshold applies
  double rhoX = std::numeric_limits<double>::infinity();
  double rhoY = std::numeric_limits<double>::infinity();
  double cost = 0.5;             // c in C = c |x - y|^2
  bool debias = true;
  bool symmetric = true;
  bool lastExtrapolation = true;
  bool geomlossGradients = false;
  double threshold = 0;
  int innerIterations = 10;

  double damping(double eps, double rho) const { return std::isinf(rho) ? 1.0 : 1.0 / (1.0 + eps / rho); }
};

// Host views of the inputs. The solver centres the clouds on its backend (costs are translation
// invariant); the Hessian-vector product and plan products take them centred on the host.
template <typename T>
struct HostClouds {
  const T* x;
  const T* y;
  bool cudaMemory = false;  // x and y are device pointers (sk_memory CUDA), read by a CUDA backend
  std::vector<T> a, b;
  // Log weights (log_weights.h), for the host-side consumers (plan products, HVPs) only: the
  // divergence solver takes them on its backend.
  std::vector<T> logA, logB;
  int64_t n, m, d;
  std::vector<int64_t> xOffsets, yOffsets;  // segments + 1 each
  int64_t segments() const { return static_cast<int64_t>(xOffsets.size()) - 1; }
};

// Host destinations; every pointer may be null except loss.
template <typename T>
struct HostOutputs {
  double* loss;
  int32_t* iterations;
  int32_t* converged;
  double* maxChange;
  T *fBa, *gAb, *fAa, *gBb, *gradX, *gradY, *gradA, *gradB;
};

template <typename T, typename Backend>
class DivergenceSolver {
  using Vec = Buffer<T, Backend>;

 public:
  // Uploads the clouds (or copies them on the device), checks that they are finite, measures and
  // centres them, and takes the weights' logs; cost is c.
  DivergenceSolver(Backend& backend, const HostClouds<T>& clouds, double cost)
      : be_(backend), hc_(clouds), segments_(clouds.segments()),
        x_(backend, clouds.n * clouds.d), y_(backend, clouds.m * clouds.d),
        xSq_(backend, clouds.n), ySq_(backend, clouds.m), logA_(backend, clouds.n), logB_(backend, clouds.m),
        xOff_(backend, clouds.xOffsets), yOff_(backend, clouds.yOffsets),
        active_(backend, std::vector<uint8_t>(segments_, 1)) {
    st_.cost = cost;
    {
      const Vec a(backend, clouds.a), b(backend, clouds.b);
      be_.logWeights(a.get(), clouds.n, logA_.get());
      be_.logWeights(b.get(), clouds.m, logB_.get());
    }
    for (int64_t s = 0; s < segments_; ++s)
      crossEntries_ += (clouds.xOffsets[s + 1] - clouds.xOffsets[s]) * (clouds.yOffsets[s + 1] - clouds.yOffsets[s]);
    if (!clouds.cudaMemory) {
      x_.upload(clouds.x);
      y_.upload(clouds.y);
    } else if constexpr (Backend::kReadsCudaMemory) {
      x_.copyFromDevice(clouds.x, "x");
      y_.copyFromDevice(clouds.y, "y");
    } else {
      throw Error(SK_INVALID_ARGUMENT, "x and y in CUDA memory need the CUDA backend");
    }
    BoundingBox box(hc_.d);
    if (!be_.extend(box, x_.get(), hc_.n, hc_.d)) throw Error(SK_INVALID_ARGUMENT, "x contains NaN or infinite values");
    if (!be_.extend(box, y_.get(), hc_.m, hc_.d)) throw Error(SK_INVALID_ARGUMENT, "y contains NaN or infinite values");
    diameter_ = box.diagonal();
    const std::vector<double> centre = box.centre();
    be_.translate(x_.get(), hc_.n, hc_.d, centre);
    be_.translate(y_.get(), hc_.m, hc_.d, centre);
    be_.squaredNorms(x_.get(), hc_.n, hc_.d, T(st_.cost), xSq_.get());
    be_.squaredNorms(y_.get(), hc_.m, hc_.d, T(st_.cost), ySq_.get());
  }

  // Diagonal of the clouds' bounding box: GeomLoss's diameter estimate.
  double diameter() const { return diameter_; }

  // settings.cost must be the constructor's cost.
  void solve(const SolverSettings& settings, const HostOutputs<T>& out) {
    st_ = settings;
    const bool gradX = out.gradX != nullptr, gradY = out.gradY != nullptr;
    for (PotentialSet* p : {&pot_, &next_, &lseCarry_}) {
      p->f = Vec(be_, hc_.n), p->g = Vec(be_, hc_.m);
      if (st_.debias) p->fAa = Vec(be_, hc_.n), p->gBb = Vec(be_, hc_.m);
    }
    carryEps_ = std::numeric_limits<double>::quiet_NaN();
    if (gradX) baryXY_ = Vec(be_, hc_.n * hc_.d);
    if (gradY) baryYX_ = Vec(be_, hc_.m * hc_.d);
    if (gradX && st_.debias) baryXX_ = Vec(be_, hc_.n * hc_.d);
    if (gradY && st_.debias) baryYY_ = Vec(be_, hc_.m * hc_.d);

    std::vector<int32_t> iterations(segments_, 0);
    std::vector<double> change(segments_, std::numeric_limits<double>::infinity());
    const std::vector<double>& epsList = st_.epsList;
    const double eps0 = epsList.front();

    // Start from the potentials of zero potentials (GeomLoss) for the symmetric solver, from zero for the alternating one.
    if (st_.symmetric) {
      std::vector<SoftminPass<T>> passes = {xFromY(eps0, nullptr, nullptr, 0, pot_.f.get()),
                                            yFromX(eps0, nullptr, nullptr, 0, pot_.g.get())};
      if (st_.debias) {
        passes.push_back(xFromX(eps0, nullptr, nullptr, 0, pot_.fAa.get()));
        passes.push_back(yFromY(eps0, nullptr, nullptr, 0, pot_.gBb.get()));
      }
      be_.softmin(passes.data(), static_cast<int>(passes.size()));
    } else {
      pot_.f.zero(), pot_.g.zero();
      if (st_.debias) pot_.fAa.zero(), pot_.gBb.zero();
    }

    // Runs of iterations between two stops (a threshold check or the end). At the final eps the
    // iterations repeat identically up to the swap of pot_ and next_, so pairs of them, from an odd
    // offset into the fixed-eps phase (where pot_ holds the buffers it held at the first pair, and
    // after one iteration at that eps, so that every repeated pass has a reference to carry), go to
    // the backend as repeated work: the CUDA backend replays them as a CUDA graph.
    const size_t total = epsList.size();
    size_t done = 0;
    bool pairsQueued = false;
    while (done < total) {
      const size_t end = runEnd(done);
      const double eps = epsList[done];
      if (end - done >= 2 && done > st_.firstCheck && (done - st_.firstCheck) % 2 == 1) {
        const int64_t pairs = static_cast<int64_t>((end - done) / 2);
        be_.repeat(pairs, crossEntries_, pairsQueued, [&] {
          queueIteration(eps, pot_, next_);
          queueIteration(eps, next_, pot_);
        });
        pairsQueued = true;
        done += 2 * static_cast<size_t>(pairs);
      } else {
        queueIteration(eps, pot_, next_);
        swapPotentials();
        ++done;
      }
      if (done < end) continue;
      for (int64_t s = 0; s < segments_; ++s)
        if (activeHost_.empty() || activeHost_[s]) iterations[s] = static_cast<int32_t>(done);
      const bool last = done == total;
      const bool checkDue = done > st_.firstCheck && st_.threshold > 0 &&
                            (done - st_.firstCheck) % static_cast<size_t>(st_.innerIterations) == 0;
      if (checkDue || last) measureChange(change);
      if (checkDue && !last && deactivateConverged(change)) break;
    }
    extrapolateAndAverage(epsList.back(), gradX, gradY);
    finish(out, iterations, change, epsList.back());
  }

 private:
  // Passes of the four kinds; prev/blend give the averaged (symmetric) updates.
  SoftminPass<T> pass(const Vec& ex, const Vec& exSq, const Buffer<int64_t, Backend>& exOff, const Vec& src,
                      const Vec& srcSq, const Vec& srcLogW, const Buffer<int64_t, Backend>& srcOff, double eps,
                      double rho, const T* potential, const T* prev, double blend, T* out) const {
    SoftminPass<T> p{};
    p.x = ex.get(), p.y = src.get(), p.d = hc_.d;
    p.xOffsets = exOff.get(), p.yOffsets = srcOff.get();
    p.segments = segments_, p.n = static_cast<int64_t>(exSq.size()), p.m = static_cast<int64_t>(srcSq.size());
    p.xSqNorm = exSq.get(), p.ySqNorm = srcSq.get(), p.yLogWeights = srcLogW.get(), p.yPotential = potential;
    p.eps = T(eps), p.cost = T(st_.cost), p.damping = T(st_.damping(eps, rho));
    p.prev = prev, p.blend = T(blend), p.out = out;
    p.active = active_.get();
    return p;
  }
  SoftminPass<T> xFromY(double eps, const T* g, const T* prev, double blend, T* out) const {
    return pass(x_, xSq_, xOff_, y_, ySq_, logB_, yOff_, eps, st_.rhoX, g, prev, blend, out);
  }
  SoftminPass<T> yFromX(double eps, const T* f, const T* prev, double blend, T* out) const {
    return pass(y_, ySq_, yOff_, x_, xSq_, logA_, xOff_, eps, st_.rhoY, f, prev, blend, out);
  }
  SoftminPass<T> xFromX(double eps, const T* f, const T* prev, double blend, T* out) const {
    return pass(x_, xSq_, xOff_, x_, xSq_, logA_, xOff_, eps, st_.rhoX, f, prev, blend, out);
  }
  SoftminPass<T> yFromY(double eps, const T* g, const T* prev, double blend, T* out) const {
    return pass(y_, ySq_, yOff_, y_, ySq_, logB_, yOff_, eps, st_.rhoY, g, prev, blend, out);
  }

  // The potentials of an iteration: those of the (x, y) problem and, debiased, the self potentials.
  struct PotentialSet {
    Vec f, g, fAa, gBb;
  };

  // End of the run that starts at iteration `done`: one iteration while eps decreases, else up to
  // the next threshold check or the last iteration.
  size_t runEnd(size_t done) const {
    const size_t total = st_.epsList.size();
    if (done < st_.firstCheck) return done + 1;
    if (st_.threshold <= 0) return total;
    const size_t inner = static_cast<size_t>(st_.innerIterations);
    return std::min(total, st_.firstCheck + ((done - st_.firstCheck) / inner + 1) * inner);
  }

  // Queues one iteration at eps: every potential of `to` from those of `from`. Each pass carries its
  // reference (SoftminPass::lseCarry) from the same pass of the iteration before when that one ran at
  // eps too: it read then the potential that `to` holds now (or, for the alternating g, `from`'s f).
  void queueIteration(double eps, const PotentialSet& from, PotentialSet& to) {
    const bool again = eps == carryEps_;
    carryEps_ = eps;
    auto carried = [&](SoftminPass<T> p, const Vec& carry, const Vec& before) {
      p.lseCarry = carry.get(), p.yPotentialPrev = again ? before.get() : nullptr;
      return p;
    };
    std::vector<SoftminPass<T>> passes;
    if (st_.symmetric) {
      passes = {carried(xFromY(eps, from.g.get(), from.f.get(), 0.5, to.f.get()), lseCarry_.f, to.g),
                carried(yFromX(eps, from.f.get(), from.g.get(), 0.5, to.g.get()), lseCarry_.g, to.f)};
    } else {
      passes = {carried(xFromY(eps, from.g.get(), from.f.get(), 0, to.f.get()), lseCarry_.f, to.g)};
    }
    if (st_.debias) {
      passes.push_back(carried(xFromX(eps, from.fAa.get(), from.fAa.get(), 0.5, to.fAa.get()), lseCarry_.fAa, to.fAa));
      passes.push_back(carried(yFromY(eps, from.gBb.get(), from.gBb.get(), 0.5, to.gBb.get()), lseCarry_.gBb, to.gBb));
    }
    be_.softmin(passes.data(), static_cast<int>(passes.size()));
    if (!st_.symmetric) {
      passes = {carried(yFromX(eps, to.f.get(), from.g.get(), 0, to.g.get()), lseCarry_.g, from.f)};
      be_.softmin(passes.data(), 1);
    }
  }

  void measureChange(std::vector<double>& change) {
    std::vector<double> part(segments_);
    const int64_t* xo = hc_.xOffsets.data();
    const int64_t* yo = hc_.yOffsets.data();
    auto fold = [&](const Vec& a, const Vec& b, const int64_t* hostOff, const Buffer<int64_t, Backend>& off, bool first) {
      be_.maxAbsDiff(a.get(), b.get(), hostOff, off.get(), segments_, part.data());
      for (int64_t s = 0; s < segments_; ++s)
        if (activeHost_.empty() || activeHost_[s]) change[s] = first ? part[s] : std::max(change[s], part[s]);
    };
    fold(pot_.f, next_.f, xo, xOff_, true);
    fold(pot_.g, next_.g, yo, yOff_, false);
    if (st_.debias) {
      fold(pot_.fAa, next_.fAa, xo, xOff_, false);
      fold(pot_.gBb, next_.gBb, yo, yOff_, false);
    }
  }

  // Marks converged segments inactive; true when none is left.
  bool deactivateConverged(const std::vector<double>& change) {
    if (activeHost_.empty()) activeHost_.assign(segments_, 1);
    bool any = false;
    for (int64_t s = 0; s < segments_; ++s) {
      if (change[s] < st_.threshold) activeHost_[s] = 0;
      any = any || activeHost_[s];
    }
    active_.upload(activeHost_.data());
    return !any;
  }

  void swapPotentials() {
    pot_.f.swap(next_.f), pot_.g.swap(next_.g);
    if (st_.debias) pot_.fAa.swap(next_.fAa), pot_.gBb.swap(next_.gBb);
  }

  // GeomLoss's last extrapolation (every potential from the previous ones, no averaging), which is
  // also where the gradients' barycentres are taken. Without it, only the passes whose barycentres
  // feed a requested gradient run, and their potentials are dropped.
  void extrapolateAndAverage(double eps, bool gradX, bool gradY) {
    if (!st_.lastExtrapolation && !gradX && !gradY) return;
    active_.upload(std::vector<uint8_t>(segments_, 1).data());
    std::vector<SoftminPass<T>> passes;
    auto add = [&](SoftminPass<T> p, bool average, const Vec& v, Vec& bary) {
      if (average) withAverage(p, v, bary);
      if (average || st_.lastExtrapolation) passes.push_back(p);
    };
    add(xFromY(eps, pot_.g.get(), nullptr, 0, next_.f.get()), gradX, y_, baryXY_);
    add(yFromX(eps, pot_.f.get(), nullptr, 0, next_.g.get()), gradY, x_, baryYX_);
    if (st_.debias) {
      add(xFromX(eps, pot_.fAa.get(), nullptr, 0, next_.fAa.get()), gradX, x_, baryXX_);
      add(yFromY(eps, pot_.gBb.get(), nullptr, 0, next_.gBb.get()), gradY, y_, baryYY_);
    }
    be_.softmin(passes.data(), static_cast<int>(passes.size()));
    if (st_.lastExtrapolation) swapPotentials();
  }
  void withAverage(SoftminPass<T>& p, const Vec& v, Vec& avg) const {
    p.v = v.get(), p.k = hc_.d, p.avg = avg.get();
  }

  void finish(const HostOutputs<T>& out, const std::vector<int32_t>& iterations, const std::vector<double>& change,
              double eps) {
    const std::vector<T> f = pot_.f.toHost(), g = pot_.g.toHost();
    const std::vector<T> fAa = st_.debias ? pot_.fAa.toHost() : std::vector<T>();
    const std::vector<T> gBb = st_.debias ? pot_.gBb.toHost() : std::vector<T>();
    auto copy = [](const std::vector<T>& v, T* dst) { if (dst) std::copy(v.begin(), v.end(), dst); };
    copy(f, out.fBa), copy(g, out.gAb), copy(fAa, out.fAa), copy(gBb, out.gBb);

    for (int64_t s = 0; s < segments_; ++s) {
      out.loss[s] = sideLoss(f, fAa, hc_.a, hc_.xOffsets[s], hc_.xOffsets[s + 1], st_.rhoX, eps) +
                    sideLoss(g, gBb, hc_.b, hc_.yOffsets[s], hc_.yOffsets[s + 1], st_.rhoY, eps);
      if (out.iterations) out.iterations[s] = iterations[s];
      if (out.maxChange) out.maxChange[s] = change[s];
      if (out.converged) out.converged[s] = st_.threshold > 0 && change[s] < st_.threshold;
    }
    if (out.gradA) weightGradient(f, fAa, st_.rhoX, eps, out.gradA);
    if (out.gradB) weightGradient(g, gBb, st_.rhoY, eps, out.gradB);
    if (out.gradX) pointGradient(x_, hc_.a, f, fAa, baryXY_, baryXX_, st_.rhoX, eps, hc_.n, out.gradX);
    if (out.gradY) pointGradient(y_, hc_.b, g, gBb, baryYX_, baryYY_, st_.rhoY, eps, hc_.m, out.gradY);
  }

  // <w, phi(p) - phi(q)> with phi(f) = f (balanced) or -(rho + eps/2) exp(-f/rho) (relaxed); without
  // debiasing <w, phi(p) + c> with c = rho + eps/2 on a relaxed side.
  double sideLoss(const std::vector<T>& p, const std::vector<T>& q, const std::vector<T>& w, int64_t begin,
                  int64_t end, double rho, double eps) const {
    double sum = 0;
    const bool relaxed = !std::isinf(rho);
    for (int64_t i = begin; i < end; ++i) {
      const double pi = p[i];
      double term;
      if (!relaxed) {
        term = st_.debias ? pi - double(q[i]) : pi;
      } else {
        const double c = rho + eps / 2;
        term = st_.debias ? c * (std::exp(-double(q[i]) / rho) - std::exp(-pi / rho)) : c * (1 - std::exp(-pi / rho));
      }
      sum += double(w[i]) * term;
    }
    return sum;
  }

  // dL/dw_i = psi(p_i) - psi(q_i) when debiased, psi(p_i) - eps/2 otherwise, with psi(f) = f on a
  // balanced side and (rho + eps)(1 - e^{-f/rho}) on a relaxed one: the derivative of the converged
  // loss (envelope theorem on the dual, whose mass terms give the eps/2). Balanced sides' weight
  // gradients are defined up to a constant.
  void weightGradient(const std::vector<T>& p, const std::vector<T>& q, double rho, double eps, T* out) const {
    const bool relaxed = !std::isinf(rho);
    auto psi = [&](double f) { return relaxed ? (rho + eps) * (1 - std::exp(-f / rho)) : f; };
    for (size_t i = 0; i < p.size(); ++i) out[i] = T(psi(double(p[i])) - (st_.debias ? psi(double(q[i])) : eps / 2));
  }

  // grad_i = 2c damp [ k(p_i) w_i (x_i - bary_i) - k(q_i) w_i (x_i - self_bary_i) ], where k = 1 when
  // balanced and k(f) = (weight / rho) e^{-f/rho} when relaxed, weight = rho + eps (exact) or
  // rho + eps/2 (GeomLoss's autograd).
  // The per-row coefficients (with 2c damp w_i) on the host, the O(n d) combination on the backend.
  void pointGradient(const Vec& pts, const std::vector<T>& w, const std::vector<T>& p, const std::vector<T>& q,
                     const Vec& bary, const Vec& selfBary, double rho, double eps, int64_t rows, T* out) {
    const bool relaxed = !std::isinf(rho);
    const double weight = st_.geomlossGradients ? rho + eps / 2 : rho + eps;
    const double scale = 2 * st_.cost * st_.damping(eps, rho);
    // 2c damp w_i k(f_i), k(f) = 1 balanced, (weight / rho) e^{-f/rho} relaxed.
    auto coefficient = [&](int64_t i, T f) {
      return T(scale * double(w[i]) * (relaxed ? weight / rho * std::exp(-double(f) / rho) : 1.0));
    };
    std::vector<T> cp(rows), cq(st_.debias ? rows : 0);
    for (int64_t i = 0; i < rows; ++i) {
      cp[i] = coefficient(i, p[i]);
      if (st_.debias) cq[i] = coefficient(i, q[i]);
    }
    const Vec devCp(be_, cp), devCq(be_, cq);
    Vec grad(be_, rows * hc_.d);
    be_.pointGradient(pts.get(), bary.get(), devCp.get(), st_.debias ? selfBary.get() : nullptr,
                      st_.debias ? devCq.get() : nullptr, rows, hc_.d, grad.get());
    grad.download(out);
  }

  Backend& be_;
  const HostClouds<T>& hc_;
  SolverSettings st_;
  double diameter_ = 0;
  int64_t segments_;
  Vec x_, y_, xSq_, ySq_, logA_, logB_;
  Buffer<int64_t, Backend> xOff_, yOff_;
  Buffer<uint8_t, Backend> active_;
  std::vector<uint8_t> activeHost_;
  int64_t crossEntries_ = 0;  // sum over the segments of n_s m_s: the cost entries of a pass of x from y
  PotentialSet pot_, next_;  // the current potentials and the next iteration's
  PotentialSet lseCarry_;    // each pass's reference carry (SoftminPass::lseCarry), by the potential it updates
  double carryEps_ = 0;      // eps of the iteration queued last (NaN: none yet)
  Vec baryXY_, baryYX_, baryXX_, baryYY_;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
