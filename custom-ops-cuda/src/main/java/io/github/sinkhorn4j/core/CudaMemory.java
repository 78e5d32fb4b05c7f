package io.github.sinkhorn4j.core;

import static io.github.sinkhorn4j.core.NativeLibrary.CUDA_MEMORY;
import static io.github.sinkhorn4j.core.NativeLibrary.offset;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The device memory of the CUDA backend. Solves keep their streams, device memory and workspaces in
 * a process-wide cache, so that the next call (from any thread) allocates nothing; {@link
 * #releaseCached()} hands what no running solve uses back to the driver, and {@link #setLimit} caps
 * what the library may hold (an allocation past it fails with {@link SinkhornException.Status#OUT_OF_MEMORY},
 * as a real out-of-memory does). Without CUDA support every figure is 0.
 */
public final class CudaMemory {
    private CudaMemory() {}

    /** Bytes held on all devices (in use and cached), their high-water mark since the last reset, and the cap (0: none). */
    public record Usage(long heldBytes, long peakBytes, long limitBytes) {}

    public static Usage usage() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(CUDA_MEMORY);
            NativeLibrary.call(() -> (int) NativeLibrary.CUDA_MEMORY_USAGE.invokeExact(out));
            return new Usage(out.get(JAVA_LONG, offset(CUDA_MEMORY, "held")), out.get(JAVA_LONG, offset(CUDA_MEMORY, "peak")),
                    out.get(JAVA_LONG, offset(CUDA_MEMORY, "limit")));
        }
    }

    /** Starts a new high-water mark at the bytes held now. */
    public static void resetPeak() {
        NativeLibrary.call(() -> (int) NativeLibrary.CUDA_RESET_PEAK_MEMORY.invokeExact());
    }

    /** Caps the device memory the library may hold, in bytes; 0 removes the cap. */
    public static void setLimit(long bytes) {
        if (bytes < 0) throw new IllegalArgumentException("bytes must be >= 0 (0: no limit), got " + bytes);
        NativeLibrary.call(() -> (int) NativeLibrary.CUDA_SET_MEMORY_LIMIT.invokeExact(bytes));
    }

    /** Frees the cached device memory and streams that no running solve uses. */
    public static void releaseCached() {
        NativeLibrary.call(() -> (int) NativeLibrary.CUDA_RELEASE_CACHED_MEMORY.invokeExact());
    }
}
