// CPU kernels of the streaming softmin (see ../softmin.h).
//
// Work items are (pass, segment, block of kTaskRows rows), shared by the worker threads through an
// atomic counter. Inside an item, kRows rows at a time sweep the segment's columns in tiles of
// kCols: the kRows x kCols scores are accumulated in registers over the dimension (one load of y
// feeds kRows FMAs), then folded into an online max / sum (and the optional average of v).
// y is read transposed and padded (d x mPadded per segment), so the inner loops are unit-stride and
// the compiler vectorises them; padded columns carry u = -inf and contribute exp(-inf) = 0.
#include "cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "fast_exp.h"

namespace sinkhorn {
namespace helpers {
namespace {

constexpr int kRows = 4;           // rows sharing one sweep over a column tile
constexpr int kVector = 16;        // columns accumulated together in registers
constexpr int64_t kCols = 256;     // columns per tile (multiple of kVector): scores stay in L1
constexpr int64_t kTaskRows = 32;  // rows per work item
constexpr double kSerialWork = 2e5;  // below this many multiply-adds a call runs on one thread

int64_t roundUp(int64_t v, int64_t to) { return (v + to - 1) / to * to; }

// Column data of one segment of one pass: transposed, padded y and the bias u.
template <typename T>
struct SegmentColumns {
  int64_t begin = 0, count = 0, padded = 0;
  std::vector<T> yT;  // d x padded
  std::vector<T> u;   // padded
};

template <typename T>
std::vector<SegmentColumns<T>> prepareColumns(const SoftminPass<T>& p) {
  std::vector<SegmentColumns<T>> segs(p.segments);
  const T invEps = T(1) / p.eps;
  for (int64_t s = 0; s < p.segments; ++s) {
    SegmentColumns<T>& c = segs[s];
    c.begin = p.yOffsets[s];
    c.count = p.yOffsets[s + 1] - c.begin;
    c.padded = roundUp(std::max<int64_t>(c.count, 1), kVector);
    c.yT.assign(p.d * c.padded, T(0));
    c.u.assign(c.padded, -std::numeric_limits<T>::infinity());
    for (int64_t j = 0; j < c.count; ++j) {
      const int64_t gj = c.begin + j;
      const T h = p.yPotential ? p.yPotential[gj] : T(0);
      c.u[j] = p.yLogWeights[gj] + (h - p.ySqNorm[gj]) * invEps;
      const T* yj = p.y + gj * p.d;
      for (int64_t t = 0; t < p.d; ++t) c.yT[t * c.padded + j] = yj[t];
    }
  }
  return segs;
}

// scores[r][0..kVector) = u + sum_t xs[r][t] * yT[t][j..j+kVector)
template <typename T>
inline void scoreChunk(const T* xs, int64_t d, const T* yT, int64_t stride, const T* u, T (*scores)[kCols],
                       int64_t col) {
  T acc[kRows][kVector];
  for (int r = 0; r < kRows; ++r)
    for (int q = 0; q < kVector; ++q) acc[r][q] = u[q];
  for (int64_t t = 0; t < d; ++t) {
    const T* yt = yT + t * stride;
    for (int r = 0; r < kRows; ++r) {
      const T xv = xs[r * d + t];
      for (int q = 0; q < kVector; ++q) acc[r][q] += xv * yt[q];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int q = 0; q < kVector; ++q) scores[r][col + q] = acc[r][q];
}

template <typename T>
struct RowScratch {
  std::vector<T> xs;   // kRows x d, scaled by 2c/eps
  std::vector<T> acc;  // kRows x k
  alignas(64) T scores[kRows][kCols];
};

// Rows [i0, i0 + rows) of one segment, rows <= kRows.
template <typename T>
void softminRows(const SoftminPass<T>& p, const SegmentColumns<T>& cols, int64_t i0, int rows, RowScratch<T>& sc) {
  const int64_t d = p.d, k = p.avg ? p.k : 0;
  const T scale = T(2) * p.cost / p.eps;
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = i0 + std::min(r, rows - 1);  // spare lanes repeat the last row
    for (int64_t t = 0; t < d; ++t) sc.xs[r * d + t] = p.x[i * d + t] * scale;
  }
  T maxScore[kRows], sum[kRows];
  for (int r = 0; r < kRows; ++r) {
    maxScore[r] = -std::numeric_limits<T>::infinity();
    sum[r] = T(0);
  }
  std::fill(sc.acc.begin(), sc.acc.end(), T(0));

  for (int64_t jb = 0; jb < cols.padded; jb += kCols) {
    const int64_t width = std::min(kCols, cols.padded - jb);
    for (int64_t q = 0; q < width; q += kVector)
      scoreChunk(sc.xs.data(), d, cols.yT.data() + jb + q, cols.padded, cols.u.data() + jb + q, sc.scores, q);
    const int64_t real = std::min(width, cols.count - jb);
    for (int r = 0; r < rows; ++r) {
      T* s = sc.scores[r];
      T tileMax = -std::numeric_limits<T>::infinity();
      for (int64_t q = 0; q < width; ++q) tileMax = std::max(tileMax, s[q]);
      if (tileMax > maxScore[r]) {
        const T rescale = std::exp(maxScore[r] - tileMax);
        sum[r] *= rescale;
        for (int64_t c = 0; c < k; ++c) sc.acc[r * k + c] *= rescale;
        maxScore[r] = tileMax;
      }
      const T m = maxScore[r];
      if (m == -std::numeric_limits<T>::infinity()) continue;
      T tileSum = T(0);
      for (int64_t q = 0; q < width; ++q) {
        const T e = expNonPositive(s[q] - m);
        s[q] = e;
        tileSum += e;
      }
      sum[r] += tileSum;
      if (k) {
        T* acc = sc.acc.data() + r * k;
        const T* v = p.v + (cols.begin + jb) * k;
        for (int64_t q = 0; q < real; ++q) {
          const T e = s[q];
          const T* vq = v + q * k;
          for (int64_t c = 0; c < k; ++c) acc[c] += e * vq[c];
        }
      }
    }
  }

  for (int r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    const T lse = maxScore[r] + std::log(sum[r]);
    const T softmin = p.xSqNorm[i] - p.eps * lse;
    const T updated = p.damping * softmin;
    p.out[i] = p.prev && p.blend != T(0) ? p.blend * p.prev[i] + (T(1) - p.blend) * updated : updated;
    if (p.lse) p.lse[i] = lse;
    if (k) {
      const T inv = T(1) / sum[r];
      for (int64_t c = 0; c < k; ++c) p.avg[i * k + c] = sc.acc[r * k + c] * inv;
    }
  }
}

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
  int64_t maxK = 0, maxD = 0;
  for (int pi = 0; pi < count; ++pi) {
    const SoftminPass<T>& p = passes[pi];
    columns[pi] = prepareColumns(p);
    maxD = std::max(maxD, p.d);
    if (p.avg) maxK = std::max(maxK, p.k);
    for (int64_t s = 0; s < p.segments; ++s) {
      const int64_t rb = p.xOffsets[s], re = p.xOffsets[s + 1];
      if (p.active && !p.active[s]) {
        if (p.prev && p.prev != p.out) std::copy(p.prev + rb, p.prev + re, p.out + rb);
        continue;
      }
      work += double(re - rb) * double(p.yOffsets[s + 1] - p.yOffsets[s]) * double(p.d + 8);
      for (int64_t r = rb; r < re; r += kTaskRows) items.push_back({pi, s, r, std::min(re, r + kTaskRows)});
    }
  }
  const int threads = cpuThreadCount();
  std::vector<RowScratch<T>> scratch(threads);
  for (auto& sc : scratch) {
    sc.xs.resize(kRows * std::max<int64_t>(maxD, 1));
    sc.acc.resize(kRows * std::max<int64_t>(maxK, 1));
  }
  runParallel(static_cast<int64_t>(items.size()), work, [&](int thread, int64_t it) {
    const WorkItem& w = items[it];
    const SoftminPass<T>& p = passes[w.pass];
    RowScratch<T>& sc = scratch[thread];
    for (int64_t i = w.rowBegin; i < w.rowEnd; i += kRows)
      softminRows(p, columns[w.pass][w.segment], i, static_cast<int>(std::min<int64_t>(kRows, w.rowEnd - i)), sc);
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
