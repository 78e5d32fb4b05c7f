#include "sinkhorn_divergence.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "../helpers/cpu/cpu_backend.h"
#include "../helpers/bounding_box.h"
#include "../helpers/eps_schedule.h"
#include "../helpers/hvp.h"
#include "../helpers/log_weights.h"
#include "../helpers/plan_product.h"
#include "../helpers/sinkhorn_solver.h"
#include "backend_choice.h"
#include "system/status.h"

namespace sinkhorn {
namespace {

std::vector<int64_t> checkedOffsets(const int64_t* offsets, int64_t batch, int64_t total, const char* name) {
  if (!offsets) {
    require(batch == 1, std::string(name) + " are required when batch > 1");
    return {0, total};
  }
  std::vector<int64_t> out(offsets, offsets + batch + 1);
  require(out.front() == 0 && out.back() == total,
          std::string(name) + " must start at 0 and end at the number of rows");
  for (int64_t s = 0; s < batch; ++s)
    require(out[s + 1] > out[s], std::string(name) + ": every problem of the batch needs at least one point");
  return out;
}

template <typename T>
void checkFinite(const T* p, int64_t count, const char* name) {
  // The message is built only on failure: this loop visits every coordinate.
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(double(p[i]))) throw Error(SK_INVALID_ARGUMENT, std::string(name) + " contains NaN or infinite values");
}

// Weights (and, for host-side use, their logs); with centring, checked and centred host copies of
// the clouds (costs are translation invariant) and their diameter.
template <typename T>
struct PreparedClouds {
  std::unique_ptr<T[]> x, y;  // left uninitialised until the parallel centring writes them
  helpers::HostClouds<T> host;
  double diameter = 0;
};

// Checked copies of the weights (uniform over each problem when w is null). A problem's mass is
// positive when one of its finite, non-negative weights is.
template <typename T>
void prepareWeights(const T* w, const std::vector<int64_t>& offsets, const char* name, std::vector<T>& weights) {
  const int64_t rows = offsets.back();
  weights.resize(rows);
  if (!w) {
    for (size_t s = 0; s + 1 < offsets.size(); ++s)
      std::fill(weights.begin() + offsets[s], weights.begin() + offsets[s + 1], T(1.0 / double(offsets[s + 1] - offsets[s])));
    return;
  }
  bool valid = true;
  for (int64_t i = 0; i < rows; ++i) {
    const T v = w[i];
    valid = valid & (std::isfinite(v) & (v >= T(0)));
    weights[i] = v;
  }
  if (!valid) throw Error(SK_INVALID_ARGUMENT, std::string(name) + " must be finite and non-negative");
  for (size_t s = 0; s + 1 < offsets.size(); ++s)
    require(std::any_of(w + offsets[s], w + offsets[s + 1], [](T v) { return v > T(0); }),
            std::string(name) + ": every problem of the batch needs a positive total mass");
}

// onHost false leaves x and y as given and the weights without logs: the divergence solver checks,
// centres and takes logs on its backend. onHost true does that here, for plan products and HVPs.
template <typename T>
PreparedClouds<T> prepare(const sk_clouds& c, bool onHost) {
  require(c.n >= 1 && c.m >= 1, "x and y must hold at least one point each");
  PreparedClouds<T> pc;
  helpers::HostClouds<T>& h = pc.host;
  h.n = c.n, h.m = c.m, h.d = c.d;
  h.xOffsets = checkedOffsets(c.x_offsets, c.batch, c.n, "x_offsets");
  h.yOffsets = checkedOffsets(c.y_offsets, c.batch, c.m, "y_offsets");
  const T* x = static_cast<const T*>(c.x);
  const T* y = static_cast<const T*>(c.y);
  prepareWeights(static_cast<const T*>(c.a), h.xOffsets, "a", h.a);
  prepareWeights(static_cast<const T*>(c.b), h.yOffsets, "b", h.b);
  h.x = x, h.y = y;
  if (!onHost) return pc;
  h.logA.resize(h.a.size()), h.logB.resize(h.b.size());
  helpers::logWeightsOnHost(h.a.data(), c.n, h.logA.data());
  helpers::logWeightsOnHost(h.b.data(), c.m, h.logB.data());
  helpers::BoundingBox box(c.d);
  if (!helpers::extendBox(box, x, c.n, c.d)) throw Error(SK_INVALID_ARGUMENT, "x contains NaN or infinite values");
  if (!helpers::extendBox(box, y, c.m, c.d)) throw Error(SK_INVALID_ARGUMENT, "y contains NaN or infinite values");

  pc.diameter = box.diagonal();
  const std::vector<double> centre = box.centre();
  auto centred = [&](const T* p, int64_t rows) {
    std::unique_ptr<T[]> out(new T[size_t(rows * c.d)]);
    helpers::translateRows(p, out.get(), rows, c.d, centre);
    return out;
  };
  pc.x = centred(x, c.n), pc.y = centred(y, c.m);
  h.x = pc.x.get(), h.y = pc.y.get();
  return pc;
}

double relaxation(double reach) {
  return reach > 0 ? reach * reach : std::numeric_limits<double>::infinity();
}

helpers::SolverSettings settingsFor(const sk_options& o, double estimatedDiameter) {
  helpers::SolverSettings st;
  require(o.solver == SK_SOLVER_SYMMETRIC || o.solver == SK_SOLVER_ALTERNATING, "solver must be symmetric or alternating");
  require(std::isfinite(o.reach_x) && std::isfinite(o.reach_y), "reach must be finite");
  st.rhoX = relaxation(o.reach_x), st.rhoY = relaxation(o.reach_y);
  st.cost = o.half_cost ? 0.5 : 1.0;
  st.debias = o.debias != 0;
  st.symmetric = o.solver == SK_SOLVER_SYMMETRIC;
  st.lastExtrapolation = st.symmetric && o.last_extrapolation;
  st.geomlossGradients = o.geomloss_gradients != 0;
  require(o.threshold >= 0 && std::isfinite(o.threshold), "threshold must be finite and >= 0");
  require(o.inner_iterations >= 1, "inner_iterations must be >= 1");
  st.threshold = o.threshold, st.innerIterations = o.inner_iterations;

  if (o.eps_list) {
    require(o.eps_list_length >= 1, "eps_list must not be empty");
    for (int32_t i = 0; i < o.eps_list_length; ++i)
      require(std::isfinite(o.eps_list[i]) && o.eps_list[i] > 0, "eps_list values must be finite and > 0");
    st.epsList.assign(o.eps_list, o.eps_list + o.eps_list_length);
  } else if (o.eps > 0) {
    require(std::isfinite(o.eps), "eps must be finite");
    require(o.n_iters >= 1, "n_iters must be >= 1 with a fixed eps");
    st.epsList.assign(o.n_iters, o.eps);
  } else {
    require(std::isfinite(o.blur) && o.blur > 0, "blur must be > 0");
    require(o.scaling > 0 && o.scaling < 1, "scaling must be in (0, 1)");
    require(std::isfinite(o.diameter), "diameter must be finite");
    // Identical clouds have no extent: start the schedule at blur rather than at eps = 0.
    const double diameter = o.diameter > 0 ? o.diameter : std::max(estimatedDiameter, o.blur);
    st.epsList = helpers::geomlossEpsSchedule(diameter, o.blur, o.scaling);
  }
  st.firstCheck = st.epsList.size() - 1;
  while (st.firstCheck > 0 && st.epsList[st.firstCheck - 1] == st.epsList.back()) --st.firstCheck;
  return st;
}

// Runs fn(backend) on the backend the options ask for; returns the sk_device used.
template <typename Fn>
int32_t withBackend(const sk_options& o, Fn&& fn) {
  return runOnBackend(o.device, o.allow_tf32 != 0, o.cuda_graphs, std::forward<Fn>(fn));
}

template <typename T>
void divergenceTyped(const sk_options& o, const sk_clouds& c, sk_outputs& out) {
  PreparedClouds<T> pc = prepare<T>(c, false);
  pc.host.cudaMemory = c.memory == SK_MEMORY_CUDA;
  sk_options run = o;
  run.device = deviceReading(o.device, c.memory, "x and y");
  const helpers::HostOutputs<T> ho{out.loss,
                                   out.iterations,
                                   out.converged,
                                   out.max_change,
                                   static_cast<T*>(out.f_ba),
                                   static_cast<T*>(out.g_ab),
                                   static_cast<T*>(out.f_aa),
                                   static_cast<T*>(out.g_bb),
                                   static_cast<T*>(out.grad_x),
                                   static_cast<T*>(out.grad_y),
                                   static_cast<T*>(out.grad_a),
                                   static_cast<T*>(out.grad_b)};
  const int32_t used = withBackend(run, [&](auto& backend) {
    using Backend = std::decay_t<decltype(backend)>;
    helpers::DivergenceSolver<T, Backend> solver(backend, pc.host, o.half_cost ? 0.5 : 1.0);
    solver.solve(settingsFor(o, solver.diameter()), ho);
  });
  if (out.device_used) *out.device_used = used;
}

template <typename T>
void planProductTyped(const sk_options& o, const sk_clouds& c, const void* f, const void* g, bool transpose, int64_t k,
                      const void* v, void* out) {
  require(o.eps > 0 && std::isfinite(o.eps), "eps must be > 0 for plan products");
  require(f && g, "potentials f and g are required");
  require(v && out, "v and out are required");
  require(k >= 1, "k must be >= 1");
  const PreparedClouds<T> pc = prepare<T>(c, true);
  const helpers::HostClouds<T>& h = pc.host;
  checkFinite(static_cast<const T*>(f), h.n, "f");
  checkFinite(static_cast<const T*>(g), h.m, "g");
  checkFinite(static_cast<const T*>(v), (transpose ? h.n : h.m) * k, "v");
  const helpers::PlanSide<T> xs{h.x, h.logA.data(), static_cast<const T*>(f), h.n, &h.xOffsets};
  const helpers::PlanSide<T> ys{h.y, h.logB.data(), static_cast<const T*>(g), h.m, &h.yOffsets};
  const double cost = o.half_cost ? 0.5 : 1.0;
  withBackend(o, [&](auto& backend) {
    helpers::planProduct(backend, transpose ? ys : xs, transpose ? xs : ys, h.d, o.eps, cost, k,
                         static_cast<const T*>(v), static_cast<T*>(out));
  });
}

template <typename T>
void hvpTyped(const sk_options& o, const sk_clouds& c, const Potentials& pot, const sk_hvp_options& h, const void* v,
              void* out, sk_hvp_report& report) {
  require(c.batch == 1, "hvp takes one problem (batch == 1)");
  require(h.wrt == SK_WRT_X || h.wrt == SK_WRT_Y, "wrt must be x or y");
  require(std::isfinite(h.cg_tol) && std::isfinite(h.regularization), "cg_tol and regularization must be finite");
  const bool wrtX = h.wrt == SK_WRT_X;
  const PreparedClouds<T> pc = prepare<T>(c, true);
  const helpers::HostClouds<T>& hc = pc.host;
  const helpers::SolverSettings st = settingsFor(o, pc.diameter);
  const void* self = wrtX ? pot.fAa : pot.gBb;
  require(pot.fBa && pot.gAb, "potentials f_ba and g_ab are required");
  require(!st.debias || self, wrtX ? "debiased: the self potential f_aa is required" : "debiased: the self potential g_bb is required");
  require(v && out, "v and out are required");
  const int64_t rows = wrtX ? hc.n : hc.m;
  const T* f = static_cast<const T*>(pot.fBa);
  const T* g = static_cast<const T*>(pot.gAb);
  checkFinite(f, hc.n, "f_ba");
  checkFinite(g, hc.m, "g_ab");
  if (st.debias) checkFinite(static_cast<const T*>(self), rows, wrtX ? "f_aa" : "g_bb");
  checkFinite(static_cast<const T*>(v), rows * hc.d, "v");

  helpers::HvpSettings hs;
  hs.eps = st.epsList.back();
  hs.cost = st.cost;
  hs.rhoMoving = wrtX ? st.rhoX : st.rhoY;
  hs.rhoFixed = wrtX ? st.rhoY : st.rhoX;
  hs.debias = st.debias;
  constexpr bool single = std::is_same<T, float>::value;
  hs.cgTol = h.cg_tol > 0 ? h.cg_tol : (single ? 1e-5 : 1e-10);
  hs.cgMaxIters = h.cg_max_iters > 0 ? h.cg_max_iters : 1000;
  hs.regularization = h.regularization >= 0 ? h.regularization : (single ? 1e-5 : 1e-10);
  hs.maxPlanEntries = h.max_plan_entries >= 0 ? h.max_plan_entries : 64 * (hc.n + hc.m);
  const helpers::HvpCloud<T> xs{hc.x, hc.logA.data(), f, hc.n}, ys{hc.y, hc.logB.data(), g, hc.m};
  helpers::HvpReport r;
  sk_options onDevice = o;
  onDevice.allow_tf32 = h.allow_tf32;
  report.device_used = withBackend(onDevice, [&](auto& backend) {
    using Backend = std::decay_t<decltype(backend)>;
    helpers::HessianVectorProduct<T, Backend> hvp(backend, wrtX ? xs : ys, wrtX ? ys : xs,
                                                  static_cast<const T*>(self), hc.d, hs);
    r = hvp.apply(static_cast<const T*>(v), static_cast<T*>(out));
  });
  report.cg_iterations = r.iterations;
  report.cg_residual = r.residual;
  report.converged = r.converged;
  report.plan_entries = r.planEntries;
  if (!r.converged && !h.allow_unconverged) {
    char message[200];
    std::snprintf(message, sizeof message,
                  "hvp: conjugate gradient stopped at relative residual %.3g after %d iterations (cg_tol %.3g, "
                  "cg_max_iters %d)", r.residual, r.iterations, hs.cgTol, hs.cgMaxIters);
    throw Error(SK_NOT_CONVERGED, message);
  }
}

void checkHeader(const sk_clouds& c) {
  require(c.dtype == SK_FLOAT32 || c.dtype == SK_FLOAT64, "dtype must be float32 or float64");
  require(c.batch >= 1, "batch must be >= 1");
  require(c.d >= 1, "d must be >= 1");
  require(c.x && c.y, "x and y are required");
  require(c.memory == SK_MEMORY_HOST || c.memory == SK_MEMORY_CUDA, "memory must be host or cuda");
}

// Plan products and HVPs read the clouds on the host as well (centring, the plan's support).
void requireHostMemory(const sk_clouds& c, const char* op) {
  require(c.memory == SK_MEMORY_HOST, std::string(op) + " takes x and y in host memory (memory CUDA: sk_divergence only)");
}

}  // namespace

int32_t cudaDevices() {
#ifdef SINKHORN_WITH_CUDA
  return helpers::cudaDeviceCount();
#else
  return 0;
#endif
}

void divergenceOp(const sk_options& o, const sk_clouds& c, sk_outputs& out) {
  checkHeader(c);
  require(out.loss != nullptr, "outputs.loss is required");
  if (c.dtype == SK_FLOAT32)
    divergenceTyped<float>(o, c, out);
  else
    divergenceTyped<double>(o, c, out);
}

void planProductOp(const sk_options& o, const sk_clouds& c, const void* f, const void* g, bool transpose, int64_t k,
                   const void* v, void* out) {
  checkHeader(c);
  requireHostMemory(c, "sk_plan_product");
  if (c.dtype == SK_FLOAT32)
    planProductTyped<float>(o, c, f, g, transpose, k, v, out);
  else
    planProductTyped<double>(o, c, f, g, transpose, k, v, out);
}

void hvpOp(const sk_options& o, const sk_clouds& c, const Potentials& potentials, const sk_hvp_options& h,
           const void* v, void* out, sk_hvp_report& report) {
  checkHeader(c);
  requireHostMemory(c, "sk_hvp");
  if (c.dtype == SK_FLOAT32)
    hvpTyped<float>(o, c, potentials, h, v, out, report);
  else
    hvpTyped<double>(o, c, potentials, h, v, out, report);
}

}  // namespace sinkhorn
