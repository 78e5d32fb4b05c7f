package io.github.sinkhorn4j.core;

import static io.github.sinkhorn4j.core.NativeLibrary.DENSE_INPUTS;
import static io.github.sinkhorn4j.core.NativeLibrary.DENSE_OPTIONS;
import static io.github.sinkhorn4j.core.NativeLibrary.DENSE_OUTPUTS;
import static io.github.sinkhorn4j.core.NativeLibrary.offset;
import static io.github.sinkhorn4j.core.Sinkhorn.requireRoom;
import static io.github.sinkhorn4j.core.Sinkhorn.setAddress;
import static io.github.sinkhorn4j.core.Sinkhorn.toDoubles;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Objects;

/**
 * Entropic optimal transport on explicit cost matrices: batched, masked, balanced or unbalanced
 * (docs/math.md, "Dense costs"). One native call runs a whole solve; native segments are passed as
 * they are, heap segments and arrays copied in and out. Every argument is checked here first (the
 * costs themselves by the library, where it reads them): a bad one raises an
 * IllegalArgumentException naming it.
 */
public final class DenseSinkhorn {
    private DenseSinkhorn() {}

    /** Solves every item of the batch; the outputs asked for are written in place. */
    public static DenseReport solve(DenseSinkhornOptions options, DenseProblem problem, DenseOutputs outputs) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(problem, "problem");
        Objects.requireNonNull(outputs, "outputs");
        problem.validateValues(options.balanced());
        outputs.check(problem);
        int batch = Math.toIntExact(problem.batch());
        try (Arena arena = Arena.ofConfined()) {
            Sinkhorn.Transfers io = new Sinkhorn.Transfers(arena);
            MemorySegment out = arena.allocate(DENSE_OUTPUTS);
            MemorySegment cost = arena.allocate(JAVA_DOUBLE, batch);
            MemorySegment iterations = arena.allocate(JAVA_INT, batch);
            MemorySegment converged = arena.allocate(JAVA_INT, batch);
            MemorySegment device = arena.allocate(JAVA_INT);
            MemorySegment solveMs = arena.allocate(JAVA_DOUBLE);
            setAddress(out, DENSE_OUTPUTS, "cost", cost);
            setAddress(out, DENSE_OUTPUTS, "iterations", iterations);
            setAddress(out, DENSE_OUTPUTS, "converged", converged);
            setAddress(out, DENSE_OUTPUTS, "device_used", device);
            setAddress(out, DENSE_OUTPUTS, "solve_ms", solveMs);
            setAddress(out, DENSE_OUTPUTS, "f", io.output(outputs.f));
            setAddress(out, DENSE_OUTPUTS, "g", io.output(outputs.g));
            setAddress(out, DENSE_OUTPUTS, "plan", io.output(outputs.plan));
            setAddress(out, DENSE_OUTPUTS, "grad_a", io.output(outputs.gradA));
            setAddress(out, DENSE_OUTPUTS, "grad_b", io.output(outputs.gradB));
            NativeLibrary.call(() -> (int) NativeLibrary.DENSE_SINKHORN.invokeExact(options(arena, options),
                    inputs(arena, io, problem), out));
            io.copyBack();
            boolean[] conv = new boolean[batch];
            for (int k = 0; k < batch; k++) conv[k] = converged.getAtIndex(JAVA_INT, k) != 0;
            Device used = device.get(JAVA_INT, 0) == 2 ? Device.CUDA : Device.CPU;
            return new DenseReport(cost.toArray(JAVA_DOUBLE), iterations.toArray(JAVA_INT), conv, used,
                    solveMs.get(JAVA_DOUBLE, 0));
        }
    }

    /**
     * A batch on Java arrays (float64): c is batch x n x m row-major; a (batch x n), b (batch x m),
     * maskA (batch x n) and maskB (batch x m) may be null (uniform weights over the present entries,
     * everything present). Returns the potentials, and the plan and gradients as the options ask.
     */
    public static DenseSinkhornResult solve(DenseSinkhornOptions options, double[] c, int batch, int n, int m, double[] a,
                                            double[] b, boolean[] maskA, boolean[] maskB) {
        Objects.requireNonNull(c, "C");
        checkLengths(c.length, batch, n, m, a == null ? -1 : a.length, b == null ? -1 : b.length, maskA, maskB);
        return onArrays(options, DenseProblem.of(DType.FLOAT64, batch, n, m, MemorySegment.ofArray(c),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b), mask(maskA),
                mask(maskB)));
    }

    /** A batch on Java arrays in float32. */
    public static DenseSinkhornResult solve(DenseSinkhornOptions options, float[] c, int batch, int n, int m, float[] a,
                                            float[] b, boolean[] maskA, boolean[] maskB) {
        Objects.requireNonNull(c, "C");
        checkLengths(c.length, batch, n, m, a == null ? -1 : a.length, b == null ? -1 : b.length, maskA, maskB);
        return onArrays(options, DenseProblem.of(DType.FLOAT32, batch, n, m, MemorySegment.ofArray(c),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b), mask(maskA),
                mask(maskB)));
    }

    /**
     * Plan products from potentials f (batch x n) and g (batch x m), at {@code options.eps()}, per item:
     * out (batch x n x k) = P @ v for v (batch x m x k), or, transposed, out (batch x m x k) = P^T @ v for
     * v (batch x n x k), with P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps); rows at masked entries are 0.
     * One pass over C; the plan is not stored.
     */
    public static void planProduct(DenseSinkhornOptions options, DenseProblem problem, MemorySegment f, MemorySegment g,
                                   boolean transpose, long k, MemorySegment v, MemorySegment out) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(problem, "problem");
        if (k < 1) throw new IllegalArgumentException("k must be >= 1 (got " + k + ")");
        problem.validateValues(options.balanced());
        long bytes = problem.dtype().bytes();
        long rows = problem.batch() * (transpose ? problem.m() : problem.n());
        long cols = problem.batch() * (transpose ? problem.n() : problem.m());
        requireRoom("f", f, problem.batch() * problem.n(), bytes);
        requireRoom("g", g, problem.batch() * problem.m(), bytes);
        requireRoom("v", v, cols * k, bytes);
        requireRoom("out", out, rows * k, bytes);
        try (Arena arena = Arena.ofConfined()) {
            Sinkhorn.Transfers io = new Sinkhorn.Transfers(arena);
            NativeLibrary.call(() -> (int) NativeLibrary.DENSE_PLAN_PRODUCT.invokeExact(options(arena, options), inputs(arena, io, problem),
                    io.input(f), io.input(g), transpose ? 1 : 0, k, io.input(v), io.output(out)));
            io.copyBack();
        }
    }

    private static DenseSinkhornResult onArrays(DenseSinkhornOptions options, DenseProblem p) {
        try (Arena arena = Arena.ofConfined()) {
            var layout = p.dtype().layout();
            MemorySegment f = arena.allocate(layout, p.batch() * p.n()), g = arena.allocate(layout, p.batch() * p.m());
            DenseOutputs out = DenseOutputs.none().f(f).g(g);
            MemorySegment plan = null, gradA = null, gradB = null;
            if (options.plan() || options.gradients()) out.plan(plan = arena.allocate(layout, p.batch() * p.n() * p.m()));
            if (options.gradients()) {
                out.gradA(gradA = arena.allocate(layout, p.batch() * p.n()));
                out.gradB(gradB = arena.allocate(layout, p.batch() * p.m()));
            }
            DenseReport report = solve(options, p, out);
            return new DenseSinkhornResult(report, toDoubles(p.dtype(), f), toDoubles(p.dtype(), g),
                    toDoubles(p.dtype(), plan), toDoubles(p.dtype(), gradA), toDoubles(p.dtype(), gradB));
        }
    }

    private static void checkLengths(int c, int batch, int n, int m, int a, int b, boolean[] maskA, boolean[] maskB) {
        if (batch < 1 || n < 1 || m < 1) {
            throw new IllegalArgumentException("batch, n and m must be >= 1 (got " + batch + ", " + n + ", " + m + ")");
        }
        if (c != (long) batch * n * m) {
            throw new IllegalArgumentException("C has " + c + " values, batch x n x m = " + (long) batch * n * m + " needed");
        }
        if (a >= 0 && a != (long) batch * n) throw new IllegalArgumentException("a has " + a + " weights, batch x n = " + (long) batch * n + " needed");
        if (b >= 0 && b != (long) batch * m) throw new IllegalArgumentException("b has " + b + " weights, batch x m = " + (long) batch * m + " needed");
        if (maskA != null && maskA.length != (long) batch * n) {
            throw new IllegalArgumentException("maskA has " + maskA.length + " entries, batch x n = " + (long) batch * n + " needed");
        }
        if (maskB != null && maskB.length != (long) batch * m) {
            throw new IllegalArgumentException("maskB has " + maskB.length + " entries, batch x m = " + (long) batch * m + " needed");
        }
    }

    private static MemorySegment mask(boolean[] present) {
        if (present == null) return null;
        byte[] bytes = new byte[present.length];
        for (int i = 0; i < bytes.length; i++) bytes[i] = (byte) (present[i] ? 1 : 0);
        return MemorySegment.ofArray(bytes);
    }

    private static MemorySegment options(Arena arena, DenseSinkhornOptions o) {
        MemorySegment s = arena.allocate(DENSE_OPTIONS);
        s.set(JAVA_DOUBLE, offset(DENSE_OPTIONS, "eps"), o.eps());
        s.set(JAVA_DOUBLE, offset(DENSE_OPTIONS, "tau_a"), o.tauA() == null ? 0 : o.tauA());
        s.set(JAVA_DOUBLE, offset(DENSE_OPTIONS, "tau_b"), o.tauB() == null ? 0 : o.tauB());
        s.set(JAVA_DOUBLE, offset(DENSE_OPTIONS, "threshold"), o.threshold());
        s.set(JAVA_INT, offset(DENSE_OPTIONS, "max_iters"), o.maxIters());
        s.set(JAVA_INT, offset(DENSE_OPTIONS, "check_every"), o.checkEvery());
        s.set(JAVA_INT, offset(DENSE_OPTIONS, "device"), o.device().ordinal());
        return s;
    }

    private static MemorySegment inputs(Arena arena, Sinkhorn.Transfers io, DenseProblem p) {
        MemorySegment s = arena.allocate(DENSE_INPUTS);
        s.set(JAVA_INT, offset(DENSE_INPUTS, "dtype"), p.dtype().ordinal());
        s.set(JAVA_LONG, offset(DENSE_INPUTS, "batch"), p.batch());
        s.set(JAVA_LONG, offset(DENSE_INPUTS, "n"), p.n());
        s.set(JAVA_LONG, offset(DENSE_INPUTS, "m"), p.m());
        s.set(ADDRESS, offset(DENSE_INPUTS, "c"), p.isOnCuda() ? p.cudaC().address() : io.input(p.c()));
        s.set(ADDRESS, offset(DENSE_INPUTS, "a"), io.input(p.a()));
        s.set(ADDRESS, offset(DENSE_INPUTS, "b"), io.input(p.b()));
        s.set(ADDRESS, offset(DENSE_INPUTS, "mask_a"), io.input(p.maskA()));
        s.set(ADDRESS, offset(DENSE_INPUTS, "mask_b"), io.input(p.maskB()));
        s.set(JAVA_INT, offset(DENSE_INPUTS, "memory"), p.isOnCuda() ? 1 : 0);
        return s;
    }
}
