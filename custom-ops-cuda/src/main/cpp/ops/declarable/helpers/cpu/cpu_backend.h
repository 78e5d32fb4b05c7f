// The CPU backend: host memory, multi-threaded tiled kernels.
#ifndef SINKHORN_HELPERS_CPU_BACKEND_H
#define SINKHORN_HELPERS_CPU_BACKEND_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <vector>

#include "../dense.h"
#include "../plan_support.h"
#include "../softmin.h"
#include "sinkhorn4j.h"

namespace sinkhorn {
namespace helpers {

struct BoundingBox;

class CpuBackend {
 public:
  static constexpr int32_t kind = SK_DEVICE_CPU;

  // The dense solver's primitives (../dense.h), in dense_kernels.cpp. The loop itself runs in
  // dense_solver.h: this backend has no whole-loop launch.
  static constexpr bool kResidentDense = false;
  static constexpr bool kReadsCudaMemory = false;
  // The kernels return when their work is done.
  void synchronize() {}
  template <typename T>
  void denseLse(const DenseBatch<T>& batch, const DenseLsePass<T>& pass);
  // out_ij = P_ij = 2^(biasA_i + biasB_j - C_ij scale2), 0 where masked.
  template <typename T>
  void densePlan(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, T* out);
  // out = P @ v (batch x n x k, v batch x m x k), or P^T @ v when transpose (batch x m x k, v batch x n x k).
  template <typename T>
  void densePlanProduct(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, bool transpose,
                        int64_t k, const T* v, T* out);
  // The flat index of the first entry of C that is NaN or infinite where its row and its column are
  // present, or -1 (on CUDA, a kernel over the uploaded C: no host pass over it).
  template <typename T>
  int64_t denseFirstNonFinite(const DenseBatch<T>& batch);

  void* allocate(size_t bytes) {
    void* p = std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void release(void* p) noexcept { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  void zero(void* p, size_t bytes) { std::memset(p, 0, bytes); }

  template <typename T>
  void squaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out);
  template <typename T>
  void softmin(const SoftminPass<T>* passes, int count);
  template <typename T>
  void maxAbsDiff(const T* a, const T* b, const int64_t* hostOffsets, const int64_t* offsets, int64_t segments,
                  double* hostOut);
  template <typename T>
  bool extend(BoundingBox& box, const T* x, int64_t rows, int64_t d);
  template <typename T>
  void translate(T* x, int64_t rows, int64_t d, const std::vector<double>& shift);
  template <typename T>
  void logWeights(const T* w, int64_t rows, T* out);
  template <typename T>
  void pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows, int64_t d,
                     T* out);
  // The support of a single-segment pass's plan (plan_support.h) given its LSE; false, with out
  // unspecified, when it has more than maxEntries entries. Scores in double.
  template <typename T>
  bool planSupport(const SoftminPass<T>& p, const T* lse, double minWeight, int64_t maxEntries, PlanSupport& out);
  // Runs work() times times: the kernels run as they are called, so there is no launch cost to hide.
  template <typename Work>
  void repeat(int64_t times, int64_t /*entries*/, bool /*sameAsLast*/, Work&& work) {
    for (int64_t i = 0; i < times; ++i) work();
  }
};

// Worker threads used by the CPU kernels: SINKHORN4J_NUM_THREADS, else every hardware thread.
int cpuThreadCount();

// Runs fn(t) for t in [0, threads) at once, t = 0 on the calling thread, on the process's pool of
// worker threads, woken rather than started: starting 15 threads cost ~0.26 ms a region on the
// 16 cores of a virtual machine (a CPU dense solve, B = 8, N = M = 256: 115.6 -> 63.3 ms for 200
// regions). A region started while the pool serves another caller, or from inside a region,
// starts threads of its own.
void runOnThreads(int threads, const std::function<void(int)>& fn);

// Runs fn(item) for every item in [0, count) on the worker threads (on the calling thread alone when
// the work, in multiply-adds, is small); each item must write outputs of its own.
void parallelFor(int64_t count, double work, const std::function<void(int64_t)>& fn);

}  // namespace helpers
}  // namespace sinkhorn

#endif
