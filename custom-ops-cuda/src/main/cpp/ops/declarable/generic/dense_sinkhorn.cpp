#include "dense_sinkhorn.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "../helpers/dense_solver.h"
#include "backend_choice.h"
#include "system/status.h"

namespace sinkhorn {
namespace {

// Balanced on both sides, the problem is feasible only for equal masses; float32 normalisation
// leaves about 1e-7 of difference, which the iterations absorb.
constexpr double kBalancedMassTolerance = 1e-5;

double relaxationStrength(double tau, const char* name) {
  require(!std::isnan(tau), std::string(name) + " must not be NaN");
  return tau > 0 ? tau : std::numeric_limits<double>::infinity();
}

// The problem's parameters: eps and the marginals' relaxations (all a plan product needs).
helpers::DenseSettings problemSettings(const sk_dense_options& o) {
  require(std::isfinite(o.eps) && o.eps > 0, "eps must be finite and > 0");
  helpers::DenseSettings st;
  st.eps = o.eps;
  st.tauA = relaxationStrength(o.tau_a, "tau_a");
  st.tauB = relaxationStrength(o.tau_b, "tau_b");
  return st;
}

helpers::DenseSettings settingsFor(const sk_dense_options& o) {
  helpers::DenseSettings st = problemSettings(o);
  require(o.max_iters >= 1, "max_iters must be >= 1");
  require(std::isfinite(o.threshold) && o.threshold >= 0, "threshold must be finite and >= 0");
  require(o.check_every >= 1, "check_every must be >= 1");
  st.maxIters = o.max_iters;
  st.checkEvery = o.check_every;
  st.threshold = o.threshold;
  return st;
}

void checkShape(const sk_dense_inputs& in) {
  require(in.dtype == SK_FLOAT32 || in.dtype == SK_FLOAT64, "dtype must be float32 or float64");
  require(in.batch >= 1 && in.n >= 1 && in.m >= 1, "batch, n and m must be >= 1");
  require(in.c != nullptr, "C (inputs.c) is required");
  require(in.memory == SK_MEMORY_HOST || in.memory == SK_MEMORY_CUDA, "memory must be host or cuda");
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max() / 16;
  require(in.n <= kMax / in.batch && in.m <= kMax / (in.batch * in.n), "C: batch x n x m is too large");
}

std::string at(int64_t item, int64_t index) {
  return " (batch item " + std::to_string(item) + ", index " + std::to_string(index) + ")";
}

// One side's masks, weights (uniform over the present entries unless given), their base-2 logs
// and masses; masked entries are not read.
template <typename T>
void prepareSide(const T* w, const uint8_t* mask, int64_t batch, int64_t length, const char* weightName,
                 const char* maskName, std::vector<double>& weights, std::vector<T>& log2W, std::vector<uint8_t>& present,
                 std::vector<double>& masses) {
  const int64_t total = batch * length;
  weights.assign(total, 0), log2W.assign(total, -std::numeric_limits<T>::infinity()), present.assign(total, 1);
  masses.assign(batch, 0);
  for (int64_t k = 0; k < batch; ++k) {
    int64_t count = 0;
    for (int64_t i = k * length; i < (k + 1) * length; ++i) {
      present[i] = mask == nullptr || mask[i] != 0;
      count += present[i];
    }
    // Messages are built only when raised: these loops run per entry and per item.
    if (count == 0)
      throw Error(SK_INVALID_ARGUMENT, std::string(maskName) + ": batch item " + std::to_string(k) + " has every entry masked");
    const double uniform = 1.0 / double(count);
    const T log2Uniform = T(std::log2(uniform));
    for (int64_t i = k * length; i < (k + 1) * length; ++i) {
      if (!present[i]) continue;
      const double v = w ? double(w[i]) : uniform;
      if (!(std::isfinite(v) && v >= 0))
        throw Error(SK_INVALID_ARGUMENT, std::string(weightName) + " must be finite and non-negative" + at(k, i - k * length));
      weights[i] = v;
      if (v > 0) log2W[i] = w ? T(std::log2(v)) : log2Uniform;
      masses[k] += v;
    }
    if (!(masses[k] > 0))
      throw Error(SK_INVALID_ARGUMENT, std::string(weightName) + ": batch item " + std::to_string(k) +
                                           " has zero total mass over its unmasked entries");
  }
}

template <typename T>
helpers::DenseHostProblem<T> prepare(const sk_dense_inputs& in, const helpers::DenseSettings& st) {
  helpers::DenseHostProblem<T> p;
  p.cost = static_cast<const T*>(in.c);
  p.costOnCuda = in.memory == SK_MEMORY_CUDA;
  p.batch = in.batch, p.n = in.n, p.m = in.m;
  prepareSide(static_cast<const T*>(in.a), in.mask_a, in.batch, in.n, "a", "mask_a", p.a, p.log2A, p.maskA, p.massA);
  prepareSide(static_cast<const T*>(in.b), in.mask_b, in.batch, in.m, "b", "mask_b", p.b, p.log2B, p.maskB, p.massB);
  if (std::isinf(st.tauA) && std::isinf(st.tauB)) {
    for (int64_t k = 0; k < in.batch; ++k) {
      const double ma = p.massA[k], mb = p.massB[k];
      if (std::fabs(ma - mb) > kBalancedMassTolerance * std::max(ma, mb)) {
        char message[240];
        std::snprintf(message, sizeof message,
                      "a and b must have the same total mass when both marginals are balanced (batch item %lld: "
                      "%.9g vs %.9g); set tau_a or tau_b to relax one",
                      static_cast<long long>(k), ma, mb);
        throw Error(SK_INVALID_ARGUMENT, message);
      }
    }
  }
  return p;
}

// Values of a potential or a matrix at the present entries (rows of `width` values each).
template <typename T>
void checkPresent(const T* values, const std::vector<uint8_t>& present, int64_t width, const char* name) {
  for (size_t i = 0; i < present.size(); ++i) {
    if (!present[i]) continue;
    for (int64_t t = 0; t < width; ++t)
      if (!std::isfinite(double(values[i * width + t])))
        throw Error(SK_INVALID_ARGUMENT, std::string(name) + " contains NaN or infinite values at unmasked entries");
  }
}

template <typename T>
void solveTyped(const sk_dense_options& o, const sk_dense_inputs& in, sk_dense_outputs& out) {
  const helpers::DenseSettings st = settingsFor(o);
  const helpers::DenseHostProblem<T> p = prepare<T>(in, st);
  const helpers::DenseHostOutputs<T> ho{out.cost,
                                        out.iterations,
                                        out.converged,
                                        out.solve_ms,
                                        static_cast<T*>(out.f),
                                        static_cast<T*>(out.g),
                                        static_cast<T*>(out.plan),
                                        static_cast<T*>(out.grad_a),
                                        static_cast<T*>(out.grad_b)};
  const int32_t device = deviceReading(o.device, in.memory, "C");
  const int32_t used = runOnBackend(device, false, SK_CUDA_GRAPHS_AUTO, [&](auto& backend) {
    using Backend = std::decay_t<decltype(backend)>;
    helpers::DenseSolver<T, Backend> solver(backend, p, st);
    solver.solve(ho);
  });
  if (out.device_used) *out.device_used = used;
}

template <typename T>
void planProductTyped(const sk_dense_options& o, const sk_dense_inputs& in, const void* f, const void* g,
                      bool transpose, int64_t k, const void* v, void* out) {
  require(f && g, "potentials f and g are required");
  require(v && out, "v and out are required");
  require(k >= 1, "k must be >= 1");
  const helpers::DenseSettings st = problemSettings(o);
  const helpers::DenseHostProblem<T> p = prepare<T>(in, st);
  checkPresent(static_cast<const T*>(f), p.maskA, 1, "f");
  checkPresent(static_cast<const T*>(g), p.maskB, 1, "g");
  checkPresent(static_cast<const T*>(v), transpose ? p.maskA : p.maskB, k, "v");
  runOnBackend(deviceReading(o.device, in.memory, "C"), false, SK_CUDA_GRAPHS_AUTO, [&](auto& backend) {
    helpers::densePlanProduct(backend, p, o.eps, static_cast<const T*>(f), static_cast<const T*>(g), transpose, k,
                              static_cast<const T*>(v), static_cast<T*>(out));
  });
}

}  // namespace

void denseSinkhornOp(const sk_dense_options& o, const sk_dense_inputs& in, sk_dense_outputs& out) {
  checkShape(in);
  require(out.cost != nullptr, "outputs.cost is required");
  if (in.dtype == SK_FLOAT32)
    solveTyped<float>(o, in, out);
  else
    solveTyped<double>(o, in, out);
}

void densePlanProductOp(const sk_dense_options& o, const sk_dense_inputs& in, const void* f, const void* g,
                        bool transpose, int64_t k, const void* v, void* out) {
  checkShape(in);
  if (in.dtype == SK_FLOAT32)
    planProductTyped<float>(o, in, f, g, transpose, k, v, out);
  else
    planProductTyped<double>(o, in, f, g, transpose, k, v, out);
}

}  // namespace sinkhorn
