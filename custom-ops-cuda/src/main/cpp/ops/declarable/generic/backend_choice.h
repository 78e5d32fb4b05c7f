// The choice of backend, shared by the ops: runOnBackend runs fn(backend) on the backend a device
// option asks for (AUTO: CUDA when the library has it and a device is present, else the CPU) and
// returns the sk_device used.
#ifndef SINKHORN_GENERIC_BACKEND_CHOICE_H
#define SINKHORN_GENERIC_BACKEND_CHOICE_H

#include <string>

#include "../helpers/cpu/cpu_backend.h"
#include "sinkhorn4j.h"
#include "sinkhorn_divergence.h"
#include "system/status.h"
#ifdef SINKHORN_WITH_CUDA
#include "../helpers/cuda/cuda_backend.h"
#endif

namespace sinkhorn {

// The device that solves inputs in `memory` (sk_memory): inputs in CUDA memory are solved where they
// are, so auto means cuda then, and cpu, which cannot read them, is refused naming them.
inline int32_t deviceReading(int32_t device, int32_t memory, const char* inputs) {
  if (memory != SK_MEMORY_CUDA) return device;
  require(device != SK_DEVICE_CPU, std::string("device cpu cannot read ") + inputs + " in CUDA memory");
  return SK_DEVICE_CUDA;
}

// allowTf32: the CUDA backend's float32 dot products on tensor cores; cudaGraphs: its sk_cuda_graphs
// mode (see CudaBackend).
template <typename Fn>
int32_t runOnBackend(int32_t device, bool allowTf32, int32_t cudaGraphs, Fn&& fn) {
  require(device == SK_DEVICE_AUTO || device == SK_DEVICE_CPU || device == SK_DEVICE_CUDA,
          "device must be auto, cpu or cuda");
  require(cudaGraphs == SK_CUDA_GRAPHS_AUTO || cudaGraphs == SK_CUDA_GRAPHS_OFF || cudaGraphs == SK_CUDA_GRAPHS_ON,
          "cuda_graphs must be auto, off or on");
  const bool cuda = device == SK_DEVICE_CUDA || (device == SK_DEVICE_AUTO && cudaDevices() > 0);
  if (cuda) {
#ifdef SINKHORN_WITH_CUDA
    if (cudaDevices() == 0) throw Error(SK_NO_DEVICE, "device cuda requested but no CUDA device is usable");
    helpers::CudaBackend backend(allowTf32, cudaGraphs);
    fn(backend);
    return SK_DEVICE_CUDA;
#else
    (void)allowTf32;
    (void)cudaGraphs;
    throw Error(SK_NO_DEVICE, "device cuda requested but this build of the library has no CUDA support");
#endif
  }
  helpers::CpuBackend backend;
  fn(backend);
  return SK_DEVICE_CPU;
}

}  // namespace sinkhorn

#endif
