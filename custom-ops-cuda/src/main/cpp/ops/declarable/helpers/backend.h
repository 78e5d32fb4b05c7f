// Backend memory for the solver loops: a typed buffer owned by a backend (host or device memory).
//
// A backend is a class with
//   void* allocate(size_t bytes); void release(void* p) noexcept;
//   void upload(void* dst, const void* hostSrc, size_t bytes); void download(void* hostDst, const void* src, size_t bytes);
//   template <typename T> void squaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out);   // out_i = scale |x_i|^2
//   template <typename T> void softmin(const SoftminPass<T>* passes, int count);   // independent passes, one launch
//   template <typename T> void maxAbsDiff(const T* a, const T* b, const int64_t* hostOffsets,
//                                         const int64_t* offsets, int64_t segments, double* hostOut);
//   template <typename T> bool extend(BoundingBox& box, const T* x, int64_t rows, int64_t d);  // false: NaN/inf in x
//   template <typename T> void translate(T* x, int64_t rows, int64_t d, const std::vector<double>& shift);  // x -= shift
//   template <typename T> void logWeights(const T* w, int64_t rows, T* out);  // out_i = log w_i (kZeroWeightLog for 0)
//   void zero(void* p, size_t bytes);
//   template <typename T> void pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq,
//                                            int64_t rows, int64_t d, T* out);  // cp (x - bary) - cq (x - selfBary)
//   template <typename Work> void repeat(int64_t times, int64_t entries, bool sameAsLast, Work&& work);
//       // queues work() times times; see CudaBackend::repeat (CUDA graphs) and CpuBackend::repeat
//   static constexpr int32_t kind;   // sk_device
// CpuBackend (cpu/cpu_backend.h) and CudaBackend (cuda/cuda_backend.h) are the two.
#ifndef SINKHORN_HELPERS_BACKEND_H
#define SINKHORN_HELPERS_BACKEND_H

#include <cstddef>
#include <utility>
#include <vector>

namespace sinkhorn {
namespace helpers {

template <typename U, typename Backend>
class Buffer {
 public:
  Buffer() = default;
  Buffer(Backend& backend, size_t count)
      : backend_(&backend), data_(count ? static_cast<U*>(backend.allocate(count * sizeof(U))) : nullptr), count_(count) {}
  Buffer(Backend& backend, const std::vector<U>& host) : Buffer(backend, host.size()) { upload(host.data()); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept { swap(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    swap(other);
    return *this;
  }
  ~Buffer() {
    if (data_) backend_->release(data_);
  }

  void swap(Buffer& other) noexcept {
    std::swap(backend_, other.backend_);
    std::swap(data_, other.data_);
    std::swap(count_, other.count_);
  }
  U* get() const { return data_; }
  size_t size() const { return count_; }
  void upload(const U* host) { if (count_) backend_->upload(data_, host, count_ * sizeof(U)); }
  void download(U* host) const { if (count_) backend_->download(host, data_, count_ * sizeof(U)); }
  void zero() { if (count_) backend_->zero(data_, count_ * sizeof(U)); }
  // From device memory of a backend that reads it (Backend::kReadsCudaMemory); what names the source.
  void copyFromDevice(const U* device, const char* what) {
    if (count_) backend_->copyFromDevice(data_, device, count_ * sizeof(U), what);
  }
  std::vector<U> toHost() const {
    std::vector<U> host(count_);
    download(host.data());
    return host;
  }

 private:
  Backend* backend_ = nullptr;
  U* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace helpers
}  // namespace sinkhorn

#endif
