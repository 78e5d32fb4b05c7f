package io.github.sinkhorn4j.core;

import static java.lang.foreign.ValueLayout.ADDRESS;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * An array of one {@link DType} in CUDA device memory (the current device), owned by the caller: clouds
 * that stay on the GPU across solves ({@link Clouds#onCuda}), so that a solve copies them on the device
 * instead of uploading them. Its memory is not part of {@link CudaMemory}'s cache nor of its limit;
 * {@link #close()} frees it.
 */
public final class CudaArray implements AutoCloseable {
    private final DType dtype;
    private final long length;
    private final MemorySegment address;  // zero length: a device address is never read from Java
    private boolean closed;

    private CudaArray(DType dtype, long length, MemorySegment address) {
        this.dtype = dtype;
        this.length = length;
        this.address = address;
    }

    /**
     * A device copy of the whole of host, as values of dtype.
     *
     * @throws SinkhornException with status NO_DEVICE without a usable CUDA device, OUT_OF_MEMORY when the
     *         device has no room
     */
    public static CudaArray upload(DType dtype, MemorySegment host) {
        Objects.requireNonNull(dtype, "dtype");
        Objects.requireNonNull(host, "host");
        long bytes = host.byteSize();
        if (bytes == 0 || bytes % dtype.bytes() != 0) {
            throw new IllegalArgumentException("host must hold a whole, positive number of " + dtype + " values (got "
                    + bytes + " bytes)");
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment source = host.isNative() ? host : arena.allocate(bytes, 8).copyFrom(host);
            MemorySegment out = arena.allocate(ADDRESS);
            NativeLibrary.call(() -> (int) NativeLibrary.CUDA_UPLOAD.invokeExact(source, bytes, out));
            return new CudaArray(dtype, bytes / dtype.bytes(), out.get(ADDRESS, 0));
        }
    }

    public DType dtype() {
        return dtype;
    }

    /** Number of values. */
    public long length() {
        return length;
    }

    /** The device address, for the library's calls. */
    synchronized MemorySegment address() {
        if (closed) throw new IllegalStateException("this CudaArray is closed");
        return address;
    }

    /** Frees the device memory; later solves on clouds that hold this array fail. */
    @Override
    public synchronized void close() {
        if (closed) return;
        closed = true;
        NativeLibrary.call(() -> (int) NativeLibrary.CUDA_FREE.invokeExact(address));
    }
}
