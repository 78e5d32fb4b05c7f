// The dense solver's loop, written once for every backend and precision (primitives: dense.h).
//
// Alternating log-domain updates from g = 0, per batch item (docs/math.md, "Dense costs"):
//   f_i = -eps damp_a LSE_j(log b_j + (g_j - C_ij)/eps),  then  g_j = -eps damp_b LSE_i(log a_i + (f_i - C_ij)/eps),
// with damp = tau / (tau + eps) on a relaxed side (1 when balanced). Every checkEvery iterations the
// largest change of an item's potentials is compared with the threshold; an item that reaches it
// stops (its potentials frozen). A backend that keeps items on chip runs the whole loop in one launch.
//
// The cost is the dual value at the final potentials,
//   F = <a, phi_a(f)> + <b, phi_b(g)> - eps (<a x b, exp((f + g - C)/eps)> - m_a m_b),
// phi(f) = f (balanced) or tau (1 - e^{-f/tau}), m the total masses; its partial derivatives at the
// potentials are the gradients (exact at convergence, where F is stationary in f and g):
//   dF/dC_ij = P_ij,  dF/da_i = phi_a(f_i) - eps (r_i / a_i - m_b),  dF/db_j = phi_b(g_j) - eps (c_j / b_j - m_a),
// with r and c the plan's row and column sums. The last update being g's, c_j / b_j = e^{-g_j/tau_b}
// (1 when balanced) exactly; r_i / a_i = exp(f_i/eps + L_i) takes one more row pass.
#ifndef SINKHORN_HELPERS_DENSE_SOLVER_H
#define SINKHORN_HELPERS_DENSE_SOLVER_H

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "backend.h"
#include "dense.h"
#include "sinkhorn4j.h"
#include "system/status.h"

namespace sinkhorn {
namespace helpers {

constexpr double kDenseLog2e = 1.44269504088896340736;

struct DenseSettings {
  double eps = 1;
  double tauA = std::numeric_limits<double>::infinity();  // +inf: balanced
  double tauB = std::numeric_limits<double>::infinity();
  int32_t maxIters = 1000;
  int32_t checkEvery = 10;
  double threshold = 0;

  double damping(double tau) const { return std::isinf(tau) ? 1.0 : tau / (tau + eps); }
};

// Host views of checked inputs, with the masks and default weights applied.
template <typename T>
struct DenseHostProblem {
  const T* cost;                      // batch x n x m
  bool costOnCuda = false;            // cost is a device pointer (sk_memory CUDA), read by a CUDA backend
  int64_t batch, n, m;
  std::vector<double> a, b;           // weights, 0 where masked
  std::vector<T> log2A, log2B;        // -inf for zero weights and masked entries
  std::vector<uint8_t> maskA, maskB;  // 1 present, 0 masked
  std::vector<double> massA, massB;   // per item
};

// Host destinations; every pointer may be null but cost.
template <typename T>
struct DenseHostOutputs {
  double* cost;
  int32_t* iterations;
  int32_t* converged;
  double* solveMs;
  T *f, *g, *plan, *gradA, *gradB;
};

// The inputs in backend memory. C is the one large input: the CPU backend reads it where it is, the
// CUDA backend uploads it (or copies it on the device when it is in CUDA memory) and checks it there
// (C must be finite where its row and column are present).
template <typename T, typename Backend>
class DenseInputs {
 public:
  DenseInputs(Backend& backend, const DenseHostProblem<T>& p)
      : log2A_(backend, p.log2A), log2B_(backend, p.log2B), maskA_(backend, p.maskA), maskB_(backend, p.maskB) {
    const size_t count = size_t(p.batch * p.n) * size_t(p.m);
    if constexpr (Backend::kind == SK_DEVICE_CPU) {
      if (p.costOnCuda) throw Error(SK_INVALID_ARGUMENT, "C in CUDA memory needs the CUDA backend");
      cost_ = p.cost;
    } else {
      costCopy_ = Buffer<T, Backend>(backend, count);
      if (p.costOnCuda)
        costCopy_.copyFromDevice(p.cost, "C");
      else
        costCopy_.upload(p.cost);
      cost_ = costCopy_.get();
    }
    batch_ = {cost_, p.batch, p.n, p.m, log2A_.get(), log2B_.get(), maskA_.get(), maskB_.get()};
    const int64_t bad = backend.denseFirstNonFinite(batch_);
    if (bad >= 0)
      throw Error(SK_INVALID_ARGUMENT, "C contains NaN or infinite values at unmasked entries (batch item " +
                                           std::to_string(bad / (p.n * p.m)) + ", row " + std::to_string(bad / p.m % p.n) +
                                           ", column " + std::to_string(bad % p.m) + ")");
  }
  const DenseBatch<T>& batch() const { return batch_; }

 private:
  Buffer<T, Backend> log2A_, log2B_;
  Buffer<uint8_t, Backend> maskA_, maskB_;
  Buffer<T, Backend> costCopy_;
  const T* cost_ = nullptr;
  DenseBatch<T> batch_{};
};

// phi(f) = f on a balanced side, tau (1 - e^{-f/tau}) on a relaxed one.
inline double densePhi(double f, double tau) { return std::isinf(tau) ? f : -tau * std::expm1(-f / tau); }
// The marginal ratio at a converged side: c_j / b_j = e^{-g_j/tau} (1 when balanced).
inline double denseMarginalRatio(double g, double tau) { return std::isinf(tau) ? 1.0 : std::exp(-g / tau); }

template <typename T, typename Backend>
class DenseSolver {
  using Vec = Buffer<T, Backend>;

 public:
  DenseSolver(Backend& backend, const DenseHostProblem<T>& problem, const DenseSettings& settings)
      : be_(backend), hp_(problem), st_(settings), in_(backend, problem), rows_(problem.batch * problem.n),
        cols_(problem.batch * problem.m), scale2_(T(kDenseLog2e / settings.eps)),
        epsDampingA_(T(settings.eps * settings.damping(settings.tauA))),
        epsDampingB_(T(settings.eps * settings.damping(settings.tauB))) {}

  void solve(const DenseHostOutputs<T>& out) {
    f_ = Vec(be_, rows_), g_ = Vec(be_, cols_), biasA_ = Vec(be_, rows_), biasB_ = Vec(be_, cols_);
    std::vector<int32_t> iterations(hp_.batch, 0), converged(hp_.batch, 0);
    // The resident solve's iterations then converged flags, per item, allocated and read outside
    // the timed loop (one download for both).
    Buffer<int32_t, Backend> outcome(be_, size_t(2 * hp_.batch));
    be_.synchronize();
    const auto start = std::chrono::steady_clock::now();
    const bool onChip = resident(outcome);
    if (!onChip) iterate(iterations, converged);
    be_.synchronize();
    if (out.solveMs) *out.solveMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (onChip) {
      const std::vector<int32_t> host = outcome.toHost();
      std::copy(host.begin(), host.begin() + hp_.batch, iterations.begin());
      std::copy(host.begin() + hp_.batch, host.end(), converged.begin());
    }
    for (int64_t k = 0; k < hp_.batch; ++k) {
      if (out.iterations) out.iterations[k] = iterations[k];
      if (out.converged) out.converged[k] = converged[k];
    }
    finish(out);
  }

 private:
  DenseLsePass<T> pass(bool columns, const Vec& otherBias, const Buffer<uint8_t, Backend>* active, const Vec* prev,
                       Vec* out, Vec* bias, Vec* lse) const {
    return {columns, otherBias.get(), scale2_, columns ? epsDampingB_ : epsDampingA_,
            active ? active->get() : nullptr, prev ? prev->get() : nullptr, out ? out->get() : nullptr,
            bias ? bias->get() : nullptr, lse ? lse->get() : nullptr};
  }

  // The whole loop in one launch where the backend keeps items on chip; false if it does not.
  bool resident(Buffer<int32_t, Backend>& outcome) {
    if constexpr (Backend::kResidentDense) {
      const DenseResidentSolve<T> r{scale2_, epsDampingA_, epsDampingB_, st_.maxIters, st_.checkEvery, st_.threshold,
                                    f_.get(), g_.get(), biasA_.get(), biasB_.get(), outcome.get(),
                                    outcome.get() + hp_.batch};
      return be_.denseResident(in_.batch(), r);
    } else {
      return false;
    }
  }

  void iterate(std::vector<int32_t>& iterations, std::vector<int32_t>& converged) {
    const int64_t batch = hp_.batch;
    Vec fNext(be_, rows_), gNext(be_, cols_);
    f_.zero(), g_.zero();
    biasB_.upload(hp_.log2B.data());  // the column biases of g = 0
    std::vector<uint8_t> activeHost(batch, 1);
    Buffer<uint8_t, Backend> active(be_, activeHost);
    std::vector<int64_t> rowOffsets(batch + 1), colOffsets(batch + 1);
    for (int64_t k = 0; k <= batch; ++k) rowOffsets[k] = k * hp_.n, colOffsets[k] = k * hp_.m;
    Buffer<int64_t, Backend> rowOffsetsOnBackend(be_, rowOffsets), colOffsetsOnBackend(be_, colOffsets);
    std::vector<double> changeF(batch), changeG(batch);
    for (int32_t it = 1; it <= st_.maxIters; ++it) {
      be_.denseLse(in_.batch(), pass(false, biasB_, &active, &f_, &fNext, &biasA_, nullptr));
      be_.denseLse(in_.batch(), pass(true, biasA_, &active, &g_, &gNext, &biasB_, nullptr));
      f_.swap(fNext), g_.swap(gNext);
      for (int64_t k = 0; k < batch; ++k)
        if (activeHost[k]) iterations[k] = it;
      if (!(st_.threshold > 0 && it % st_.checkEvery == 0)) continue;
      be_.maxAbsDiff(f_.get(), fNext.get(), rowOffsets.data(), rowOffsetsOnBackend.get(), batch, changeF.data());
      be_.maxAbsDiff(g_.get(), gNext.get(), colOffsets.data(), colOffsetsOnBackend.get(), batch, changeG.data());
      bool any = false;
      for (int64_t k = 0; k < batch; ++k) {
        if (activeHost[k] && std::max(changeF[k], changeG[k]) < st_.threshold) activeHost[k] = 0, converged[k] = 1;
        any = any || activeHost[k];
      }
      if (!any) break;
      active.upload(activeHost.data());
    }
  }

  void finish(const DenseHostOutputs<T>& out) {
    const std::vector<T> f = f_.toHost(), g = g_.toHost();
    if (out.f) std::copy(f.begin(), f.end(), out.f);
    if (out.g) std::copy(g.begin(), g.end(), out.g);
    std::vector<T> lse;
    if (out.gradA) {
      Vec l(be_, rows_);
      be_.denseLse(in_.batch(), pass(false, biasB_, nullptr, nullptr, nullptr, nullptr, &l));
      lse = l.toHost();
    }
    const double eps = st_.eps;
    for (int64_t k = 0; k < hp_.batch; ++k) {
      const double massA = hp_.massA[k], massB = hp_.massB[k];
      double value = 0, planMass = 0;
      for (int64_t i = k * hp_.n; i < (k + 1) * hp_.n; ++i) {
        const bool present = hp_.maskA[i];
        if (present) value += hp_.a[i] * densePhi(double(f[i]), st_.tauA);
        if (out.gradA)
          out.gradA[i] = present ? T(densePhi(double(f[i]), st_.tauA) - eps * (std::exp(double(f[i]) / eps + double(lse[i])) - massB))
                                 : T(0);
      }
      for (int64_t j = k * hp_.m; j < (k + 1) * hp_.m; ++j) {
        const bool present = hp_.maskB[j];
        const double ratio = denseMarginalRatio(double(g[j]), st_.tauB);
        if (present) value += hp_.b[j] * densePhi(double(g[j]), st_.tauB), planMass += hp_.b[j] * ratio;
        if (out.gradB) out.gradB[j] = present ? T(densePhi(double(g[j]), st_.tauB) - eps * (ratio - massA)) : T(0);
      }
      out.cost[k] = value - eps * (planMass - massA * massB);
    }
    if (out.plan) plan(out.plan);
  }

  void plan(T* hostOut) {
    if constexpr (Backend::kind == SK_DEVICE_CPU) {
      be_.densePlan(in_.batch(), biasA_.get(), biasB_.get(), scale2_, hostOut);
    } else {
      Vec p(be_, size_t(rows_) * size_t(hp_.m));
      be_.densePlan(in_.batch(), biasA_.get(), biasB_.get(), scale2_, p.get());
      p.download(hostOut);
    }
  }

  Backend& be_;
  const DenseHostProblem<T>& hp_;
  const DenseSettings& st_;
  DenseInputs<T, Backend> in_;
  int64_t rows_, cols_;
  T scale2_, epsDampingA_, epsDampingB_;
  Vec f_, g_, biasA_, biasB_;
};

// Plan products from given potentials at eps: P @ v (batch x n x k) for v (batch x m x k), or
// P^T @ v (batch x m x k) for v (batch x n x k).
template <typename T, typename Backend>
void densePlanProduct(Backend& be, const DenseHostProblem<T>& p, double eps, const T* f, const T* g, bool transpose,
                      int64_t k, const T* v, T* out) {
  using Vec = Buffer<T, Backend>;
  const double scale2 = kDenseLog2e / eps;
  // The potentials of masked entries are not read: their biases are -inf whatever they hold.
  auto biases = [&](const std::vector<T>& log2W, const T* potential) {
    std::vector<T> out(log2W.size());
    for (size_t i = 0; i < out.size(); ++i)
      out[i] = std::isinf(log2W[i]) ? log2W[i] : T(double(log2W[i]) + double(potential[i]) * scale2);
    return out;
  };
  const std::vector<T> biasA = biases(p.log2A, f), biasB = biases(p.log2B, g);
  const DenseInputs<T, Backend> in(be, p);
  const Vec a(be, biasA), b(be, biasB);
  const size_t inRows = size_t(p.batch) * size_t(transpose ? p.n : p.m);
  const size_t outRows = size_t(p.batch) * size_t(transpose ? p.m : p.n);
  Vec vOnBackend(be, inRows * size_t(k)), result(be, outRows * size_t(k));
  vOnBackend.upload(v);
  be.densePlanProduct(in.batch(), a.get(), b.get(), T(scale2), transpose, k, vOnBackend.get(), result.get());
  result.download(out);
}

}  // namespace helpers
}  // namespace sinkhorn

#endif
