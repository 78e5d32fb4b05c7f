// The CUDA backend: device memory on the current device, one stream, fused softmin kernels.
//
// Plain C++ (no CUDA types): the solver loops include it from g++ translation units. Every failure
// (no driver or device, out of device memory, a kernel fault) throws sinkhorn::Error with
// SK_NO_DEVICE, SK_OUT_OF_MEMORY or SK_DEVICE_ERROR and a readable message.
//
// Work is queued on the backend's stream; download() and maxAbsDiff() synchronise it. Device memory
// released through release() is kept for reuse by later allocate() calls of the same size (stream
// ordered, so no synchronisation is needed). A backend borrows its state (stream, cache, workspaces)
// from a process-wide pool and gives it back when destroyed, so later calls reuse them.
#ifndef SINKHORN_HELPERS_CUDA_BACKEND_H
#define SINKHORN_HELPERS_CUDA_BACKEND_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "../dense.h"
#include "../plan_support.h"
#include "../softmin.h"
#include "sinkhorn4j.h"

namespace sinkhorn {
namespace helpers {

struct BoundingBox;

namespace cuda {
struct BackendState;  // defined in cuda_backend.cu
}

class CudaBackend {
 public:
  static constexpr int32_t kind = SK_DEVICE_CUDA;

  // Picks the calling thread's current device and creates a stream. allowTf32: float32 dot products
  // on the tensor cores in TF32 (as FlashSinkhorn); false gives strict float32 arithmetic.
  explicit CudaBackend(bool allowTf32);
  ~CudaBackend();
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  void* allocate(size_t bytes);
  void release(void* p) noexcept;
  void upload(void* dst, const void* hostSrc, size_t bytes);
  void download(void* hostDst, const void* src, size_t bytes);

  // out_i = scale |x_i|^2
  template <typename T>
  void squaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out);
  // The passes (see ../softmin.h) are independent: none writes what another reads.
  template <typename T>
  void softmin(const SoftminPass<T>* passes, int count);
  // hostOut[s] = max_{i in segment s} |a_i - b_i| (NaN if any difference is NaN); synchronises.
  template <typename T>
  void maxAbsDiff(const T* a, const T* b, const int64_t* hostOffsets, const int64_t* offsets, int64_t segments,
                  double* hostOut);

  // Extends box by the rows of x; false when x holds a NaN or an infinity. Synchronises.
  template <typename T>
  bool extend(BoundingBox& box, const T* x, int64_t rows, int64_t d);
  // x_ij -= shift_j
  template <typename T>
  void translate(T* x, int64_t rows, int64_t d, const std::vector<double>& shift);
  // out_ij = cp_i (x_ij - bary_ij) - cq_i (x_ij - selfBary_ij); selfBary and cq may be null.
  template <typename T>
  void pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows, int64_t d,
                     T* out);

  // The support of a single-segment pass's plan (../plan_support.h) given its LSE (device memory);
  // false, with out unspecified, when it has more than maxEntries entries. Synchronises.
  template <typename T>
  bool planSupport(const SoftminPass<T>& p, const T* lse, double minWeight, int64_t maxEntries, PlanSupport& out);

  // Blocks until the queued work is done (throws on a device fault).
  void synchronize();

  // The dense solver's primitives (../dense.h), kernels in dense_kernels.cu.
  template <typename T>
  void denseLse(const DenseBatch<T>& batch, const DenseLsePass<T>& pass);
  template <typename T>
  void densePlan(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, T* out);
  template <typename T>
  void densePlanProduct(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, bool transpose,
                        int64_t k, const T* v, T* out);
  // The whole loop of dense_solver.h in one launch when an item's costs fit the shared memory of a
  // cluster of CTAs; false, with nothing done, otherwise.
  static constexpr bool kResidentDense = true;
  template <typename T>
  bool denseResident(const DenseBatch<T>& batch, const DenseResidentSolve<T>& solve);

 private:
  std::unique_ptr<cuda::BackendState> state_;
};

// Number of usable CUDA devices: 0 without a driver, a device or CUDA support; never throws.
int32_t cudaDeviceCount();

// Device memory held by the library (live and cached, every backend state), its high-water mark
// since the last reset, and the cap on it (0: none).
struct CudaMemoryUsage {
  int64_t held, peak, limit;
};
CudaMemoryUsage cudaMemoryUsage();
void resetCudaPeakMemory();
void setCudaMemoryLimit(int64_t bytes);
// Frees what idle backend states hold (streams, cached blocks, workspaces).
void releaseCachedCudaMemory();

}  // namespace helpers
}  // namespace sinkhorn

#endif
