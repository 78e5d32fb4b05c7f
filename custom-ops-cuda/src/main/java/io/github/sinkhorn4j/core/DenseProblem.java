package io.github.sinkhorn4j.core;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import java.util.Objects;

/**
 * The input of a dense solve: batch independent cost matrices C (batch x n x m, row-major; an (n, m)
 * problem is batch 1), optional weights a (batch x n) and b (batch x m) (null: uniform over the
 * unmasked entries of each item), and optional masks maskA (batch x n) and maskB (batch x m), one byte
 * per entry, nonzero for present (null: all present). Values of {@link DType}, in native or heap
 * memory segments. Masked entries of C, a and b are never read: padding may hold anything.
 * <p>
 * C may instead stay in CUDA device memory ({@link #onCuda}: cudaC, with c null), for costs reused
 * across solves; the solve then runs on the GPU without uploading it (the weights and masks, small,
 * stay in host memory).
 */
public record DenseProblem(DType dtype, long batch, long n, long m, MemorySegment c, MemorySegment a, MemorySegment b,
                           MemorySegment maskA, MemorySegment maskB, CudaArray cudaC) {

    public DenseProblem {
        Objects.requireNonNull(dtype, "dtype");
        if (batch < 1) throw new IllegalArgumentException("batch must be >= 1 (got " + batch + ")");
        if (n < 1) throw new IllegalArgumentException("n (rows of C) must be >= 1 (got " + n + ")");
        if (m < 1) throw new IllegalArgumentException("m (columns of C) must be >= 1 (got " + m + ")");
        if (n > Long.MAX_VALUE / 16 / batch || m > Long.MAX_VALUE / 16 / (batch * n)) {
            throw new IllegalArgumentException("C: batch x n x m = " + batch + " x " + n + " x " + m + " is too large");
        }
        if (cudaC == null) {
            Sinkhorn.requireRoom("C", c, batch * n * m, dtype.bytes());
        } else {
            if (c != null) throw new IllegalArgumentException("C must be null when cudaC holds the costs");
            Clouds.requireSize("cudaC", cudaC, batch * n * m, dtype);
        }
        if (a != null) Sinkhorn.requireRoom("a", a, batch * n, dtype.bytes());
        if (b != null) Sinkhorn.requireRoom("b", b, batch * m, dtype.bytes());
        if (maskA != null) Sinkhorn.requireRoom("maskA", maskA, batch * n, 1);
        if (maskB != null) Sinkhorn.requireRoom("maskB", maskB, batch * m, 1);
    }

    /** A batch of problems; a, b, maskA, maskB may be null. */
    public static DenseProblem of(DType dtype, long batch, long n, long m, MemorySegment c, MemorySegment a, MemorySegment b,
                                  MemorySegment maskA, MemorySegment maskB) {
        return new DenseProblem(dtype, batch, n, m, c, a, b, maskA, maskB, null);
    }

    /** A batch whose costs are in CUDA device memory (batch x n x m values of c's dtype). */
    public static DenseProblem onCuda(long batch, long n, long m, CudaArray c, MemorySegment a, MemorySegment b,
                                      MemorySegment maskA, MemorySegment maskB) {
        Objects.requireNonNull(c, "cudaC");
        return new DenseProblem(c.dtype(), batch, n, m, null, a, b, maskA, maskB, c);
    }

    /** Whether C is in CUDA device memory. */
    public boolean isOnCuda() {
        return cudaC != null;
    }

    /**
     * Checks the masks and weights: every item keeps at least one entry on each side, weights are
     * finite and non-negative with positive mass over the present entries, and equal masses when
     * both marginals are balanced (relative 1e-5). The costs themselves are checked by the library
     * (finite at present entries) where it reads C: on the device for CUDA.
     */
    public void validateValues(boolean balanced) {
        double[] massA = side("a", a, "maskA", maskA, n), massB = side("b", b, "maskB", maskB, m);
        if (!balanced) return;
        for (int k = 0; k < batch; k++) {
            if (Math.abs(massA[k] - massB[k]) > 1e-5 * Math.max(massA[k], massB[k])) {
                throw new IllegalArgumentException("a and b must have the same total mass when both marginals are balanced"
                        + " (batch item " + k + ": " + massA[k] + " vs " + massB[k] + "); set tauA or tauB to relax one");
            }
        }
    }

    /** Whether entry i (of batch x n or batch x m) of a side is present. */
    static boolean present(MemorySegment mask, long i) {
        return mask == null || mask.get(ValueLayout.JAVA_BYTE, i) != 0;
    }

    private double[] side(String name, MemorySegment w, String maskName, MemorySegment mask, long length) {
        double[] mass = new double[Math.toIntExact(batch)];
        if (w == null && mask == null) {  // uniform over every entry: nothing to read
            Arrays.fill(mass, 1);
            return mass;
        }
        for (int k = 0; k < batch; k++) {
            long count = 0;
            for (long i = k * length; i < (k + 1) * length; i++) {
                if (!present(mask, i)) continue;
                count++;
                double v = w == null ? 1 : dtype.get(w, i);
                if (!Double.isFinite(v) || v < 0) {
                    throw new IllegalArgumentException(name + " must be finite and non-negative (got " + v + " at batch item "
                            + k + ", index " + (i - k * length) + ")");
                }
                mass[k] += v;
            }
            if (count == 0) throw new IllegalArgumentException(maskName + ": batch item " + k + " has every entry masked");
            if (w == null) mass[k] = 1;
            if (!(mass[k] > 0)) {
                throw new IllegalArgumentException(name + ": batch item " + k + " has zero total mass over its unmasked entries");
            }
        }
        return mass;
    }
}
