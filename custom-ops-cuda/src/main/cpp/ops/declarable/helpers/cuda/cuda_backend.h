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
#include <exception>
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
  // graphs: the sk_cuda_graphs mode of repeat().
  CudaBackend(bool allowTf32, int32_t graphs);
  ~CudaBackend();
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  void* allocate(size_t bytes);
  void release(void* p) noexcept;
  void upload(void* dst, const void* hostSrc, size_t bytes);
  void download(void* hostDst, const void* src, size_t bytes);
  void zero(void* p, size_t bytes);

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
  // out_i = log w_i, kZeroWeightLog for w_i = 0 (../softmin.h)
  template <typename T>
  void logWeights(const T* w, int64_t rows, T* out);
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

  // Queues work() times times. work() must queue softmin passes only (no transfer, allocation or
  // synchronisation), leave the host state as it found it and queue the same launches (kernels,
  // pointers, scalars) on every call; sameAsLast: they are also those of this backend's previous
  // repeat() call. entries: the cost-matrix entries of one softmin pass of work().
  // Where graphs pay (mode on, or auto and entries <= kGraphMaxEntries), one call of work() is recorded
  // into a CUDA graph by stream capture and the graph is launched for the other calls: one launch
  // instead of a few per softmin, and kernels back to back on the device. A new work first runs
  // once directly, which fills the caches (workspaces, tensor-core copies of the clouds) that the
  // recording then only reads. The graph runs the same kernels on the same arguments in the same
  // order as direct launches, so results are bitwise the same. The instantiated graph stays in the
  // pooled state, updated in place (cudaGraphExecUpdate) by the next recording of the same shape.
  template <typename Work>
  void repeat(int64_t times, int64_t entries, bool sameAsLast, Work&& work);
  // Largest pass, in cost-matrix entries, replayed as CUDA graphs in auto mode: 4096 x 4096. Estimated
  // from ~2-4 us of host time per launch against the softmin's time per entry: past this size the
  // kernels take tens of microseconds and the launches hide behind them. BenchmarkRunner's
  // --cuda-graphs on|off measures both sides.
  static constexpr int64_t kGraphMaxEntries = int64_t(1) << 24;

  // The dense solver's primitives (../dense.h), kernels in dense_kernels.cu.
  template <typename T>
  void denseLse(const DenseBatch<T>& batch, const DenseLsePass<T>& pass);
  template <typename T>
  void densePlan(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, T* out);
  template <typename T>
  void densePlanProduct(const DenseBatch<T>& batch, const T* biasA, const T* biasB, T scale2, bool transpose,
                        int64_t k, const T* v, T* out);
  template <typename T>
  int64_t denseFirstNonFinite(const DenseBatch<T>& batch);
  // The whole loop of dense_solver.h in one launch when an item's costs fit the shared memory of a
  // cluster of CTAs; false, with nothing done, otherwise.
  static constexpr bool kResidentDense = true;

  // Reads device memory of its own device (sk_memory CUDA).
  static constexpr bool kReadsCudaMemory = true;
  // dst = bytes at deviceSrc, which must be memory of this backend's device (else an
  // SK_INVALID_ARGUMENT naming what).
  void copyFromDevice(void* dst, const void* deviceSrc, size_t bytes, const char* what);
  template <typename T>
  bool denseResident(const DenseBatch<T>& batch, const DenseResidentSolve<T>& solve);

 private:
  // repeat()'s steps (cuda_backend.cu).
  enum class GraphPlan {
    replay,   // the previous repeat() recorded the same work: launch its graph
    record,   // the previous repeat() ran the same work directly: the caches are filled, record it
    warmUp,   // a new work: run it once directly, then record it
    direct,   // graphs off, not worth it at this size, or a recording failed before
  };
  GraphPlan planRepeat(bool sameAsLast, int64_t entries);
  // Starts capturing the stream. Ends the capture and instantiates the graph. Both return false, in
  // auto mode, when the capture, the recorded work or the instantiation failed, which leaves nothing
  // recorded or queued; in mode on the failure is thrown instead.
  bool beginRecording();
  bool endRecording(std::exception_ptr workFailure);
  void replay(int64_t times);

  std::unique_ptr<cuda::BackendState> state_;
};

template <typename Work>
void CudaBackend::repeat(int64_t times, int64_t entries, bool sameAsLast, Work&& work) {
  if (times <= 0) return;
  switch (planRepeat(sameAsLast, entries)) {
    case GraphPlan::replay:
      return replay(times);
    case GraphPlan::direct:
      for (int64_t i = 0; i < times; ++i) work();
      return;
    case GraphPlan::warmUp:
      work();
      if (--times == 0) return;
      break;
    case GraphPlan::record:
      break;
  }
  if (beginRecording()) {
    // work() leaves the host state as it found it, so a failed recording (an allocation or a call
    // that capture does not support) falls back to running it directly, which rethrows real errors.
    std::exception_ptr failure;
    try {
      work();
    } catch (...) {
      failure = std::current_exception();
    }
    if (endRecording(failure)) return replay(times);
  }
  for (int64_t i = 0; i < times; ++i) work();
}

// Number of usable CUDA devices: 0 without a driver, a device or CUDA support; never throws.
int32_t cudaDeviceCount();

// Device memory held by the library (live and cached, every backend state), its high-water mark
// since the last reset, and the cap on it (0: none).
struct CudaMemoryUsage {
  int64_t held, peak, limit;
};
CudaMemoryUsage cudaMemoryUsage();
// sk_cuda_upload / sk_cuda_free: caller-owned device arrays on the current device.
void* cudaUploadArray(const void* host, size_t bytes);
void cudaFreeArray(void* device);
void resetCudaPeakMemory();
void setCudaMemoryLimit(int64_t bytes);
// Frees what idle backend states hold (streams, cached blocks, workspaces).
void releaseCachedCudaMemory();

}  // namespace helpers
}  // namespace sinkhorn

#endif
