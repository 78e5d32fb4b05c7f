// CPU backend of the streaming softmin (see ../softmin.h): column packing, work distribution over
// threads and the choice of kernel (softmin_kernel.h).
//
// Work items are (pass, segment, block of rows), shared by the worker threads through an atomic
// counter; a kernel sweeps a block's rows over the segment's columns, packed once per call.
#include "cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "softmin_kernel.h"

namespace sinkhorn {
namespace helpers {
namespace {

constexpr int64_t kTaskBlocks = 4;   // kernel row blocks per work item
constexpr double kSerialWork = 2e5;  // below this many multiply-adds a call runs on one thread
constexpr double kLog2e = 1.44269504088896340736;

int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// AVX-512 where the processor has it (x86-64-v4's set), else AVX2; SINKHORN4J_CPU_KERNELS=avx2
// forces the baseline kernels (to test them on an AVX-512 machine).
const cpu::KernelTable& kernels() {
  static const cpu::KernelTable& table = []() -> const cpu::KernelTable& {
    const char* forced = std::getenv("SINKHORN4J_CPU_KERNELS");
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    return avx512 && !(forced && std::string(forced) == "avx2") ? cpu::avx512Kernels() : cpu::avx2Kernels();
  }();
  return table;
}

template <typename T>
struct SegmentColumns {
  std::vector<T> panels, bias, values, pairs;
  cpu::PackedColumns<T> view;
};

// Rows begin..begin+count of `src` (width values each) into panels (softmin_kernel.h).
template <typename T>
void packPanels(const T* src, int64_t begin, int64_t count, int64_t padded, int64_t width, std::vector<T>& out) {
  constexpr int64_t P = cpu::panelWidth<T>();
  out.assign(padded * width, T(0));
  for (int64_t j = 0; j < count; ++j) {
    T* panel = out.data() + (j / P) * width * P + j % P;
    for (int64_t t = 0; t < width; ++t) panel[t * P] = src[(begin + j) * width + t];
  }
}

// The columns of every segment of a pass, packed with their base-2 bias, and v where the pass
// averages it (the gradients average the columns themselves: their panels serve twice), and
// pairCol for a pair-weighted average.
template <typename T>
std::vector<SegmentColumns<T>> packColumns(const SoftminPass<T>& p) {
  std::vector<SegmentColumns<T>> segs(p.segments);
  const double invEps = 1.0 / double(p.eps);
  const bool valuesAreColumns = p.avg && p.v == p.y && p.k == p.d;
  for (int64_t s = 0; s < p.segments; ++s) {
    SegmentColumns<T>& c = segs[s];
    const int64_t begin = p.yOffsets[s], count = p.yOffsets[s + 1] - begin;
    const int64_t padded = roundUp(std::max<int64_t>(count, 1), cpu::panelWidth<T>());
    packPanels(p.y, begin, count, padded, p.d, c.panels);
    if (p.avg && !valuesAreColumns) packPanels(p.v, begin, count, padded, p.k, c.values);
    if (p.pairAvg) packPanels(p.pairCol, begin, count, padded, p.q, c.pairs);
    c.bias.assign(padded, -std::numeric_limits<T>::infinity());
    for (int64_t j = 0; j < count; ++j) {
      const int64_t gj = begin + j;
      const double h = p.yPotential ? double(p.yPotential[gj]) : 0.0;
      c.bias[j] = T(kLog2e * (double(p.yLogWeights[gj]) + (h - double(p.ySqNorm[gj])) * invEps));
    }
    const T* values = !p.avg ? nullptr : valuesAreColumns ? c.panels.data() : c.values.data();
    c.view = {c.panels.data(), c.bias.data(), values, p.pairAvg ? c.pairs.data() : nullptr, count, padded};
  }
  return segs;
}

template <typename T>
void runKernel(const cpu::RowBlock<T>& block);
template <>
void runKernel<float>(const cpu::RowBlock<float>& block) { kernels().rowsFloat(block); }
template <>
void runKernel<double>(const cpu::RowBlock<double>& block) { kernels().rowsDouble(block); }

struct WorkItem {
  int pass;
  int64_t segment;
  int64_t rowBegin, rowEnd;
};

template <typename Fn>
void runParallel(int64_t items, double work, Fn&& fn) {
  const int threads = work < kSerialWork ? 1 : static_cast<int>(std::min<int64_t>(cpuThreadCount(), items));
  std::atomic<int64_t> next{0};
  auto worker = [&](int id) {
    for (int64_t it = next++; it < items; it = next++) fn(id, it);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker, t);
  worker(0);
  for (auto& th : pool) th.join();
}

}  // namespace

int cpuThreadCount() {
  static const int count = [] {
    if (const char* env = std::getenv("SINKHORN4J_NUM_THREADS")) {
      const int v = std::atoi(env);
      if (v > 0) return v;
    }
    return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }();
  return count;
}

template <typename T>
void CpuBackend::squaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out) {
  for (int64_t i = 0; i < rows; ++i) {
    T s = T(0);
    for (int64_t t = 0; t < d; ++t) s += x[i * d + t] * x[i * d + t];
    out[i] = scale * s;
  }
}

template <typename T>
void CpuBackend::softmin(const SoftminPass<T>* passes, int count) {
  std::vector<std::vector<SegmentColumns<T>>> columns(count);
  std::vector<WorkItem> items;
  double work = 0;
  int64_t maxK = 0, maxD = 1, maxQ = 0;
  const int64_t taskRows = kTaskBlocks * kernels().blockRows;
  for (int pi = 0; pi < count; ++pi) {
    const SoftminPass<T>& p = passes[pi];
    columns[pi] = packColumns(p);
    maxD = std::max(maxD, p.d);
    if (p.avg) maxK = std::max(maxK, p.k);
    if (p.pairAvg) maxQ = std::max(maxQ, p.q);
    for (int64_t s = 0; s < p.segments; ++s) {
      const int64_t rb = p.xOffsets[s], re = p.xOffsets[s + 1];
      if (p.active && !p.active[s]) {
        if (p.prev && p.prev != p.out) std::copy(p.prev + rb, p.prev + re, p.out + rb);
        continue;
      }
      const double perPair = double(p.d + 8) + (p.pairAvg ? double(p.q + p.pairK) : 0.0);
      work += double(re - rb) * double(p.yOffsets[s + 1] - p.yOffsets[s]) * perPair;
      for (int64_t r = rb; r < re; r += taskRows) items.push_back({pi, s, r, std::min(re, r + taskRows)});
    }
  }
  const size_t scratchSize = cpu::scratchElements<T>(maxD, maxK, maxQ);
  const int threads = cpuThreadCount();
  std::vector<std::vector<T>> scratch(threads, std::vector<T>(scratchSize + 64 / sizeof(T)));
  runParallel(static_cast<int64_t>(items.size()), work, [&](int thread, int64_t it) {
    const WorkItem& w = items[it];
    T* aligned = scratch[thread].data();
    while (reinterpret_cast<uintptr_t>(aligned) % 64) ++aligned;
    runKernel<T>({&passes[w.pass], &columns[w.pass][w.segment].view, w.rowBegin, w.rowEnd, aligned});
  });
}

template <typename T>
void CpuBackend::maxAbsDiff(const T* a, const T* b, const int64_t* hostOffsets, const int64_t*, int64_t segments,
                            double* hostOut) {
  for (int64_t s = 0; s < segments; ++s) {
    double m = 0;
    for (int64_t i = hostOffsets[s]; i < hostOffsets[s + 1]; ++i) {
      const double diff = std::fabs(double(a[i]) - double(b[i]));
      m = (diff > m || std::isnan(diff)) ? diff : m;
    }
    hostOut[s] = m;
  }
}

#define SINKHORN_CPU_INSTANTIATE(T)                                                                   \
  template void CpuBackend::squaredNorms<T>(const T*, int64_t, int64_t, T, T*);                        \
  template void CpuBackend::softmin<T>(const SoftminPass<T>*, int);                                    \
  template void CpuBackend::maxAbsDiff<T>(const T*, const T*, const int64_t*, const int64_t*, int64_t, \
                                          double*);
SINKHORN_CPU_INSTANTIATE(float)
SINKHORN_CPU_INSTANTIATE(double)

}  // namespace helpers
}  // namespace sinkhorn
