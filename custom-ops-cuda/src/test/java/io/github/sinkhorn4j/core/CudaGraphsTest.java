package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * CUDA graphs (sinkhorn4j.cudaGraphs = on, auto) against direct launches (off): bitwise the same
 * losses, potentials, gradients, iteration counts and changes, on small problems of both solvers,
 * debiased or not, with an eps schedule or a fixed eps, thresholds that stop early at odd and even
 * check intervals, a batch whose items stop at different iterations, the three CUDA precisions, a
 * problem above the auto mode's size limit, and concurrent solves. Every case is solved twice with
 * graphs on, so that the second solve updates the graph the first instantiated. Run on the GPU
 * machine (tag "gpu").
 */
@Tag("gpu")
class CudaGraphsTest {
    private static final SinkhornOptions CUDA = SinkhornOptions.builder().device(Device.CUDA).build();
    private static final SinkhornOptions FORWARD = CUDA.toBuilder().eps(0.1).debias(false).halfCost(false)
            .lastExtrapolation(false).solver(Solver.ALTERNATING).build();

    @BeforeAll
    static void needsDevice() {
        assertTrue(Sinkhorn.cudaDeviceCount() > 0, "no CUDA device: these tests run on the GPU machine");
    }

    @AfterEach
    void restoreTheDefaultMode() {
        System.clearProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY);
    }

    /** A problem: clouds (one or more segments), the dtype, options, and whether gradients are asked for. */
    record Problem(String name, SinkhornOptions options, DType dtype, long[] xOff, long[] yOff, int d, boolean gradients,
                   boolean stopsEarly) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** Everything a solve reports, floats widened to doubles (exactly, so equality stays bitwise). */
    record Solved(Device device, double[] loss, int[] iterations, boolean[] converged, double[] maxChange, double[] fBa,
                  double[] gAb, double[] fAa, double[] gBb, double[] gradX) {}

    static Stream<Arguments> problems() {
        long[] one = {0, 1000};
        double[] annealed = new double[300];  // 4, 2, 1, 0.5, then 0.25 from the fifth iteration on
        for (int i = 0; i < annealed.length; i++) annealed[i] = Math.max(0.25, 4.0 * Math.pow(0.5, i));
        return Stream.of(
                problem("forward alternating, d 3, 101 iterations", FORWARD.toBuilder().nIters(101).build(), DType.FLOAT32, one, one, 3, false, false),
                problem("forward alternating, d 64, 100 iterations", FORWARD.toBuilder().nIters(100).build(), DType.FLOAT32, one, one, 64, false, false),
                problem("forward symmetric, strict float32", FORWARD.toBuilder().nIters(50).solver(Solver.SYMMETRIC).allowTf32(false).build(),
                        DType.FLOAT32, one, one, 5, false, false),
                problem("loss+grad, GeomLoss schedule", CUDA.toBuilder().blur(0.05).scaling(0.5).build(), DType.FLOAT32, one, one, 3, true, false),
                problem("symmetric debiased, slow schedule with gradients", CUDA.toBuilder().blur(0.05).scaling(0.9).build(),
                        DType.FLOAT32, one, new long[] {0, 900}, 3, true, false),
                problem("symmetric debiased, annealed head, threshold every 10", CUDA.toBuilder().epsList(annealed).threshold(1e-6)
                        .innerIterations(10).build(), DType.FLOAT64, one, new long[] {0, 800}, 3, true, true),
                problem("alternating debiased, threshold every 3, float64", CUDA.toBuilder().solver(Solver.ALTERNATING).eps(0.5)
                        .nIters(3000).threshold(1e-10).innerIterations(3).build(), DType.FLOAT64, one, new long[] {0, 700}, 4, true, true),
                problem("alternating unbalanced, threshold every 4, strict float32", CUDA.toBuilder().solver(Solver.ALTERNATING).eps(0.5)
                        .reach(1.0).nIters(3000).threshold(1e-5).innerIterations(4).allowTf32(false).build(), DType.FLOAT32, one, one, 3,
                        false, true),
                problem("symmetric unbalanced, not debiased, fixed eps", CUDA.toBuilder().eps(0.2).nIters(40).debias(false).reachY(0.8).build(),
                        DType.FLOAT32, one, one, 8, true, false),
                problem("batch of 3, alternating, threshold every 5", CUDA.toBuilder().solver(Solver.ALTERNATING).eps(0.2).nIters(4000)
                        .threshold(1e-9).innerIterations(5).build(), DType.FLOAT64, new long[] {0, 300, 1000, 1200},
                        new long[] {0, 500, 900, 1300}, 3, false, true),
                problem("above the auto limit: 5000 x 5000", FORWARD.toBuilder().nIters(30).build(), DType.FLOAT32,
                        new long[] {0, 5000}, new long[] {0, 5000}, 3, false, false));
    }

    private static Arguments problem(String name, SinkhornOptions o, DType t, long[] xOff, long[] yOff, int d, boolean gradients,
                                     boolean stopsEarly) {
        return Arguments.of(new Problem(name, o, t, xOff, yOff, d, gradients, stopsEarly));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("problems")
    void graphsGiveTheResultsOfDirectLaunches(Problem p) {
        double[][] data = data(p, 41);
        Solved direct = solve("off", p, data);
        if (p.stopsEarly()) {
            int cap = p.options().nIters() != null ? p.options().nIters() : p.options().epsList().length;
            for (int k = 0; k < direct.iterations().length; k++) {
                assertTrue(direct.converged()[k] && direct.iterations()[k] < cap, p + ": problem " + k + " stops early");
            }
        }
        if (p.xOff().length > 2) {
            assertTrue(Arrays.stream(direct.iterations()).distinct().count() > 1, p + ": items stop on their own");
        }
        for (String mode : new String[] {"on", "on", "auto"}) assertSame(p + ", graphs " + mode, direct, solve(mode, p, data));
        // Other data of the same shape: the graph of the last solve is updated in place, not rebuilt.
        double[][] other = data(p, 43);
        assertSame(p + ", other data", solve("off", p, other), solve("on", p, other));
    }

    @Test
    void concurrentSolvesWithGraphsGiveTheResultsOfDirectLaunches() throws Exception {
        List<Problem> problems = problems().map(a -> (Problem) a.get()[0]).filter(p -> p.xOff()[p.xOff().length - 1] <= 1000).toList();
        List<double[][]> data = new ArrayList<>();
        List<Solved> direct = new ArrayList<>();
        for (Problem p : problems) {
            data.add(data(p, 47));
            direct.add(solve("off", p, data.getLast()));
        }
        // The property is read when a call starts: set once for every thread. Recording is thread-local, so
        // a capture on one thread does not disturb the allocations and synchronisations of another.
        System.setProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, "on");
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Solved>> futures = new ArrayList<>();
            for (int round = 0; round < 3; round++) {
                for (int i = 0; i < problems.size(); i++) {
                    Problem p = problems.get(i);
                    double[][] d = data.get(i);
                    futures.add(pool.submit(() -> run(p, d)));
                }
            }
            for (int k = 0; k < futures.size(); k++) {
                Problem p = problems.get(k % problems.size());
                assertSame(p + ", concurrent", direct.get(k % problems.size()), futures.get(k).get());
            }
        } finally {
            pool.shutdown();
        }
    }

    private static void assertSame(String what, Solved want, Solved got) {
        assertEquals(Device.CUDA, got.device(), what + ": device");
        assertArrayEquals(want.iterations(), got.iterations(), what + ": iterations");
        assertArrayEquals(want.converged(), got.converged(), what + ": converged");
        assertArrayEquals(want.maxChange(), got.maxChange(), what + ": largest change");
        assertArrayEquals(want.loss(), got.loss(), what + ": loss");
        assertArrayEquals(want.fBa(), got.fBa(), what + ": f_ba");
        assertArrayEquals(want.gAb(), got.gAb(), what + ": g_ab");
        assertArrayEquals(want.fAa(), got.fAa(), what + ": f_aa");
        assertArrayEquals(want.gBb(), got.gBb(), what + ": g_bb");
        assertArrayEquals(want.gradX(), got.gradX(), what + ": grad_x");
    }

    /** x, y, a, b of a problem: Gaussian clouds, y shifted, random weights normalised per segment. */
    private static double[][] data(Problem p, long seed) {
        Random rnd = new Random(seed + p.d());
        int n = (int) p.xOff()[p.xOff().length - 1], m = (int) p.yOff()[p.yOff().length - 1];
        double[] x = RandomClouds.gaussian(rnd, n, p.d(), 0), y = RandomClouds.gaussian(rnd, m, p.d(), 0.3);
        double[] a = new double[n], b = new double[m];
        for (int s = 0; s + 1 < p.xOff().length; s++) {
            int xs = (int) p.xOff()[s], xe = (int) p.xOff()[s + 1], ys = (int) p.yOff()[s], ye = (int) p.yOff()[s + 1];
            System.arraycopy(RandomClouds.weights(rnd, xe - xs, 1), 0, a, xs, xe - xs);
            System.arraycopy(RandomClouds.weights(rnd, ye - ys, 1), 0, b, ys, ye - ys);
        }
        return new double[][] {x, y, a, b};
    }

    private static Solved solve(String mode, Problem p, double[][] data) {
        System.setProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, mode);
        return run(p, data);
    }

    private static Solved run(Problem p, double[][] data) {
        int n = data[2].length, m = data[3].length;
        Object fBa = array(p.dtype(), n), gAb = array(p.dtype(), m), fAa = array(p.dtype(), n), gBb = array(p.dtype(), m);
        Object gradX = array(p.dtype(), p.gradients() ? n * p.d() : 0);
        Outputs out = Outputs.none().fBa(segment(fBa)).gAb(segment(gAb));
        if (p.options().debias()) out.fAa(segment(fAa)).gBb(segment(gBb));
        if (p.gradients()) out.gradX(segment(gradX));
        Report r = Sinkhorn.divergence(p.options(), clouds(p, data), out);
        return new Solved(r.device(), r.loss(), r.iterations(), r.converged(), r.maxChange(), widen(fBa), widen(gAb), widen(fAa), widen(gBb),
                widen(gradX));
    }

    private static Clouds clouds(Problem p, double[][] data) {
        return Clouds.batched(p.dtype(), p.xOff(), p.yOff(), p.d(), segment(cast(p.dtype(), data[0])), segment(cast(p.dtype(), data[1])),
                segment(cast(p.dtype(), data[2])), segment(cast(p.dtype(), data[3])));
    }

    private static Object array(DType t, int count) {
        return t == DType.FLOAT32 ? new float[count] : new double[count];
    }

    private static Object cast(DType t, double[] v) {
        if (t == DType.FLOAT64) return v;
        float[] f = new float[v.length];
        for (int i = 0; i < v.length; i++) f[i] = (float) v[i];
        return f;
    }

    private static MemorySegment segment(Object array) {
        return array instanceof float[] f ? MemorySegment.ofArray(f) : MemorySegment.ofArray((double[]) array);
    }

    private static double[] widen(Object array) {
        if (array instanceof double[] d) return d;
        float[] f = (float[]) array;
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) d[i] = f[i];
        return d;
    }
}
