package io.github.sinkhorn4j.core;

import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * The input of a solve: point clouds x (n x d) and y (m x d), row-major, with optional weights a (n)
 * and b (m) (null: uniform per problem), in native or heap memory segments of one {@link DType}.
 * A batch holds independent problems back to back: problem k owns rows xOffsets[k]..xOffsets[k+1]
 * of x and yOffsets[k]..yOffsets[k+1] of y.
 * <p>
 * The coordinates may instead stay in CUDA device memory ({@link #onCuda}: cudaX and cudaY, with x and y
 * null); {@link Sinkhorn#divergence} then solves them on the GPU without uploading them. Plan products
 * and Hessian-vector products take host clouds.
 */
public record Clouds(DType dtype, long batch, long[] xOffsets, long[] yOffsets, long n, long m, long d,
                     MemorySegment x, MemorySegment y, MemorySegment a, MemorySegment b, CudaArray cudaX,
                     CudaArray cudaY) {

    public Clouds {
        Objects.requireNonNull(dtype, "dtype");
        if (batch < 1) throw new IllegalArgumentException("batch must be >= 1 (got " + batch + ")");
        if (n < 1) throw new IllegalArgumentException("x must hold at least one point (empty cloud)");
        if (m < 1) throw new IllegalArgumentException("y must hold at least one point (empty cloud)");
        if (d < 1) throw new IllegalArgumentException("d must be >= 1 (got " + d + ")");
        xOffsets = offsets("xOffsets", xOffsets, batch, n);
        yOffsets = offsets("yOffsets", yOffsets, batch, m);
        if (cudaX == null && cudaY == null) {
            requireSize("x", x, n * d, dtype);
            requireSize("y", y, m * d, dtype);
        } else {
            if (x != null || y != null) throw new IllegalArgumentException("x and y must be null when cudaX and cudaY hold the clouds");
            requireSize("cudaX", cudaX, n * d, dtype);
            requireSize("cudaY", cudaY, m * d, dtype);
        }
        if (a != null) requireSize("a", a, n, dtype);
        if (b != null) requireSize("b", b, m, dtype);
    }

    /** One problem. */
    public static Clouds of(DType dtype, long n, long m, long d, MemorySegment x, MemorySegment y, MemorySegment a,
                            MemorySegment b) {
        return new Clouds(dtype, 1, null, null, n, m, d, x, y, a, b, null, null);
    }

    /** One problem whose coordinates are in CUDA device memory (the weights, if any, in host memory). */
    public static Clouds onCuda(long n, long m, long d, CudaArray x, CudaArray y, MemorySegment a, MemorySegment b) {
        Objects.requireNonNull(x, "x");
        return new Clouds(x.dtype(), 1, null, null, n, m, d, null, null, a, b, x, y);
    }

    /** Whether the coordinates are in CUDA device memory. */
    public boolean isOnCuda() {
        return cudaX != null;
    }

    /** A batch of problems delimited by row offsets (batch + 1 entries each, from 0 to the row count). */
    public static Clouds batched(DType dtype, long[] xOffsets, long[] yOffsets, long d, MemorySegment x, MemorySegment y,
                                 MemorySegment a, MemorySegment b) {
        Objects.requireNonNull(xOffsets, "xOffsets");
        Objects.requireNonNull(yOffsets, "yOffsets");
        if (xOffsets.length != yOffsets.length) {
            throw new IllegalArgumentException("xOffsets and yOffsets must have the same length (batch + 1)");
        }
        return new Clouds(dtype, xOffsets.length - 1, xOffsets, yOffsets, xOffsets[xOffsets.length - 1],
                yOffsets[yOffsets.length - 1], d, x, y, a, b, null, null);
    }

    /**
     * Checks the weights: finite and non-negative, with positive mass per problem. The coordinates are
     * checked by the library (finite), on the backend that solves, in the pass that measures them: a
     * check here would read both clouds once more on the host (~2 ms at n = m = 50000, d = 64).
     */
    public void validateValues() {
        if (a != null) requireWeights("a", a, xOffsets);
        if (b != null) requireWeights("b", b, yOffsets);
    }

    private static long[] offsets(String name, long[] offsets, long batch, long rows) {
        if (offsets == null) {
            if (batch != 1) throw new IllegalArgumentException(name + " are required when batch > 1");
            return new long[] {0, rows};
        }
        if (offsets.length != batch + 1) {
            throw new IllegalArgumentException(name + " must have batch + 1 = " + (batch + 1) + " entries (got " + offsets.length + ")");
        }
        if (offsets[0] != 0 || offsets[(int) batch] != rows) {
            throw new IllegalArgumentException(name + " must start at 0 and end at " + rows);
        }
        for (int k = 0; k < batch; k++) {
            if (offsets[k + 1] <= offsets[k]) {
                throw new IllegalArgumentException(name + ": problem " + k + " of the batch is empty or the offsets decrease");
            }
        }
        return offsets.clone();
    }

    private static void requireSize(String name, MemorySegment s, long count, DType dtype) {
        Objects.requireNonNull(s, name);
        if (s.byteSize() < count * dtype.bytes()) {
            throw new IllegalArgumentException(name + " holds " + s.byteSize() / dtype.bytes() + " " + dtype
                    + " values, " + count + " needed");
        }
    }

    static void requireSize(String name, CudaArray array, long count, DType dtype) {
        Objects.requireNonNull(array, name);
        if (array.dtype() != dtype) throw new IllegalArgumentException(name + " holds " + array.dtype() + " values, not " + dtype);
        if (array.length() < count) {
            throw new IllegalArgumentException(name + " holds " + array.length() + " " + dtype + " values, " + count + " needed");
        }
    }

    private void requireWeights(String name, MemorySegment s, long[] offsets) {
        for (int k = 0; k + 1 < offsets.length; k++) {
            double mass = 0;
            for (long i = offsets[k]; i < offsets[k + 1]; i++) {
                double v = dtype.get(s, i);
                if (!Double.isFinite(v) || v < 0) {
                    throw new IllegalArgumentException(name + " must be finite and non-negative (got " + v + " at index " + i + ")");
                }
                mass += v;
            }
            if (!(mass > 0)) throw new IllegalArgumentException(name + " has zero total mass" + (batch > 1 ? " in problem " + k : ""));
        }
    }
}
