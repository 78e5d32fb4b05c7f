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
