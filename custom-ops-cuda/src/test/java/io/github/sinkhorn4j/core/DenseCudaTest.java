package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.Random;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * The dense solver on CUDA against the CPU backend, on random batched problems with variable
 * lengths. The sizes reach both CUDA paths: items that fit the shared memory of a cluster of CTAs
 * (the resident solve, the whole loop in one launch; clusters of 16 on Hopper for small batches) and
 * items that do not (a launch per pass; tall items split their column passes over several CTAs).
 * Run on the GPU machine (tag "gpu").
 */
@Tag("gpu")
class DenseCudaTest {
    private static final double EPS = 0.25;

    private static DenseSinkhornOptions options(Device device, Double tauA, Double tauB, int maxIters, double threshold) {
        return DenseSinkhornOptions.builder().eps(EPS).tauA(tauA).tauB(tauB).maxIters(maxIters).threshold(threshold)
                .device(device).gradients(true).build();
    }

    private static DenseSinkhornResult solve(DenseSinkhornOptions o, DenseReference.Batch p, boolean float32) {
        return float32
                ? DenseSinkhorn.solve(o, p.cFloats(), p.batch(), p.n(), p.m(), p.aFloats(), p.bFloats(), p.maskA(), p.maskB())
                : DenseSinkhorn.solve(o, p.c(), p.batch(), p.n(), p.m(), p.a(), p.b(), p.maskA(), p.maskB());
    }

    /** |actual - expected| <= tolerance * max |expected| over the array. */
    private static void close(String what, double[] actual, double[] expected, double tolerance) {
        close(what, actual, expected, tolerance, largest(expected));
    }

    /** |actual - expected| <= tolerance * scale. */
    private static void close(String what, double[] actual, double[] expected, double tolerance, double scale) {
        DenseSinkhornTest.close(what, actual, expected, tolerance * Math.max(scale, 1e-300));
    }

    /** The largest finite |value| (masked entries of C may hold anything, NaN included). */
    private static double largest(double[] v) {
        double scale = 0;
        for (double e : v) if (Double.isFinite(e)) scale = Math.max(scale, Math.abs(e));
        return scale;
    }

    /**
     * maxIters 100 without threshold compares the iterates themselves (unconverged); a threshold
     * compares the stopping points, which may differ by one check interval.
     */
    @ParameterizedTest(name = "{0}: batch {1}, n {2}, m {3}, tauA {4}, tauB {5}, masks {6}, maxIters {7}, threshold {8}")
    @CsvSource({
        // resident: a cluster of CTAs holds each item
        "float32, 8, 256, 256,    ,    , true, 100, 0",
        "float32, 8, 256, 256, 0.5, 2.0, true, 5000, 1e-5",
        "float64, 3, 100, 130,    , 2.0, true, 100, 0",
        "float64, 3, 100, 130,    ,    , false, 5000, 1e-11",
        "float32, 64, 33, 17,  0.5,    , true, 5000, 1e-5",
        // resident in clusters of 16 CTAs on Hopper (few items of at least 128 rows), ragged last CTAs
        "float32, 4, 256, 300,    ,    , true, 100, 0",
        "float32, 4, 256, 300, 0.5, 2.0, true, 5000, 1e-5",
        "float64, 2, 300, 200,    , 2.0, true, 5000, 1e-11",
        "float64, 2, 300, 200,    ,    , false, 100, 0",
        // a launch per pass: items too large for a cluster
        "float64, 2, 300, 3000,   ,    , true, 100, 0",
        "float64, 2, 300, 3000, 0.5, 0.5, true, 5000, 1e-11",
        "float32, 4, 700, 900,    ,    , true, 5000, 1e-5",
        // tall items: column passes split over many CTAs and merged
        "float32, 1, 20000, 40,   ,    , false, 100, 0",
        "float64, 2, 9000, 70,  2.0,   , true, 5000, 1e-11",
    })
    void cudaMatchesTheCpu(String dtype, int batch, int n, int m, Double tauA, Double tauB, boolean masked, int maxIters,
                           double threshold) {
        boolean float32 = dtype.equals("float32");
        DenseReference.Batch p = DenseReference.random(new Random(31L * n + m), batch, n, m, masked);
        DenseSinkhornResult cpu = solve(options(Device.CPU, tauA, tauB, maxIters, threshold), p, float32);
        DenseSinkhornResult gpu = solve(options(Device.CUDA, tauA, tauB, maxIters, threshold), p, float32);
        assertEquals(Device.CUDA, gpu.report().device());
        double tol = float32 ? 2e-4 : 1e-9;
        close("cost", gpu.cost(), cpu.cost(), float32 ? 1e-5 : 1e-11);
        // Potentials and weight gradients on the scale of the costs: one side's potentials can be far
        // smaller than the other's (g of an item with 20000 rows and 40 columns is ~1e-2 of C), and
        // float32 rounding is an absolute error on the costs' scale.
        double costScale = largest(p.c());
        close("f", gpu.f(), cpu.f(), tol, costScale);
        close("g", gpu.g(), cpu.g(), tol, costScale);
        close("plan", gpu.plan(), cpu.plan(), tol);
        close("gradA", gpu.gradA(), cpu.gradA(), tol, costScale);
        close("gradB", gpu.gradB(), cpu.gradB(), tol, costScale);
        assertArrayEquals(cpu.report().converged(), gpu.report().converged());
        for (int k = 0; k < batch; k++) {
            int difference = Math.abs(cpu.report().iterations()[k] - gpu.report().iterations()[k]);
            assertTrue(threshold == 0 ? difference == 0 : difference <= DenseSinkhornOptions.DEFAULT_CHECK_EVERY,
                    "iterations of item " + k + ": cpu " + cpu.report().iterations()[k] + ", cuda " + gpu.report().iterations()[k]);
        }
    }

    @ParameterizedTest(name = "{0}: batch {1}, n {2}, m {3}, k {4}, transpose {5}")
    @CsvSource({
        "float64, 3, 100, 130, 3, false", "float64, 3, 100, 130, 11, true",
        "float32, 2, 700, 900, 11, false", "float32, 2, 700, 900, 3, true",
    })
    void planProductsMatchTheCpu(String dtype, int batch, int n, int m, int k, boolean transpose) {
        boolean float32 = dtype.equals("float32");
        DType t = float32 ? DType.FLOAT32 : DType.FLOAT64;
        DenseReference.Batch p = DenseReference.random(new Random(7L * n + k), batch, n, m, true);
        DenseSinkhornResult solved = solve(options(Device.CPU, null, 2.0, 200, 0), p, float32);
        Random rnd = new Random(k);
        double[] v = new double[batch * (transpose ? n : m) * k];
        for (int i = 0; i < v.length; i++) v[i] = rnd.nextGaussian();
        int outLength = batch * (transpose ? m : n) * k;
        double[][] out = new double[2][];
        Device[] devices = {Device.CPU, Device.CUDA};
        for (int d = 0; d < 2; d++) {
            DenseSinkhornOptions o = options(devices[d], null, 2.0, 200, 0);
            MemorySegment result = segment(t, new double[outLength]);
            DenseProblem problem = DenseProblem.of(t, batch, n, m, segment(t, p.c()), segment(t, p.a()), segment(t, p.b()),
                    DenseSinkhornTest.bytes(p.maskA()), DenseSinkhornTest.bytes(p.maskB()));
            DenseSinkhorn.planProduct(o, problem, segment(t, solved.f()), segment(t, solved.g()), transpose, k, segment(t, v), result);
            out[d] = Sinkhorn.toDoubles(t, result);
        }
        close("plan product", out[1], out[0], float32 ? 1e-5 : 1e-12);
    }

    /**
     * C is checked where it is read: on the device after its upload. Both backends refuse the same
     * entry (the first non-finite one at a present row and column, by flat index) and accept NaN at
     * masked entries, in a solve and in a plan product.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"float32", "float64"})
    void nonFiniteCostsAreFoundWhereTheyAreRead(String dtype) {
        boolean float32 = dtype.equals("float32");
        DType t = float32 ? DType.FLOAT32 : DType.FLOAT64;
        int batch = 5, n = 300, m = 700;
        DenseReference.Batch clean = DenseReference.random(new Random(5), batch, n, m, true);
        solve(options(Device.CUDA, null, null, 3, 0), clean, float32);  // NaN at every masked entry
        int[] rows3 = DenseSinkhornTest.present(clean.maskA(), 3 * n, n);
        int[] columns3 = DenseSinkhornTest.present(clean.maskB(), 3 * m, m);
        assertTrue(columns3.length >= 2, "item 3 needs two present columns");
        // Rows flat over the batch's rows, columns within their item.
        int row = rows3[rows3.length / 2], first = row * m + columns3[0] - 3 * m;
        int later = row * m + columns3[columns3.length - 1] - 3 * m;
        int rowOfItem4 = DenseSinkhornTest.present(clean.maskA(), 4 * n, n)[0];
        int nextItem = rowOfItem4 * m + DenseSinkhornTest.present(clean.maskB(), 4 * m, m)[0] - 4 * m;
        double[] c = clean.c().clone();  // three present entries, in increasing flat order
        c[first] = Double.NaN;
        c[later] = Double.NEGATIVE_INFINITY;
        c[nextItem] = Double.NaN;
        String where = "(batch item " + first / (n * m) + ", row " + first / m % n + ", column " + first % m + ")";
        DenseReference.Batch bad = new DenseReference.Batch(batch, n, m, c, clean.a(), clean.b(), clean.maskA(), clean.maskB());
        for (Device device : new Device[] {Device.CPU, Device.CUDA}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> solve(options(device, null, null, 3, 0), bad, float32));
            assertTrue(e.getMessage().contains("C contains NaN or infinite values at unmasked entries " + where),
                    device + ": " + e.getMessage());
        }
        DenseProblem problem = DenseProblem.of(t, batch, n, m, segment(t, c), segment(t, clean.a()), segment(t, clean.b()),
                DenseSinkhornTest.bytes(clean.maskA()), DenseSinkhornTest.bytes(clean.maskB()));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> DenseSinkhorn.planProduct(options(Device.CUDA, null, null, 3, 0), problem, segment(t, new double[batch * n]),
                        segment(t, new double[batch * m]), false, 1, segment(t, new double[batch * m]),
                        segment(t, new double[batch * n])));
        assertTrue(e.getMessage().contains(where), e.getMessage());
    }

    /**
     * C in CUDA memory (DenseProblem.onCuda) gives the results of the same C from host memory, bit for
     * bit (the device holds the same values either way), in a solve on auto and cuda and in a plan
     * product; device cpu refuses it, its non-finite entries are found, and its size and dtype checked.
     */
    @ParameterizedTest(name = "{0}")
    @CsvSource({"float32", "float64"})
    void costsInCudaMemoryGiveTheResultsOfHostCosts(String dtype) {
        DType t = dtype.equals("float32") ? DType.FLOAT32 : DType.FLOAT64;
        int batch = 3, n = 100, m = 130, k = 2;
        DenseReference.Batch p = DenseReference.random(new Random(11), batch, n, m, true);
        MemorySegment maskA = DenseSinkhornTest.bytes(p.maskA()), maskB = DenseSinkhornTest.bytes(p.maskB());
        DenseProblem host = DenseProblem.of(t, batch, n, m, segment(t, p.c()), segment(t, p.a()), segment(t, p.b()), maskA, maskB);
        double[] withNaN = p.c().clone();
        int bad = DenseSinkhornTest.present(p.maskA(), 2 * n, n)[0] * m + DenseSinkhornTest.present(p.maskB(), 2 * m, m)[0] - 2 * m;
        withNaN[bad] = Double.NaN;
        try (CudaArray c = CudaArray.upload(t, segment(t, p.c())); CudaArray nanC = CudaArray.upload(t, segment(t, withNaN))) {
            DenseProblem onCuda = DenseProblem.onCuda(batch, n, m, c, segment(t, p.a()), segment(t, p.b()), maskA, maskB);
            assertTrue(onCuda.isOnCuda());
            double[][] expected = solveOn(t, host, Device.CUDA);
            for (Device device : new Device[] {Device.AUTO, Device.CUDA}) {
                double[][] actual = solveOn(t, onCuda, device);
                for (int i = 0; i < expected.length; i++) assertArrayEquals(expected[i], actual[i], device + ": output " + i);
            }
            double[] v = new double[batch * m * k];
            for (int i = 0; i < v.length; i++) v[i] = Math.sin(i);
            DenseSinkhornOptions o = options(Device.CUDA, null, null, 50, 0);
            double[][] products = new double[2][];
            DenseProblem[] problems = {host, onCuda};
            for (int i = 0; i < 2; i++) {
                MemorySegment out = segment(t, new double[batch * n * k]);
                DenseSinkhorn.planProduct(o, problems[i], segment(t, expected[1]), segment(t, expected[2]), false, k, segment(t, v), out);
                products[i] = Sinkhorn.toDoubles(t, out);
            }
            assertArrayEquals(products[0], products[1], "plan product");
            IllegalArgumentException onCpu = assertThrows(IllegalArgumentException.class, () -> solveOn(t, onCuda, Device.CPU));
            assertTrue(onCpu.getMessage().contains("device cpu cannot read C in CUDA memory"), onCpu.getMessage());
            DenseProblem nan = DenseProblem.onCuda(batch, n, m, nanC, null, null, maskA, maskB);
            IllegalArgumentException found = assertThrows(IllegalArgumentException.class, () -> solveOn(t, nan, Device.CUDA));
            assertTrue(found.getMessage().contains("(batch item 2, row " + bad / m % n + ", column " + bad % m + ")"), found.getMessage());
            IllegalArgumentException small = assertThrows(IllegalArgumentException.class,
                    () -> DenseProblem.onCuda(batch, n + 1, m, c, null, null, null, null));
            assertTrue(small.getMessage().contains("cudaC"), small.getMessage());
            assertThrows(IllegalArgumentException.class,
                    () -> new DenseProblem(t, batch, n, m, segment(t, p.c()), null, null, null, null, c));
        }
    }

    /** Cost, f, g and the plan of a 50-iteration solve on a device. */
    private static double[][] solveOn(DType t, DenseProblem problem, Device device) {
        long rows = problem.batch() * problem.n(), cols = problem.batch() * problem.m();
        MemorySegment f = segment(t, new double[(int) rows]), g = segment(t, new double[(int) cols]);
        MemorySegment plan = segment(t, new double[(int) (rows * problem.m())]);
        DenseReport report = DenseSinkhorn.solve(options(device, null, 2.0, 50, 0), problem, DenseOutputs.none().f(f).g(g).plan(plan));
        assertEquals(Device.CUDA, report.device());
        return new double[][] {report.cost(), Sinkhorn.toDoubles(t, f), Sinkhorn.toDoubles(t, g), Sinkhorn.toDoubles(t, plan)};
    }

    private static MemorySegment segment(DType t, double[] values) {
        return t == DType.FLOAT32 ? MemorySegment.ofArray(DenseReference.floats(values)) : MemorySegment.ofArray(values.clone());
    }
}
