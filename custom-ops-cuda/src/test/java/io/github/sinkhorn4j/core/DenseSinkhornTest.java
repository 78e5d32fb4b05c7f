package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.function.DoubleUnaryOperator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The dense solver on the CPU against the independent float64 reference ({@link DenseReference}):
 * potentials, costs, plans and plan products, masks of every shape, unbalanced sides, float32,
 * early stopping, and gradients against finite differences of the returned cost.
 */
class DenseSinkhornTest {
    private static final double EPS = 0.25;

    /** Converged to the reference's precision, plan and gradients returned. */
    static DenseSinkhornOptions tight(Double tauA, Double tauB, Device device) {
        return DenseSinkhornOptions.builder().eps(EPS).tauA(tauA).tauB(tauB).maxIters(100_000).threshold(1e-13).checkEvery(1)
                .device(device).gradients(true).build();
    }

    static DenseSinkhornResult solve(DenseSinkhornOptions o, DenseReference.Batch p) {
        return DenseSinkhorn.solve(o, p.c(), p.batch(), p.n(), p.m(), p.a(), p.b(), p.maskA(), p.maskB());
    }

    static void close(String what, double[] actual, double[] expected, double tolerance) {
        assertEquals(expected.length, actual.length, what + ": length");
        for (int i = 0; i < expected.length; i++) {
            double e = expected[i], a = actual[i];
            if (!(Math.abs(a - e) <= tolerance)) {
                throw new AssertionError(what + "[" + i + "]: expected " + e + ", got " + a + " (tolerance " + tolerance + ")");
            }
        }
    }

    /** Each item's potentials, plan and cost against its reference solve. */
    static void matchesReference(DenseReference.Batch p, DenseSinkhornResult r, DenseReference[] ref, double potentialTol,
                                 double planTol, double costTol) {
        int n = p.n(), m = p.m();
        for (int k = 0; k < p.batch(); k++) {
            close("cost of item " + k, new double[] {r.cost()[k]}, new double[] {ref[k].cost}, costTol * Math.abs(ref[k].cost));
            close("f of item " + k, Arrays.copyOfRange(r.f(), k * n, (k + 1) * n), ref[k].f, potentialTol);
            close("g of item " + k, Arrays.copyOfRange(r.g(), k * m, (k + 1) * m), ref[k].g, potentialTol);
            close("plan of item " + k, Arrays.copyOfRange(r.plan(), k * n * m, (k + 1) * n * m), ref[k].plan, planTol);
        }
    }

    /** Unequal masses where a marginal is relaxed. */
    @ParameterizedTest(name = "tauA {0}, tauB {1}, masses {2}, {3}")
    @CsvSource({",, 1, 1", "0.5,, 1.5, 1", ",2.0, 1, 0.7", "0.5, 2.0, 1.5, 0.7"})
    void float64MatchesTheReference(Double tauA, Double tauB, double massA, double massB) {
        // 130 columns: three column blocks of the CPU kernels, the last one partial.
        DenseReference.Batch p = DenseReference.random(new Random(1), 4, 37, 130, true).withMasses(massA, massB);
        DenseSinkhornResult r = solve(tight(tauA, tauB, Device.CPU), p);
        matchesReference(p, r, p.solve(EPS, tauA, tauB), 1e-10, 1e-13, 1e-10);
        for (boolean c : r.report().converged()) assertTrue(c);
        assertEquals(Device.CPU, r.report().device());
    }

    @ParameterizedTest(name = "tauA {0}, tauB {1}")
    @CsvSource({",", "0.5,2.0"})
    void float32StaysWithinItsTolerances(Double tauA, Double tauB) {
        DenseReference.Batch p = DenseReference.random(new Random(2), 3, 40, 70, true);
        DenseSinkhornOptions o = tight(tauA, tauB, Device.CPU).toBuilder().threshold(1e-5).build();
        DenseSinkhornResult r = DenseSinkhorn.solve(o, p.cFloats(), p.batch(), p.n(), p.m(), p.aFloats(), p.bFloats(),
                p.maskA(), p.maskB());
        matchesReference(p, r, p.solve(EPS, tauA, tauB), 2e-4, 1e-6, 1e-4);
    }

    /** Fully masked rows and columns, items left with one row or one column, an item without masks. */
    @ParameterizedTest(name = "tauA {0}, tauB {1}")
    @CsvSource({",", "0.5,", "0.5,2.0"})
    void masksOfEveryShape(Double tauA, Double tauB) {
        int batch = 4, n = 6, m = 5;
        DenseReference.Batch full = DenseReference.random(new Random(3), batch, n, m, false);
        boolean[] maskA = new boolean[batch * n], maskB = new boolean[batch * m];
        Arrays.fill(maskA, true);
        Arrays.fill(maskB, true);
        maskA[n + 1] = maskA[n + 4] = false;                         // item 1: two rows masked
        maskB[m + 2] = false;                                        // and a column
        for (int i = 0; i < n; i++) maskA[2 * n + i] = i == 3;       // item 2: one row left
        for (int i = 0; i < n; i++) maskA[3 * n + i] = i == 0;       // item 3: one row and one column left
        for (int j = 0; j < m; j++) maskB[3 * m + j] = j == 4;
        double[] c = full.c().clone(), a = new double[batch * n], b = new double[batch * m];
        for (int k = 0; k < batch; k++) {
            for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) {
                if (!maskA[k * n + i] || !maskB[k * m + j]) c[(k * n + i) * m + j] = Double.NaN;
            }
            normalise(a, maskA, k * n, n, full.a());
            normalise(b, maskB, k * m, m, full.b());
        }
        DenseReference.Batch p = new DenseReference.Batch(batch, n, m, c, a, b, maskA, maskB);
        DenseSinkhornResult r = solve(tight(tauA, tauB, Device.CPU), p);
        matchesReference(p, r, p.solve(EPS, tauA, tauB), 1e-10, 1e-13, 1e-10);
        for (double[] out : new double[][] {r.f(), r.g(), r.plan(), r.gradA(), r.gradB()}) {
            for (double v : out) assertTrue(Double.isFinite(v), "every output is finite");
        }
        for (int i = 0; i < batch * n; i++) if (!maskA[i]) assertEquals(0.0, r.f()[i] + r.gradA()[i]);
        for (int j = 0; j < batch * m; j++) if (!maskB[j]) assertEquals(0.0, r.g()[j] + r.gradB()[j]);
        if (tauA == null && tauB == null) {
            // One row and one column: the plan is the whole mass on their entry.
            assertEquals(1.0, r.plan()[(3 * n) * m + 4], 1e-12);
        }
    }

    /** Present entries keep their weights, normalised to mass 1; masked ones hold NaN (never read). */
    private static void normalise(double[] w, boolean[] mask, int from, int len, double[] source) {
        double sum = 0;
        for (int i = from; i < from + len; i++) if (mask[i]) sum += source[i];
        for (int i = from; i < from + len; i++) w[i] = mask[i] ? source[i] / sum : Double.NaN;
    }

    @ParameterizedTest(name = "transpose {0}")
    @ValueSource(booleans = {false, true})
    void planProductsMatchTheReferencePlan(boolean transpose) {
        DenseReference.Batch p = DenseReference.random(new Random(4), 3, 21, 75, true);
        DenseSinkhornOptions o = tight(null, 2.0, Device.CPU);
        DenseSinkhornResult r = solve(o, p);
        DenseReference[] ref = p.solve(EPS, null, 2.0);
        int n = p.n(), m = p.m(), k = 3, inner = transpose ? n : m, outer = transpose ? m : n;
        Random rnd = new Random(5);
        double[] v = new double[p.batch() * inner * k];
        for (int i = 0; i < v.length; i++) v[i] = rnd.nextGaussian();
        double[] out = new double[p.batch() * outer * k];
        DenseSinkhorn.planProduct(o, problem(p), MemorySegment.ofArray(r.f()), MemorySegment.ofArray(r.g()), transpose, k,
                MemorySegment.ofArray(v), MemorySegment.ofArray(out));
        double[] expected = new double[out.length];
        for (int b = 0; b < p.batch(); b++) {
            for (int i = 0; i < n; i++) for (int j = 0; j < m; j++) {
                double pij = ref[b].plan[i * m + j];
                int row = transpose ? j : i, col = transpose ? i : j;
                for (int t = 0; t < k; t++) expected[(b * outer + row) * k + t] += pij * v[(b * inner + col) * k + t];
            }
        }
        close("plan product", out, expected, 1e-12);
        boolean[] outerMask = transpose ? p.maskB() : p.maskA();
        for (int i = 0; i < p.batch() * outer; i++) {
            if (!outerMask[i]) for (int t = 0; t < k; t++) assertEquals(0.0, out[i * k + t]);
        }
    }

    private static DenseProblem problem(DenseReference.Batch p) {
        return DenseProblem.of(DType.FLOAT64, p.batch(), p.n(), p.m(), MemorySegment.ofArray(p.c()), MemorySegment.ofArray(p.a()),
                MemorySegment.ofArray(p.b()), bytes(p.maskA()), bytes(p.maskB()));
    }

    static MemorySegment bytes(boolean[] mask) {
        byte[] out = new byte[mask.length];
        for (int i = 0; i < out.length; i++) out[i] = (byte) (mask[i] ? 1 : 0);
        return MemorySegment.ofArray(out);
    }

    @Test
    void itemsStopOnTheirOwnAsWhenSolvedAlone() {
        DenseReference.Batch easy = DenseReference.random(new Random(6), 1, 20, 30, false);
        DenseReference.Batch hard = DenseReference.random(new Random(7), 1, 20, 30, false);
        double[] c = new double[2 * 20 * 30];
        System.arraycopy(easy.c(), 0, c, 0, 600);
        for (int i = 0; i < 600; i++) c[600 + i] = 4 * hard.c()[i];  // a wider cost range at the same eps: slower
        DenseSinkhornOptions o = DenseSinkhornOptions.builder().eps(EPS).threshold(1e-10).checkEvery(5).device(Device.CPU).build();
        DenseSinkhornResult both = DenseSinkhorn.solve(o, c, 2, 20, 30, null, null, null, null);
        assertTrue(both.report().converged()[0] && both.report().converged()[1]);
        assertNotEquals(both.report().iterations()[0], both.report().iterations()[1]);
        for (int k = 0; k < 2; k++) {
            DenseSinkhornResult alone = DenseSinkhorn.solve(o, Arrays.copyOfRange(c, 600 * k, 600 * (k + 1)), 1, 20, 30, null, null,
                    null, null);
            assertEquals(alone.report().iterations()[0], both.report().iterations()[k]);
            assertEquals(0, both.report().iterations()[k] % 5);
            assertEquals(alone.cost()[0], both.cost()[k], 1e-15 * Math.abs(alone.cost()[0]));
            assertArrayEquals(alone.f(), Arrays.copyOfRange(both.f(), 20 * k, 20 * (k + 1)));
        }
        DenseSinkhornResult capped = DenseSinkhorn.solve(o.toBuilder().maxIters(3).build(), c, 2, 20, 30, null, null, null, null);
        assertArrayEquals(new int[] {3, 3}, capped.report().iterations());
        assertFalse(capped.report().converged()[0] || capped.report().converged()[1]);
    }

    /**
     * dcost/dC is the plan, dcost/da and dcost/db the dual's partial derivatives: central differences
     * of the returned cost at tight convergence. Balanced marginals need equal masses, so a balanced
     * side is perturbed along mass-preserving directions.
     */
    @ParameterizedTest(name = "tauA {0}, tauB {1}, masses {2}, {3}")
    @CsvSource({",, 1, 1", "0.5,, 1.3, 1", "0.5, 2.0, 1.3, 0.6"})
    void gradientsAreTheDerivativesOfTheCost(Double tauA, Double tauB, double massA, double massB) {
        DenseReference.Batch p = DenseReference.random(new Random(8), 2, 7, 9, true).withMasses(massA, massB);
        DenseSinkhornOptions o = tight(tauA, tauB, Device.CPU);
        DenseSinkhornResult r = solve(o, p);
        int n = p.n(), m = p.m(), item = 1;
        int[] rows = present(p.maskA(), item * n, n), cols = present(p.maskB(), item * m, m);
        double h = 1e-6;
        for (int t = 0; t < Math.min(4, rows.length * cols.length); t++) {
            int at = rows[t % rows.length] * m + cols[(t / rows.length) % cols.length] - item * m;
            double fd = difference(o, p, item, h, at, -1, -1, -1, -1);
            assertEquals(r.plan()[at], fd, 1e-8 * Math.max(1, Math.abs(fd)), "dcost/dC at " + at);
        }
        int i0 = rows[0], i1 = rows[rows.length - 1], j0 = cols[0], j1 = cols[cols.length - 1];
        boolean bothBalanced = tauA == null && tauB == null;
        // Along e_i0 - e_i1 (mass-preserving), then e_i0 alone when a's marginal is relaxed or b's is.
        assertEquals(r.gradA()[i0] - r.gradA()[i1], difference(o, p, item, h, -1, i0, i1, -1, -1), 1e-7, "dcost/da, a direction keeping the mass");
        assertEquals(r.gradB()[j0] - r.gradB()[j1], difference(o, p, item, h, -1, -1, -1, j0, j1), 1e-7, "dcost/db, a direction keeping the mass");
        if (bothBalanced) {
            assertEquals(r.gradA()[i0] + r.gradB()[j1], difference(o, p, item, h, -1, i0, -1, j1, -1), 1e-7, "da_i0 = db_j1");
        } else {
            assertEquals(r.gradA()[i1], difference(o, p, item, h, -1, i1, -1, -1, -1), 1e-7, "dcost/da_i1");
            assertEquals(r.gradB()[j0], difference(o, p, item, h, -1, -1, -1, j0, -1), 1e-7, "dcost/db_j0");
        }
        // An entry of C whose row is masked takes no part.
        int maskedRow = -1;
        for (int i = 0; i < n; i++) if (!p.maskA()[item * n + i]) maskedRow = item * n + i;
        if (maskedRow >= 0) assertEquals(0.0, r.plan()[maskedRow * m + j0 - item * m]);
    }

    /**
     * (cost(+h) - cost(-h)) / 2h of item `item` along: C entry `c`, +a_plus, -a_minus, +b_plus, -b_minus
     * (each -1 when unused; C and weight indices are flat over the batch).
     */
    private static double difference(DenseSinkhornOptions o, DenseReference.Batch p, int item, double h, int c, int aPlus,
                                     int aMinus, int bPlus, int bMinus) {
        DoubleUnaryOperator cost = s -> {
            double[] cc = p.c().clone(), a = p.a().clone(), b = p.b().clone();
            if (c >= 0) cc[c] += s;
            if (aPlus >= 0) a[aPlus] += s;
            if (aMinus >= 0) a[aMinus] -= s;
            if (bPlus >= 0) b[bPlus] += s;
            if (bMinus >= 0) b[bMinus] -= s;
            DenseSinkhornOptions plain = o.toBuilder().gradients(false).build();
            return DenseSinkhorn.solve(plain, cc, p.batch(), p.n(), p.m(), a, b, p.maskA(), p.maskB()).cost()[item];
        };
        return (cost.applyAsDouble(h) - cost.applyAsDouble(-h)) / (2 * h);
    }

    /** The indices i in [from, from + len) where mask[i] holds. */
    static int[] present(boolean[] mask, int from, int len) {
        return java.util.stream.IntStream.range(from, from + len).filter(i -> mask[i]).toArray();
    }

    private static void named(String name, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(name), "message should name " + name + ": " + e.getMessage());
    }

    /**
     * Solves from several Java threads at once (one takes the library's worker pool, the others start
     * threads of their own) give the results of the same solves run one after another, bit for bit.
     */
    @Test
    void concurrentSolvesMatchSequentialOnes() throws Exception {
        DenseSinkhornOptions o = DenseSinkhornOptions.builder().eps(EPS).tauB(2.0).maxIters(50).device(Device.CPU)
                .gradients(true).build();
        List<DenseReference.Batch> problems = new ArrayList<>();
        for (int seed = 0; seed < 4; seed++) problems.add(DenseReference.random(new Random(seed), 3, 150 + seed, 170, true));
        List<DenseSinkhornResult> alone = new ArrayList<>();
        for (DenseReference.Batch p : problems) alone.add(solve(o, p));
        ExecutorService threads = Executors.newFixedThreadPool(problems.size());
        try {
            for (int round = 0; round < 5; round++) {
                List<Future<DenseSinkhornResult>> running = new ArrayList<>();
                for (DenseReference.Batch p : problems) running.add(threads.submit(() -> solve(o, p)));
                for (int i = 0; i < problems.size(); i++) {
                    DenseSinkhornResult r = running.get(i).get(), e = alone.get(i);
                    String what = "problem " + i + ", round " + round;
                    assertArrayEquals(e.cost(), r.cost(), what + ": cost");
                    assertArrayEquals(e.f(), r.f(), what + ": f");
                    assertArrayEquals(e.g(), r.g(), what + ": g");
                    assertArrayEquals(e.plan(), r.plan(), what + ": plan");
                    assertArrayEquals(e.gradA(), r.gradA(), what + ": gradA");
                }
            }
        } finally {
            threads.shutdownNow();
        }
    }

    @Test
    void badInputIsRefusedNamingTheArgument() {
        DenseSinkhornOptions o = DenseSinkhornOptions.builder().eps(0.1).device(Device.CPU).build();
        double[] c = {0, 1, 1, 0, 0.5, 0.5};  // 2 x 3
        double[] nan = c.clone();
        nan[4] = Double.NaN;
        named("C contains NaN or infinite values at unmasked entries (batch item 0, row 1, column 1)",
                () -> DenseSinkhorn.solve(o, nan, 1, 2, 3, null, null, null, null));
        // NaN where the row is masked is never read.
        DenseSinkhorn.solve(o, nan, 1, 2, 3, null, null, new boolean[] {true, false}, null);
        named("C", () -> DenseSinkhorn.solve(o, c, 1, 2, 2, null, null, null, null));
        named("a", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, new double[] {1.5, -0.5}, null, null, null));
        named("a", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, new double[] {1}, null, null, null));
        named("b", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, null, new double[] {0, 0, 0}, null, null));
        named("b", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, null, new double[] {0, Double.NaN, 1}, null, null));
        named("maskA", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, null, null, new boolean[] {false, false}, null));
        named("maskB", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, null, null, null, new boolean[] {true}));
        named("same total mass", () -> DenseSinkhorn.solve(o, c, 1, 2, 3, new double[] {0.5, 0.6}, null, null, null));
        DenseSinkhorn.solve(o.toBuilder().tauA(1.0).build(), c, 1, 2, 3, new double[] {0.5, 0.6}, null, null, null);
        named("batch", () -> DenseSinkhorn.solve(o, c, 0, 2, 3, null, null, null, null));
        named("eps", () -> DenseSinkhornOptions.builder().eps(0).build());
        named("eps", () -> DenseSinkhornOptions.builder().build());
        named("tauA", () -> DenseSinkhornOptions.builder().eps(1).tauA(-1.0).build());
        named("tauB", () -> DenseSinkhornOptions.builder().eps(1).tauB(Double.NaN).build());
        named("maxIters", () -> DenseSinkhornOptions.builder().eps(1).maxIters(0).build());
        named("threshold", () -> DenseSinkhornOptions.builder().eps(1).threshold(-1).build());
        named("checkEvery", () -> DenseSinkhornOptions.builder().eps(1).checkEvery(0).build());
        named("unknown option 'reach'", () -> DenseSinkhornOptions.fromMap(Map.of("eps", 1.0, "reach", 1.0)));
        DenseProblem p = DenseProblem.of(DType.FLOAT64, 1, 2, 3, MemorySegment.ofArray(c), null, null, null, null);
        named("output plan", () -> DenseSinkhorn.solve(o, p, DenseOutputs.none().plan(MemorySegment.ofArray(new double[5]))));
        named("k", () -> DenseSinkhorn.planProduct(o, p, MemorySegment.ofArray(new double[2]), MemorySegment.ofArray(new double[3]),
                false, 0, MemorySegment.ofArray(new double[3]), MemorySegment.ofArray(new double[2])));
    }

    @Test
    void optionsRoundTripThroughTheirMap() {
        DenseSinkhornOptions o = DenseSinkhornOptions.builder().eps(0.3).tauB(2.0).maxIters(77).threshold(1e-7).checkEvery(3)
                .device(Device.CPU).plan(true).build();
        assertEquals(o, DenseSinkhornOptions.fromMap(o.toMap()));
        assertEquals(o, DenseSinkhornOptions.fromMap(Map.of("eps", 0.3, "tau_b", 2, "max_iters", 77, "threshold", 1e-7,
                "check_every", 3, "device", "cpu", "plan", true)));
        assertFalse(o.balanced());
    }
}
