package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The CUDA backend against the CPU backend in float64 (the reference) on random problems up to
 * n = m = 20000 and d from 1 to 1500: value, potentials and gradients of the GeomLoss-schedule solve
 * in the three CUDA precisions (TF32-class tensor cores, strict float32, float64), fixed-eps solves,
 * a batch, and Hessian-vector products. Run on the GPU machine (tag "gpu").
 */
@Tag("gpu")
class CudaVsCpuTest {
    private static final SinkhornOptions SCHEDULE = SinkhornOptions.builder().blur(0.1).scaling(0.5).build();

    @BeforeAll
    static void needsDevice() {
        assertTrue(Sinkhorn.cudaDeviceCount() > 0, "no CUDA device: these tests run on the GPU machine");
    }

    /**
     * Relative error bounds per precision: loss, then potentials and gradients (norm-wise). TF32-class
     * scores are rounded at 2^-11 of (2c/eps) |x||y|: at blur 0.1 and d = 64 that moves the softmax
     * weights by a few percent, which the gradients (barycentres) show; the loss stays within 1e-3.
     * Strict float32 loses ~1e-4 on the gradients at d = 1500 (sums of 1500 products).
     */
    enum Precision {
        TF32(3e-3, 6e-2), FP32(1e-5, 1e-3), FP64(1e-10, 1e-9);

        final double loss, fields;

        Precision(double loss, double fields) {
            this.loss = loss;
            this.fields = fields;
        }
    }

    static Stream<Arguments> problems() {
        return Stream.of(Arguments.of(20000, 20000, 1), Arguments.of(20000, 20000, 3), Arguments.of(20000, 18000, 64),
                Arguments.of(3000, 2500, 1500));
    }

    @ParameterizedTest(name = "n {0}, m {1}, d {2}")
    @MethodSource("problems")
    void divergenceMatchesTheCpu(int n, int m, int d) {
        Random rnd = new Random(31L * n + d);
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.3);
        double[] a = RandomClouds.weights(rnd, n, 1), b = RandomClouds.weights(rnd, m, 1);
        DivergenceResult ref = Sinkhorn.divergence(SCHEDULE.toBuilder().device(Device.CPU).build(), x, y, d, a, b, true);
        for (Precision p : Precision.values()) {
            SinkhornOptions o = SCHEDULE.toBuilder().device(Device.CUDA).allowTf32(p == Precision.TF32).build();
            DivergenceResult got = p == Precision.FP64 ? Sinkhorn.divergence(o, x, y, d, a, b, true)
                    : Sinkhorn.divergence(o, toFloats(x), toFloats(y), d, toFloats(a), toFloats(b), true);
            String what = p + " n " + n + " m " + m + " d " + d;
            assertEquals(Device.CUDA, got.report().device(), what);
            assertEquals(ref.report().iterations()[0], got.report().iterations()[0], what + ": iterations");
            assertClose(what + " loss", got.loss(), ref.loss(), p.loss);
            // Potentials are compared on the scale of the costs (that of f_ba): the self potentials are
            // close to 0, and the tensor cores' rounding is an absolute error on that scale.
            double costScale = rms(ref.fBa());
            assertFieldClose(what + " f_ba", got.fBa(), ref.fBa(), costScale, p.fields);
            assertFieldClose(what + " g_ab", got.gAb(), ref.gAb(), costScale, p.fields);
            assertFieldClose(what + " f_aa", got.fAa(), ref.fAa(), costScale, p.fields);
            assertFieldClose(what + " g_bb", got.gBb(), ref.gBb(), costScale, p.fields);
            assertFieldClose(what + " grad_x", got.gradX(), ref.gradX(), rms(ref.gradX()), p.fields);
            assertFieldClose(what + " grad_y", got.gradY(), ref.gradY(), rms(ref.gradY()), p.fields);
            assertFieldClose(what + " grad_b", got.gradB(), ref.gradB(), costScale, p.fields);
        }
    }

    static Stream<Arguments> fixedEpsProblems() {
        return Stream.of(Arguments.of(Solver.ALTERNATING, 64), Arguments.of(Solver.SYMMETRIC, 64),
                Arguments.of(Solver.ALTERNATING, 3), Arguments.of(Solver.SYMMETRIC, 20));
    }

    /**
     * The benchmarks' forward protocol (fixed eps, full cost, no debias) from the first iteration on:
     * from the second, every tensor-core pass starts its reference from the previous run's
     * log-sum-exps (the carried reference), through the potentials' largest changes (eps = 0.1 and
     * well-separated weights make the first iterations move them by hundreds of eps).
     */
    @ParameterizedTest(name = "{0}, d {1}")
    @MethodSource("fixedEpsProblems")
    void fixedEpsSolveMatchesTheCpu(Solver solver, int d) {
        Random rnd = new Random(17L * d + solver.ordinal());
        int n = 4000, m = 3500;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.3);
        double[] a = RandomClouds.weights(rnd, n, 1), b = RandomClouds.weights(rnd, m, 1);
        SinkhornOptions o = SinkhornOptions.builder().eps(0.1).nIters(60).debias(false).halfCost(false)
                .lastExtrapolation(false).solver(solver).build();
        DivergenceResult ref = Sinkhorn.divergence(o.toBuilder().device(Device.CPU).build(), x, y, d, a, b, false);
        DivergenceResult got = Sinkhorn.divergence(o.toBuilder().device(Device.CUDA).build(), toFloats(x), toFloats(y), d,
                toFloats(a), toFloats(b), false);
        String what = solver + " d " + d;
        assertEquals(Device.CUDA, got.report().device(), what);
        assertClose(what + " loss", got.loss(), ref.loss(), Precision.TF32.loss);
        double costScale = rms(ref.fBa());
        assertFieldClose(what + " f_ba", got.fBa(), ref.fBa(), costScale, Precision.TF32.fields);
        assertFieldClose(what + " g_ab", got.gAb(), ref.gAb(), costScale, Precision.TF32.fields);
    }

    @Test
    void unbalancedBatchMatchesTheCpu() {
        Random rnd = new Random(5);
        int d = 5;
        long[] xOff = {0, 700, 3700, 3900}, yOff = {0, 1200, 3000, 5000};
        double[] x = RandomClouds.gaussian(rnd, 3900, d, 0), y = RandomClouds.gaussian(rnd, 5000, d, 0.5);
        double[] a = RandomClouds.weights(rnd, 3900, 1), b = RandomClouds.weights(rnd, 5000, 2);
        SinkhornOptions o = SCHEDULE.toBuilder().reach(0.7).build();
        double[] ref = batchLoss(o.toBuilder().device(Device.CPU).build(), DType.FLOAT64, xOff, yOff, d, x, y, a, b);
        double[] fp64 = batchLoss(o.toBuilder().device(Device.CUDA).build(), DType.FLOAT64, xOff, yOff, d, x, y, a, b);
        double[] tf32 = batchLoss(o.toBuilder().device(Device.CUDA).build(), DType.FLOAT32, xOff, yOff, d, x, y, a, b);
        for (int k = 0; k < ref.length; k++) {
            assertClose("fp64 problem " + k, fp64[k], ref[k], Precision.FP64.loss);
            assertClose("tf32 problem " + k, tf32[k], ref[k], Precision.TF32.loss);
        }
    }

    @Test
    void deviceMemoryLimitGivesAnOutOfMemoryErrorAndLeavesTheLibraryUsable() {
        Random rnd = new Random(9);
        int n = 20000, d = 64;
        float[] x = toFloats(RandomClouds.gaussian(rnd, n, d, 0)), y = toFloats(RandomClouds.gaussian(rnd, n, d, 0.3));
        SinkhornOptions o = SCHEDULE.toBuilder().device(Device.CUDA).build();
        CudaMemory.releaseCached();
        CudaMemory.setLimit(1 << 20);
        try {
            SinkhornException e = assertThrows(SinkhornException.class,
                    () -> Sinkhorn.divergence(o, x, y, d, null, null, true));
            assertEquals(SinkhornException.Status.OUT_OF_MEMORY, e.status(), e.getMessage());
            assertTrue(e.getMessage().contains("limit"), e.getMessage());
        } finally {
            CudaMemory.setLimit(0);
        }
        CudaMemory.resetPeak();
        double loss = Sinkhorn.divergence(o, x, y, d, null, null, true).loss();
        CudaMemory.Usage used = CudaMemory.usage();
        // x, y, their tensor-core copies, six potentials and two barycentres: at least 4 n d floats.
        assertTrue(used.peakBytes() >= 4L * n * d * 4 && used.heldBytes() > 0, used.toString());
        assertEquals(loss, Sinkhorn.divergence(o, x, y, d, null, null, true).loss(), 1e-6 * Math.abs(loss), "a cached state gives the same result");
        CudaMemory.releaseCached();
        assertEquals(0, CudaMemory.usage().heldBytes(), "nothing is held once the cache is released");
    }

    static Stream<Arguments> hvpProblems() {
        return Stream.of(Arguments.of(3000, 2000, 3, false), Arguments.of(2000, 2500, 64, true),
                Arguments.of(1000, 800, 200, false));
    }

    @ParameterizedTest(name = "n {0}, m {1}, d {2}, debiased {3}")
    @MethodSource("hvpProblems")
    void hvpMatchesTheCpu(int n, int m, int d, boolean debias) {
        Random rnd = new Random(n + 7L * d);
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.4);
        double[] v = RandomClouds.gaussian(rnd, n, d, 0);
        SinkhornOptions o = SinkhornOptions.builder().blur(0.5).scaling(0.5).debias(debias).reachY(debias ? null : 2.0)
                .device(Device.CPU).build();
        DivergenceResult solved = Sinkhorn.divergence(o, x, y, d, null, null, true);
        double[] ref = Sinkhorn.hvp(o, HvpOptions.defaults(), x, y, d, null, null, solved, Wrt.X, v).hvp();
        SinkhornOptions onCuda = o.toBuilder().device(Device.CUDA).build();
        HvpResult fp64 = Sinkhorn.hvp(onCuda, HvpOptions.defaults(), x, y, d, null, null, solved, Wrt.X, v);
        assertEquals(Device.CUDA, fp64.report().device());
        assertFieldClose("fp64 H v", fp64.hvp(), ref, 1e-8);
        HvpResult fp32 = Sinkhorn.hvp(onCuda, HvpOptions.defaults(), toFloats(x), toFloats(y), d, null, null, solved, Wrt.X,
                toFloats(v));
        assertTrue(fp32.report().converged(), fp32.report().toString());
        assertFieldClose("fp32 H v", fp32.hvp(), ref, 1e-3);
    }

    private static double[] batchLoss(SinkhornOptions o, DType t, long[] xOff, long[] yOff, int d, double[] x, double[] y,
                                      double[] a, double[] b) {
        try (Arena arena = Arena.ofConfined()) {
            Clouds c = Clouds.batched(t, xOff, yOff, d, nativeCopy(arena, t, x), nativeCopy(arena, t, y), nativeCopy(arena, t, a),
                    nativeCopy(arena, t, b));
            return Sinkhorn.divergence(o, c, Outputs.none()).loss();
        }
    }

    private static MemorySegment nativeCopy(Arena arena, DType t, double[] v) {
        MemorySegment s = arena.allocate(t.bytes() * v.length, 8);
        for (int i = 0; i < v.length; i++) {
            if (t == DType.FLOAT32) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) v[i]);
            else s.setAtIndex(ValueLayout.JAVA_DOUBLE, i, v[i]);
        }
        return s;
    }

    private static float[] toFloats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        return f;
    }

    private static void assertClose(String what, double got, double ref, double tol) {
        double err = Math.abs(got - ref) / Math.max(Math.abs(ref), 1e-12);
        assertTrue(err <= tol, what + ": " + got + " vs " + ref + " (relative error " + err + ", bound " + tol + ")");
    }

    /** Root mean square of the difference, relative to a scale (the root mean square of a reference). */
    private static void assertFieldClose(String what, double[] got, double[] ref, double scale, double tol) {
        double num = 0;
        for (int i = 0; i < ref.length; i++) num += (got[i] - ref[i]) * (got[i] - ref[i]);
        double err = Math.sqrt(num / ref.length) / Math.max(scale, 1e-300);
        assertTrue(err <= tol, what + ": relative error " + err + " (bound " + tol + ")");
    }

    private static void assertFieldClose(String what, double[] got, double[] ref, double tol) {
        assertFieldClose(what, got, ref, rms(ref), tol);
    }

    private static double rms(double[] v) {
        double s = 0;
        for (double e : v) s += e * e;
        return Math.sqrt(s / v.length);
    }
}
