package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** Bad input raises a clear exception naming the argument; nothing reaches the native code unchecked. */
class InputValidationTest {
    private static final SinkhornOptions CPU = SinkhornOptions.builder().device(Device.CPU).build();
    private final double[] x = {0, 0, 1, 0, 0, 1};
    private final double[] y = {0.5, 0.5, 1, 1};

    private static void named(String name, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(name), "message should name " + name + ": " + e.getMessage());
    }

    @Test
    void nanCoordinates() {
        named("x", () -> Sinkhorn.divergence(CPU, new double[] {0, Double.NaN, 1, 1}, y, 2, null, null, false));
        named("y", () -> Sinkhorn.divergence(CPU, x, new double[] {0, Double.POSITIVE_INFINITY}, 2, null, null, false));
    }

    @Test
    void nonFiniteValuesAnywhereInEitherPrecision() {
        int n = 1001, d = 3;
        for (double bad : new double[] {Double.NaN, Double.POSITIVE_INFINITY, Double.NEGATIVE_INFINITY}) {
            for (int at : new int[] {0, n * d / 2, n * d - 1}) {
                double[] big = new double[n * d];
                float[] bigFloat = new float[n * d];
                big[at] = bad;
                bigFloat[at] = (float) bad;
                named("x", () -> Sinkhorn.divergence(CPU, big, new double[] {0, 0, 0}, d, null, null, false));
                named("y", () -> Sinkhorn.divergence(CPU, new float[] {0, 0, 0}, bigFloat, d, null, null, false));
            }
        }
    }

    /**
     * The finiteness check must not reject large finite coordinates: clouds translated far from the
     * origin are accepted and, centred on the backend, give the divergence of the untranslated ones.
     */
    @Test
    void largeFiniteCoordinatesAreAcceptedAndCentred() {
        double near = Sinkhorn.divergence(CPU, x, y, 2, null, null, false).loss();
        for (double shift : new double[] {1e8, -3e7}) {
            double[] xs = x.clone(), ys = y.clone();
            for (int i = 0; i < xs.length; i++) xs[i] += shift;
            for (int i = 0; i < ys.length; i++) ys[i] += shift;
            double far = Sinkhorn.divergence(CPU, xs, ys, 2, null, null, false).loss();
            assertEquals(near, far, 1e-6 * Math.abs(near), "double, shift " + shift);
        }
        float[] xf = new float[x.length], yf = new float[y.length];
        for (int i = 0; i < x.length; i++) xf[i] = (float) (x[i] + 1000);
        for (int i = 0; i < y.length; i++) yf[i] = (float) (y[i] + 1000);
        assertEquals(near, Sinkhorn.divergence(CPU, xf, yf, 2, null, null, false).loss(), 1e-3 * Math.abs(near), "float");
    }

    @Test
    void cudaMemoryLimitMustNotBeNegative() {
        named("bytes", () -> CudaMemory.setLimit(-1));
        assertEquals(0, CudaMemory.usage().limitBytes(), "a rejected limit is not applied");
    }

    @Test
    void mismatchedShapes() {
        named("x", () -> Sinkhorn.divergence(CPU, new double[] {0, 0, 1}, y, 2, null, null, false));
        named("a", () -> Sinkhorn.divergence(CPU, x, y, 2, new double[] {0.5, 0.5}, null, false));
        named("b", () -> Sinkhorn.divergence(CPU, x, y, 2, null, new double[] {1, 0, 0}, false));
        named("d", () -> Sinkhorn.divergence(CPU, x, y, 0, null, null, false));
    }

    @Test
    void emptyClouds() {
        named("x", () -> Sinkhorn.divergence(CPU, new double[0], y, 2, null, null, false));
        named("y", () -> Sinkhorn.divergence(CPU, x, new double[0], 2, null, null, false));
    }

    @Test
    void negativeOrZeroMassWeights() {
        named("a", () -> Sinkhorn.divergence(CPU, x, y, 2, new double[] {0.5, -0.1, 0.6}, null, false));
        named("b", () -> Sinkhorn.divergence(CPU, x, y, 2, null, new double[] {0, 0}, false));
        named("a", () -> Sinkhorn.divergence(CPU, x, y, 2, new double[] {0.5, Double.NaN, 0.5}, null, false));
    }

    @Test
    void badBatchOffsets() {
        MemorySegment xs = MemorySegment.ofArray(x), ys = MemorySegment.ofArray(y);
        named("xOffsets", () -> Clouds.batched(DType.FLOAT64, new long[] {0, 3, 3}, new long[] {0, 1, 2}, 2, xs, ys, null, null));
        named("yOffsets", () -> Clouds.batched(DType.FLOAT64, new long[] {0, 1}, new long[] {0, 1, 2}, 2, xs, ys, null, null));
    }

    @Test
    void outputsTooSmall() {
        try (Arena arena = Arena.ofConfined()) {
            Clouds c = Clouds.of(DType.FLOAT64, 3, 2, 2, MemorySegment.ofArray(x), MemorySegment.ofArray(y), null, null);
            MemorySegment small = arena.allocate(ValueLayout.JAVA_DOUBLE, 2);
            named("gradX", () -> Sinkhorn.divergence(CPU, c, Outputs.none().gradX(small)));
        }
    }

    @Test
    void planProductNeedsEps() {
        Clouds c = Clouds.of(DType.FLOAT64, 3, 2, 2, MemorySegment.ofArray(x), MemorySegment.ofArray(y), null, null);
        MemorySegment f = MemorySegment.ofArray(new double[3]), g = MemorySegment.ofArray(new double[2]);
        named("eps", () -> Sinkhorn.planProduct(CPU, c, f, g, false, 1, MemorySegment.ofArray(new double[2]),
                MemorySegment.ofArray(new double[3])));
    }

    @Test
    void cudaArrays() {
        named("host", () -> CudaArray.upload(DType.FLOAT64, MemorySegment.ofArray(new byte[12])));
        named("host", () -> CudaArray.upload(DType.FLOAT32, MemorySegment.ofArray(new byte[0])));
        if (Sinkhorn.cudaDeviceCount() > 0) return;  // the rest only where no GPU is usable
        SinkhornException e = assertThrows(SinkhornException.class, () -> CudaArray.upload(DType.FLOAT64, MemorySegment.ofArray(x)));
        assertEquals(SinkhornException.Status.NO_DEVICE, e.status());
    }

    @Test
    void missingCudaDeviceIsAJavaException() {
        if (Sinkhorn.cudaDeviceCount() > 0) return;  // only meaningful where no GPU is usable
        SinkhornOptions cuda = SinkhornOptions.builder().device(Device.CUDA).build();
        SinkhornException e = assertThrows(SinkhornException.class, () -> Sinkhorn.divergence(cuda, x, y, 2, null, null, false));
        assertEquals(SinkhornException.Status.NO_DEVICE, e.status());
    }
}
