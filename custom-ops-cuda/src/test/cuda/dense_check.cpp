// Standalone check and timing harness of the dense resident solve (the whole loop in one launch,
// dense_kernels.cu) against the CPU backend's loop (dense_solver.h), without the JVM:
//
//   dense_check check                  random batches: masks, zero weights, balanced and relaxed,
//                                      fixed iterations and thresholds, float and double, clusters
//                                      of 1 to 16 CTAs
//   dense_check small                  a few short solves for compute-sanitizer (racecheck, memcheck)
//   dense_check time B N iters [reps [gap_us [touch_mb]]]
//                                      median ms of the resident solve of B items of N x N (float), host
//                                      clock around launch and synchronisation; gap_us of host time
//                                      before each launch, as a caller's own work between calls (writing
//                                      touch_mb MiB of memory, or asleep)
//
// Built by build.sh beside this file (nvcc, no JDK needed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <cuda_runtime.h>

#include "ops/declarable/helpers/cpu/cpu_backend.h"
#include "ops/declarable/helpers/cuda/cuda_backend.h"
#include "ops/declarable/helpers/dense_solver.h"
#include "system/status.h"

using sinkhorn::helpers::Buffer;
using sinkhorn::helpers::CpuBackend;
using sinkhorn::helpers::CudaBackend;
using sinkhorn::helpers::DenseHostOutputs;
using sinkhorn::helpers::DenseHostProblem;
using sinkhorn::helpers::DenseInputs;
using sinkhorn::helpers::DenseResidentSolve;
using sinkhorn::helpers::DenseSettings;
using sinkhorn::helpers::DenseSolver;

namespace {

int failures = 0;
constexpr double kInf = std::numeric_limits<double>::infinity();

struct Case {
  int64_t batch, n, m;
  double tauA, tauB;  // +inf: balanced
  bool masked;
  int32_t maxIters;
  double threshold;
  int32_t checkEvery = 10;  // 1: both parities of the resident solve's change slots at every check
  double costScale = 1;     // C uniform in [0, costScale)
};

// A random batch as DenseReference.random of the Java tests: C uniform in [0, 1) (NaN where masked),
// weights (u + 0.1) normalised over the present entries; with masks, a random number of present
// entries per item and, beside them, a present entry of weight zero (a -inf bias that is not masked).
template <typename T>
struct HostBatch {
  std::vector<T> cost;
  DenseHostProblem<T> p;

  HostBatch(const Case& c, std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(0, 1);
    p.batch = c.batch, p.n = c.n, p.m = c.m;
    side(c.batch, c.n, c.masked, rng, p.a, p.log2A, p.maskA, p.massA);
    side(c.batch, c.m, c.masked, rng, p.b, p.log2B, p.maskB, p.massB);
    cost.resize(size_t(c.batch * c.n * c.m));
    for (int64_t k = 0; k < c.batch; ++k)
      for (int64_t i = 0; i < c.n; ++i)
        for (int64_t j = 0; j < c.m; ++j)
          cost[(k * c.n + i) * c.m + j] =
              p.maskA[k * c.n + i] && p.maskB[k * c.m + j] ? T(c.costScale * u(rng)) : std::numeric_limits<T>::quiet_NaN();
    p.cost = cost.data();
  }

  static void side(int64_t batch, int64_t length, bool masked, std::mt19937_64& rng, std::vector<double>& w,
                   std::vector<T>& log2W, std::vector<uint8_t>& present, std::vector<double>& mass) {
    std::uniform_real_distribution<double> u(0, 1);
    w.assign(size_t(batch * length), 0), present.assign(size_t(batch * length), 0), mass.assign(size_t(batch), 0);
    log2W.assign(size_t(batch * length), -std::numeric_limits<T>::infinity());
    std::vector<int64_t> order(static_cast<size_t>(length));
    for (int64_t k = 0; k < batch; ++k) {
      for (int64_t i = 0; i < length; ++i) order[size_t(i)] = i;
      std::shuffle(order.begin(), order.end(), rng);
      const int64_t count = masked ? 1 + int64_t(u(rng) * double(length)) % length : length;
      double sum = 0;
      for (int64_t t = 0; t < count; ++t) {
        const int64_t at = k * length + order[size_t(t)];
        present[size_t(at)] = 1;
        w[size_t(at)] = masked && count > 1 && t == count - 1 ? 0.0 : u(rng) + 0.1;
        sum += w[size_t(at)];
      }
      for (int64_t i = k * length; i < (k + 1) * length; ++i) {
        if (!present[size_t(i)]) continue;
        w[size_t(i)] /= sum;
        if (w[size_t(i)] > 0) log2W[size_t(i)] = T(std::log2(w[size_t(i)]));
        mass[size_t(k)] += w[size_t(i)];
      }
    }
  }
};

struct Solved {
  std::vector<double> f, g;
  std::vector<int32_t> iterations, converged;
};

template <typename T>
Solved onCpu(const DenseHostProblem<T>& p, const DenseSettings& st) {
  CpuBackend be;
  std::vector<T> f(size_t(p.batch * p.n)), g(size_t(p.batch * p.m));
  std::vector<double> cost(size_t(p.batch));
  Solved s;
  s.iterations.resize(size_t(p.batch)), s.converged.resize(size_t(p.batch));
  const DenseHostOutputs<T> out{cost.data(), s.iterations.data(), s.converged.data(), nullptr, f.data(), g.data(),
                                nullptr, nullptr, nullptr};
  DenseSolver<T, CpuBackend>(be, p, st).solve(out);
  s.f.assign(f.begin(), f.end()), s.g.assign(g.begin(), g.end());
  return s;
}

// The resident launch alone (what DenseSolver::resident does), so that a solve that does not fit is
// reported rather than run on the launch-per-pass path; the inputs stay on the device between launches.
template <typename T>
class ResidentRun {
 public:
  ResidentRun(CudaBackend& be, const DenseHostProblem<T>& p, const DenseSettings& st)
      : be_(be), batch_(p.batch), in_(be, p), f_(be, size_t(p.batch * p.n)), g_(be, size_t(p.batch * p.m)),
        biasA_(be, size_t(p.batch * p.n)), biasB_(be, size_t(p.batch * p.m)), outcome_(be, size_t(2 * p.batch)),
        solve_{T(sinkhorn::helpers::kDenseLog2e / st.eps), T(st.eps * st.damping(st.tauA)),
               T(st.eps * st.damping(st.tauB)), st.maxIters, st.checkEvery, st.threshold, f_.get(), g_.get(),
               biasA_.get(), biasB_.get(), outcome_.get(), outcome_.get() + p.batch} {}

  bool launch() { return be_.denseResident(in_.batch(), solve_); }

  Solved results() const {
    const std::vector<T> f = f_.toHost(), g = g_.toHost();
    const std::vector<int32_t> o = outcome_.toHost();
    Solved s;
    s.f.assign(f.begin(), f.end()), s.g.assign(g.begin(), g.end());
    s.iterations.assign(o.begin(), o.begin() + batch_), s.converged.assign(o.begin() + batch_, o.end());
    return s;
  }

 private:
  CudaBackend& be_;
  int64_t batch_;
  DenseInputs<T, CudaBackend> in_;
  Buffer<T, CudaBackend> f_, g_, biasA_, biasB_;
  Buffer<int32_t, CudaBackend> outcome_;
  DenseResidentSolve<T> solve_;
};

DenseSettings settingsOf(const Case& c) {
  DenseSettings st;
  st.eps = 0.25;  // DenseCudaTest's
  st.tauA = c.tauA, st.tauB = c.tauB, st.maxIters = c.maxIters, st.threshold = c.threshold, st.checkEvery = c.checkEvery;
  return st;
}

void fail(const std::string& what) {
  std::printf("FAIL %s\n", what.c_str());
  ++failures;
}

// DenseCudaTest's criteria: potentials within tolerance x the largest |C| of the present entries
// (NaN where present fails), the same converged flags, and the same iterations (within one check
// interval when a threshold stops the loop).
template <typename T>
void runCase(CudaBackend& be, const Case& c, std::mt19937_64& rng) {
  const HostBatch<T> h(c, rng);
  const DenseSettings st = settingsOf(c);
  const std::string name = std::string(sizeof(T) == 8 ? "float64" : "float32") + " batch " + std::to_string(c.batch) +
                           " n " + std::to_string(c.n) + " m " + std::to_string(c.m) + " tauA " +
                           std::to_string(c.tauA) + " tauB " + std::to_string(c.tauB) + (c.masked ? " masked" : "") +
                           " maxIters " + std::to_string(c.maxIters) + " threshold " + std::to_string(c.threshold) +
                           " checkEvery " + std::to_string(c.checkEvery);
  const int before = failures;
  ResidentRun<T> run(be, h.p, st);
  if (!run.launch()) {
    fail(name + ": not resident on this device");
    return;
  }
  const Solved gpu = run.results();
  const Solved cpu = onCpu(h.p, st);
  double costScale = 0;
  for (T e : h.cost)
    if (std::isfinite(double(e))) costScale = std::max(costScale, std::fabs(double(e)));
  const double bound = (sizeof(T) == 8 ? 1e-9 : 2e-4) * costScale;
  auto compare = [&](const char* what, const std::vector<double>& a, const std::vector<double>& b,
                     const std::vector<uint8_t>& present) {
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      const double d = std::fabs(a[i] - b[i]);
      if (!(d <= bound)) worst = std::isnan(d) ? kInf : std::max(worst, d);
      if (!present[i] && a[i] != 0) worst = kInf;  // masked potentials are 0
    }
    if (worst > 0) fail(name + ": " + what + " differs by " + std::to_string(worst) + " (bound " + std::to_string(bound) + ")");
  };
  compare("f", gpu.f, cpu.f, h.p.maskA);
  compare("g", gpu.g, cpu.g, h.p.maskB);
  for (int64_t k = 0; k < c.batch; ++k) {
    const int32_t difference = std::abs(gpu.iterations[size_t(k)] - cpu.iterations[size_t(k)]);
    if (gpu.converged[size_t(k)] != cpu.converged[size_t(k)] || difference > (c.threshold > 0 ? st.checkEvery : 0))
      fail(name + ": item " + std::to_string(k) + " stops at " + std::to_string(gpu.iterations[size_t(k)]) +
           " (converged " + std::to_string(gpu.converged[size_t(k)]) + "), the CPU at " +
           std::to_string(cpu.iterations[size_t(k)]) + " (converged " + std::to_string(cpu.converged[size_t(k)]) + ")");
  }
  std::printf("%s %s: iterations %d\n", failures == before ? "ok" : "FAILED", name.c_str(), gpu.iterations[0]);
}

// DenseCudaTest's resident cases, clusters of 1 and 2 CTAs (many small items, a wide item) beside
// them, and checks at every iteration and every third (double: its stopping points are not noise).
void checkAll() {
  std::mt19937_64 rng(11);
  CudaBackend be(false, SK_CUDA_GRAPHS_OFF);
  const Case floats[] = {
      {8, 256, 256, kInf, kInf, true, 100, 0},     {8, 256, 256, 0.5, 2.0, true, 5000, 1e-5},
      {64, 33, 17, 0.5, kInf, true, 5000, 1e-5},   {4, 256, 300, kInf, kInf, true, 100, 0},
      {4, 256, 300, 0.5, 2.0, true, 5000, 1e-5},   {200, 20, 40, kInf, 2.0, true, 100, 0},
      {3, 40, 1000, kInf, kInf, false, 5000, 1e-5}, {1, 1, 1, kInf, kInf, false, 100, 0},
      // clusters of 4 whose column slabs would not fit: the rows-only layout
      {40, 384, 384, kInf, 2.0, true, 30, 0},
      // costs spread wide (30 x scale2 in log2 units): potentials that move far between iterations
      {8, 256, 256, kInf, kInf, true, 100, 0, 10, 30},  {4, 256, 300, 0.5, 2.0, true, 5000, 1e-5, 10, 30},
  };
  for (const Case& c : floats) runCase<float>(be, c, rng);
  const Case doubles[] = {
      {3, 100, 130, kInf, 2.0, true, 100, 0},      {3, 100, 130, kInf, kInf, false, 5000, 1e-11},
      {2, 300, 200, kInf, 2.0, true, 5000, 1e-11}, {2, 300, 200, kInf, kInf, false, 100, 0},
      {64, 33, 17, 0.5, kInf, true, 5000, 1e-11},  {2, 300, 200, 0.5, 0.5, true, 5000, 1e-11, 3},
      {8, 256, 256, kInf, kInf, true, 5000, 1e-11, 1},
      // clusters of 8 whose column slabs do not all fit at once: the rows-only layout
      {24, 256, 300, 0.5, kInf, true, 5000, 1e-11},
      {3, 100, 130, kInf, 2.0, true, 5000, 1e-11, 10, 30},
  };
  for (const Case& c : doubles) runCase<double>(be, c, rng);
}

// Short solves through the checks (a threshold never reached), in clusters of 16 (256 rows), 8 and 1.
void smallSolves() {
  std::mt19937_64 rng(5);
  CudaBackend be(false, SK_CUDA_GRAPHS_OFF);
  runCase<float>(be, {1, 256, 48, 0.5, kInf, true, 20, 1e-30}, rng);
  runCase<float>(be, {2, 64, 40, kInf, kInf, true, 8, 1e-30, 1}, rng);  // before float32 reaches a fixed point (a change of 0)
  runCase<double>(be, {1, 256, 33, kInf, 2.0, true, 20, 1e-30}, rng);
  runCase<double>(be, {3, 10, 20, kInf, kInf, false, 20, 1e-30}, rng);
  runCase<float>(be, {40, 384, 384, kInf, kInf, true, 3, 1e-30, 1}, rng);  // rows only
}

// gapUs: host time between launches, as a caller's own work between calls: writing touchMb MiB of
// host memory over and over (cold caches for the next launch), or asleep when touchMb is 0.
void timeSolve(int64_t batch, int64_t n, int32_t iters, int reps, int gapUs, int touchMb) {
  std::mt19937_64 rng(1);
  const Case c{batch, n, n, kInf, kInf, false, iters, 0};
  const HostBatch<float> h(c, rng);
  CudaBackend be(false, SK_CUDA_GRAPHS_OFF);
  const DenseSettings st = settingsOf(c);
  ResidentRun<float> run(be, h.p, st);
  std::vector<double> ms;
  std::vector<unsigned char> touched(size_t(touchMb) << 20);
  for (int r = 0; r < reps + 1; ++r) {  // the first launch sets the kernel's attributes: not timed
    be.synchronize();
    const auto gapEnd = std::chrono::steady_clock::now() + std::chrono::microseconds(gapUs);
    if (touched.empty()) std::this_thread::sleep_until(gapEnd);
    for (unsigned char fill = 0; !touched.empty() && std::chrono::steady_clock::now() < gapEnd; ++fill)
      std::memset(touched.data(), fill, touched.size());
    const auto t0 = std::chrono::steady_clock::now();
    if (!run.launch()) {
      fail("time: not resident on this device");
      return;
    }
    be.synchronize();
    if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms[ms.size() / 2];
  std::printf("resident solve batch %lld n = m = %lld, %d iterations: median %.3f ms (%.2f us per iteration, "
              "one launch)\n",
              (long long)batch, (long long)n, iters, median, 1e3 * median / iters);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  try {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
      std::printf("device: %s, %d SMs, %zu KiB shared memory per block (opt-in)\n", prop.name, prop.multiProcessorCount,
                  prop.sharedMemPerBlockOptin >> 10);
    if (mode == "check") {
      checkAll();
    } else if (mode == "small") {
      smallSolves();
    } else if (mode == "time") {
      timeSolve(argc > 2 ? std::atoll(argv[2]) : 8, argc > 3 ? std::atoll(argv[3]) : 256,
                argc > 4 ? std::atoi(argv[4]) : 100, argc > 5 ? std::atoi(argv[5]) : 20, argc > 6 ? std::atoi(argv[6]) : 0,
                argc > 7 ? std::atoi(argv[7]) : 0);
    } else {
      std::printf("unknown mode %s (check, small, time)\n", mode.c_str());
      return 2;
    }
  } catch (const sinkhorn::Error& e) {
    std::printf("sinkhorn::Error %d: %s\n", int(e.code()), e.what());
    return 2;
  }
  std::printf("%s: %d failure(s)\n", mode.c_str(), failures);
  return failures ? 1 : 0;
}
