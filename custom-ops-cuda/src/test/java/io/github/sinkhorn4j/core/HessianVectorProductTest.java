package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * Hessian-vector products on the CPU against independent references: central differences of the
 * exact gradient of converged solves, the symmetry of the Hessian, float32 against float64; and the
 * CG report, the non-convergence error and input checks.
 */
class HessianVectorProductTest {
    private static final SinkhornOptions CONVERGED = SinkhornOptions.builder().device(Device.CPU).eps(0.35)
            .nIters(20000).threshold(1e-14).solver(Solver.ALTERNATING).build();
    private static final int N = 13, M = 10, D = 3;

    static Stream<Arguments> problems() {
        return Stream.of(
                Arguments.of("balanced, debiased", CONVERGED),
                Arguments.of("balanced, not debiased, full cost", CONVERGED.toBuilder().debias(false).halfCost(false).build()),
                Arguments.of("unbalanced, debiased", CONVERGED.toBuilder().reach(0.9).build()),
                Arguments.of("x relaxed, debiased", CONVERGED.toBuilder().reachX(0.7).build()),
                Arguments.of("y relaxed, not debiased", CONVERGED.toBuilder().reachY(1.2).debias(false).build()));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("problems")
    void hvpIsTheDerivativeOfTheGradient(String name, SinkhornOptions o) {
        Random rnd = new Random(name.hashCode());
        double[] x = RandomClouds.gaussian(rnd, N, D, 0), y = RandomClouds.gaussian(rnd, M, D, 0.6);
        boolean balanced = o.reachX() == null && o.reachY() == null;
        double[] a = RandomClouds.weights(rnd, N, 1), b = RandomClouds.weights(rnd, M, balanced ? 1 : 1.4);
        for (Wrt wrt : Wrt.values()) {
            double[] v = RandomClouds.gaussian(rnd, wrt == Wrt.X ? N : M, D, 0);
            double h = 1e-5;
            double[] plus = gradient(o, x, y, a, b, wrt, v, h), minus = gradient(o, x, y, a, b, wrt, v, -h);
            double[] fd = new double[v.length];
            for (int i = 0; i < fd.length; i++) fd[i] = (plus[i] - minus[i]) / (2 * h);
            // CG's products on the plan support (the default at this size) and streamed
            for (HvpOptions hvpOptions : new HvpOptions[] {HvpOptions.defaults(), HvpOptions.defaults().withMaxPlanEntries(0L)}) {
                HvpResult r = Sinkhorn.hvp(o, hvpOptions, x, y, D, a, b, wrt, v);
                String what = name + " wrt " + wrt + " " + hvpOptions.maxPlanEntries();
                double err = relativeError(r.hvp(), fd);
                assertTrue(err < 1e-6, what + ": relative error " + err + " against central differences");
                assertTrue(r.report().converged() && r.report().cgResidual() <= 1e-10 && r.report().cgIterations() > 0,
                        r.report().toString());
                assertEquals(hvpOptions.maxPlanEntries() == null, r.report().planEntries() > 0, what + " " + r.report());
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("problems")
    void hessianIsSymmetric(String name, SinkhornOptions o) {
        Random rnd = new Random(name.hashCode() + 1);
        double[] x = RandomClouds.gaussian(rnd, N, D, 0), y = RandomClouds.gaussian(rnd, M, D, 0.3);
        DivergenceResult solved = Sinkhorn.divergence(o, x, y, D, null, null, true);
        for (Wrt wrt : Wrt.values()) {
            int rows = wrt == Wrt.X ? N : M;
            double[] u = RandomClouds.gaussian(rnd, rows, D, 0), v = RandomClouds.gaussian(rnd, rows, D, 0);
            double[] hu = Sinkhorn.hvp(o, HvpOptions.defaults(), x, y, D, null, null, solved, wrt, u).hvp();
            double[] hv = Sinkhorn.hvp(o, HvpOptions.defaults(), x, y, D, null, null, solved, wrt, v).hvp();
            double uHv = dot(u, hv), vHu = dot(v, hu);
            assertEquals(uHv, vHu, 1e-9 * Math.abs(uHv), name + " wrt " + wrt);
        }
    }

    @Test
    void float32AgreesWithFloat64() {
        Random rnd = new Random(17);
        int n = 40, m = 30, d = 2;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.5);
        double[] v = RandomClouds.gaussian(rnd, n, d, 0);
        SinkhornOptions o = CONVERGED.toBuilder().eps(0.2).build();
        double[] exact = Sinkhorn.hvp(o, HvpOptions.defaults(), x, y, d, null, null, Wrt.X, v).hvp();
        SinkhornOptions single = o.toBuilder().threshold(1e-6).nIters(3000).build();
        HvpResult r = Sinkhorn.hvp(single, HvpOptions.defaults(), floats(x), floats(y), d, null, null, Wrt.X, floats(v));
        assertTrue(r.report().converged());
        double err = relativeError(r.hvp(), exact);
        assertTrue(err < 1e-4, "float32 relative error " + err);
    }

    @Test
    void sparseSupportMatchesStreamedProductsAndRespectsItsBudget() {
        // eps small against the spacing: the support keeps few entries per row, and the entries it
        // drops (below 1e-15 of their row) must not show in H v.
        Random rnd = new Random(31);
        int n = 120, m = 100, d = 3;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.3);
        double[] v = RandomClouds.gaussian(rnd, n, d, 0);
        SinkhornOptions o = CONVERGED.toBuilder().eps(0.02).nIters(200000).debias(false).build();
        DivergenceResult solved = Sinkhorn.divergence(o, x, y, d, null, null, true);
        HvpOptions loose = HvpOptions.defaults().withCgMaxIters(5000);
        HvpResult streamed = Sinkhorn.hvp(o, loose.withMaxPlanEntries(0L), x, y, d, null, null, solved, Wrt.X, v);
        HvpResult sparse = Sinkhorn.hvp(o, loose, x, y, d, null, null, solved, Wrt.X, v);
        assertTrue(sparse.report().planEntries() > 0 && sparse.report().planEntries() < (long) n * m / 2,
                "support of the plan: " + sparse.report());
        assertEquals(0, streamed.report().planEntries());
        double err = relativeError(sparse.hvp(), streamed.hvp());
        assertTrue(err < 1e-8, "support vs streamed products: relative difference " + err);
        // On the support CG is preconditioned by the incomplete Cholesky factor of its Schur matrix
        assertTrue(2 * sparse.report().cgIterations() < streamed.report().cgIterations(),
                "CG iterations: support " + sparse.report() + ", streamed (Jacobi) " + streamed.report());
        HvpResult overBudget = Sinkhorn.hvp(o, loose.withMaxPlanEntries(50L), x, y, d, null, null, solved, Wrt.X, v);
        assertEquals(0, overBudget.report().planEntries(), "a support above the budget is not kept");
        assertArrayEquals(streamed.hvp(), overBudget.hvp(), 0.0);
    }

    @Test
    void zeroDirectionNeedsNoIterationsAndZeroWeightsNoNaN() {
        Random rnd = new Random(23);
        double[] x = RandomClouds.gaussian(rnd, N, D, 0), y = RandomClouds.gaussian(rnd, M, D, 0.2);
        double[] a = RandomClouds.weights(rnd, N, 1);
        a[4] = 0;
        HvpResult zero = Sinkhorn.hvp(CONVERGED, HvpOptions.defaults(), x, y, D, a, null, Wrt.X, new double[N * D]);
        assertArrayEquals(new double[N * D], zero.hvp(), 0.0);
        assertEquals(0, zero.report().cgIterations());

        double[] v = RandomClouds.gaussian(rnd, N, D, 0);
        HvpResult r = Sinkhorn.hvp(CONVERGED, HvpOptions.defaults(), x, y, D, a, null, Wrt.X, v);
        for (double h : r.hvp()) assertTrue(Double.isFinite(h));
        for (int t = 0; t < D; t++) assertEquals(0.0, r.hvp()[4 * D + t], 0.0, "a point without mass has no curvature");
    }

    @Test
    void unconvergedCgIsAnErrorUnlessAllowedAndThenFlagged() {
        Random rnd = new Random(29);
        double[] x = RandomClouds.gaussian(rnd, N, D, 0), y = RandomClouds.gaussian(rnd, M, D, 0.2);
        double[] v = RandomClouds.gaussian(rnd, N, D, 0);
        HvpOptions oneStep = HvpOptions.defaults().withCgMaxIters(1);
        SinkhornException e = assertThrows(SinkhornException.class,
                () -> Sinkhorn.hvp(CONVERGED, oneStep, x, y, D, null, null, Wrt.X, v));
        assertEquals(SinkhornException.Status.NOT_CONVERGED, e.status());
        assertTrue(e.getMessage().contains("conjugate gradient"), e.getMessage());

        HvpResult flagged = Sinkhorn.hvp(CONVERGED, oneStep.withAllowUnconverged(true), x, y, D, null, null, Wrt.X, v);
        assertFalse(flagged.report().converged());
        assertTrue(flagged.report().cgIterations() <= 2 && flagged.report().cgResidual() > 1e-10, flagged.report().toString());
    }

    @Test
    void badInputsNameTheArgument() {
        double[] x = new double[N * D], y = new double[M * D];
        for (int i = 0; i < x.length; i++) x[i] = i;
        for (int i = 0; i < y.length; i++) y[i] = 0.5 * i;
        HvpOptions h = HvpOptions.defaults();
        assertMessage("v has", () -> Sinkhorn.hvp(CONVERGED, h, x, y, D, null, null, Wrt.X, new double[M * D]));
        assertMessage("cgMaxIters", () -> h.withCgMaxIters(0));
        assertMessage("cgTol", () -> h.withCgTol(2.0));
        assertMessage("regularization", () -> h.withRegularization(-1.0));
        assertMessage("maxPlanEntries", () -> h.withMaxPlanEntries(-1L));

        DivergenceResult solved = Sinkhorn.divergence(CONVERGED, x, y, D, null, null, false);
        Clouds c = Clouds.of(DType.FLOAT64, N, M, D, MemorySegment.ofArray(x), MemorySegment.ofArray(y), null, null);
        Potentials withoutSelf = new Potentials(MemorySegment.ofArray(solved.fBa()), MemorySegment.ofArray(solved.gAb()), null, null);
        MemorySegment v = MemorySegment.ofArray(new double[N * D]), out = MemorySegment.ofArray(new double[N * D]);
        assertMessage("potentials.fAa", () -> Sinkhorn.hvp(CONVERGED, h, c, withoutSelf, Wrt.X, v, out));
        Clouds batch = Clouds.batched(DType.FLOAT64, new long[] {0, 5, N}, new long[] {0, 4, M}, D, MemorySegment.ofArray(x),
                MemorySegment.ofArray(y), null, null);
        assertMessage("batch", () -> Sinkhorn.hvp(CONVERGED, h, batch, withoutSelf, Wrt.X, v, out));
    }

    private static void assertMessage(String fragment, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(fragment), e.getMessage());
    }

    /** The exact gradient with respect to the cloud wrt, moved by step * v. */
    private static double[] gradient(SinkhornOptions o, double[] x, double[] y, double[] a, double[] b, Wrt wrt,
                                     double[] v, double step) {
        double[] moved = (wrt == Wrt.X ? x : y).clone();
        for (int i = 0; i < moved.length; i++) moved[i] += step * v[i];
        DivergenceResult r = wrt == Wrt.X ? Sinkhorn.divergence(o, moved, y, D, a, b, true)
                : Sinkhorn.divergence(o, x, moved, D, a, b, true);
        return wrt == Wrt.X ? r.gradX() : r.gradY();
    }

    private static double relativeError(double[] actual, double[] expected) {
        double diff = 0, ref = 0;
        for (int i = 0; i < actual.length; i++) {
            diff += (actual[i] - expected[i]) * (actual[i] - expected[i]);
            ref += expected[i] * expected[i];
        }
        return Math.sqrt(diff / ref);
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    private static float[] floats(double[] v) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = (float) v[i];
        return out;
    }
}
