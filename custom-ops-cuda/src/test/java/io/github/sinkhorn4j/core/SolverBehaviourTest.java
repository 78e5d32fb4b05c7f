package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** Batches, early stopping and gradients against independent references (separate solves, finite differences). */
class SolverBehaviourTest {
    private static final SinkhornOptions CPU = SinkhornOptions.builder().device(Device.CPU).build();

    @Test
    void batchEqualsSeparateSolves() {
        Random rnd = new Random(7);
        int d = 3;
        int[] ns = {17, 40, 5}, ms = {23, 9, 31};
        SinkhornOptions o = CPU.toBuilder().reachY(1.5).blur(0.1).build();
        double[][] xs = new double[3][], ys = new double[3][], as = new double[3][], bs = new double[3][];
        long[] xOff = new long[4], yOff = new long[4];
        for (int k = 0; k < 3; k++) {
            xs[k] = RandomClouds.gaussian(rnd, ns[k], d, k);
            ys[k] = RandomClouds.gaussian(rnd, ms[k], d, 0.5 * k);
            as[k] = RandomClouds.weights(rnd, ns[k], 1);
            bs[k] = RandomClouds.weights(rnd, ms[k], 1);
            xOff[k + 1] = xOff[k] + ns[k];
            yOff[k + 1] = yOff[k] + ms[k];
        }
        double[] x = concat(xs), y = concat(ys), a = concat(as), b = concat(bs);
        double[] gradX = new double[x.length];
        Clouds c = Clouds.batched(DType.FLOAT64, xOff, yOff, d, MemorySegment.ofArray(x), MemorySegment.ofArray(y),
                MemorySegment.ofArray(a), MemorySegment.ofArray(b));
        // One eps schedule for the whole batch (GeomLoss's batch mode): pin the diameter so that separate solves match.
        SinkhornOptions pinned = o.toBuilder().diameter(8.0).build();
        Report batch = Sinkhorn.divergence(pinned, c, Outputs.none().gradX(MemorySegment.ofArray(gradX)));
        for (int k = 0; k < 3; k++) {
            DivergenceResult single = Sinkhorn.divergence(pinned, xs[k], ys[k], d, as[k], bs[k], true);
            assertEquals(single.loss(), batch.loss()[k], 1e-12 * Math.abs(single.loss()), "loss of problem " + k);
            double[] part = java.util.Arrays.copyOfRange(gradX, (int) xOff[k] * d, (int) xOff[k + 1] * d);
            assertTrue(RandomClouds.maxRelative(part, single.gradX()) < 1e-11, "gradient of problem " + k);
        }
    }

    @Test
    void batchItemsStopOnTheirOwn() {
        Random rnd = new Random(3);
        int d = 2;
        double[] x1 = RandomClouds.gaussian(rnd, 30, d, 0), y1 = RandomClouds.gaussian(rnd, 30, d, 0.1);
        double[] x2 = RandomClouds.gaussian(rnd, 30, d, 0), y2 = RandomClouds.gaussian(rnd, 30, d, 0);
        for (int i = 0; i < x2.length; i++) x2[i] *= 0.3;  // a much harder problem at this eps: more iterations
        SinkhornOptions o = CPU.toBuilder().eps(0.05).nIters(20000).threshold(1e-9).innerIterations(5)
                .solver(Solver.ALTERNATING).build();
        Clouds c = Clouds.batched(DType.FLOAT64, new long[] {0, 30, 60}, new long[] {0, 30, 60}, d,
                MemorySegment.ofArray(concat(new double[][] {x1, x2})), MemorySegment.ofArray(concat(new double[][] {y1, y2})), null, null);
        Report r = Sinkhorn.divergence(o, c, Outputs.none());
        assertTrue(r.converged()[0] && r.converged()[1], () -> java.util.Arrays.toString(r.iterations()) + java.util.Arrays.toString(r.maxChange()));
        assertTrue(r.iterations()[0] != r.iterations()[1], "each problem stops when it converges");
        for (int k = 0; k < 2; k++) {
            DivergenceResult single = Sinkhorn.divergence(o, k == 0 ? x1 : x2, k == 0 ? y1 : y2, d, null, null, false);
            assertEquals(single.report().iterations()[0], r.iterations()[k]);
            assertEquals(single.loss(), r.loss()[k], 1e-12 * Math.abs(single.loss()));
        }
    }

    @Test
    void thresholdStopsEarlyAndReportsIt() {
        Random rnd = new Random(11);
        double[] x = RandomClouds.gaussian(rnd, 50, 2, 0), y = RandomClouds.gaussian(rnd, 60, 2, 1);
        SinkhornOptions o = CPU.toBuilder().eps(0.5).nIters(10000).threshold(1e-10).innerIterations(10).build();
        DivergenceResult r = Sinkhorn.divergence(o, x, y, 2, null, null, false);
        assertTrue(r.report().converged()[0]);
        assertTrue(r.report().iterations()[0] < 10000 && r.report().iterations()[0] % 10 == 0);
        assertTrue(r.report().maxChange()[0] < 1e-10);
        DivergenceResult capped = Sinkhorn.divergence(o.toBuilder().nIters(3).build(), x, y, 2, null, null, false);
        assertFalse(capped.report().converged()[0]);
        assertEquals(3, capped.report().iterations()[0]);
        assertTrue(capped.report().maxChange()[0] > 1e-10);
    }

    @Test
    void gradientsMatchFiniteDifferencesOfTheConvergedLoss() {
        Random rnd = new Random(5);
        int n = 12, m = 9, d = 2;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.7);
        double[] a = RandomClouds.weights(rnd, n, 1), b = RandomClouds.weights(rnd, m, 1.3);
        for (SinkhornOptions o : new SinkhornOptions[] {
                CPU.toBuilder().eps(0.4).nIters(20000).threshold(1e-14).solver(Solver.ALTERNATING).reach(0.8).build(),
                CPU.toBuilder().eps(0.4).nIters(20000).threshold(1e-14).solver(Solver.ALTERNATING).reachX(0.6).debias(false).build(),
                CPU.toBuilder().eps(0.3).nIters(20000).threshold(1e-14).halfCost(false).reachY(1.1).build()}) {
            DivergenceResult r = Sinkhorn.divergence(o, x, y, d, a, b, true);
            double h = 1e-5;
            for (int i = 0; i < 4; i++) {
                double[] xp = x.clone(), xm = x.clone();
                xp[i] += h;
                xm[i] -= h;
                double fd = (loss(o, xp, y, d, a, b) - loss(o, xm, y, d, a, b)) / (2 * h);
                assertEquals(fd, r.gradX()[i], 1e-7, o + " grad_x[" + i + "]");
                double[] ap = a.clone(), am = a.clone();
                ap[i] += h;
                am[i] -= h;
                double fda = (loss(o, x, y, d, ap, b) - loss(o, x, y, d, am, b)) / (2 * h);
                assertEquals(fda, r.gradA()[i], 1e-7, o + " grad_a[" + i + "]");
                double[] bp = b.clone(), bm = b.clone();
                bp[i] += h;
                bm[i] -= h;
                double fdb = (loss(o, x, y, d, a, bp) - loss(o, x, y, d, a, bm)) / (2 * h);
                assertEquals(fdb, r.gradB()[i], 1e-7, o + " grad_b[" + i + "]");
            }
        }
    }

    private static double loss(SinkhornOptions o, double[] x, double[] y, int d, double[] a, double[] b) {
        return Sinkhorn.divergence(o, x, y, d, a, b, false).loss();
    }

    private static double[] concat(double[][] parts) {
        int len = 0;
        for (double[] p : parts) len += p.length;
        double[] out = new double[len];
        int at = 0;
        for (double[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
