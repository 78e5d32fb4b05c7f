// Standalone check and timing harness of the CUDA backend against the CPU backend (float64 reference).
//
//   softmin_check check            random problems: every option of SoftminPass, three precisions
//   softmin_check time [n d reps]  Sinkhorn-like passes at n = m (default 50000, d 64 and 3)
//   softmin_check small            a small solve for compute-sanitizer
//
// Built by build.sh beside this file (nvcc, no JDK needed).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <cuda_runtime.h>

#include "ops/declarable/helpers/cpu/cpu_backend.h"
#include "ops/declarable/helpers/cuda/cuda_backend.h"
#include "system/status.h"

#ifdef SINKHORN_SOFTMIN_STATS
namespace sinkhorn { namespace helpers { namespace cuda {
void softminStats(unsigned long long* out, bool reset);
}}}
#endif

using sinkhorn::helpers::CpuBackend;
using sinkhorn::helpers::CudaBackend;
using sinkhorn::helpers::SoftminPass;

namespace {

int failures = 0;
constexpr double kLog2e = 1.4426950408889634;  // log2(e)

struct Problem {
  int64_t n = 0, m = 0, d = 0, k = 0;
  int64_t q = 0, pairK = 0;         // pair-weighted average: pairRow n x q, pairCol m x q
  std::vector<int64_t> xOff, yOff;  // segments + 1
  std::vector<double> x, y, xSq, ySq, w, h, prev, v, pairRow, pairCol;
  std::vector<uint8_t> active;
  double eps = 0.1, cost = 1, damping = 1, blend = 0;
  bool usePrev = false, useH = true, useActive = false, useLse = true;
  int64_t segments() const { return static_cast<int64_t>(xOff.size()) - 1; }
};

std::vector<int64_t> splitSizes(int64_t total, int64_t parts, std::mt19937_64& rng, bool allowEmpty) {
  std::vector<int64_t> off(parts + 1, 0);
  std::vector<int64_t> cuts;
  std::uniform_int_distribution<int64_t> u(allowEmpty ? 0 : 1, allowEmpty ? total : total - 1);
  for (int64_t i = 0; i + 1 < parts; ++i) cuts.push_back(u(rng));
  std::sort(cuts.begin(), cuts.end());
  if (!allowEmpty) cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
  off.assign(1, 0);
  for (int64_t c : cuts) off.push_back(c);
  off.push_back(total);
  return off;
}

Problem makeProblem(std::mt19937_64& rng, int64_t n, int64_t m, int64_t d, int64_t segments, int64_t k,
                    bool allowEmpty) {
  Problem p;
  p.n = n;
  p.m = m;
  p.d = d;
  p.k = k;
  p.xOff = segments == 1 ? std::vector<int64_t>{0, n} : splitSizes(n, segments, rng, allowEmpty);
  p.yOff = segments == 1 ? std::vector<int64_t>{0, m} : splitSizes(m, static_cast<int64_t>(p.xOff.size()) - 1, rng, allowEmpty);
  while (p.yOff.size() < p.xOff.size()) p.yOff.push_back(m);
  while (p.xOff.size() < p.yOff.size()) p.xOff.push_back(n);
  std::normal_distribution<double> nd(0, 1);
  std::uniform_real_distribution<double> ud(0, 1);
  p.x.resize(n * d);
  p.y.resize(m * d);
  for (auto& e : p.x) e = nd(rng);
  for (auto& e : p.y) e = nd(rng) + 0.3;
  p.w.resize(m);
  for (int64_t j = 0; j < m; ++j) p.w[j] = ud(rng) < 0.03 ? -100000.0 : std::log((ud(rng) + 0.1) / m);
  p.h.resize(m);
  for (auto& e : p.h) e = 0.5 * nd(rng);
  p.prev.resize(n);
  for (auto& e : p.prev) e = nd(rng);
  p.v.resize(m * std::max<int64_t>(k, 1));
  for (auto& e : p.v) e = nd(rng);
  p.active.resize(p.segments());
  for (auto& e : p.active) e = ud(rng) < 0.7;
  return p;
}

template <typename T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

// Adds pair weights of dimension q over the first pairK columns of v.
void addPairs(Problem& p, std::mt19937_64& rng, int64_t q, int64_t pairK) {
  std::normal_distribution<double> nd(0, 1);
  p.q = q, p.pairK = pairK;
  p.pairRow.resize(p.n * q), p.pairCol.resize(p.m * q);
  for (auto& e : p.pairRow) e = nd(rng);
  for (auto& e : p.pairCol) e = nd(rng);
}

struct Outputs {
  std::vector<double> out, lse, avg, pairAvg;
};

// Runs the pass on the CPU in double: the reference.
Outputs reference(const Problem& p) {
  CpuBackend cpu;
  std::vector<double> xSq(p.n), ySq(p.m);
  cpu.squaredNorms(p.x.data(), p.n, p.d, p.cost, xSq.data());
  cpu.squaredNorms(p.y.data(), p.m, p.d, p.cost, ySq.data());
  Outputs o;
  o.out = p.prev;  // inactive rows keep prev
  o.lse.assign(p.n, NAN);
  o.avg.assign(p.n * std::max<int64_t>(p.k, 1), NAN);
  SoftminPass<double> s{};
  s.x = p.x.data();
  s.y = p.y.data();
  s.d = p.d;
  s.xOffsets = p.xOff.data();
  s.yOffsets = p.yOff.data();
  s.segments = p.segments();
  s.n = p.n;
  s.m = p.m;
  s.xSqNorm = xSq.data();
  s.ySqNorm = ySq.data();
  s.yLogWeights = p.w.data();
  s.yPotential = p.useH ? p.h.data() : nullptr;
  s.eps = p.eps;
  s.cost = p.cost;
  s.damping = p.damping;
  s.prev = p.usePrev ? o.out.data() : nullptr;
  s.blend = p.blend;
  s.out = o.out.data();
  s.lse = p.useLse ? o.lse.data() : nullptr;
  s.v = p.k ? p.v.data() : nullptr;
  s.k = p.k;
  s.avg = p.k ? o.avg.data() : nullptr;
  s.active = p.useActive ? p.active.data() : nullptr;
  if (p.pairK) {
    o.pairAvg.assign(p.n * p.pairK, NAN);
    s.pairRow = p.pairRow.data(), s.pairCol = p.pairCol.data(), s.q = p.q, s.pairK = p.pairK;
    s.pairAvg = o.pairAvg.data();
  }
  cpu.softmin(&s, 1);
  return o;
}

// Device copy of a problem for one precision.
template <typename T>
struct DeviceProblem {
  CudaBackend& be;
  std::vector<void*> owned;
  SoftminPass<T> pass{};
  T* out = nullptr;
  T* lse = nullptr;
  T* avg = nullptr;
  T* pairAvg = nullptr;
  template <typename U>
  U* put(const std::vector<U>& h) {
    U* p = static_cast<U*>(be.allocate(std::max<size_t>(1, h.size()) * sizeof(U)));
    owned.push_back(p);
    if (!h.empty()) be.upload(p, h.data(), h.size() * sizeof(U));
    return p;
  }
  DeviceProblem(CudaBackend& backend, const Problem& p) : be(backend) {
    const T* x = put(cast<T>(p.x));
    const T* y = put(cast<T>(p.y));
    T* xSq = put(std::vector<T>(p.n));
    T* ySq = put(std::vector<T>(p.m));
    be.squaredNorms(x, p.n, p.d, T(p.cost), xSq);
    be.squaredNorms(y, p.m, p.d, T(p.cost), ySq);
    std::vector<T> poison(p.n, std::numeric_limits<T>::quiet_NaN());
    std::vector<T> initOut = p.usePrev ? cast<T>(p.prev) : poison;
    if (p.useActive && !p.usePrev) initOut = poison;
    out = put(initOut);
    lse = put(poison);
    avg = put(std::vector<T>(p.n * std::max<int64_t>(p.k, 1), std::numeric_limits<T>::quiet_NaN()));
    pass.x = x;
    pass.y = y;
    pass.d = p.d;
    pass.xOffsets = put(p.xOff);
    pass.yOffsets = put(p.yOff);
    pass.segments = p.segments();
    pass.n = p.n;
    pass.m = p.m;
    pass.xSqNorm = xSq;
    pass.ySqNorm = ySq;
    pass.yLogWeights = put(cast<T>(p.w));
    pass.yPotential = p.useH ? put(cast<T>(p.h)) : nullptr;
    pass.eps = T(p.eps);
    pass.cost = T(p.cost);
    pass.damping = T(p.damping);
    pass.prev = p.usePrev ? out : nullptr;  // aliasing prev and out, as the solver does
    pass.blend = T(p.blend);
    pass.out = out;
    pass.lse = p.useLse ? lse : nullptr;
    pass.v = p.k ? put(cast<T>(p.v)) : nullptr;
    pass.k = p.k;
    pass.avg = p.k ? avg : nullptr;
    pass.active = p.useActive ? put(p.active) : nullptr;
    if (p.pairK) {
      pairAvg = put(std::vector<T>(p.n * p.pairK, std::numeric_limits<T>::quiet_NaN()));
      pass.pairRow = put(cast<T>(p.pairRow)), pass.pairCol = put(cast<T>(p.pairCol));
      pass.q = p.q, pass.pairK = p.pairK, pass.pairAvg = pairAvg;
    }
  }
  ~DeviceProblem() {
    for (void* q : owned) be.release(q);
  }
  template <typename U>
  std::vector<double> get(const U* src, size_t count) {
    std::vector<U> h(count);
    be.download(h.data(), src, count * sizeof(U));
    return std::vector<double>(h.begin(), h.end());
  }
};

struct Err {
  double rel = 0, maxAbs = 0;
  int64_t mismatchedNan = 0;
};

// Compares where the reference is finite (NaN/inf must match exactly).
Err compare(const std::vector<double>& got, const std::vector<double>& ref, const std::vector<bool>* mask = nullptr,
            int64_t stride = 1) {
  Err e;
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (mask && !(*mask)[i / stride]) continue;
    const double r = ref[i], g = got[i];
    if (!std::isfinite(r) || !std::isfinite(g)) {
      const bool same = (std::isnan(r) && std::isnan(g)) || r == g;
      if (!same) ++e.mismatchedNan;
      continue;
    }
    num += (g - r) * (g - r);
    den += r * r;
    e.maxAbs = std::max(e.maxAbs, std::fabs(g - r));
  }
  e.rel = den > 0 ? std::sqrt(num / den) : std::sqrt(num);
  return e;
}

const char* precisionName(int prec) { return prec == 0 ? "tf32" : prec == 1 ? "fp32" : "fp64"; }

template <typename T>
void runChecks(DeviceProblem<T>& dp, int prec, const Problem& p, const Outputs& ref, const char* label) {
  std::vector<double> out = dp.get(dp.out, p.n);
  std::vector<double> lse = dp.get(dp.lse, p.n);
  std::vector<double> avg = dp.get(dp.avg, p.n * std::max<int64_t>(p.k, 1));
  // rows whose lse/avg are written: active segments
  std::vector<bool> written(p.n, true);
  if (p.useActive)
    for (int64_t s = 0; s < p.segments(); ++s)
      for (int64_t i = p.xOff[s]; i < p.xOff[s + 1]; ++i) written[i] = p.active[s] != 0;
  // Averages over no columns (a segment without columns; the API never makes one) are undefined.
  std::vector<bool> averaged = written;
  for (int64_t s = 0; s < p.segments(); ++s)
    if (p.yOff[s + 1] == p.yOff[s])
      for (int64_t i = p.xOff[s]; i < p.xOff[s + 1]; ++i) averaged[i] = false;
  const Err eo = compare(out, ref.out, p.useActive && !p.usePrev ? &written : nullptr);
  const Err el = p.useLse ? compare(lse, ref.lse, &written) : Err{};
  const Err ea = p.k ? compare(avg, ref.avg, &averaged, p.k) : Err{};
  const Err ep = p.pairK ? compare(dp.get(dp.pairAvg, p.n * p.pairK), ref.pairAvg, &averaged, p.pairK) : Err{};
  // Tolerances: TF32 scores carry ~2^-11 relative error of scale2 |x||y| (base-2 units); pair-weighted
  // averages always run in the precision of T (CUDA-core kernel).
  double tolOut = prec == 0 ? 1e-2 : prec == 1 ? 2e-5 : 1e-11;
  double tolAvg = prec == 0 ? 5e-2 : prec == 1 ? 1e-4 : 1e-10;
  const bool pairTf32 = prec == 0 && p.pairK;  // the whole pass then runs in strict float32
  if (pairTf32) tolOut = 2e-5, tolAvg = 1e-4;
  const bool ok = eo.rel <= tolOut && eo.mismatchedNan == 0 && el.mismatchedNan == 0 && ea.mismatchedNan == 0 &&
                  ea.rel <= tolAvg && ep.mismatchedNan == 0 && ep.rel <= tolAvg;
  if (!ok) ++failures;
  std::printf("%-4s %-5s %-34s out rel %.2e (max %.2e)  lse max %.2e  avg rel %.2e  pair rel %.2e  nan-mismatch "
              "%lld/%lld/%lld/%lld\n",
              ok ? "ok" : "FAIL", precisionName(prec), label, eo.rel, eo.maxAbs, el.maxAbs, ea.rel, ep.rel,
              (long long)eo.mismatchedNan, (long long)el.mismatchedNan, (long long)ea.mismatchedNan,
              (long long)ep.mismatchedNan);
}

template <typename T>
void runCase(CudaBackend& be, int prec, const Problem& p, const Outputs& ref, const char* label) {
  DeviceProblem<T> dp(be, p);
  be.softmin(&dp.pass, 1);
  runChecks(dp, prec, p, ref, label);
}

// The carried reference (SoftminPass::lseCarry, TF32-class kernels): a first run at potential h' writes
// the carry, a second run at h = h' + delta (|delta_j| log2(e)/eps up to drift) reads it; the second
// run's outputs against the float64 reference at h. Drifts above the kernels' limit (96) take the
// uncarried path.
void runCarried(std::mt19937_64& rng, Problem p, double drift, const char* label) {
  const std::vector<double> before = p.h;
  std::uniform_real_distribution<double> ud(-1, 1);
  const double reach = drift * p.eps / kLog2e;
  for (auto& e : p.h) e += reach * ud(rng);
  const Outputs ref = reference(p);
  CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
  DeviceProblem<float> dp(be, p);
  float* carry = dp.put(std::vector<float>(p.n, std::numeric_limits<float>::quiet_NaN()));
  float* now = const_cast<float*>(dp.pass.yPotential);
  const std::vector<float> hNow = cast<float>(p.h), hBefore = cast<float>(before);
  be.upload(now, hBefore.data(), hBefore.size() * sizeof(float));
  SoftminPass<float> first = dp.pass;
  first.prev = nullptr, first.blend = 0, first.out = dp.avg;  // scratch rows: the first run's outputs are not checked
  first.lseCarry = carry;
  be.softmin(&first, 1);
  float* prevPotential = dp.put(hBefore);
  be.upload(now, hNow.data(), hNow.size() * sizeof(float));
  SoftminPass<float> second = dp.pass;
  second.lseCarry = carry, second.yPotentialPrev = prevPotential;
  be.softmin(&second, 1);
  runChecks(dp, 0, p, ref, label);
}

// One problem on a fresh backend of each precision (TF32-class, strict float32, float64).
void runEveryPrecision(const Problem& p, const Outputs& ref, const char* label) {
  for (int prec = 0; prec < 3; ++prec) {
    CudaBackend be(prec == 0, SK_CUDA_GRAPHS_OFF);
    if (prec == 2) runCase<double>(be, prec, p, ref, label);
    else runCase<float>(be, prec, p, ref, label);
  }
}

void checkAll() {
  std::mt19937_64 rng(12345);
  struct Shape {
    int64_t n, m, d, segments, k;
    bool empty;
  };
  const Shape shapes[] = {
      {1, 1, 1, 1, 0, false},        {7, 300, 3, 1, 0, false},      {300, 7, 3, 1, 3, false},
      {1000, 777, 1, 1, 1, false},   {1000, 1500, 3, 1, 3, false},  {513, 2000, 64, 1, 64, false},
      {2000, 513, 17, 1, 70, false}, {700, 900, 100, 1, 0, false},  {300, 400, 1500, 1, 0, false},
      {257, 300, 130, 1, 130, false}, {3000, 2500, 64, 7, 0, false}, {2000, 2200, 3, 40, 3, true},
      {5000, 4000, 32, 1, 5, false}, {4000, 6000, 8, 1, 0, false},   {3000, 2500, 64, 1, 0, false},
      {2000, 1100, 40, 1, 0, false},  {20000, 18000, 64, 1, 0, false},
  };
  for (const Shape& sh : shapes) {
    for (int variant = 0; variant < 3; ++variant) {
      Problem p = makeProblem(rng, sh.n, sh.m, sh.d, sh.segments, sh.k, sh.empty);
      p.eps = variant == 0 ? 0.1 : variant == 1 ? 0.5 : 0.02;
      p.cost = variant == 1 ? 0.5 : 1.0;
      p.usePrev = variant >= 1;
      p.blend = variant == 1 ? 0.5 : 0.0;
      p.damping = variant == 2 ? 0.8 : 1.0;
      p.useH = variant != 1;
      p.useActive = variant == 2 && sh.segments > 1;
      p.useLse = true;
      const Outputs ref = reference(p);
      char label[160];
      std::snprintf(label, sizeof label, "n%lld m%lld d%lld s%lld k%lld v%d", (long long)sh.n, (long long)sh.m,
                    (long long)sh.d, (long long)sh.segments, (long long)sh.k, variant);
      runEveryPrecision(p, ref, label);
    }
  }
  // Huge eps: tiny dots, so that the FP16 kernels scale them (K != 1, see residentScales).
  for (int64_t d : {3, 64}) {
    Problem p = makeProblem(rng, 3000, 2600, d, 1, 0, false);
    p.eps = 1e4;
    p.useLse = true;
    const Outputs ref = reference(p);
    char label[160];
    std::snprintf(label, sizeof label, "huge eps n3000 m2600 d%lld", (long long)d);
    runEveryPrecision(p, ref, label);
  }
  // Pair-weighted averages (the HVP's second moments), plain and batched, k above and below 64.
  {
    struct PairShape {
      int64_t n, m, d, segments, k, q, pairK;
    };
    const PairShape pairShapes[] = {
        {300, 400, 3, 1, 3, 4, 3},        {1000, 777, 64, 1, 64, 65, 64}, {777, 1000, 64, 1, 129, 130, 64},
        {2000, 1500, 3, 9, 7, 8, 3},      {130, 70, 1500, 1, 3, 1501, 1},
    };
    for (const PairShape& sh : pairShapes) {
      Problem p = makeProblem(rng, sh.n, sh.m, sh.d, sh.segments, sh.k, false);
      addPairs(p, rng, sh.q, sh.pairK);
      const Outputs ref = reference(p);
      char label[160];
      std::snprintf(label, sizeof label, "pairs n%lld m%lld d%lld s%lld k%lld q%lld", (long long)sh.n,
                    (long long)sh.m, (long long)sh.d, (long long)sh.segments, (long long)sh.k, (long long)sh.q);
      runEveryPrecision(p, ref, label);
    }
  }
  // Carried references: single problems (stream-K), batches, drifts within and beyond the limit.
  for (int64_t d : {3, 20, 64})
    for (double drift : {0.5, 40.0, 90.0, 200.0}) {
      Problem p = makeProblem(rng, 3000, 2500, d, 1, 0, false);
      char label[160];
      std::snprintf(label, sizeof label, "carried n3000 m2500 d%lld drift %.1f", (long long)d, drift);
      runCarried(rng, p, drift, label);
    }
  {
    Problem p = makeProblem(rng, 3000, 2500, 64, 7, 0, false);
    runCarried(rng, p, 40.0, "carried n3000 m2500 d64 s7 drift 40");
  }
  // Several passes in one call against one pass at a time.
  {
    CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
    Problem p = makeProblem(rng, 3000, 2000, 64, 1, 0, false);
    Problem q = makeProblem(rng, 2000, 3000, 64, 1, 0, false);
    DeviceProblem<float> a(be, p), b(be, q), a2(be, p), b2(be, q);
    SoftminPass<float> both[4] = {a.pass, b.pass, a2.pass, b2.pass};
    be.softmin(both, 4);
    const Outputs ra = reference(p), rb = reference(q);
    const Err e1 = compare(a.get(a.out, p.n), ra.out), e2 = compare(b.get(b.out, q.n), rb.out);
    const Err e3 = compare(a2.get(a2.out, p.n), ra.out), e4 = compare(b2.get(b2.out, q.n), rb.out);
    const bool ok = std::max({e1.rel, e2.rel, e3.rel, e4.rel}) < 1e-2 &&
                    e1.mismatchedNan + e2.mismatchedNan + e3.mismatchedNan + e4.mismatchedNan == 0;
    if (!ok) ++failures;
    std::printf("%-4s tf32  four passes in one call             out rel %.2e %.2e %.2e %.2e\n", ok ? "ok" : "FAIL",
                e1.rel, e2.rel, e3.rel, e4.rel);
  }
  // maxAbsDiff
  {
    CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
    std::vector<float> a(10000), b(10000);
    for (size_t i = 0; i < a.size(); ++i) {
      a[i] = float(i % 97) * 0.01f;
      b[i] = a[i] + ((i == 4321) ? 3.5f : (i == 9000 ? -2.25f : 0.001f * float(i % 7)));
    }
    std::vector<int64_t> off = {0, 4000, 4000, 10000};
    float* da = static_cast<float*>(be.allocate(a.size() * 4));
    float* db = static_cast<float*>(be.allocate(b.size() * 4));
    int64_t* doff = static_cast<int64_t*>(be.allocate(off.size() * 8));
    be.upload(da, a.data(), a.size() * 4);
    be.upload(db, b.data(), b.size() * 4);
    be.upload(doff, off.data(), off.size() * 8);
    double out[3];
    be.maxAbsDiff(da, db, off.data(), doff, 3, out);
    const bool ok = out[1] == 0 && std::fabs(out[0] - 0.006) < 1e-6 && std::fabs(out[2] - 3.5) < 1e-6;
    if (!ok) ++failures;
    std::printf("%-4s maxAbsDiff %.6f %.6f %.6f\n", ok ? "ok" : "FAIL", out[0], out[1], out[2]);
    be.release(da);
    be.release(db);
    be.release(doff);
  }
  // Uploads below the staging threshold (8 MiB), of one staged round in several slices, and of
  // several rounds (more than the 64 MiB of staging), at odd sizes and offsets, read back bit for bit;
  // consecutive uploads reuse the staging memory while earlier DMAs may still be reading it.
  {
    CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
    for (const size_t bytes : {size_t(1000), (size_t(3) << 20) + 5, (size_t(20) << 20) + 7, (size_t(150) << 20) + 3}) {
      std::vector<unsigned char> first(bytes), second(bytes), back(bytes);
      for (size_t i = 0; i < bytes; ++i) first[i] = static_cast<unsigned char>(rng()), second[i] = static_cast<unsigned char>(i * 7 + 1);
      unsigned char* one = static_cast<unsigned char*>(be.allocate(bytes + 1));
      unsigned char* other = static_cast<unsigned char*>(be.allocate(bytes));
      be.upload(one + 1, first.data(), bytes);
      be.upload(other, second.data(), bytes);
      be.download(back.data(), one + 1, bytes);
      bool ok = back == first;
      be.download(back.data(), other, bytes);
      ok = ok && back == second;
      if (!ok) ++failures;
      std::printf("%-4s upload of %zu bytes\n", ok ? "ok" : "FAIL", bytes);
      be.release(one);
      be.release(other);
    }
  }
}

// Sinkhorn-like timing: alternating f <- softmin(g), g <- softmin(f) (count 1 per call), and the
// symmetric form (count 2 per call), n = m, eps 0.1, full cost, TF32.
void timeSolve(int64_t n, int64_t d, int reps, bool tf32) {
  std::mt19937_64 rng(7);
  Problem p = makeProblem(rng, n, n, d, 1, 0, false);
  Problem q = makeProblem(rng, n, n, d, 1, 0, false);
  q.x = p.y;
  q.y = p.x;
  for (auto& wv : p.w) wv = std::log(1.0 / n);
  for (auto& wv : q.w) wv = std::log(1.0 / n);
  CudaBackend be(tf32, SK_CUDA_GRAPHS_OFF);
  DeviceProblem<float> F(be, p), G(be, q);
  // f from g and g from f
  SoftminPass<float> pf = F.pass, pg = G.pass;
  pf.yPotential = G.out;
  pg.yPotential = F.out;
  pf.lse = pg.lse = nullptr;
  pf.prev = pg.prev = nullptr;
  // start from g = 0
  {
    std::vector<float> zeros(n, 0.f);
    be.upload(G.out, zeros.data(), n * 4);
  }
  for (int it = 0; it < 5; ++it) {  // warm-up and realistic potentials
    be.softmin(&pf, 1);
    be.softmin(&pg, 1);
  }
  be.synchronize();
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  auto timeIt = [&](auto&& body) {
    std::vector<float> ms;
    for (int r = 0; r < reps; ++r) {
      cudaEventRecord(e0, 0);
      be.synchronize();
      auto t0 = std::chrono::steady_clock::now();
      body();
      be.synchronize();
      auto t1 = std::chrono::steady_clock::now();
      ms.push_back(float(std::chrono::duration<double, std::milli>(t1 - t0).count()));
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
#ifdef SINKHORN_SOFTMIN_STATS
  unsigned long long stats[2];
  be.synchronize();
  sinkhorn::helpers::cuda::softminStats(stats, true);
  be.softmin(&pf, 1);
  be.synchronize();
  sinkhorn::helpers::cuda::softminStats(stats, true);
  std::printf("     stats: %llu exact updates / %llu warp tiles (%.2f%%)\n", stats[0], stats[1],
              100.0 * double(stats[0]) / double(std::max(1ull, stats[1])));
#endif
  const float one = timeIt([&] { be.softmin(&pf, 1); });
  const float alt = timeIt([&] {
    for (int it = 0; it < 10; ++it) {
      be.softmin(&pf, 1);
      be.softmin(&pg, 1);
    }
  });
  // symmetric-style: f and g from the previous values in one call (outputs to other buffers)
  DeviceProblem<float> F2(be, p), G2(be, q);
  SoftminPass<float> sym[2] = {pf, pg};
  sym[0].out = F2.out;
  sym[1].out = G2.out;
  const float two = timeIt([&] { be.softmin(sym, 2); });
  const double exps = double(n) * double(n);
  std::printf("time %s n=%lld d=%lld: one pass %.3f ms (%.2f Texp/s, %.1f TFLOP/s); alternating iteration %.3f ms "
              "(100 its: %.1f ms); two passes in one call %.3f ms\n",
              tf32 ? "tf32" : "fp32", (long long)n, (long long)d, one, exps / one / 1e9, 2 * exps * d / one / 1e9,
              alt / 10, alt * 10, two);
  // accuracy of f on a sample of rows against the float64 CPU reference
  {
    std::vector<float> g(n);
    be.download(g.data(), G.out, n * 4);
    be.softmin(&pf, 1);
    std::vector<float> f(n);
    be.download(f.data(), F.out, n * 4);
    Problem s = p;
    const int64_t rows = 256;
    s.n = rows;
    s.xOff = {0, rows};
    s.x.resize(rows * d);
    s.prev.assign(rows, 0);
    std::vector<int64_t> pick(rows);
    std::uniform_int_distribution<int64_t> ui(0, n - 1);
    for (int64_t r = 0; r < rows; ++r) {
      pick[r] = ui(rng);
      std::copy(p.x.begin() + pick[r] * d, p.x.begin() + (pick[r] + 1) * d, s.x.begin() + r * d);
    }
    s.h.assign(g.begin(), g.end());
    s.usePrev = false;
    const Outputs ref = reference(s);
    double num = 0, den = 0, mx = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double e = double(f[pick[r]]) - ref.out[r];
      num += e * e;
      den += ref.out[r] * ref.out[r];
      mx = std::max(mx, std::fabs(e));
    }
    std::printf("     sampled f vs float64 reference: rel %.2e, max abs %.2e\n", std::sqrt(num / den), mx);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
}

// Variations of a failing case, to locate a fault.
void debugCases() {
  struct V {
    const char* what;
    int64_t n, m, d;
    double eps;
    bool zeroW, useH;
  };
  const V vs[] = {
      {"d100 base", 700, 900, 100, 0.1, true, true},   {"d100 m896", 700, 896, 100, 0.1, true, true},
      {"d100 no zero w", 700, 900, 100, 0.1, false, true}, {"d100 no h", 700, 900, 100, 0.1, true, false},
      {"d100 eps 0.5", 700, 900, 100, 0.5, true, true}, {"d64 base", 513, 2000, 64, 0.1, true, true},
      {"d64 no zero w", 513, 2000, 64, 0.1, false, true}, {"d64 eps 1", 513, 2000, 64, 1.0, true, true},
      {"d64 n64 m64", 64, 64, 64, 0.1, false, false},   {"d100 n64 m64", 64, 64, 100, 0.1, false, false},
  };
  std::mt19937_64 rng(5);
  for (const V& v : vs) {
    Problem p = makeProblem(rng, v.n, v.m, v.d, 1, 0, false);
    p.eps = v.eps;
    p.useH = v.useH;
    if (!v.zeroW)
      for (auto& w : p.w) w = std::log(1.0 / v.m);
    const Outputs ref = reference(p);
    CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
    DeviceProblem<float> dp(be, p);
    be.softmin(&dp.pass, 1);
    std::vector<double> lse = dp.get(dp.lse, p.n);
    int64_t bad = 0, nan = 0, pinf = 0, ninf = 0;
    std::string rows;
    double maxErr = 0;
    for (int64_t i = 0; i < p.n; ++i) {
      if (std::isfinite(lse[i])) {
        maxErr = std::max(maxErr, std::fabs(lse[i] - ref.lse[i]));
        continue;
      }
      ++bad;
      nan += std::isnan(lse[i]);
      pinf += lse[i] > 0;
      ninf += lse[i] < 0;
      if (bad <= 12) rows += " " + std::to_string(i);
    }
    std::printf("debug %-16s bad %lld (nan %lld +inf %lld -inf %lld) lse err %.2e rows%s | ref lse[0] %.3f got %.3f\n",
                v.what, (long long)bad, (long long)nan, (long long)pinf, (long long)ninf, maxErr, rows.c_str(),
                ref.lse[0], lse[0]);
  }
}

// One pass that also averages v = y (the gradient's barycentres, k = d), and four passes in one
// call (the symmetric step with the debias self-terms), n = m.
void timeExtra(int64_t n, int64_t d, int reps) {
  std::mt19937_64 rng(11);
  Problem p = makeProblem(rng, n, n, d, 1, d, false);
  p.v = p.y;
  for (auto& wv : p.w) wv = std::log(1.0 / n);
  CudaBackend be(true, SK_CUDA_GRAPHS_OFF);
  DeviceProblem<float> F(be, p);
  F.pass.v = F.pass.y;
  F.pass.lse = nullptr;
  SoftminPass<float> noAvg = F.pass;
  noAvg.avg = nullptr;
  noAvg.v = nullptr;
  noAvg.k = 0;
  for (int i = 0; i < 3; ++i) {
    be.softmin(&noAvg, 1);
    be.softmin(&F.pass, 1);
  }
  be.synchronize();
  auto median = [&](auto&& body) {
    std::vector<double> ms;
    for (int r = 0; r < reps; ++r) {
      be.synchronize();
      auto t0 = std::chrono::steady_clock::now();
      body();
      be.synchronize();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const double plain = median([&] { be.softmin(&noAvg, 1); });
  const double avg = median([&] { be.softmin(&F.pass, 1); });
  DeviceProblem<float> G(be, p), H(be, p), I(be, p);
  SoftminPass<float> four[4] = {noAvg, G.pass, H.pass, I.pass};
  for (int i = 1; i < 4; ++i) {
    four[i].lse = nullptr;
    four[i].avg = nullptr;
    four[i].v = nullptr;
    four[i].k = 0;
  }
  const double fourMs = median([&] { be.softmin(four, 4); });
  std::printf("extra n=%lld d=%lld: plain pass %.3f ms, pass with average (k=%lld) %.3f ms, four passes in one call %.3f ms\n",
              (long long)n, (long long)d, plain, (long long)d, avg, fourMs);
}

void smallSolve() {
  std::mt19937_64 rng(3);
  for (int prec = 0; prec < 3; ++prec) {
    for (int64_t d : {3, 40, 70}) {
      Problem p = makeProblem(rng, 150, 130, d, 3, d, false);
      p.usePrev = true;
      p.blend = 0.5;
      p.useActive = true;
      const Outputs ref = reference(p);
      CudaBackend be(prec == 0, SK_CUDA_GRAPHS_OFF);
      if (prec == 2) runCase<double>(be, prec, p, ref, "small");
      else runCase<float>(be, prec, p, ref, "small");
      Problem q = makeProblem(rng, 200, 190, d, 1, 2, false);
      const Outputs rq = reference(q);
      if (prec == 2) runCase<double>(be, prec, q, rq, "small streamk");
      else runCase<float>(be, prec, q, rq, "small streamk");
      if (prec == 0) {
        runCarried(rng, makeProblem(rng, 200, 190, d, 1, 0, false), 40.0, "small carried");
        runCarried(rng, makeProblem(rng, 150, 130, d, 3, 0, false), 40.0, "small carried batch");
      }
      Problem r = makeProblem(rng, 140, 120, d, 2, d + 1, false);
      addPairs(r, rng, d + 1, d);
      const Outputs rr = reference(r);
      if (prec == 2) runCase<double>(be, prec, r, rr, "small pairs");
      else runCase<float>(be, prec, r, rr, "small pairs");
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "check";
  try {
    std::printf("CUDA devices: %d\n", sinkhorn::helpers::cudaDeviceCount());
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
      std::printf("device: %s, %d SMs, %zu MiB\n", prop.name, prop.multiProcessorCount, prop.totalGlobalMem >> 20);
    if (mode == "check") {
      checkAll();
    } else if (mode == "extra") {
      timeExtra(argc > 2 ? std::atoll(argv[2]) : 50000, argc > 3 ? std::atoll(argv[3]) : 64, 7);
    } else if (mode == "debug") {
      debugCases();
    } else if (mode == "small") {
      smallSolve();
    } else if (mode == "time") {
      const int64_t n = argc > 2 ? std::atoll(argv[2]) : 50000;
      const int reps = argc > 4 ? std::atoi(argv[4]) : 10;
      if (argc > 3) {
        timeSolve(n, std::atoll(argv[3]), reps, true);
      } else {
        timeSolve(n, 64, reps, true);
        timeSolve(n, 3, reps, true);
      }
    } else if (mode == "time32") {
      timeSolve(argc > 2 ? std::atoll(argv[2]) : 20000, argc > 3 ? std::atoll(argv[3]) : 64, 5, false);
    }
  } catch (const sinkhorn::Error& e) {
    std::printf("sinkhorn::Error %d: %s\n", int(e.code()), e.what());
    return 2;
  }
  std::printf("%s: %d failure(s)\n", mode.c_str(), failures);
  return failures ? 1 : 0;
}
