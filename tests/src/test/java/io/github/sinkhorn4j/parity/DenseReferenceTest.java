package io.github.sinkhorn4j.parity;

import static io.github.sinkhorn4j.fixtures.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Outputs;
import io.github.sinkhorn4j.core.Report;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Problems larger than the fixtures, against a dense float64 transcription of the solvers
 * (sinkhorn_solver.h) with an explicit eps list: sizes that are no multiple of any tile, several
 * column chunks, work items and threads, so that the tiled kernels' bookkeeping (online maxima,
 * column sides merged across threads, the self passes' triangles, batches) is checked where the
 * fixtures are too small to reach it.
 */
class DenseReferenceTest {
    private static final double[] EPS_LIST = {16, 4, 1, 0.25, 0.0625, 0.02, 0.02};
    private static final double COST = 0.5;

    @ParameterizedTest(name = "n {0}, m {1}, d {2}, {3}")
    @CsvSource({"700, 530, 5, SYMMETRIC", "530, 700, 37, SYMMETRIC", "700, 530, 5, ALTERNATING", "300, 1030, 3, SYMMETRIC"})
    void float64MatchesTheDenseSolver(int n, int m, int d, Solver solver) {
        Problem p = new Problem(n, m, d, 7L * n + d);
        Reference ref = Reference.solve(p, solver);
        DivergenceResult r = Sinkhorn.divergence(options(solver), p.x, p.y, d, p.a, p.b, true);
        close("loss", new double[] {r.loss()}, new double[] {ref.loss}, 1e-10);
        close("f_ba", r.fBa(), ref.f, 1e-10);
        close("g_ab", r.gAb(), ref.g, 1e-10);
        close("f_aa", r.fAa(), ref.fAa, 1e-10);
        close("g_bb", r.gBb(), ref.gBb, 1e-10);
        close("grad_x", r.gradX(), ref.gradX, 1e-9);
    }

    @ParameterizedTest(name = "n {0}, m {1}, d {2}")
    @CsvSource({"700, 530, 5", "530, 700, 37"})
    void float32StaysWithinItsTolerances(int n, int m, int d) {
        Problem p = new Problem(n, m, d, 11L * n + d);
        Reference ref = Reference.solve(p, Solver.SYMMETRIC);
        DivergenceResult r = Sinkhorn.divergence(options(Solver.SYMMETRIC), floats(p.x), floats(p.y), d, floats(p.a),
                floats(p.b), true);
        close("loss", new double[] {r.loss()}, new double[] {ref.loss}, 1e-4);
        close("grad_x", r.gradX(), ref.gradX, 1e-3);
    }

    /** Two problems of different sizes in one call: each matches its own dense solution. */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"SYMMETRIC", "ALTERNATING"})
    void batchesMatchTheirProblemsAlone(Solver solver) {
        Problem first = new Problem(700, 530, 4, 1), second = new Problem(290, 410, 4, 2);
        Reference r1 = Reference.solve(first, solver), r2 = Reference.solve(second, solver);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment x = concat(arena, first.x, second.x), y = concat(arena, first.y, second.y);
            MemorySegment a = concat(arena, first.a, second.a), b = concat(arena, first.b, second.b);
            MemorySegment gradX = arena.allocate(ValueLayout.JAVA_DOUBLE, (long) (first.n + second.n) * 4);
            Clouds clouds = Clouds.batched(DType.FLOAT64, new long[] {0, first.n, first.n + second.n},
                    new long[] {0, first.m, first.m + second.m}, 4, x, y, a, b);
            Report report = Sinkhorn.divergence(options(solver), clouds, Outputs.none().gradX(gradX));
            double[] grads = gradX.toArray(ValueLayout.JAVA_DOUBLE);
            close("loss 0", new double[] {report.loss()[0]}, new double[] {r1.loss}, 1e-10);
            close("loss 1", new double[] {report.loss()[1]}, new double[] {r2.loss}, 1e-10);
            close("grad_x 0", java.util.Arrays.copyOfRange(grads, 0, first.n * 4), r1.gradX, 1e-9);
            close("grad_x 1", java.util.Arrays.copyOfRange(grads, first.n * 4, grads.length), r2.gradX, 1e-9);
        }
    }

    private static SinkhornOptions options(Solver solver) {
        return SinkhornOptions.builder().epsList(EPS_LIST).debias(true).halfCost(true).solver(solver).device(Device.CPU).build();
    }

    private static void close(String what, double[] actual, double[] expected, double tolerance) {
        double err = relativeError(actual, expected, 1e-12);
        assertTrue(err <= tolerance, what + ": relative error " + err + " > " + tolerance);
    }

    private static float[] floats(double[] v) {
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        return f;
    }

    private static MemorySegment concat(Arena arena, double[] u, double[] v) {
        MemorySegment s = arena.allocate(ValueLayout.JAVA_DOUBLE, u.length + v.length);
        MemorySegment.copy(u, 0, s, ValueLayout.JAVA_DOUBLE, 0, u.length);
        MemorySegment.copy(v, 0, s, ValueLayout.JAVA_DOUBLE, 8L * u.length, v.length);
        return s;
    }

    /** Gaussian clouds, y shifted away from x, random positive weights (float32-representable values). */
    private static final class Problem {
        final int n, m, d;
        final double[] x, y, a, b;

        Problem(int n, int m, int d, long seed) {
            this.n = n;
            this.m = m;
            this.d = d;
            Random random = new Random(seed);
            x = new double[n * d];
            y = new double[m * d];
            for (int i = 0; i < x.length; i++) x[i] = (float) random.nextGaussian();
            for (int i = 0; i < y.length; i++) y[i] = (float) (random.nextGaussian() * 0.8 + 0.5);
            a = weights(n, random);
            b = weights(m, random);
        }

        private static double[] weights(int count, Random random) {
            double[] w = new double[count];
            double sum = 0;
            for (int i = 0; i < count; i++) sum += w[i] = (float) (random.nextDouble() + 0.1);
            for (int i = 0; i < count; i++) w[i] = (float) (w[i] / sum);
            return w;
        }
    }

    /** The balanced, debiased divergence by dense O(nm) log-sum-exps, following sinkhorn_solver.h step by step. */
    private record Reference(double loss, double[] f, double[] g, double[] fAa, double[] gBb, double[] gradX) {
        static Reference solve(Problem p, Solver solver) {
            double[] logA = logs(p.a), logB = logs(p.b);
            double[] zx = new double[p.n], zy = new double[p.m];
            double eps0 = EPS_LIST[0];
            double[] f, g, fAa, gBb;
            if (solver == Solver.SYMMETRIC) {
                f = softmin(eps0, p.x, p.n, p.y, p.m, p.d, logB, zy, null);
                g = softmin(eps0, p.y, p.m, p.x, p.n, p.d, logA, zx, null);
                fAa = softmin(eps0, p.x, p.n, p.x, p.n, p.d, logA, zx, null);
                gBb = softmin(eps0, p.y, p.m, p.y, p.m, p.d, logB, zy, null);
            } else {
                f = zx.clone();
                g = zy.clone();
                fAa = zx.clone();
                gBb = zy.clone();
            }
            for (double eps : EPS_LIST) {
                double[] fAaNew = average(fAa, softmin(eps, p.x, p.n, p.x, p.n, p.d, logA, fAa, null));
                double[] gBbNew = average(gBb, softmin(eps, p.y, p.m, p.y, p.m, p.d, logB, gBb, null));
                double[] fNew, gNew;
                if (solver == Solver.SYMMETRIC) {
                    fNew = average(f, softmin(eps, p.x, p.n, p.y, p.m, p.d, logB, g, null));
                    gNew = average(g, softmin(eps, p.y, p.m, p.x, p.n, p.d, logA, f, null));
                } else {
                    fNew = softmin(eps, p.x, p.n, p.y, p.m, p.d, logB, g, null);
                    gNew = softmin(eps, p.y, p.m, p.x, p.n, p.d, logA, fNew, null);
                }
                f = fNew;
                g = gNew;
                fAa = fAaNew;
                gBb = gBbNew;
            }
            double eps = EPS_LIST[EPS_LIST.length - 1];
            double[] baryXY = new double[p.n * p.d], baryXX = new double[p.n * p.d];
            double[] fLast = softmin(eps, p.x, p.n, p.y, p.m, p.d, logB, g, baryXY);
            double[] fAaLast = softmin(eps, p.x, p.n, p.x, p.n, p.d, logA, fAa, baryXX);
            if (solver == Solver.SYMMETRIC) {  // GeomLoss's last extrapolation
                double[] gLast = softmin(eps, p.y, p.m, p.x, p.n, p.d, logA, f, null);
                gBb = softmin(eps, p.y, p.m, p.y, p.m, p.d, logB, gBb, null);
                f = fLast;
                g = gLast;
                fAa = fAaLast;
            }
            double loss = 0;
            for (int i = 0; i < p.n; i++) loss += p.a[i] * (f[i] - fAa[i]);
            for (int j = 0; j < p.m; j++) loss += p.b[j] * (g[j] - gBb[j]);
            double[] gradX = new double[p.n * p.d];
            for (int i = 0; i < p.n; i++)
                for (int t = 0; t < p.d; t++) gradX[i * p.d + t] = 2 * COST * p.a[i] * (baryXX[i * p.d + t] - baryXY[i * p.d + t]);
            return new Reference(loss, f, g, fAa, gBb, gradX);
        }

        // -eps LSE_j(logW_j + (h_j - C_ij)/eps) per row i; bary (optional) gets sum_j p_ij y_j.
        private static double[] softmin(double eps, double[] x, int n, double[] y, int m, int d, double[] logW, double[] h,
                                        double[] bary) {
            double[] out = new double[n];
            double[] s = new double[m];
            for (int i = 0; i < n; i++) {
                double max = Double.NEGATIVE_INFINITY;
                for (int j = 0; j < m; j++) {
                    double c = 0;
                    for (int t = 0; t < d; t++) {
                        double diff = x[i * d + t] - y[j * d + t];
                        c += diff * diff;
                    }
                    s[j] = logW[j] + (h[j] - COST * c) / eps;
                    max = Math.max(max, s[j]);
                }
                double sum = 0;
                for (int j = 0; j < m; j++) sum += Math.exp(s[j] - max);
                out[i] = -eps * (max + Math.log(sum));
                if (bary != null) {
                    for (int j = 0; j < m; j++) {
                        double pij = Math.exp(s[j] - max) / sum;
                        for (int t = 0; t < d; t++) bary[i * d + t] += pij * y[j * d + t];
                    }
                }
            }
            return out;
        }

        private static double[] average(double[] previous, double[] update) {
            double[] out = new double[previous.length];
            for (int i = 0; i < out.length; i++) out[i] = 0.5 * previous[i] + 0.5 * update[i];
            return out;
        }

        private static double[] logs(double[] w) {
            double[] out = new double[w.length];
            for (int i = 0; i < w.length; i++) out[i] = Math.log(w[i]);
            return out;
        }
    }
}
