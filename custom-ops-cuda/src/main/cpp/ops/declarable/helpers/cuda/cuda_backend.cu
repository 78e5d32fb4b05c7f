// The CUDA backend: memory, transfers, errors, and the planning of softmin launches (which kernel,
// stream-K or plain decomposition, workspace, TF32 preparation of the clouds).
#include "cuda_backend.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "../backend.h"
#include "../bounding_box.h"
#include "../host_parallel.h"
#include "softmin_launch.h"
#include "dense_launch.h"
#include "plan_support_launch.h"
#include "system/status.h"

namespace sinkhorn {
namespace helpers {
namespace cuda {

namespace {

sk_status statusOf(cudaError_t err) {
  switch (err) {
    case cudaErrorMemoryAllocation:
      return SK_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorInvalidDevice:
      return SK_NO_DEVICE;
    default:
      return SK_DEVICE_ERROR;
  }
}

[[noreturn]] void fail(cudaError_t err, const std::string& what) {
  cudaGetLastError();  // clear a non-sticky error so that the context stays usable
  throw Error(statusOf(err), "CUDA error in " + what + ": " + cudaGetErrorString(err) + " (" +
                                 cudaGetErrorName(err) + ")");
}

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) fail(err, what);
}

constexpr size_t kAllocGranularity = 512;        // cached blocks are reused at equal rounded size
constexpr size_t kMaxPreparedClouds = 8;         // tensor-core copies of clouds kept between calls
// Uploads of at least kStagedUploadBytes travel through pinned staging memory (a ring of at most
// kMaxStaging bytes, an upload's rounds at most that long), copied into it by up to kUploadThreads
// host threads, each of which issues the DMA of its slice as soon as the slice is in. A pageable
// cudaMemcpy stages through the driver's buffers from one thread: on the H200 machine 25.6 MB took
// 2.5-3.7 ms that way, 0.47 ms from pinned memory, and an 8-thread host copy 0.5-0.8 ms. Below
// 8 MiB the threads cost more than they save: the solver's uploads of two clouds took 0.62 ms
// pageable against 0.85 staged at n = 10000, d = 64 (2.6 MB each), 1.2 against 1.5 at n = 20000,
// 4.6 against 3.6 at n = 50000.
constexpr size_t kStagedUploadBytes = size_t(8) << 20;
constexpr size_t kMaxStaging = size_t(64) << 20;
constexpr size_t kMinUploadSlice = size_t(1) << 20;
constexpr int kUploadThreads = 8;
constexpr size_t kStagingAlignment = 256;  // where consecutive uploads start in the staging ring

// Device memory the library holds (live and cached blocks of every backend state), its high-water
// mark, and the optional cap set by the user.
struct MemoryAccount {
  std::atomic<int64_t> held{0}, peak{0}, limit{0};

  void add(int64_t bytes) {
    const int64_t now = held += bytes;
    int64_t p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
  void remove(int64_t bytes) { held -= bytes; }
  bool fits(int64_t bytes) const {
    const int64_t cap = limit.load();
    return cap <= 0 || held.load() + bytes <= cap;
  }
};

MemoryAccount& account() {
  static MemoryAccount a;
  return a;
}

}  // namespace

struct BackendState {
  int device = 0;
  int smCount = 0;
  bool allowTf32 = true;
  cudaStream_t stream = nullptr;

  std::unordered_map<void*, size_t> live;      // allocation -> rounded size
  std::multimap<size_t, void*> freeBlocks;     // released, kept for reuse

  // Workspaces owned by the backend (allocated through the cache).
  void* partials = nullptr;
  size_t partialsBytes = 0;
  void* biases = nullptr;
  size_t biasesBytes = 0;
  unsigned long long* diffBits = nullptr;
  size_t diffCount = 0;
  cuda::DenseResidentState denseResident;
  // The dense column pass's split partials, and its arrival counters (zero between launches).
  void* densePartials = nullptr;
  size_t densePartialsBytes = 0;
  void* denseCounters = nullptr;
  size_t denseCountersBytes = 0;

  // TF32-rounded, padded copies of clouds, valid until the source is written through this backend.
  struct Prepared {
    const void* src;
    int64_t rows, d, ld;
    void* data;
  };
  std::vector<Prepared> prepared;

  std::map<std::tuple<int, int64_t, int, int>, KernelShape> shapes;

  // CudaBackend::repeat. The instantiated graph outlives the backends that use the state (it is
  // updated in place by the next recording); what it holds is valid only while lastRepeat says so.
  enum class LastRepeat { none, direct, recorded };
  int32_t graphMode = SK_CUDA_GRAPHS_AUTO;
  cudaGraphExec_t graph = nullptr;
  std::vector<uintptr_t> graphShape;  // graphShapeOf the graph instantiated last
  LastRepeat lastRepeat = LastRepeat::none;
  bool capturing = false;
  bool releasedWhileCapturing = false;
  bool graphsFailed = false;  // a recording failed: direct launches for the rest of the backend's life

  // Pinned staging memory of large uploads, used as a ring: consecutive uploads take the bytes
  // from stagingTail on, so that one need not wait for the previous one's DMA; the event follows
  // the last DMA issued, which reads the ring's last bytes.
  void* staging = nullptr;
  size_t stagingBytes = 0;
  size_t stagingTail = 0;
  cudaEvent_t stagingRead = nullptr;

  ~BackendState() {
    if (stream) cudaStreamSynchronize(stream);
    if (staging) cudaFreeHost(staging);
    if (stagingRead) cudaEventDestroy(stagingRead);
    if (graph) cudaGraphExecDestroy(graph);
    for (auto& kv : live) free(kv.first, kv.second);
    for (auto& kv : freeBlocks) free(kv.second, kv.first);
    if (stream) cudaStreamDestroy(stream);
    cudaGetLastError();
  }

  static void free(void* p, size_t bytes) noexcept {
    cudaFree(p);
    account().remove(int64_t(bytes));
  }

  void select() { check(cudaSetDevice(device), "cudaSetDevice"); }

  void* allocate(size_t bytes) {
    // Memory handed out under capture would be written only when the graph runs, and a block reused
    // from the cache may be released again before that.
    if (capturing) throw Error(SK_INTERNAL_ERROR, "CUDA device memory: no allocation may be recorded into a CUDA graph");
    const size_t rounded = std::max<size_t>(kAllocGranularity, (bytes + kAllocGranularity - 1) / kAllocGranularity *
                                                                   kAllocGranularity);
    auto it = freeBlocks.find(rounded);
    if (it != freeBlocks.end()) {
      void* p = it->second;
      freeBlocks.erase(it);
      live.emplace(p, rounded);
      return p;
    }
    if (!account().fits(int64_t(rounded))) trim();
    if (!account().fits(int64_t(rounded)))
      throw Error(SK_OUT_OF_MEMORY, "CUDA device memory: cannot allocate " + std::to_string(bytes) +
                                        " bytes within the limit of " + std::to_string(account().limit.load()) +
                                        " bytes (" + std::to_string(account().held.load()) +
                                        " bytes held by sinkhorn4j); raise or remove it (sk_cuda_set_memory_limit)");
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, rounded);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      trim();
      err = cudaMalloc(&p, rounded);
    }
    if (err != cudaSuccess) {
      cudaGetLastError();
      size_t freeMem = 0, totalMem = 0;
      cudaMemGetInfo(&freeMem, &totalMem);
      cudaGetLastError();
      throw Error(statusOf(err), "CUDA device memory: cannot allocate " + std::to_string(bytes) + " bytes (" +
                                     std::to_string(freeMem >> 20) + " MiB free of " +
                                     std::to_string(totalMem >> 20) + " MiB): " + cudaGetErrorString(err));
    }
    live.emplace(p, rounded);
    account().add(int64_t(rounded));
    return p;
  }

  // A released block may be handed out again, so a recorded graph that reads it is no longer valid.
  void release(void* p) noexcept {
    if (!p) return;
    if (capturing) releasedWhileCapturing = true;
    lastRepeat = LastRepeat::none;
    auto it = live.find(p);
    if (it == live.end()) return;
    const size_t size = it->second;
    live.erase(it);
    forgetPrepared(p, size);
    freeBlocks.emplace(size, p);
  }

  // Frees the cached blocks (synchronises the device).
  void trim() noexcept {
    for (auto& kv : freeBlocks) free(kv.second, kv.first);
    freeBlocks.clear();
    cudaGetLastError();
  }

  // Staging memory of min(2 bytes, kMaxStaging) bytes or more (an upload of this size and the next
  // of the same size in turn); false (pageable uploads then) if pinned memory cannot be had.
  bool reserveStaging(size_t bytes) noexcept {
    const size_t wanted = std::min(2 * (bytes + kStagingAlignment), kMaxStaging);
    if (stagingBytes >= wanted) return true;
    if (!stagingRead && cudaEventCreateWithFlags(&stagingRead, cudaEventDisableTiming) != cudaSuccess) {
      stagingRead = nullptr;
      cudaGetLastError();
      return false;
    }
    if (staging) {
      cudaEventSynchronize(stagingRead);
      cudaFreeHost(staging);
      staging = nullptr, stagingBytes = 0, stagingTail = 0;
    }
    if (cudaHostAlloc(&staging, wanted, cudaHostAllocDefault) != cudaSuccess) {
      staging = nullptr;
      cudaGetLastError();
      return false;
    }
    stagingBytes = wanted;
    return true;
  }

  // Drops prepared copies whose source overlaps [p, p + bytes); frees the copies themselves too.
  void forgetPrepared(const void* p, size_t bytes) noexcept {
    const char* lo = static_cast<const char*>(p);
    const char* hi = lo + bytes;
    for (size_t i = 0; i < prepared.size();) {
      const Prepared& e = prepared[i];
      const char* s = static_cast<const char*>(e.src);
      const char* se = s + size_t(e.rows * e.d) * sizeof(float);
      if (s < hi && lo < se) {
        void* data = e.data;
        prepared.erase(prepared.begin() + static_cast<std::ptrdiff_t>(i));
        release(data);
      } else {
        ++i;
      }
    }
  }

  template <typename T>
  void written(const T* p, int64_t count) noexcept {
    if (p && count > 0 && !prepared.empty()) forgetPrepared(p, size_t(count) * sizeof(T));
  }

  // The tensor-core copy of a cloud (see preparedFormat) and its info {max |value|, scale}.
  std::pair<const void*, const float*> prepare(const float* src, int64_t rows, int64_t d) {
    const PreparedFormat f = preparedFormat(d);
    const int64_t ld = f.ldWords;
    const size_t dataBytes = size_t(rows + kPrepRowPadding) * size_t(ld) * 4;
    for (size_t i = 0; i < prepared.size(); ++i) {
      const Prepared e = prepared[i];
      if (e.src == src && e.rows == rows && e.d == d && e.ld == ld) {  // hit: becomes most recent
        prepared.erase(prepared.begin() + static_cast<std::ptrdiff_t>(i));
        prepared.push_back(e);
        return {e.data, reinterpret_cast<const float*>(reinterpret_cast<const char*>(e.data) + dataBytes)};
      }
    }
    if (prepared.size() >= kMaxPreparedClouds) {
      void* data = prepared.front().data;
      prepared.erase(prepared.begin());
      release(data);
    }
    void* data = allocate(dataBytes + 2 * sizeof(float));
    float* info = reinterpret_cast<float*>(static_cast<char*>(data) + dataBytes);
    launchPrepare(src, rows, d, data, info, stream);
    check(cudaGetLastError(), "tensor-core preparation kernel launch");
    prepared.push_back({src, rows, d, ld, data});
    return {data, info};
  }

  // A grown-on-demand workspace (stream-ordered reuse: no synchronisation).
  void* workspace(void*& buffer, size_t& capacity, size_t bytes) {
    if (bytes > capacity) {
      if (buffer) release(buffer);
      buffer = nullptr;
      capacity = 0;
      buffer = allocate(bytes);
      capacity = bytes;
    }
    return buffer;
  }

  void* partialsWorkspace(size_t bytes) {
    if (bytes > partialsBytes) {
      if (partials) release(partials);
      partials = nullptr;
      partialsBytes = 0;
      partials = allocate(bytes);
      partialsBytes = bytes;
    }
    return partials;
  }

  KernelShape shape(bool tf32, bool isDouble, int64_t d, int kv, bool pair) {
    const int64_t dClass = tf32 ? preparedFormat(d).ldWords : 0;
    const auto key = std::make_tuple(tf32 ? 1 : isDouble ? 2 : 0, dClass, kv, pair ? 1 : 0);
    auto it = shapes.find(key);
    if (it != shapes.end()) return it->second;
    KernelShape s = tf32 ? tensorShape(d, kv) : isDouble ? simtShape<double>(kv, pair) : simtShape<float>(kv, pair);
    if (s.blocksPerSm <= 0) {
      const cudaError_t err = s.blocksPerSm < 0 ? static_cast<cudaError_t>(-s.blocksPerSm) : cudaErrorLaunchOutOfResources;
      fail(err, "softmin kernel configuration");
    }
    shapes.emplace(key, s);
    return s;
  }
};

// Backend states outlive the calls that use them, so that the next call (from any thread) finds
// its stream, cached device memory and workspaces ready: cudaMalloc, cudaFree and stream creation
// per call cost more than a small solve. A state serves one call at a time.
class StatePool {
 public:
  static StatePool& instance() {
    static StatePool* pool = new StatePool;  // never destroyed: no CUDA calls during process exit
    return *pool;
  }

  std::unique_ptr<BackendState> acquire(int device) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (size_t i = 0; i < idle_.size(); ++i)
        if (idle_[i]->device == device) {
          std::unique_ptr<BackendState> s = std::move(idle_[i]);
          idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(i));
          return s;
        }
    }
    std::unique_ptr<BackendState> s(new BackendState);
    s->device = device;
    check(cudaDeviceGetAttribute(&s->smCount, cudaDevAttrMultiProcessorCount, device), "cudaDeviceGetAttribute");
    DenseDevice& dense = s->denseResident.device;
    dense.smCount = s->smCount;
    check(cudaDeviceGetAttribute(&dense.computeMajor, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&dense.maxSharedPerBlock, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
          "cudaDeviceGetAttribute");
    check(cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking), "cudaStreamCreate");
    return s;
  }

  // Takes a state back once its work is done; one whose stream failed is destroyed instead.
  void giveBack(std::unique_ptr<BackendState> s) noexcept {
    if (cudaSetDevice(s->device) != cudaSuccess || cudaStreamSynchronize(s->stream) != cudaSuccess) {
      cudaGetLastError();
      return;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    idle_.push_back(std::move(s));
  }

  // Destroys the idle states: their streams, cached blocks and workspaces.
  void clear() noexcept {
    std::vector<std::unique_ptr<BackendState>> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped.swap(idle_);
    }
    for (auto& s : dropped) {
      cudaSetDevice(s->device);
      s.reset();
    }
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<BackendState>> idle_;
};

}  // namespace cuda

using cuda::BackendState;

CudaBackend::CudaBackend(bool allowTf32, int32_t graphs) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    throw Error(SK_NO_DEVICE, std::string("no usable CUDA device: ") +
                                  (err != cudaSuccess ? cudaGetErrorString(err) : "no device found"));
  }
  int device = 0;
  cuda::check(cudaGetDevice(&device), "cudaGetDevice");
  state_ = cuda::StatePool::instance().acquire(device);
  state_->allowTf32 = allowTf32;
  state_->graphMode = graphs;
  state_->lastRepeat = BackendState::LastRepeat::none;
  state_->graphsFailed = false;
}

CudaBackend::~CudaBackend() { cuda::StatePool::instance().giveBack(std::move(state_)); }

void* CudaBackend::allocate(size_t bytes) {
  state_->select();
  return state_->allocate(bytes);
}

void CudaBackend::release(void* p) noexcept { state_->release(p); }

void CudaBackend::upload(void* dst, const void* hostSrc, size_t bytes) {
  if (bytes == 0) return;
  BackendState& s = *state_;
  s.select();
  s.forgetPrepared(dst, bytes);
  if (bytes < cuda::kStagedUploadBytes || s.capturing || !s.reserveStaging(bytes)) {
    cuda::check(cudaMemcpyAsync(dst, hostSrc, bytes, cudaMemcpyHostToDevice, s.stream), "upload (host to device copy)");
    return;
  }
  char* to = static_cast<char*>(dst);
  const char* from = static_cast<const char*>(hostSrc);
  for (size_t done = 0; done < bytes; done += s.stagingBytes) {
    const size_t round = std::min(s.stagingBytes, bytes - done);
    if (s.stagingTail + round > s.stagingBytes) {
      // Wrapping around: every DMA issued so far must have read its bytes.
      cuda::check(cudaEventSynchronize(s.stagingRead), "upload (staging memory)");
      s.stagingTail = 0;
    }
    char* staging = static_cast<char*>(s.staging) + s.stagingTail;
    const int slices = static_cast<int>(std::max<size_t>(
        1, std::min<size_t>({round / cuda::kMinUploadSlice, size_t(cuda::kUploadThreads), size_t(cpuThreadCount())})));
    std::atomic<int> firstError{int(cudaSuccess)};
    forRowChunks(int64_t(round), slices, [&](int, int64_t begin, int64_t end) {
      std::memcpy(staging + begin, from + done + begin, size_t(end - begin));
      cudaError_t err = cudaSetDevice(s.device);
      if (err == cudaSuccess)
        err = cudaMemcpyAsync(to + done + begin, staging + begin, size_t(end - begin), cudaMemcpyHostToDevice, s.stream);
      int none = int(cudaSuccess);
      if (err != cudaSuccess) firstError.compare_exchange_strong(none, int(err));
    });
    cuda::check(static_cast<cudaError_t>(firstError.load()), "upload (host to device copy)");
    cuda::check(cudaEventRecord(s.stagingRead, s.stream), "upload (staging memory)");
    s.stagingTail += (round + cuda::kStagingAlignment - 1) / cuda::kStagingAlignment * cuda::kStagingAlignment;
  }
}

void CudaBackend::copyFromDevice(void* dst, const void* deviceSrc, size_t bytes, const char* what) {
  if (bytes == 0) return;
  BackendState& s = *state_;
  s.select();
  cudaPointerAttributes attributes{};
  const cudaError_t err = cudaPointerGetAttributes(&attributes, deviceSrc);
  if (err != cudaSuccess) cudaGetLastError();
  const bool onDevice = err == cudaSuccess &&
                        (attributes.type == cudaMemoryTypeDevice || attributes.type == cudaMemoryTypeManaged) &&
                        attributes.device == s.device;
  if (!onDevice)
    throw Error(SK_INVALID_ARGUMENT, std::string(what) + " is not CUDA memory of device " + std::to_string(s.device) +
                                         " (memory CUDA needs device pointers, e.g. from sk_cuda_upload)");
  s.forgetPrepared(dst, bytes);
  cuda::check(cudaMemcpyAsync(dst, deviceSrc, bytes, cudaMemcpyDeviceToDevice, s.stream), "device to device copy");
}

void CudaBackend::download(void* hostDst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  BackendState& s = *state_;
  s.select();
  cuda::check(cudaMemcpyAsync(hostDst, src, bytes, cudaMemcpyDeviceToHost, s.stream), "download (device to host copy)");
  cuda::check(cudaStreamSynchronize(s.stream), "download (device to host copy)");
}

void CudaBackend::zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  BackendState& s = *state_;
  s.select();
  s.forgetPrepared(p, bytes);
  cuda::check(cudaMemsetAsync(p, 0, bytes, s.stream), "zero fill (memset)");
}

void CudaBackend::synchronize() {
  state_->select();
  cuda::check(cudaStreamSynchronize(state_->stream), "stream synchronisation");
}

CudaBackend::GraphPlan CudaBackend::planRepeat(bool sameAsLast, int64_t entries) {
  BackendState& s = *state_;
  using Last = BackendState::LastRepeat;
  if (sameAsLast && s.lastRepeat == Last::recorded) return GraphPlan::replay;
  const bool pays = s.graphMode == SK_CUDA_GRAPHS_ON || (s.graphMode == SK_CUDA_GRAPHS_AUTO && entries <= kGraphMaxEntries);
  const bool warm = sameAsLast && s.lastRepeat == Last::direct;
  s.lastRepeat = Last::direct;  // every plan but replay starts with the work run directly or recorded
  if (!pays || s.graphsFailed) return GraphPlan::direct;
  return warm ? GraphPlan::record : GraphPlan::warmUp;
}

bool CudaBackend::beginRecording() {
  BackendState& s = *state_;
  s.select();
  // Thread-local mode: calls of this thread that capture does not support (an allocation, a
  // synchronisation) fail instead of running; other threads' solves are not affected.
  const cudaError_t err = cudaStreamBeginCapture(s.stream, cudaStreamCaptureModeThreadLocal);
  if (err != cudaSuccess) {
    s.graphsFailed = true;
    if (s.graphMode == SK_CUDA_GRAPHS_ON) cuda::fail(err, "CUDA graph capture");
    cudaGetLastError();
    return false;
  }
  s.capturing = true;
  s.releasedWhileCapturing = false;
  return true;
}

namespace {
// What an instantiated graph's in-place update needs unchanged: the nodes in order, their types,
// kernels and memset shapes. Comparing it first avoids asking for updates that must fail.
std::vector<uintptr_t> graphShapeOf(cudaGraph_t g) {
  size_t count = 0;
  std::vector<uintptr_t> shape;
  if (cudaGraphGetNodes(g, nullptr, &count) != cudaSuccess) return shape;
  std::vector<cudaGraphNode_t> nodes(count);
  if (cudaGraphGetNodes(g, nodes.data(), &count) != cudaSuccess) return shape;
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType type;
    cudaGraphNodeGetType(node, &type);
    shape.push_back(uintptr_t(type));
    if (type == cudaGraphNodeTypeKernel) {
      cudaKernelNodeParams k{};
      cudaGraphKernelNodeGetParams(node, &k);
      shape.push_back(reinterpret_cast<uintptr_t>(k.func));
    } else if (type == cudaGraphNodeTypeMemset) {
      cudaMemsetParams m{};
      cudaGraphMemsetNodeGetParams(node, &m);
      shape.insert(shape.end(), {uintptr_t(m.elementSize), uintptr_t(m.width), uintptr_t(m.height)});
    }
  }
  return shape;
}
}  // namespace

bool CudaBackend::endRecording(std::exception_ptr workFailure) {
  BackendState& s = *state_;
  s.capturing = false;
  cudaGraph_t captured = nullptr;
  cudaError_t err = cudaStreamEndCapture(s.stream, &captured);
  if (err == cudaSuccess && s.releasedWhileCapturing) err = cudaErrorStreamCaptureInvalidated;
  if (err == cudaSuccess && !workFailure && s.graph) {
    const std::vector<uintptr_t> shape = graphShapeOf(captured);
    cudaGraphExecUpdateResultInfo info;
    if (shape.empty() || shape != s.graphShape || cudaGraphExecUpdate(s.graph, captured, &info) != cudaSuccess) {
      cudaGetLastError();  // another shape: instantiate anew
      cudaGraphExecDestroy(s.graph);  // freed once a launch still in flight completes
      s.graph = nullptr;
    }
  }
  if (err == cudaSuccess && !workFailure && !s.graph) {
    err = cudaGraphInstantiate(&s.graph, captured, 0);
    if (err != cudaSuccess) s.graph = nullptr;
    else s.graphShape = graphShapeOf(captured);
  }
  if (captured) cudaGraphDestroy(captured);
  if (err == cudaSuccess && !workFailure) {
    s.lastRepeat = BackendState::LastRepeat::recorded;
    return true;
  }
  s.graphsFailed = true;
  if (s.graphMode == SK_CUDA_GRAPHS_ON) {
    if (workFailure) std::rethrow_exception(workFailure);
    cuda::fail(err, "CUDA graph recording");
  }
  cudaGetLastError();
  return false;
}

void CudaBackend::replay(int64_t times) {
  BackendState& s = *state_;
  s.select();
  for (int64_t i = 0; i < times; ++i) cuda::check(cudaGraphLaunch(s.graph, s.stream), "CUDA graph launch");
}

template <typename T>
void CudaBackend::denseLse(const DenseBatch<T>& b, const DenseLsePass<T>& p) {
  BackendState& s = *state_;
  s.select();
  if (!p.columns) {
    cuda::launchDenseRows(b, p, s.stream);
    cuda::check(cudaGetLastError(), "dense row pass launch");
    return;
  }
  const cuda::DenseColumnLayout layout = cuda::denseColumnLayout(b.batch, b.n, b.m, s.smCount);
  T* partials = nullptr;
  unsigned* counters = nullptr;
  if (layout.splits > 1) {
    partials = static_cast<T*>(s.workspace(s.densePartials, s.densePartialsBytes,
                                           cuda::denseColumnPartials(layout, b.batch, b.m) * sizeof(T)));
    const size_t counterBytes = cuda::denseColumnCounters(layout, b.batch) * sizeof(unsigned);
    if (counterBytes > s.denseCountersBytes) {
      s.workspace(s.denseCounters, s.denseCountersBytes, counterBytes);
      cuda::check(cudaMemsetAsync(s.denseCounters, 0, counterBytes, s.stream), "dense column pass counters");
    }
    counters = static_cast<unsigned*>(s.denseCounters);
  }
  cuda::launchDenseColumns(b, p, layout, partials, counters, s.stream);
  cuda::check(cudaGetLastError(), "dense column pass launch");
}

template <typename T>
void CudaBackend::densePlan(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, T* out) {
  BackendState& s = *state_;
  s.select();
  cuda::launchDensePlan(b, biasA, biasB, scale2, out, s.stream);
  cuda::check(cudaGetLastError(), "dense plan kernel launch");
}

template <typename T>
void CudaBackend::densePlanProduct(const DenseBatch<T>& b, const T* biasA, const T* biasB, T scale2, bool transpose,
                                   int64_t k, const T* v, T* out) {
  BackendState& s = *state_;
  s.select();
  cuda::launchDensePlanProduct(b, biasA, biasB, scale2, transpose, k, v, out, s.stream);
  cuda::check(cudaGetLastError(), "dense plan product kernel launch");
}

template <typename T>
int64_t CudaBackend::denseFirstNonFinite(const DenseBatch<T>& b) {
  BackendState& s = *state_;
  s.select();
  Buffer<unsigned long long, CudaBackend> first(*this, 1);
  cuda::check(cudaMemsetAsync(first.get(), 0xFF, sizeof(unsigned long long), s.stream), "dense cost check (memset)");
  cuda::launchDenseFirstNonFinite(b, first.get(), s.stream);
  cuda::check(cudaGetLastError(), "dense cost check launch");
  const unsigned long long index = first.toHost()[0];
  return index == ~0ull ? -1 : static_cast<int64_t>(index);
}

template <typename T>
bool CudaBackend::denseResident(const DenseBatch<T>& b, const DenseResidentSolve<T>& solve) {
  BackendState& s = *state_;
  s.select();
  const bool launched = cuda::launchDenseResident(b, solve, s.denseResident, s.stream);
  cuda::check(cudaGetLastError(), "dense resident solve launch");
  return launched;
}

#define SINKHORN_CUDA_DENSE_INSTANTIATE(T)                                                                   \
  template void CudaBackend::denseLse<T>(const DenseBatch<T>&, const DenseLsePass<T>&);                      \
  template void CudaBackend::densePlan<T>(const DenseBatch<T>&, const T*, const T*, T, T*);                  \
  template void CudaBackend::densePlanProduct<T>(const DenseBatch<T>&, const T*, const T*, T, bool, int64_t, \
                                                 const T*, T*);                                              \
  template int64_t CudaBackend::denseFirstNonFinite<T>(const DenseBatch<T>&);                                \
  template bool CudaBackend::denseResident<T>(const DenseBatch<T>&, const DenseResidentSolve<T>&);
SINKHORN_CUDA_DENSE_INSTANTIATE(float)
SINKHORN_CUDA_DENSE_INSTANTIATE(double)

template <typename T>
void CudaBackend::squaredNorms(const T* x, int64_t rows, int64_t d, T scale, T* out) {
  BackendState& s = *state_;
  s.select();
  cuda::launchSquaredNorms(x, rows, d, scale, out, s.stream);
  cuda::check(cudaGetLastError(), "squared norms kernel launch");
  s.written(out, rows);
}

template <typename T>
void CudaBackend::maxAbsDiff(const T* a, const T* b, const int64_t* hostOffsets, const int64_t* offsets,
                             int64_t segments, double* hostOut) {
  BackendState& s = *state_;
  s.select();
  if (segments <= 0) return;
  if (size_t(segments) > s.diffCount) {
    if (s.diffBits) s.release(s.diffBits);
    s.diffBits = nullptr;
    s.diffCount = 0;
    s.diffBits = static_cast<unsigned long long*>(s.allocate(sizeof(unsigned long long) * size_t(segments)));
    s.diffCount = size_t(segments);
  }
  const int64_t n = hostOffsets[segments];
  cuda::launchMaxAbsDiff(a, b, n, offsets, segments, s.diffBits, s.stream);
  cuda::check(cudaGetLastError(), "max-abs-diff kernel launch");
  std::vector<unsigned long long> bits(static_cast<size_t>(segments));
  cuda::check(cudaMemcpyAsync(bits.data(), s.diffBits, sizeof(unsigned long long) * size_t(segments),
                              cudaMemcpyDeviceToHost, s.stream),
              "max-abs-diff copy");
  cuda::check(cudaStreamSynchronize(s.stream), "max-abs-diff (stream synchronisation)");
  for (int64_t i = 0; i < segments; ++i) std::memcpy(&hostOut[i], &bits[size_t(i)], sizeof(double));
}

template <typename T>
bool CudaBackend::extend(BoundingBox& box, const T* x, int64_t rows, int64_t d) {
  BackendState& s = *state_;
  s.select();
  if (rows <= 0) return true;
  // One allocation and one download: the flag in the first sizeof(T) bytes, then the parts (minima,
  // maxima) of which the first 2d values are the cloud's.
  Buffer<T, CudaBackend> flagAndParts(*this, 1 + size_t(cuda::extentBlocks(rows) * 2 * d));
  int* nonFinite = reinterpret_cast<int*>(flagAndParts.get());
  cuda::launchColumnExtent(x, rows, d, flagAndParts.get() + 1, nonFinite, s.stream);
  cuda::check(cudaGetLastError(), "cloud extent kernel launch");
  std::vector<T> summary(1 + 2 * size_t(d));
  download(summary.data(), flagAndParts.get(), summary.size() * sizeof(T));
  int bad = 0;
  std::memcpy(&bad, summary.data(), sizeof(int));
  const T* lo = summary.data() + 1;
  const T* hi = lo + d;
  for (int64_t t = 0; t < d; ++t) box.lo[t] = std::min(box.lo[t], double(lo[t])), box.hi[t] = std::max(box.hi[t], double(hi[t]));
  return bad == 0;
}

template <typename T>
void CudaBackend::translate(T* x, int64_t rows, int64_t d, const std::vector<double>& shift) {
  BackendState& s = *state_;
  s.select();
  Buffer<T, CudaBackend> onDevice(*this, std::vector<T>(shift.begin(), shift.end()));
  cuda::launchTranslate(x, rows, d, onDevice.get(), s.stream);
  cuda::check(cudaGetLastError(), "translation kernel launch");
  s.written(x, rows * d);
}

template <typename T>
void CudaBackend::logWeights(const T* w, int64_t rows, T* out) {
  BackendState& s = *state_;
  s.select();
  cuda::launchLogWeights(w, rows, out, s.stream);
  cuda::check(cudaGetLastError(), "log weights kernel launch");
  s.written(out, rows);
}

template <typename T>
void CudaBackend::pointGradient(const T* x, const T* bary, const T* cp, const T* selfBary, const T* cq, int64_t rows,
                                int64_t d, T* out) {
  BackendState& s = *state_;
  s.select();
  cuda::launchPointGradient(x, bary, cp, selfBary, cq, rows, d, out, s.stream);
  cuda::check(cudaGetLastError(), "point gradient kernel launch");
  s.written(out, rows * d);
}

template <typename T>
bool CudaBackend::planSupport(const SoftminPass<T>& p, const T* lse, double minWeight, int64_t maxEntries,
                              PlanSupport& out) {
  requireSupportPass(p);
  BackendState& s = *state_;
  s.select();
  // Count per row, then fill at the rows' offsets (the counts, zeroed again, are the cursors).
  Buffer<unsigned, CudaBackend> counts(*this, size_t(p.n));
  const size_t countBytes = size_t(p.n) * sizeof(unsigned);
  const T logMin = T(std::log(minWeight));
  cuda::check(cudaMemsetAsync(counts.get(), 0, countBytes, s.stream), "plan support (zero counts)");
  cuda::launchPlanSupport<T>(p, lse, logMin, counts.get(), nullptr, nullptr, nullptr, s.stream);
  cuda::check(cudaGetLastError(), "plan support kernel launch");
  std::vector<unsigned> perRow(p.n);
  download(perRow.data(), counts.get(), countBytes);
  out.rowStart.assign(p.n + 1, 0);
  for (int64_t i = 0; i < p.n; ++i) out.rowStart[i + 1] = out.rowStart[i] + perRow[i];
  const int64_t total = out.rowStart[p.n];
  if (total > maxEntries) return false;
  Buffer<int64_t, CudaBackend> rowStart(*this, out.rowStart);
  Buffer<int32_t, CudaBackend> col(*this, size_t(total));
  Buffer<T, CudaBackend> weight(*this, size_t(total));
  cuda::check(cudaMemsetAsync(counts.get(), 0, countBytes, s.stream), "plan support (zero cursors)");
  cuda::launchPlanSupport<T>(p, lse, logMin, counts.get(), rowStart.get(), col.get(), weight.get(), s.stream);
  cuda::check(cudaGetLastError(), "plan support kernel launch");
  out.col = col.toHost();
  const std::vector<T> w = weight.toHost();
  out.weight.assign(w.begin(), w.end());
  out.sortRows();
  return true;
}

template <typename T>
void CudaBackend::softmin(const SoftminPass<T>* passes, int count) {
  BackendState& s = *state_;
  s.select();
  constexpr bool isDouble = std::is_same<T, double>::value;
  for (int i = 0; i < count; ++i)
    if (passes[i].pairAvg && !(passes[i].avg && passes[i].pairK <= passes[i].k))
      throw Error(SK_INTERNAL_ERROR, "a pair-weighted average needs the average of at least pairK columns");

  int next = 0;
  while (next < count) {
    // A group: consecutive passes of the same dimension, average width and pair averaging, at most
    // kMaxPasses. Pair-weighted averages run on the CUDA-core kernel, without stream-K.
    const SoftminPass<T>& first = passes[next];
    const bool pair = first.pairAvg != nullptr;
    const bool tf32 = std::is_same<T, float>::value && s.allowTf32 && !pair;
    auto kvOf = [&](const SoftminPass<T>& p) -> int {
      if (!p.avg || p.k <= 0) return 0;
      return p.k <= 8 ? 8 : 64;
    };
    const int kv = kvOf(first);
    int end = next + 1;
    while (end < count && end - next < cuda::kMaxPasses && passes[end].d == first.d && kvOf(passes[end]) == kv &&
           (kv == 0 || passes[end].k == first.k) && (passes[end].pairAvg != nullptr) == pair)
      ++end;

    const cuda::KernelShape shape = s.shape(tf32, isDouble, first.d, kv, pair);
    cuda::LaunchArgs<T> args{};
    args.count = 0;
    bool streamK = !pair;
    for (int i = next; i < end; ++i) {
      const SoftminPass<T>& p = passes[i];
      if (p.n <= 0) continue;  // nothing to write
      if (p.segments != 1 || p.m <= 0) streamK = false;
      cuda::DevicePass<T>& q = args.pass[args.count++];
      q.x = p.x;
      q.y = p.y;
      q.xSqNorm = p.xSqNorm;
      q.ySqNorm = p.ySqNorm;
      q.yLogWeights = p.yLogWeights;
      q.yPotential = p.yPotential;
      q.prev = p.prev;
      q.out = p.out;
      q.lse = p.lse;
      q.v = kv ? p.v : nullptr;
      q.avg = kv ? p.avg : nullptr;
      q.pairRow = pair ? p.pairRow : nullptr;
      q.pairCol = pair ? p.pairCol : nullptr;
      q.pairAvg = pair ? p.pairAvg : nullptr;
      q.q = pair ? p.q : 0;
      q.pairK = pair ? p.pairK : 0;
      q.active = p.active;
      q.xOffsets = p.xOffsets;
      q.yOffsets = p.yOffsets;
      q.segments = p.segments;
      q.n = p.n;
      q.m = p.m;
      q.d = p.d;
      q.k = kv ? p.k : 0;
      q.scale2 = T(2) * p.cost / p.eps * T(cuda::kLog2e);
      q.invEps = T(1) / p.eps;
      q.eps = p.eps;
      q.damping = p.damping;
      q.blend = p.blend;
      q.xPrep = q.yPrep = nullptr;
      q.xInfo = q.yInfo = nullptr;
      q.bias = nullptr;
      q.lseCarry = nullptr;
      q.yPotentialPrev = nullptr;
      q.drift = nullptr;
      q.ldPrep = 0;
      if constexpr (std::is_same<T, float>::value) {
        if (tf32) {
          q.ldPrep = cuda::preparedFormat(p.d).ldWords;
          std::tie(q.xPrep, q.xInfo) = s.prepare(p.x, p.n, p.d);
          std::tie(q.yPrep, q.yInfo) = s.prepare(p.y, p.m, p.d);
          if (kv == 0 && p.lseCarry) q.lseCarry = p.lseCarry, q.yPotentialPrev = p.yPotentialPrev;
        }
      }
      q.rowTiles = (p.n + shape.bm - 1) / shape.bm;
      q.colTiles = (p.m + shape.bn - 1) / shape.bn;
    }
    if (args.count > 0 && tf32) {
      // The passes' biases, then one drift value per pass.
      size_t biasCount = cuda::kMaxPasses;
      for (int i = 0; i < args.count; ++i) biasCount += size_t(args.pass[i].m + cuda::kPrepRowPadding);
      float* b = static_cast<float*>(s.workspace(s.biases, s.biasesBytes, biasCount * sizeof(float)));
      float* drift = b + biasCount - cuda::kMaxPasses;
      bool carried = false;
      for (int i = 0; i < args.count; ++i) {
        args.pass[i].bias = b;
        b += args.pass[i].m + cuda::kPrepRowPadding;
        args.pass[i].drift = drift + i;
        carried = carried || args.pass[i].yPotentialPrev;
      }
      if (carried)
        cuda::check(cudaMemsetAsync(drift, 0, cuda::kMaxPasses * sizeof(float), s.stream), "softmin drift (memset)");
    }
    if (args.count > 0) {
      int64_t total = 0;
      for (int i = 0; i < args.count; ++i) {
        args.pass[i].iterBegin = total;
        total += streamK ? args.pass[i].rowTiles * args.pass[i].colTiles : args.pass[i].rowTiles;
      }
      args.streamK = streamK ? 1 : 0;
      args.totalIters = streamK ? total : 0;
      const int64_t slots = int64_t(s.smCount) * shape.blocksPerSm;
      args.grid = static_cast<int>(streamK ? std::min<int64_t>(total, slots) : total);
      if (streamK) {
        const size_t perSlot = size_t(shape.bm) * (1 + size_t(shape.kv));
        T* ws = static_cast<T*>(s.partialsWorkspace(size_t(args.grid) * 2 * perSlot * sizeof(T)));
        args.wsLse = ws;
        args.wsAvg = ws + size_t(args.grid) * 2 * shape.bm;
      }
      int64_t maxK = 0;
      for (int i = 0; i < args.count; ++i) maxK = std::max(maxK, args.pass[i].k);
      for (int64_t kvBegin = 0; kvBegin == 0 || kvBegin < maxK; kvBegin += std::max(1, shape.kv)) {
        args.kvBegin = kvBegin;
        if (tf32) {
          if constexpr (std::is_same<T, float>::value) cuda::tensorLaunch(first.d, kv, args, s.stream);
        } else {
          cuda::simtLaunch<T>(kv, pair, args, s.stream);
        }
        cuda::check(cudaGetLastError(), "softmin kernel launch");
        if (kv == 0) break;
      }
    }
    for (int i = next; i < end; ++i) {
      const SoftminPass<T>& p = passes[i];
      s.written(p.out, p.n);
      s.written(p.lse, p.n);
      if (p.avg) s.written(p.avg, p.n * p.k);
      if (p.pairAvg) s.written(p.pairAvg, p.n * p.pairK);
    }
    next = end;
  }
}

#define SINKHORN_CUDA_INSTANTIATE(T)                                                                    \
  template void CudaBackend::squaredNorms<T>(const T*, int64_t, int64_t, T, T*);                        \
  template void CudaBackend::softmin<T>(const SoftminPass<T>*, int);                                    \
  template void CudaBackend::maxAbsDiff<T>(const T*, const T*, const int64_t*, const int64_t*, int64_t, \
                                           double*);                                                  \
  template bool CudaBackend::extend<T>(BoundingBox&, const T*, int64_t, int64_t);                       \
  template void CudaBackend::translate<T>(T*, int64_t, int64_t, const std::vector<double>&);            \
  template void CudaBackend::logWeights<T>(const T*, int64_t, T*);                                      \
  template bool CudaBackend::planSupport<T>(const SoftminPass<T>&, const T*, double, int64_t, PlanSupport&); \
  template void CudaBackend::pointGradient<T>(const T*, const T*, const T*, const T*, const T*, int64_t, \
                                              int64_t, T*);
SINKHORN_CUDA_INSTANTIATE(float)
SINKHORN_CUDA_INSTANTIATE(double)

CudaMemoryUsage cudaMemoryUsage() {
  const cuda::MemoryAccount& a = cuda::account();
  return {a.held.load(), a.peak.load(), a.limit.load()};
}

void resetCudaPeakMemory() {
  cuda::MemoryAccount& a = cuda::account();
  a.peak = a.held.load();
}

void setCudaMemoryLimit(int64_t bytes) { cuda::account().limit = bytes; }

void releaseCachedCudaMemory() { cuda::StatePool::instance().clear(); }

void* cudaUploadArray(const void* host, size_t bytes) {
  if (cudaDeviceCount() == 0) throw Error(SK_NO_DEVICE, "no usable CUDA device");
  void* device = nullptr;
  cuda::check(cudaMalloc(&device, bytes), "sk_cuda_upload (cudaMalloc)");
  const cudaError_t err = cudaMemcpy(device, host, bytes, cudaMemcpyHostToDevice);
  if (err != cudaSuccess) {
    cudaFree(device);
    cuda::check(err, "sk_cuda_upload (host to device copy)");
  }
  return device;
}

void cudaFreeArray(void* device) {
  if (device) cuda::check(cudaFree(device), "sk_cuda_free");
}

int32_t cudaDeviceCount() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace helpers
}  // namespace sinkhorn
