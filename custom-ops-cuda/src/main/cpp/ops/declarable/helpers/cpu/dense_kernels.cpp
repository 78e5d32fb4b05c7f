// CPU backend of the dense solver's primitives (../dense.h): rows of C are reduced by one task each
// (two sweeps: the maximum, then the sum of 2^(score - max)); columns in blocks of kColumnBlock, each
// block sweeping the rows of its item, so that C is read row-major in both passes. Every output is
// written by one task in a fixed order: results do not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu_backend.h"

namespace sinkhorn {
namespace helpers {
namespace {

constexpr int64_t kColumnBlock = 64;
constexpr double kLn2 = 0.69314718055994530942;
constexpr double kRowTaskElements = 1 << 15;  // entries of C per row task

template <typename T>
constexpr T kMinusInf = -std::numeric_limits<T>::infinity();

// log2 sum_j 2^(bias_j - c_j scale2) over the columns of finite bias.
template <typename T>
T rowLog2SumExp(const T* c, const T* bias, int64_t m, T scale2) {
  T max = kMinusInf<T>;
  for (int64_t j = 0; j < m; ++j)
    if (bias[j] > kMinusInf<T>) max = std::max(max, bias[j] - c[j] * scale2);
  T sum = 0;
  for (int64_t j = 0; j < m; ++j)
    if (bias[j] > kMinusInf<T>) sum += std::exp2(bias[j] - c[j] * scale2 - max);
  return max + std::log2(sum);
}

// Writes entry `at` of the updated side from its log2-sum-exp.
template <typename T>
void writeSide(const DenseLsePass<T>& p, int64_t at, bool present, T log2W, T log2Sum) {
  const T lse = present ? T(kLn2 * double(log2Sum)) : T(0);
  const T potential = present ? -p.epsDamping * lse : T(0);
  if (p.out) p.out[at] = potential;
  if (p.bias) p.bias[at] = present ? log2W + potential * p.scale2 : kMinusInf<T>;
  if (p.lse) p.lse[at] = lse;
}

// An inactive item keeps its potentials: prev is copied into out (entries at..at+count), nothing else written.
template <typename T>
bool skipInactive(const DenseLsePass<T>& p, int64_t item, int64_t at, int64_t count) {
  if (!p.active || p.active[item]) return false;
  if (p.out && p.prev) std::copy(p.prev + at, p.prev + at + count, p.out + at);
  return true;
}

template <typename T>
void rowPass(const DenseBatch<T>& b, const DenseLsePass<T>& p) {
  const int64_t rowsPerTask = std::max<int64_t>(1, int64_t(kRowTaskElements) / b.m);
  const int64_t tasksPerItem = (b.n + rowsPerTask - 1) / rowsPerTask;
  parallelFor(b.batch * tasksPerItem, double(b.batch * b.n) * double(b.m) * 4, [&](int64_t task) {
    const int64_t item = task / tasksPerItem;
    const int64_t begin = (task % tasksPerItem) * rowsPerTask, end = std::min(b.n, begin + rowsPerTask);
    if (skipInactive(p, item, item * b.n + begin, end - begin)) return;
    const T* bias = p.otherBias + item * b.m;
    for (int64_t i = item * b.n + begin; i < item * b.n + end; ++i) {
      const bool present = b.maskA[i];
      writeSide(p, i, present, b.log2A[i], present ? rowLog2SumExp(b.cost + i * b.m, bias, b.m, p.scale2) : T(0));
    }
  });
}

template <typename T>
void columnPass(const DenseBatch<T>& b, const DenseLsePass<T>& p) {
  const int64_t blocks = (b.m + kColumnBlock - 1) / kColumnBlock;
  parallelFor(b.batch * blocks, double(b.batch * b.n) * double(b.m) * 4, [&](int64_t task) {
    const int64_t item = task / blocks, first = (task % blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, b.m - first);
    if (skipInactive(p, item, item * b.m + first, width)) return;
    T max[kColumnBlock], sum[kColumnBlock];
    std::fill(max, max + width, kMinusInf<T>);
    std::fill(sum, sum + width, T(0));
    const T* bias = p.otherBias + item * b.n;
    for (int64_t i = 0; i < b.n; ++i) {
      if (!(bias[i] > kMinusInf<T>)) continue;
      const T* c = b.cost + (item * b.n + i) * b.m + first;
      for (int64_t t = 0; t < width; ++t) max[t] = std::max(max[t], bias[i] - c[t] * p.scale2);
    }
    for (int64_t i = 0; i < b.n; ++i) {
      if (!(bias[i] > kMinusInf<T>)) continue;
      const T* c = b.cost + (item * b.n + i) * b.m + first;
      for (int64_t t = 0; t < width; ++t) sum[t] += std::exp2(bias[i] - c[t] * p.scale2 - max[t]);
    }
    for (int64_t t = 0; t < width; ++t) {
      const int64_t j = item * b.m + first + t;
      const bool present = b.maskB[j];
      writeSide(p, j, present, b.log2B[j], present ? max[t] + std::log2(sum[t]) : T(0));
    }
  });
}

template <typename T>
T planEntry(T biasA, T biasB, T c, T scale2) {
  return biasA > kMinusInf<T> && biasB > kMinusInf<T> ? std::exp2(biasA + biasB - c * scale2) : T(0);
}

}  // namespace

template <typename T>
void CpuBackend::denseLse(const DenseBatch<T>& batch, const DenseLsePass<T>& pass) {
  if (pass.columns)
    columnPass(batch, pass);
  else
    rowPass(batch, pass);
}

template <typename T>
void CpuBackend::densePlan(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, T* out) {
  parallelFor(b.batch * b.n, double(b.batch * b.n) * double(b.m) * 4, [&](int64_t i) {
    const T* bias = biasB + (i / b.n) * b.m;
    const T* c = b.cost + i * b.m;
    for (int64_t j = 0; j < b.m; ++j) out[i * b.m + j] = planEntry(biasA[i], bias[j], c[j], scale2);
  });
}

template <typename T>
void CpuBackend::densePlanProduct(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, bool transpose,
                                  int64_t k, const T* v, T* out) {
  const double work = double(b.batch * b.n) * double(b.m) * double(4 + k);
  if (!transpose) {
    parallelFor(b.batch * b.n, work, [&](int64_t i) {
      const int64_t item = i / b.n;
      const T* c = b.cost + i * b.m;
      T* row = out + i * k;
      std::fill(row, row + k, T(0));
      for (int64_t j = 0; j < b.m; ++j) {
        const T p = planEntry(biasA[i], biasB[item * b.m + j], c[j], scale2);
        if (p == T(0)) continue;
        const T* vj = v + (item * b.m + j) * k;
        for (int64_t t = 0; t < k; ++t) row[t] += p * vj[t];
      }
    });
    return;
  }
  const int64_t blocks = (b.m + kColumnBlock - 1) / kColumnBlock;
  parallelFor(b.batch * blocks, work, [&](int64_t task) {
    const int64_t item = task / blocks, first = (task % blocks) * kColumnBlock;
    const int64_t width = std::min(kColumnBlock, b.m - first);
    T* block = out + (item * b.m + first) * k;
    std::fill(block, block + width * k, T(0));
    for (int64_t i = item * b.n; i < (item + 1) * b.n; ++i) {
      const T* c = b.cost + i * b.m + first;
      const T* vi = v + i * k;
      for (int64_t t = 0; t < width; ++t) {
        const T p = planEntry(biasA[i], biasB[item * b.m + first + t], c[t], scale2);
        if (p == T(0)) continue;
        for (int64_t q = 0; q < k; ++q) block[t * k + q] += p * vi[q];
      }
    }
  });
}

template <typename T>
int64_t CpuBackend::denseFirstNonFinite(const DenseBatch<T>& b) {
  std::atomic<int64_t> first{-1};
  parallelFor(b.batch * b.n, double(b.batch * b.n) * double(b.m), [&](int64_t row) {
    if (!b.maskA[row]) return;
    const T* c = b.cost + row * b.m;
    const uint8_t* columns = b.maskB + (row / b.n) * b.m;
    for (int64_t j = 0; j < b.m; ++j) {
      if (columns[j] && !std::isfinite(c[j])) {
        const int64_t bad = row * b.m + j;
        int64_t seen = first.load();
        while ((seen < 0 || bad < seen) && !first.compare_exchange_weak(seen, bad)) {}
        return;
      }
    }
  });
  return first.load();
}

#define SINKHORN_CPU_DENSE_INSTANTIATE(T)                                                                   \
  template void CpuBackend::denseLse<T>(const DenseBatch<T>&, const DenseLsePass<T>&);                      \
  template void CpuBackend::densePlan<T>(const DenseBatch<T>&, const T*, const T*, T, T*);                  \
  template void CpuBackend::densePlanProduct<T>(const DenseBatch<T>&, const T*, const T*, T, bool, int64_t, \
                                                const T*, T*);                                              \
  template int64_t CpuBackend::denseFirstNonFinite<T>(const DenseBatch<T>&);
SINKHORN_CPU_DENSE_INSTANTIATE(float)
SINKHORN_CPU_DENSE_INSTANTIATE(double)

}  // namespace helpers
}  // namespace sinkhorn
