// The C ABI (include/sinkhorn4j.h): every exception becomes a status code and a thread-local message.
#include <new>
#include <string>

#include "ops/declarable/generic/dense_sinkhorn.h"
#include "ops/declarable/generic/sinkhorn_divergence.h"
#include "sinkhorn4j.h"
#include "system/status.h"
#ifdef SINKHORN_WITH_CUDA
#include "ops/declarable/helpers/cuda/cuda_backend.h"
#endif

namespace {

thread_local std::string lastError;

template <typename Fn>
int32_t guarded(Fn&& fn) {
  try {
    fn();
    lastError.clear();
    return SK_OK;
  } catch (const sinkhorn::Error& e) {
    lastError = e.what();
    return e.code();
  } catch (const std::bad_alloc&) {
    lastError = "out of host memory";
    return SK_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    lastError = std::string("internal error: ") + e.what();
    return SK_INTERNAL_ERROR;
  } catch (...) {
    lastError = "internal error";
    return SK_INTERNAL_ERROR;
  }
}

}  // namespace

extern "C" {

int32_t sk_divergence(const sk_options* options, const sk_clouds* clouds, sk_outputs* outputs) {
  return guarded([&] {
    sinkhorn::require(options && clouds && outputs, "options, clouds and outputs are required");
    sinkhorn::divergenceOp(*options, *clouds, *outputs);
  });
}

int32_t sk_plan_product(const sk_options* options, const sk_clouds* clouds, const void* f, const void* g,
                        int32_t transpose, int64_t k, const void* v, void* out) {
  return guarded([&] {
    sinkhorn::require(options && clouds, "options and clouds are required");
    sinkhorn::planProductOp(*options, *clouds, f, g, transpose != 0, k, v, out);
  });
}

int32_t sk_hvp(const sk_options* options, const sk_clouds* clouds, const void* f_ba, const void* g_ab,
               const void* f_aa, const void* g_bb, const sk_hvp_options* hvp_options, const void* v, void* out,
               sk_hvp_report* report) {
  return guarded([&] {
    sinkhorn::require(options && clouds && hvp_options && report, "options, clouds, hvp_options and report are required");
    sinkhorn::hvpOp(*options, *clouds, sinkhorn::Potentials{f_ba, g_ab, f_aa, g_bb}, *hvp_options, v, out, *report);
  });
}

const char* sk_last_error(void) { return lastError.c_str(); }

int32_t sk_cuda_device_count(void) {
  int32_t count = 0;
  guarded([&] { count = sinkhorn::cudaDevices(); });
  return count;
}

int32_t sk_cuda_memory_usage(sk_cuda_memory* out) {
  return guarded([&] {
    sinkhorn::require(out != nullptr, "out is required");
    *out = sk_cuda_memory{0, 0, 0};
#ifdef SINKHORN_WITH_CUDA
    const sinkhorn::helpers::CudaMemoryUsage u = sinkhorn::helpers::cudaMemoryUsage();
    *out = sk_cuda_memory{u.held, u.peak, u.limit};
#endif
  });
}

int32_t sk_cuda_upload(const void* host, int64_t bytes, void** device) {
  return guarded([&] {
    sinkhorn::require(host && device, "host and device are required");
    sinkhorn::require(bytes > 0, "bytes must be > 0");
    *device = nullptr;
#ifdef SINKHORN_WITH_CUDA
    *device = sinkhorn::helpers::cudaUploadArray(host, size_t(bytes));
#else
    throw sinkhorn::Error(SK_NO_DEVICE, "this build of the library has no CUDA support");
#endif
  });
}

int32_t sk_cuda_free(void* device) {
  return guarded([&] {
#ifdef SINKHORN_WITH_CUDA
    sinkhorn::helpers::cudaFreeArray(device);
#else
    sinkhorn::require(device == nullptr, "this build of the library has no CUDA support: nothing to free");
#endif
  });
}

int32_t sk_cuda_reset_peak_memory(void) {
  return guarded([] {
#ifdef SINKHORN_WITH_CUDA
    sinkhorn::helpers::resetCudaPeakMemory();
#endif
  });
}

int32_t sk_cuda_set_memory_limit(int64_t bytes) {
  return guarded([&] {
    sinkhorn::require(bytes >= 0, "the device memory limit must be >= 0 bytes (0: no limit)");
#ifdef SINKHORN_WITH_CUDA
    sinkhorn::helpers::setCudaMemoryLimit(bytes);
#endif
  });
}

int32_t sk_cuda_release_cached_memory(void) {
  return guarded([] {
#ifdef SINKHORN_WITH_CUDA
    sinkhorn::helpers::releaseCachedCudaMemory();
#endif
  });
}

int32_t sk_dense_sinkhorn(const sk_dense_options* options, const sk_dense_inputs* inputs, sk_dense_outputs* outputs) {
  return guarded([&] {
    sinkhorn::require(options && inputs && outputs, "options, inputs and outputs are required");
    sinkhorn::denseSinkhornOp(*options, *inputs, *outputs);
  });
}

int32_t sk_dense_plan_product(const sk_dense_options* options, const sk_dense_inputs* inputs, const void* f,
                              const void* g, int32_t transpose, int64_t k, const void* v, void* out) {
  return guarded([&] {
    sinkhorn::require(options && inputs, "options and inputs are required");
    sinkhorn::densePlanProductOp(*options, *inputs, f, g, transpose != 0, k, v, out);
  });
}

}
