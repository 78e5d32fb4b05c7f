// The CPU backend: host memory, multi-threaded tiled kernels.
#ifndef SINKHORN_HELPERS_CPU_BACKEND_H
#define SINKHORN_HELPERS_CPU_BACKEND_H

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "../softmin.h"
#include "sinkhorn4j.h"

namespace sinkhorn {
namespace helpers {

struct BoundingBox;

class CpuBackend {
 public:
  static constexpr int32_t kind = SK_DEVICE_CPU;

  void* allocate(size_t bytes) {
    void* p = std::malloc(bytes);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void release(void* p) noexcept { std::free(p); }
  void upload(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) { std::memcpy(dst, src, bytes); }

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
  void pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows, int64_t d,
                     T* out);
};

// Worker threads used by the CPU kernels: SINKHORN4J_NUM_THREADS, else every hardware thread.
int cpuThreadCount();

}  // namespace helpers
}  // namespace sinkhorn

#endif
