// CPU backend of the streaming softmin (see ../softmin.h): column packing, work distribution over
// threads and the choice of kernels (softmin_kernel.h).
//
// The passes of one call that can share dot products run as Gram jobs: a pass x <- y with its
// transpose y <- x (the symmetric solver's f and g updates), and a self pass x <- x, whose Gram
// matrix is symmetric, over one triangle. The other passes run alone. Work items are blocks of rows
// of one segment, dealt to a fixed number of groups; threads take whole groups as they become free
// (so a core slowed by other work holds up nothing), and each group keeps its own column sides of
// the Gram jobs, merged at the end in a fixed order: the results do not depend on the scheduling or
// on the number of threads.
#include "cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "../bounding_box.h"
#include "../log_weights.h"
#include "softmin_kernel.h"

namespace sinkhorn {
namespace helpers {
namespace {

constexpr int64_t kTaskBlocks = 4;   // kernel row blocks per work item
constexpr int kGroups = 16;          // work item groups: the unit of load balance and of column-side partial sums
constexpr double kSerialWork = 2e5;  // below this many multiply-adds a call runs on one thread
constexpr double kLog2e = 1.44269504088896340736;
constexpr double kLn2 = 0.69314718055994530942;

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

// The bias of column j of a pass in base 2: log2 e (w_j + (h_j - c|y_j|^2) / eps).
template <typename T>
T base2Bias(const SoftminPass<T>& p, int64_t j) {
  const double h = p.yPotential ? double(p.yPotential[j]) : 0.0;
  return T(kLog2e * (double(p.yLogWeights[j]) + (h - double(p.ySqNorm[j])) / double(p.eps)));
}

// The columns of every segment of a pass, packed with their base-2 bias, and v where the pass
// averages it (the gradients average the columns themselves: their panels serve twice), and
// pairCol for a pair-weighted average.
template <typename T>
std::vector<SegmentColumns<T>> packColumns(const SoftminPass<T>& p) {
  std::vector<SegmentColumns<T>> segs(p.segments);
  const bool valuesAreColumns = p.avg && p.v == p.y && p.k == p.d;
  for (int64_t s = 0; s < p.segments; ++s) {
    SegmentColumns<T>& c = segs[s];
    const int64_t begin = p.yOffsets[s], count = p.yOffsets[s + 1] - begin;
    const int64_t padded = roundUp(std::max<int64_t>(count, 1), cpu::panelWidth<T>());
    packPanels(p.y, begin, count, padded, p.d, c.panels);
    if (p.avg && !valuesAreColumns) packPanels(p.v, begin, count, padded, p.k, c.values);
    if (p.pairAvg) packPanels(p.pairCol, begin, count, padded, p.q, c.pairs);
    c.bias.assign(padded, -std::numeric_limits<T>::infinity());
    for (int64_t j = 0; j < count; ++j) c.bias[j] = base2Bias(p, begin + j);
    const T* values = !p.avg ? nullptr : valuesAreColumns ? c.panels.data() : c.values.data();
    c.view = {c.panels.data(), c.bias.data(), values, p.pairAvg ? c.pairs.data() : nullptr, count, padded};
  }
  return segs;
}

void runKernel(const cpu::RowBlock<float>& block) { kernels().rowsFloat(block); }
void runKernel(const cpu::RowBlock<double>& block) { kernels().rowsDouble(block); }
void runKernel(const cpu::GramBlock<float>& block) { kernels().gramFloat(block); }
void runKernel(const cpu::GramBlock<double>& block) { kernels().gramDouble(block); }

// Passes whose dot products are each other's transposes: one Gram sweep serves both.
template <typename T>
bool transposed(const SoftminPass<T>& a, const SoftminPass<T>& b) {
  return a.x == b.y && a.y == b.x && a.xOffsets == b.yOffsets && a.yOffsets == b.xOffsets && a.d == b.d &&
         a.eps == b.eps && a.cost == b.cost && a.active == b.active && !a.avg && !b.avg;
}

template <typename T>
bool selfPass(const SoftminPass<T>& p) {
  return p.x == p.y && p.xOffsets == p.yOffsets && !p.avg;
}

// A Gram job: rows of rowPass.x against its columns; the column side serves columnPass, which is
// the transposed pass, or rowPass itself for a self pass (then only one triangle is swept).
template <typename T>
struct GramJob {
  const SoftminPass<T>* rowPass;
  const SoftminPass<T>* columnPass;
  std::vector<SegmentColumns<T>> columns;
  std::vector<T> rowBias;           // columnPass's bias on the rows (its columns)
  std::vector<T> rowMax, rowSum;    // row side, per row
  std::vector<int64_t> columnBase;  // per segment: its first entry in the column arrays
  std::vector<std::vector<T>> columnMax, columnSum;  // per group of work items
  bool self() const { return rowPass == columnPass; }
};

struct WorkItem {
  bool gram;
  int job;  // a pass (gram false) or a Gram job
  int64_t segment;
  int64_t rowBegin, rowEnd;
};

void runKernel(const cpu::StatsMerge<float>& merge) { kernels().mergeFloat(merge); }
void runKernel(const cpu::StatsMerge<double>& merge) { kernels().mergeDouble(merge); }

// Writes rows begin..begin+count of pass p from base-2 partial reductions: the groups' column sides
// at `entry` of the Gram job's arrays, and the row side where rowMax is given.
template <typename T>
void writeMerged(const SoftminPass<T>& p, int64_t begin, int64_t count, const GramJob<T>& g, int64_t entry,
                 const T* rowMax, const T* rowSum) {
  std::vector<const T*> maxes, sums;
  for (int k = 0; k < kGroups; ++k) maxes.push_back(g.columnMax[k].data() + entry), sums.push_back(g.columnSum[k].data() + entry);
  if (rowMax) maxes.push_back(rowMax), sums.push_back(rowSum);
  std::vector<T> max(count), sum(count);
  runKernel(cpu::StatsMerge<T>{maxes.data(), sums.data(), static_cast<int>(maxes.size()), count, max.data(), sum.data()});
  for (int64_t i = 0; i < count; ++i) cpu::writeSoftmin(p, begin + i, T(kLn2 * (double(max[i]) + std::log2(double(sum[i])))));
}

// Item i belongs to group i mod kGroups; a thread takes a whole group and runs its items in order.
template <typename Fn>
void runGrouped(int64_t items, double work, Fn&& fn) {
  const int64_t groups = std::min<int64_t>(kGroups, items);
  const int threads = work < kSerialWork ? 1 : static_cast<int>(std::min<int64_t>(cpuThreadCount(), groups));
  std::atomic<int64_t> next{0};
  auto worker = [&](int thread) {
    for (int64_t group = next++; group < groups; group = next++)
      for (int64_t it = group; it < items; it += kGroups) fn(thread, static_cast<int>(group), it);
  };
  runOnThreads(threads, worker);
}

// The process's worker threads, cpuThreadCount() - 1 of them, started at first use and never
// stopped. A region is published as one word, (generation << 16) | threads, so that a worker reads
// its generation and width together; workers spin for kSpin after a region (a solver's passes
// follow each other within microseconds) and then sleep on a condition variable.
class WorkerPool {
 public:
  static WorkerPool& instance() {
    static WorkerPool* pool = new WorkerPool(cpuThreadCount() - 1);  // never destroyed: workers outlive exit
    return *pool;
  }

  // fn(t) for t in [0, threads), t = 0 here; false, with nothing run, if the pool is busy, too
  // small, or this thread runs a region already (a region inside a region).
  bool run(int threads, const std::function<void(int)>& fn) {
    if (inRegion || threads - 1 > workers_) return false;
    std::unique_lock<std::mutex> region(regionMutex_, std::try_to_lock);
    if (!region.owns_lock()) return false;
    job_ = &fn;
    pending_.store(threads - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++generation_;
      published_.store(generation_ << 16 | uint64_t(threads), std::memory_order_release);
    }
    wake_.notify_all();
    std::exception_ptr failure;
    inRegion = true;
    try {
      fn(0);
    } catch (...) {
      failure = std::current_exception();
    }
    inRegion = false;
    const auto until = std::chrono::steady_clock::now() + kSpin;
    while (pending_.load(std::memory_order_acquire) > 0 && std::chrono::steady_clock::now() < until) __builtin_ia32_pause();
    if (pending_.load(std::memory_order_acquire) > 0) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [&] { return pending_.load(std::memory_order_acquire) == 0; });
    }
    if (failure) std::rethrow_exception(failure);
    return true;
  }

 private:
  static constexpr std::chrono::microseconds kSpin{50};

  explicit WorkerPool(int workers) : workers_(std::max(0, workers)) {
    for (int t = 1; t <= workers_; ++t) std::thread([this, t] { work(t); }).detach();
  }

  void work(int index) {
    inRegion = true;
    uint64_t seen = 0;
    for (;;) {
      uint64_t word = published_.load(std::memory_order_acquire);
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while ((word >> 16) == seen && std::chrono::steady_clock::now() < until) {
        __builtin_ia32_pause();
        word = published_.load(std::memory_order_acquire);
      }
      if ((word >> 16) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return ((word = published_.load(std::memory_order_acquire)) >> 16) != seen; });
      }
      seen = word >> 16;
      if (index >= int(word & 0xFFFF)) continue;
      (*job_)(index);  // the region's caller waits for this before it publishes another
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  static thread_local bool inRegion;  // a worker, or a region's caller inside fn(0)
  const int workers_;
  std::mutex regionMutex_;  // one region at a time
  std::mutex mutex_;        // guards the sleeps on wake_ and done_
  std::condition_variable wake_, done_;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> published_{0};
  std::atomic<int> pending_{0};
  const std::function<void(int)>* job_ = nullptr;
};

thread_local bool WorkerPool::inRegion = false;

}  // namespace

void runOnThreads(int threads, const std::function<void(int)>& fn) {
  if (threads <= 1) return fn(0);
  if (WorkerPool::instance().run(threads, fn)) return;
  std::vector<std::thread> started;
  for (int t = 1; t < threads; ++t) started.emplace_back(fn, t);
  fn(0);
  for (auto& th : started) th.join();
}

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

void parallelFor(int64_t count, double work, const std::function<void(int64_t)>& fn) {
  runGrouped(count, work, [&](int, int, int64_t item) { fn(item); });
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
  const int threads = cpuThreadCount();
  std::vector<int> partner(count, -1);  // the Gram job's other pass, or the pass itself
  for (int a = 0; a < count; ++a) {
    if (partner[a] >= 0) continue;
    if (selfPass(passes[a])) {
      partner[a] = a;
      continue;
    }
    for (int b = a + 1; b < count; ++b)
      if (partner[b] < 0 && transposed(passes[a], passes[b])) {
        partner[a] = b, partner[b] = a;
        break;
      }
  }

  std::vector<std::vector<SegmentColumns<T>>> columns(count);
  std::vector<GramJob<T>> grams;
  std::vector<WorkItem> items;
  double work = 0;
  int64_t maxK = 0, maxD = 1, maxQ = 0;
  const int64_t taskRows = kTaskBlocks * kernels().blockRows;
  for (int pi = 0; pi < count; ++pi) {
    const SoftminPass<T>& p = passes[pi];
    maxD = std::max(maxD, p.d);
    for (int64_t s = 0; s < p.segments; ++s) {
      if (p.active && !p.active[s] && p.prev && p.prev != p.out)
        std::copy(p.prev + p.xOffsets[s], p.prev + p.xOffsets[s + 1], p.out + p.xOffsets[s]);
    }
    if (partner[pi] >= 0 && partner[pi] < pi) continue;  // the other pass of an earlier Gram job
    const bool gram = partner[pi] >= 0;
    // A Gram job's work items are blocks of its row pass: the pass with more rows gives more of them.
    const SoftminPass<T>& rows = gram && passes[partner[pi]].n > p.n ? passes[partner[pi]] : p;
    if (gram) {
      GramJob<T> g;
      g.rowPass = &rows, g.columnPass = &rows == &p ? &passes[partner[pi]] : &p;
      g.columns = packColumns(rows);
      g.rowBias.resize(rows.n);
      for (int64_t i = 0; i < rows.n; ++i) g.rowBias[i] = base2Bias(*g.columnPass, i);
      g.rowMax.resize(rows.n), g.rowSum.resize(rows.n);
      int64_t entries = 0;
      for (const auto& c : g.columns) g.columnBase.push_back(entries), entries += c.view.padded;
      g.columnMax.assign(kGroups, std::vector<T>(entries, -std::numeric_limits<T>::infinity()));
      g.columnSum.assign(kGroups, std::vector<T>(entries, T(0)));
      grams.push_back(std::move(g));
    } else {
      columns[pi] = packColumns(p);
      if (p.avg) maxK = std::max(maxK, p.k);
      if (p.pairAvg) maxQ = std::max(maxQ, p.q);
    }
    const int job = gram ? static_cast<int>(grams.size()) - 1 : pi;
    const int64_t rowsPerItem = gram ? cpu::kGramTaskRows : taskRows;
    for (int64_t s = 0; s < rows.segments; ++s) {
      if (rows.active && !rows.active[s]) continue;
      const int64_t rb = rows.xOffsets[s], re = rows.xOffsets[s + 1];
      const double perPair = double(rows.d + 8) + (rows.pairAvg ? double(rows.q + rows.pairK) : 0.0);
      work += double(re - rb) * double(rows.yOffsets[s + 1] - rows.yOffsets[s]) * perPair;
      for (int64_t r = rb; r < re; r += rowsPerItem) items.push_back({gram, job, s, r, std::min(re, r + rowsPerItem)});
    }
  }

  const size_t scratchSize = cpu::scratchElements<T>(maxD, maxK, maxQ);
  std::vector<std::vector<T>> scratch(threads, std::vector<T>(scratchSize + 64 / sizeof(T)));
  runGrouped(static_cast<int64_t>(items.size()), work, [&](int thread, int group, int64_t it) {
    const WorkItem& w = items[it];
    T* aligned = scratch[thread].data();
    while (reinterpret_cast<uintptr_t>(aligned) % 64) ++aligned;
    if (!w.gram) {
      runKernel(cpu::RowBlock<T>{&passes[w.job], &columns[w.job][w.segment].view, w.rowBegin, w.rowEnd, aligned});
      return;
    }
    GramJob<T>& g = grams[w.job];
    const SoftminPass<T>& p = *g.rowPass;
    const int64_t first = p.xOffsets[w.segment];
    const int64_t base = g.columnBase[w.segment];
    // A self pass sweeps the columns from its own block on: the diagonal block on the row side only,
    // the rest on both sides (they stand for the rows of later blocks).
    const int64_t firstColumn = g.self() ? w.rowBegin - first : 0;
    const int64_t columnSideFrom = g.self() ? w.rowEnd - first : 0;
    runKernel(cpu::GramBlock<T>{p.x, p.d, T(2 * double(p.cost) / double(p.eps) * kLog2e), &g.columns[w.segment].view,
                                g.rowBias.data(), w.rowBegin, w.rowEnd, firstColumn, columnSideFrom, g.rowMax.data(),
                                g.rowSum.data(), g.columnMax[group].data() + base, g.columnSum[group].data() + base,
                                aligned});
  });

  for (const GramJob<T>& g : grams) {
    const SoftminPass<T>& p = *g.rowPass;
    for (int64_t s = 0; s < p.segments; ++s) {
      if (p.active && !p.active[s]) continue;
      const int64_t rb = p.xOffsets[s], re = p.xOffsets[s + 1];
      if (g.self()) {
        writeMerged(p, rb, re - rb, g, g.columnBase[s], g.rowMax.data() + rb, g.rowSum.data() + rb);
        continue;
      }
      for (int64_t i = rb; i < re; ++i) cpu::writeSoftmin(p, i, T(kLn2 * (g.rowMax[i] + std::log2(double(g.rowSum[i])))));
      const SoftminPass<T>& q = *g.columnPass;
      writeMerged<T>(q, q.xOffsets[s], q.xOffsets[s + 1] - q.xOffsets[s], g, g.columnBase[s], nullptr, nullptr);
    }
  }
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

template <typename T>
bool CpuBackend::extend(BoundingBox& box, const T* x, int64_t rows, int64_t d) {
  return extendBox(box, x, rows, d);
}

template <typename T>
void CpuBackend::translate(T* x, int64_t rows, int64_t d, const std::vector<double>& shift) {
  translateRows(x, x, rows, d, shift);
}

template <typename T>
void CpuBackend::logWeights(const T* w, int64_t rows, T* out) {
  logWeightsOnHost(w, rows, out);
}

template <typename T>
void CpuBackend::pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows,
                               int64_t d, T* out) {
  forRowChunks(rows, hostChunkCount(rows, d), [&](int, int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      for (int64_t t = 0; t < d; ++t) {
        const int64_t e = i * d + t;
        T g = cp[i] * (x[e] - bary[e]);
        if (selfBary) g -= cq[i] * (x[e] - selfBary[e]);
        out[e] = g;
      }
  });
}

template <typename T>
bool CpuBackend::planSupport(const SoftminPass<T>& p, const T* lse, double minWeight, int64_t maxEntries,
                             PlanSupport& out) {
  requireSupportPass(p);
  const double logMin = std::log(minWeight), scale = 2 * double(p.cost) / double(p.eps);
  std::vector<double> u(p.m);  // score_ij = (2c/eps) <x_i, y_j> + u_j
  for (int64_t j = 0; j < p.m; ++j)
    u[j] = double(p.yLogWeights[j]) + (double(p.yPotential ? p.yPotential[j] : T(0)) - double(p.ySqNorm[j])) / double(p.eps);
  std::vector<std::vector<std::pair<int32_t, double>>> rows(p.n);
  std::atomic<int64_t> total{0};
  parallelFor(p.n, double(p.m) * double(p.d), [&](int64_t i) {
    if (total.load(std::memory_order_relaxed) > maxEntries) return;  // over budget: the result is discarded
    const T* xi = p.x + i * p.d;
    const double l = double(lse[i]);
    for (int64_t j = 0; j < p.m; ++j) {
      const T* yj = p.y + j * p.d;
      double dot = 0;
      for (int64_t t = 0; t < p.d; ++t) dot += double(xi[t]) * double(yj[t]);
      const double s = scale * dot + u[j] - l;
      if (s >= logMin) rows[i].emplace_back(static_cast<int32_t>(j), std::exp(s));
    }
    total += static_cast<int64_t>(rows[i].size());
  });
  if (total.load() > maxEntries) return false;
  out.rowStart.assign(p.n + 1, 0);
  for (int64_t i = 0; i < p.n; ++i) out.rowStart[i + 1] = out.rowStart[i] + static_cast<int64_t>(rows[i].size());
  out.col.resize(out.rowStart[p.n]);
  out.weight.resize(out.rowStart[p.n]);
  for (int64_t i = 0; i < p.n; ++i)
    for (size_t e = 0; e < rows[i].size(); ++e) {
      out.col[out.rowStart[i] + e] = rows[i][e].first;
      out.weight[out.rowStart[i] + e] = rows[i][e].second;
    }
  return true;
}

#define SINKHORN_CPU_INSTANTIATE(T)                                                                         \
  template bool CpuBackend::planSupport<T>(const SoftminPass<T>&, const T*, double, int64_t, PlanSupport&);    \
  template void CpuBackend::squaredNorms<T>(const T*, int64_t, int64_t, T, T*);                              \
  template void CpuBackend::softmin<T>(const SoftminPass<T>*, int);                                          \
  template void CpuBackend::maxAbsDiff<T>(const T*, const T*, const int64_t*, const int64_t*, int64_t,       \
                                          double*);                                                          \
  template bool CpuBackend::extend<T>(BoundingBox&, const T*, int64_t, int64_t);                             \
  template void CpuBackend::translate<T>(T*, int64_t, int64_t, const std::vector<double>&);                  \
  template void CpuBackend::logWeights<T>(const T*, int64_t, T*);                                            \
  template void CpuBackend::pointGradient<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, \
                                             T*);
SINKHORN_CPU_INSTANTIATE(float)
SINKHORN_CPU_INSTANTIATE(double)

}  // namespace helpers
}  // namespace sinkhorn
