// Thin wrappers over PTX used by the kernels: asynchronous copies, TF32 conversion, tensor-core
// mma, fast base-2 exponential.
#ifndef SINKHORN_HELPERS_CUDA_INTRINSICS_CUH
#define SINKHORN_HELPERS_CUDA_INTRINSICS_CUH

#include <cstdint>

namespace sinkhorn {
namespace helpers {
namespace cuda {

__device__ __forceinline__ unsigned smemAddress(const void* p) {
  return static_cast<unsigned>(__cvta_generic_to_shared(p));
}

// 16-byte copy global -> shared, zero-filled when !valid (the source is then not read).
__device__ __forceinline__ void cpAsync16(void* smem, const void* gmem, bool valid = true) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smemAddress(smem)), "l"(gmem),
               "r"(valid ? 16 : 0));
}

// 4-byte copy global -> shared, zero-filled when !valid.
__device__ __forceinline__ void cpAsync4(void* smem, const void* gmem, bool valid = true) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smemAddress(smem)), "l"(gmem),
               "r"(valid ? 4 : 0));
}

__device__ __forceinline__ void cpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// mbarriers (shared memory, CTA scope).
__device__ __forceinline__ void mbarInit(uint64_t* bar, unsigned count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(smemAddress(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarArrive(uint64_t* bar) {
  asm volatile("{\n .reg .b64 state;\n mbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(smemAddress(bar))
               : "memory");
}
// Arrives on bar once all cp.async copies issued so far by this thread have landed (the arrival is
// one of the barrier's expected count).
__device__ __forceinline__ void cpAsyncArrive(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(smemAddress(bar)) : "memory");
}
// Waits for the completion of the barrier's phase with the given parity (try_wait, which may
// suspend the thread, on Hopper; a test_wait spin before).
__device__ __forceinline__ void mbarWait(uint64_t* bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n .reg .pred done;\n"
      "WAIT_%=:\n"
      " mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT_%=;\n}\n" ::"r"(smemAddress(bar)),
      "r"(parity)
      : "memory");
#else
  asm volatile(
      "{\n .reg .pred done;\n"
      "WAIT_%=:\n"
      " mbarrier.test_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT_%=;\n}\n" ::"r"(smemAddress(bar)),
      "r"(parity)
      : "memory");
#endif
}

// Cluster-scope transfers (Hopper): 16-byte stores into another CTA's shared memory that count
// their bytes on an mbarrier there, so that the receiver waits for its data instead of the whole
// cluster meeting at a barrier after a GPU-scope fence. Not used where clusters are not (before
// sm_90, where these compile to nothing).
//
// p (a shared address of this CTA) at the same offset in the cluster's CTA of rank q.
__device__ __forceinline__ unsigned clusterAddress(const void* p, unsigned q) {
  unsigned remote = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(smemAddress(p)), "r"(q));
#endif
  return remote;
}
// Makes mbarrier initialisations visible to the cluster (before the barrier that publishes them).
__device__ __forceinline__ void mbarInitClusterFence() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}
// The 16 bytes of word into the cluster shared address remote, completing 16 bytes of the current
// transaction of the mbarrier at cluster shared address remoteBar (in the same CTA as remote).
__device__ __forceinline__ void storeAsync16(unsigned remote, const uint4& word, unsigned remoteBar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("st.async.shared::cluster.mbarrier::complete_tx::bytes.v4.b32 [%0], {%1, %2, %3, %4}, [%5];\n"
               ::"r"(remote), "r"(word.x), "r"(word.y), "r"(word.z), "r"(word.w), "r"(remoteBar)
               : "memory");
#endif
}
// This thread's arrival on bar (a local mbarrier), announcing bytes more of the phase's transaction.
__device__ __forceinline__ void mbarArriveExpectTx(uint64_t* bar, unsigned bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("{\n .reg .b64 state;\n mbarrier.arrive.expect_tx.shared::cta.b64 state, [%0], %1;\n}\n"
               ::"r"(smemAddress(bar)), "r"(bytes)
               : "memory");
#endif
}
// Waits for the phase of the given parity of bar (a local mbarrier) to complete, with acquire
// semantics at cluster scope: the bytes other CTAs stored with storeAsync16 are then visible.
__device__ __forceinline__ void mbarWaitCluster(uint64_t* bar, unsigned parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile(
      "{\n .reg .pred done;\n"
      "WAIT_%=:\n"
      " mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 done, [%0], %1;\n"
      " @!done bra WAIT_%=;\n}\n" ::"r"(smemAddress(bar)),
      "r"(parity)
      : "memory");
#endif
}

// Round to nearest (ties away) TF32; the result is a float bit pattern with 13 low zero bits.
__device__ __forceinline__ uint32_t toTf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

// D = A (16x8, row) * B (8x8, col) + D, TF32 inputs, float accumulators.
__device__ __forceinline__ void mmaTf32(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// 2^x on the special function unit (2 ulp; flushes denormals; -inf gives 0, +large gives inf).
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

}  // namespace cuda
}  // namespace helpers
}  // namespace sinkhorn

#endif
