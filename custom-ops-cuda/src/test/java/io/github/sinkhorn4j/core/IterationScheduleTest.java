package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The solver's schedule of iterations and threshold checks: it hands the iterations at the final
 * eps to the backend in pairs (which the CUDA backend replays as graphs) between checks, with single
 * iterations where a run is odd. Checked against a float64 loop written here that runs one
 * iteration at a time: same iterations, same stop, same potentials, on schedules whose runs are odd
 * and even and whose annealing head is odd and even.
 */
class IterationScheduleTest {
    private static final SinkhornOptions CPU = SinkhornOptions.builder().device(Device.CPU).build();

    private record Solved(int iterations, double maxChange, double[] f, double[] g, double[] fAa, double[] gBb, double loss) {}

    @Test
    void alternatingStopsAtTheReferenceCheckWithOddRuns() {
        Random rnd = new Random(17);
        int n = 40, m = 30, d = 2;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.4);
        double[] a = RandomClouds.weights(rnd, n, 1), b = RandomClouds.weights(rnd, m, 1);
        for (int inner : new int[] {3, 4}) {
            SinkhornOptions o = CPU.toBuilder().solver(Solver.ALTERNATING).eps(0.3).nIters(5000).threshold(1e-9)
                    .innerIterations(inner).build();
            Solved ref = reference(false, fill(5000, 0.3), 1e-9, inner, x, y, d, a, b);
            assertTrue(ref.iterations() < 5000 && ref.iterations() % inner == 0, "the reference stops at a check: " + ref.iterations());
            assertMatches("alternating, inner " + inner, ref, Sinkhorn.divergence(o, x, y, d, a, b, false));
        }
        // A cap that is not a multiple of the check interval: checks after 3 and 6, the last iteration at 7.
        SinkhornOptions capped = CPU.toBuilder().solver(Solver.ALTERNATING).eps(0.3).nIters(7).threshold(1e-9)
                .innerIterations(3).build();
        Solved ref = reference(false, fill(7, 0.3), 1e-9, 3, x, y, d, a, b);
        assertEquals(7, ref.iterations());
        assertMatches("alternating, capped at 7", ref, Sinkhorn.divergence(capped, x, y, d, a, b, false));
    }

    @Test
    void symmetricWithAnAnnealingHeadMatchesTheReference() {
        Random rnd = new Random(23);
        int n = 35, m = 45, d = 3;
        double[] x = RandomClouds.gaussian(rnd, n, d, 0), y = RandomClouds.gaussian(rnd, m, d, 0.3);
        double[] a = RandomClouds.weights(rnd, n, 1), b = RandomClouds.weights(rnd, m, 1);
        // Heads of 2 and 3 decreasing eps, then a tail at 0.5: the first pair starts after an even or an odd number of iterations.
        for (double[] head : new double[][] {{4.0, 2.0}, {4.0, 2.0, 1.0}}) {
            for (double threshold : new double[] {0, 1e-8}) {
                double[] eps = Arrays.copyOf(head, head.length + 401);
                Arrays.fill(eps, head.length, eps.length, 0.5);
                SinkhornOptions o = CPU.toBuilder().epsList(eps).threshold(threshold).innerIterations(5).build();
                Solved ref = reference(true, eps, threshold, 5, x, y, d, a, b);
                if (threshold > 0) assertTrue(ref.iterations() < eps.length, "the reference stops early: " + ref.iterations());
                assertMatches("symmetric, head " + head.length + ", threshold " + threshold, ref,
                        Sinkhorn.divergence(o, x, y, d, a, b, false));
            }
        }
    }

    @Test
    void anUnknownGraphModeIsRejected() {
        String before = System.getProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY);
        System.setProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, "sometimes");
        try {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sinkhorn.divergence(CPU, new double[] {0, 1}, new double[] {1, 0}, 2, null, null, false));
            assertTrue(e.getMessage().contains(Sinkhorn.CUDA_GRAPHS_PROPERTY), e.getMessage());
        } finally {
            if (before == null) System.clearProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY);
            else System.setProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, before);
        }
    }

    private static void assertMatches(String what, Solved ref, DivergenceResult got) {
        assertEquals(ref.iterations(), got.report().iterations()[0], what + ": iterations");
        assertEquals(ref.maxChange(), got.report().maxChange()[0], 1e-13 + 1e-9 * ref.maxChange(), what + ": largest change");
        assertEquals(ref.loss(), got.loss(), 1e-12 * Math.abs(ref.loss()), what + ": loss");
        assertTrue(RandomClouds.maxRelative(got.fBa(), ref.f()) < 1e-12, what + ": f_ba");
        assertTrue(RandomClouds.maxRelative(got.gAb(), ref.g()) < 1e-12, what + ": g_ab");
        assertTrue(RandomClouds.maxRelative(got.fAa(), ref.fAa()) < 1e-12, what + ": f_aa");
        assertTrue(RandomClouds.maxRelative(got.gBb(), ref.gBb()) < 1e-12, what + ": g_bb");
    }

    /**
     * The debiased balanced solve with the half cost, one iteration at a time: symmetric (GeomLoss:
     * averaged updates from the potentials of zero potentials, then the last extrapolation) or
     * alternating (f from g, then g from the new f; self terms averaged). The change of every
     * potential is measured after iterations firstCheck + k inner and after the last one.
     */
    private static Solved reference(boolean symmetric, double[] eps, double threshold, int inner, double[] x, double[] y,
                                    int d, double[] a, double[] b) {
        double[] la = logs(a), lb = logs(b);
        int total = eps.length, firstCheck = total - 1;
        while (firstCheck > 0 && eps[firstCheck - 1] == eps[total - 1]) firstCheck--;
        double[] f, g, fAa, gBb;
        if (symmetric) {
            f = softmin(eps[0], x, y, d, lb, new double[b.length]);
            g = softmin(eps[0], y, x, d, la, new double[a.length]);
            fAa = softmin(eps[0], x, x, d, la, new double[a.length]);
            gBb = softmin(eps[0], y, y, d, lb, new double[b.length]);
        } else {
            f = new double[a.length];
            g = new double[b.length];
            fAa = new double[a.length];
            gBb = new double[b.length];
        }
        int done = 0;
        double change = Double.POSITIVE_INFINITY;
        for (int it = 0; it < total; it++) {
            double e = eps[it];
            double[] fNew, gNew;
            if (symmetric) {
                fNew = average(f, softmin(e, x, y, d, lb, g));
                gNew = average(g, softmin(e, y, x, d, la, f));
            } else {
                fNew = softmin(e, x, y, d, lb, g);
                gNew = softmin(e, y, x, d, la, fNew);
            }
            double[] fAaNew = average(fAa, softmin(e, x, x, d, la, fAa)), gBbNew = average(gBb, softmin(e, y, y, d, lb, gBb));
            done = it + 1;
            boolean check = it >= firstCheck && threshold > 0 && (done - firstCheck) % inner == 0;
            if (check || done == total) {
                change = Math.max(Math.max(maxDiff(fNew, f), maxDiff(gNew, g)), Math.max(maxDiff(fAaNew, fAa), maxDiff(gBbNew, gBb)));
            }
            f = fNew;
            g = gNew;
            fAa = fAaNew;
            gBb = gBbNew;
            if (check && done < total && change < threshold) break;
        }
        if (symmetric) {
            double e = eps[total - 1];
            double[] fLast = softmin(e, x, y, d, lb, g), gLast = softmin(e, y, x, d, la, f);
            double[] fAaLast = softmin(e, x, x, d, la, fAa), gBbLast = softmin(e, y, y, d, lb, gBb);
            f = fLast;
            g = gLast;
            fAa = fAaLast;
            gBb = gBbLast;
        }
        double loss = 0;
        for (int i = 0; i < a.length; i++) loss += a[i] * (f[i] - fAa[i]);
        for (int j = 0; j < b.length; j++) loss += b[j] * (g[j] - gBb[j]);
        return new Solved(done, change, f, g, fAa, gBb, loss);
    }

    /** out_i = -eps LSE_j(logW_j + (h_j - |p_i - q_j|^2 / 2) / eps). */
    private static double[] softmin(double eps, double[] p, double[] q, int d, double[] logW, double[] h) {
        int rows = p.length / d, cols = q.length / d;
        double[] out = new double[rows];
        double[] s = new double[cols];
        for (int i = 0; i < rows; i++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int j = 0; j < cols; j++) {
                double c = 0;
                for (int t = 0; t < d; t++) c += (p[i * d + t] - q[j * d + t]) * (p[i * d + t] - q[j * d + t]);
                s[j] = logW[j] + (h[j] - 0.5 * c) / eps;
                max = Math.max(max, s[j]);
            }
            double sum = 0;
            for (int j = 0; j < cols; j++) sum += Math.exp(s[j] - max);
            out[i] = -eps * (max + Math.log(sum));
        }
        return out;
    }

    private static double[] average(double[] u, double[] v) {
        double[] out = new double[u.length];
        for (int i = 0; i < u.length; i++) out[i] = 0.5 * u[i] + 0.5 * v[i];
        return out;
    }

    private static double maxDiff(double[] u, double[] v) {
        double m = 0;
        for (int i = 0; i < u.length; i++) m = Math.max(m, Math.abs(u[i] - v[i]));
        return m;
    }

    private static double[] logs(double[] w) {
        double[] out = new double[w.length];
        for (int i = 0; i < w.length; i++) out[i] = Math.log(w[i]);
        return out;
    }

    private static double[] fill(int count, double value) {
        double[] out = new double[count];
        Arrays.fill(out, value);
        return out;
    }
}
