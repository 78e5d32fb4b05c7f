package io.github.sinkhorn4j.core;

import static io.github.sinkhorn4j.core.NativeLibrary.CLOUDS;
import static io.github.sinkhorn4j.core.NativeLibrary.HVP_OPTIONS;
import static io.github.sinkhorn4j.core.NativeLibrary.HVP_REPORT;
import static io.github.sinkhorn4j.core.NativeLibrary.OPTIONS;
import static io.github.sinkhorn4j.core.NativeLibrary.OUTPUTS;
import static io.github.sinkhorn4j.core.NativeLibrary.offset;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Objects;

/**
 * Entry points of the native library: one call runs a whole solve (no per-iteration round trips).
 * Native segments are passed to the library as they are; heap segments are copied in and out.
 * Every argument is checked here first: a bad one raises an IllegalArgumentException naming it.
 */
public final class Sinkhorn {
    private Sinkhorn() {}

    /** Number of CUDA devices the library can use (0 without CUDA support, driver or device). */
    public static int cudaDeviceCount() {
        try {
            return (int) NativeLibrary.CUDA_DEVICE_COUNT.invokeExact();
        } catch (Throwable t) {
            throw rethrow(t);
        }
    }

    /** The divergence of every problem of the batch; the outputs asked for are written in place. */
    public static Report divergence(SinkhornOptions options, Clouds clouds, Outputs outputs) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(clouds, "clouds");
        Objects.requireNonNull(outputs, "outputs");
        clouds.validateValues();
        outputs.check(clouds);
        int batch = (int) clouds.batch();
        try (Arena arena = Arena.ofConfined()) {
            Transfers io = new Transfers(arena);
            MemorySegment opts = options(arena, options);
            MemorySegment in = clouds(arena, io, clouds);
            MemorySegment out = arena.allocate(OUTPUTS);
            MemorySegment loss = arena.allocate(JAVA_DOUBLE, batch);
            MemorySegment iterations = arena.allocate(JAVA_INT, batch);
            MemorySegment converged = arena.allocate(JAVA_INT, batch);
            MemorySegment maxChange = arena.allocate(JAVA_DOUBLE, batch);
            MemorySegment device = arena.allocate(JAVA_INT);
            setAddress(out, OUTPUTS, "loss", loss);
            setAddress(out, OUTPUTS, "iterations", iterations);
            setAddress(out, OUTPUTS, "converged", converged);
            setAddress(out, OUTPUTS, "max_change", maxChange);
            setAddress(out, OUTPUTS, "device_used", device);
            setAddress(out, OUTPUTS, "f_ba", io.output(outputs.fBa));
            setAddress(out, OUTPUTS, "g_ab", io.output(outputs.gAb));
            setAddress(out, OUTPUTS, "f_aa", io.output(outputs.fAa));
            setAddress(out, OUTPUTS, "g_bb", io.output(outputs.gBb));
            setAddress(out, OUTPUTS, "grad_x", io.output(outputs.gradX));
            setAddress(out, OUTPUTS, "grad_y", io.output(outputs.gradY));
            setAddress(out, OUTPUTS, "grad_a", io.output(outputs.gradA));
            setAddress(out, OUTPUTS, "grad_b", io.output(outputs.gradB));
            NativeLibrary.call(() -> (int) NativeLibrary.DIVERGENCE.invokeExact(opts, in, out));
            io.copyBack();
            boolean[] conv = new boolean[batch];
            int[] its = iterations.toArray(JAVA_INT);
            for (int k = 0; k < batch; k++) conv[k] = converged.getAtIndex(JAVA_INT, k) != 0;
            Device used = device.get(JAVA_INT, 0) == 2 ? Device.CUDA : Device.CPU;
            return new Report(loss.toArray(JAVA_DOUBLE), its, conv, maxChange.toArray(JAVA_DOUBLE), used);
        }
    }

    /**
     * Transport-plan products from potentials, pi_ij = a_i b_j exp((f_i + g_j - C_ij) / eps) with
     * eps = options.eps(): out (n x k) = pi @ v for v (m x k), or, transposed, out (m x k) = pi^T @ v
     * for v (n x k).
     */
    public static void planProduct(SinkhornOptions options, Clouds clouds, MemorySegment f, MemorySegment g,
                                   boolean transpose, long k, MemorySegment v, MemorySegment out) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(clouds, "clouds");
        if (options.eps() == null) throw new IllegalArgumentException("eps is required for plan products");
        if (clouds.isOnCuda()) throw new IllegalArgumentException("clouds: plan products take x and y in host memory");
        if (k < 1) throw new IllegalArgumentException("k must be >= 1 (got " + k + ")");
        clouds.validateValues();
        long bytes = clouds.dtype().bytes();
        long rows = transpose ? clouds.m() : clouds.n();
        long cols = transpose ? clouds.n() : clouds.m();
        requireRoom("f", f, clouds.n(), bytes);
        requireRoom("g", g, clouds.m(), bytes);
        requireRoom("v", v, cols * k, bytes);
        requireRoom("out", out, rows * k, bytes);
        try (Arena arena = Arena.ofConfined()) {
            Transfers io = new Transfers(arena);
            MemorySegment opts = options(arena, options);
            MemorySegment in = clouds(arena, io, clouds);
            NativeLibrary.call(() -> (int) NativeLibrary.PLAN_PRODUCT.invokeExact(opts, in, io.input(f), io.input(g),
                    transpose ? 1 : 0, k, io.input(v), io.output(out)));
            io.copyBack();
        }
    }

    /** One problem on Java arrays (x: n x d row-major, y: m x d; a, b null for uniform weights). */
    public static DivergenceResult divergence(SinkhornOptions options, double[] x, double[] y, int d, double[] a,
                                              double[] b, boolean gradients) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        int n = rows("x", x.length, d), m = rows("y", y.length, d);
        checkWeights("a", a == null ? -1 : a.length, n);
        checkWeights("b", b == null ? -1 : b.length, m);
        return onArrays(options, Clouds.of(DType.FLOAT64, n, m, d, MemorySegment.ofArray(x), MemorySegment.ofArray(y),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b)), gradients);
    }

    /** One problem on Java arrays in float32. */
    public static DivergenceResult divergence(SinkhornOptions options, float[] x, float[] y, int d, float[] a,
                                              float[] b, boolean gradients) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        int n = rows("x", x.length, d), m = rows("y", y.length, d);
        checkWeights("a", a == null ? -1 : a.length, n);
        checkWeights("b", b == null ? -1 : b.length, m);
        return onArrays(options, Clouds.of(DType.FLOAT32, n, m, d, MemorySegment.ofArray(x), MemorySegment.ofArray(y),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b)), gradients);
    }

    /**
     * Hessian-vector product of the loss with respect to x (or y), out = H v, at the potentials of a
     * solve with the same options and clouds: f_ba and g_ab, and f_aa (for x) or g_bb (for y) when
     * debiased; at the final eps of the options. Implicit differentiation of the dual's optimality
     * conditions, whose linear system is solved by conjugate gradient with streamed plan products
     * (docs/math.md); never an n x m matrix. v and out hold rows x d values of the clouds' dtype
     * (rows = n for x, m for y); one problem (batch 1). Exact for converged potentials (a fixed eps
     * with a threshold); after a GeomLoss schedule, the Hessian at its final potentials.
     *
     * @throws SinkhornException with status NOT_CONVERGED when a CG misses its tolerance, unless
     *         {@code hvpOptions.allowUnconverged()}; the report says so then
     */
    public static HvpReport hvp(SinkhornOptions options, HvpOptions hvpOptions, Clouds clouds, Potentials potentials,
                                Wrt wrt, MemorySegment v, MemorySegment out) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(hvpOptions, "hvpOptions");
        Objects.requireNonNull(clouds, "clouds");
        Objects.requireNonNull(potentials, "potentials");
        Objects.requireNonNull(wrt, "wrt");
        if (clouds.batch() != 1) throw new IllegalArgumentException("hvp takes one problem (batch 1, got " + clouds.batch() + ")");
        if (clouds.isOnCuda()) throw new IllegalArgumentException("clouds: hvp takes x and y in host memory");
        clouds.validateValues();
        long bytes = clouds.dtype().bytes();
        long rows = wrt == Wrt.X ? clouds.n() : clouds.m();
        requireRoom("potentials.fBa", potentials.fBa(), clouds.n(), bytes);
        requireRoom("potentials.gAb", potentials.gAb(), clouds.m(), bytes);
        MemorySegment self = wrt == Wrt.X ? potentials.fAa() : potentials.gBb();
        if (options.debias()) {
            String name = wrt == Wrt.X ? "potentials.fAa" : "potentials.gBb";
            if (self == null) throw new IllegalArgumentException(name + " (the self potential) is required when debiased");
            requireRoom(name, self, rows, bytes);
        }
        requireRoom("v", v, rows * clouds.d(), bytes);
        requireRoom("out", out, rows * clouds.d(), bytes);
        try (Arena arena = Arena.ofConfined()) {
            Transfers io = new Transfers(arena);
            MemorySegment opts = options(arena, options);
            MemorySegment in = clouds(arena, io, clouds);
            MemorySegment h = arena.allocate(HVP_OPTIONS);
            h.set(JAVA_DOUBLE, offset(HVP_OPTIONS, "cg_tol"), hvpOptions.cgTol() == null ? 0 : hvpOptions.cgTol());
            h.set(JAVA_INT, offset(HVP_OPTIONS, "cg_max_iters"), hvpOptions.cgMaxIters());
            h.set(JAVA_DOUBLE, offset(HVP_OPTIONS, "regularization"),
                    hvpOptions.regularization() == null ? -1 : hvpOptions.regularization());
            h.set(JAVA_INT, offset(HVP_OPTIONS, "wrt"), wrt.ordinal());
            h.set(JAVA_INT, offset(HVP_OPTIONS, "allow_unconverged"), hvpOptions.allowUnconverged() ? 1 : 0);
            h.set(JAVA_INT, offset(HVP_OPTIONS, "allow_tf32"), hvpOptions.allowTf32() ? 1 : 0);
            h.set(JAVA_LONG, offset(HVP_OPTIONS, "max_plan_entries"),
                    hvpOptions.maxPlanEntries() == null ? -1 : hvpOptions.maxPlanEntries());
            MemorySegment report = arena.allocate(HVP_REPORT);
            NativeLibrary.call(() -> (int) NativeLibrary.HVP.invokeExact(opts, in, io.input(potentials.fBa()), io.input(potentials.gAb()),
                    io.input(wrt == Wrt.X ? self : null), io.input(wrt == Wrt.Y ? self : null), h, io.input(v),
                    io.output(out), report));
            io.copyBack();
            Device used = report.get(JAVA_INT, offset(HVP_REPORT, "device_used")) == 2 ? Device.CUDA : Device.CPU;
            return new HvpReport(report.get(JAVA_INT, offset(HVP_REPORT, "cg_iterations")),
                    report.get(JAVA_DOUBLE, offset(HVP_REPORT, "cg_residual")),
                    report.get(JAVA_INT, offset(HVP_REPORT, "converged")) != 0, used,
                    report.get(JAVA_LONG, offset(HVP_REPORT, "plan_entries")));
        }
    }

    /** Value, gradients and H v of one problem on Java arrays (float64): a solve, then the HVP at its potentials. */
    public static HvpResult hvp(SinkhornOptions options, HvpOptions hvpOptions, double[] x, double[] y, int d, double[] a,
                                double[] b, Wrt wrt, double[] v) {
        return hvp(options, hvpOptions, x, y, d, a, b, divergence(options, x, y, d, a, b, true), wrt, v);
    }

    /** Value, gradients and H v of one problem on Java arrays in float32. */
    public static HvpResult hvp(SinkhornOptions options, HvpOptions hvpOptions, float[] x, float[] y, int d, float[] a,
                                float[] b, Wrt wrt, float[] v) {
        return hvp(options, hvpOptions, x, y, d, a, b, divergence(options, x, y, d, a, b, true), wrt, v);
    }

    /**
     * H v on Java arrays (float64) at the potentials of an earlier solve of the same problem and
     * options, so that many products share one solve (Newton-CG).
     */
    public static HvpResult hvp(SinkhornOptions options, HvpOptions hvpOptions, double[] x, double[] y, int d, double[] a,
                                double[] b, DivergenceResult solved, Wrt wrt, double[] v) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        Objects.requireNonNull(v, "v");
        int n = rows("x", x.length, d), m = rows("y", y.length, d);
        checkWeights("a", a == null ? -1 : a.length, n);
        checkWeights("b", b == null ? -1 : b.length, m);
        Clouds c = Clouds.of(DType.FLOAT64, n, m, d, MemorySegment.ofArray(x), MemorySegment.ofArray(y),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b));
        return hvpOnArrays(options, hvpOptions, c, solved, wrt, MemorySegment.ofArray(v), v.length);
    }

    /** H v on Java arrays in float32 at the potentials of an earlier solve of the same problem and options. */
    public static HvpResult hvp(SinkhornOptions options, HvpOptions hvpOptions, float[] x, float[] y, int d, float[] a,
                                float[] b, DivergenceResult solved, Wrt wrt, float[] v) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        Objects.requireNonNull(v, "v");
        int n = rows("x", x.length, d), m = rows("y", y.length, d);
        checkWeights("a", a == null ? -1 : a.length, n);
        checkWeights("b", b == null ? -1 : b.length, m);
        Clouds c = Clouds.of(DType.FLOAT32, n, m, d, MemorySegment.ofArray(x), MemorySegment.ofArray(y),
                a == null ? null : MemorySegment.ofArray(a), b == null ? null : MemorySegment.ofArray(b));
        return hvpOnArrays(options, hvpOptions, c, solved, wrt, MemorySegment.ofArray(v), v.length);
    }

    private static HvpResult hvpOnArrays(SinkhornOptions options, HvpOptions hvpOptions, Clouds c, DivergenceResult solved,
                                         Wrt wrt, MemorySegment v, int length) {
        Objects.requireNonNull(solved, "solved");
        Objects.requireNonNull(wrt, "wrt");
        long rows = wrt == Wrt.X ? c.n() : c.m();
        if (length != rows * c.d()) {
            throw new IllegalArgumentException("v has " + length + " values, " + rows * c.d() + " needed (" + rows + " x " + c.d() + ")");
        }
        try (Arena arena = Arena.ofConfined()) {
            Potentials p = new Potentials(segment(arena, c.dtype(), solved.fBa()), segment(arena, c.dtype(), solved.gAb()),
                    segment(arena, c.dtype(), solved.fAa()), segment(arena, c.dtype(), solved.gBb()));
            MemorySegment out = arena.allocate(c.dtype().layout(), length);
            HvpReport report = hvp(options, hvpOptions, c, p, wrt, v, out);
            return new HvpResult(solved, toDoubles(c.dtype(), out), report);
        }
    }

    /** Values in a native segment of the given type, or null. */
    private static MemorySegment segment(Arena arena, DType t, double[] values) {
        if (values == null) return null;
        MemorySegment s = arena.allocate(t.layout(), values.length);
        for (int i = 0; i < values.length; i++) {
            if (t == DType.FLOAT32) s.setAtIndex(JAVA_FLOAT, i, (float) values[i]);
            else s.setAtIndex(JAVA_DOUBLE, i, values[i]);
        }
        return s;
    }

    private static DivergenceResult onArrays(SinkhornOptions options, Clouds c, boolean gradients) {
        try (Arena arena = Arena.ofConfined()) {
            long n = c.n(), m = c.m(), d = c.d();
            MemorySegment fBa = arena.allocate(c.dtype().layout(), n), gAb = arena.allocate(c.dtype().layout(), m);
            MemorySegment fAa = arena.allocate(c.dtype().layout(), n), gBb = arena.allocate(c.dtype().layout(), m);
            Outputs out = Outputs.none().fBa(fBa).gAb(gAb).fAa(fAa).gBb(gBb);
            MemorySegment gx = null, gy = null, ga = null, gb = null;
            if (gradients) {
                gx = arena.allocate(c.dtype().layout(), n * d);
                gy = arena.allocate(c.dtype().layout(), m * d);
                ga = arena.allocate(c.dtype().layout(), n);
                gb = arena.allocate(c.dtype().layout(), m);
                out.gradX(gx).gradY(gy).gradA(ga).gradB(gb);
            }
            Report report = divergence(options, c, out);
            return new DivergenceResult(report, toDoubles(c.dtype(), fBa), toDoubles(c.dtype(), gAb),
                    options.debias() ? toDoubles(c.dtype(), fAa) : null, options.debias() ? toDoubles(c.dtype(), gBb) : null,
                    toDoubles(c.dtype(), gx), toDoubles(c.dtype(), gy), toDoubles(c.dtype(), ga), toDoubles(c.dtype(), gb));
        }
    }

    static double[] toDoubles(DType t, MemorySegment s) {
        if (s == null) return null;
        double[] out = new double[(int) (s.byteSize() / t.bytes())];
        for (int i = 0; i < out.length; i++) out[i] = t.get(s, i);
        return out;
    }

    private static int rows(String name, int length, int d) {
        if (d < 1) throw new IllegalArgumentException("d must be >= 1 (got " + d + ")");
        if (length == 0) throw new IllegalArgumentException(name + " must hold at least one point (empty cloud)");
        if (length % d != 0) throw new IllegalArgumentException(name + " has " + length + " values, not a multiple of d = " + d);
        return length / d;
    }

    private static void checkWeights(String name, int length, int rows) {
        if (length >= 0 && length != rows) {
            throw new IllegalArgumentException(name + " has " + length + " weights for " + rows + " points");
        }
    }

    static void requireRoom(String name, MemorySegment s, long count, long bytes) {
        Objects.requireNonNull(s, name);
        if (s.byteSize() < count * bytes) {
            throw new IllegalArgumentException(name + " holds " + s.byteSize() / bytes + " values, " + count + " needed");
        }
    }

    private static MemorySegment options(Arena arena, SinkhornOptions o) {
        MemorySegment s = arena.allocate(OPTIONS);
        s.set(JAVA_DOUBLE, offset(OPTIONS, "blur"), o.blur());
        s.set(JAVA_DOUBLE, offset(OPTIONS, "scaling"), o.scaling());
        s.set(JAVA_DOUBLE, offset(OPTIONS, "reach_x"), o.reachX() == null ? 0 : o.reachX());
        s.set(JAVA_DOUBLE, offset(OPTIONS, "reach_y"), o.reachY() == null ? 0 : o.reachY());
        s.set(JAVA_DOUBLE, offset(OPTIONS, "diameter"), o.diameter() == null ? 0 : o.diameter());
        s.set(JAVA_DOUBLE, offset(OPTIONS, "eps"), o.eps() == null ? 0 : o.eps());
        double[] epsList = o.epsList();
        s.set(ADDRESS, offset(OPTIONS, "eps_list"), epsList == null ? MemorySegment.NULL : arena.allocateFrom(JAVA_DOUBLE, epsList));
        s.set(JAVA_INT, offset(OPTIONS, "eps_list_length"), epsList == null ? 0 : epsList.length);
        s.set(JAVA_INT, offset(OPTIONS, "n_iters"), o.nIters() != null ? o.nIters() : SinkhornOptions.DEFAULT_FIXED_EPS_ITERATIONS);
        s.set(JAVA_DOUBLE, offset(OPTIONS, "threshold"), o.threshold());
        s.set(JAVA_INT, offset(OPTIONS, "inner_iterations"), o.innerIterations());
        s.set(JAVA_INT, offset(OPTIONS, "debias"), o.debias() ? 1 : 0);
        s.set(JAVA_INT, offset(OPTIONS, "half_cost"), o.halfCost() ? 1 : 0);
        s.set(JAVA_INT, offset(OPTIONS, "solver"), o.solver().ordinal());
        s.set(JAVA_INT, offset(OPTIONS, "last_extrapolation"), o.lastExtrapolation() ? 1 : 0);
        s.set(JAVA_INT, offset(OPTIONS, "geomloss_gradients"), o.geomlossGradients() ? 1 : 0);
        s.set(JAVA_INT, offset(OPTIONS, "device"), o.device().ordinal());
        s.set(JAVA_INT, offset(OPTIONS, "allow_tf32"), o.allowTf32() ? 1 : 0);
        s.set(JAVA_INT, offset(OPTIONS, "cuda_graphs"), cudaGraphsMode());
        return s;
    }

    /**
     * The internal switch of the CUDA backend's graphs (sk_cuda_graphs in include/sinkhorn4j.h), read
     * at every call: the system property {@value #CUDA_GRAPHS_PROPERTY} = auto (the default: the
     * iterations at the final eps replayed as CUDA graphs on small problems), off or on (graphs at
     * every size; a failed recording is an error). Results are bitwise the same in every mode: the
     * switch is there to measure and test the graphs.
     */
    public static final String CUDA_GRAPHS_PROPERTY = "sinkhorn4j.cudaGraphs";

    static int cudaGraphsMode() {
        String mode = System.getProperty(CUDA_GRAPHS_PROPERTY, "auto");
        return switch (mode.toLowerCase(Locale.ROOT)) {
            case "auto" -> 0;
            case "off" -> 1;
            case "on" -> 2;
            default -> throw new IllegalArgumentException(
                    "system property " + CUDA_GRAPHS_PROPERTY + " must be auto, off or on (got " + mode + ")");
        };
    }

    private static MemorySegment clouds(Arena arena, Transfers io, Clouds c) {
        MemorySegment s = arena.allocate(CLOUDS);
        s.set(JAVA_INT, offset(CLOUDS, "dtype"), c.dtype().ordinal());
        s.set(JAVA_LONG, offset(CLOUDS, "batch"), c.batch());
        s.set(ADDRESS, offset(CLOUDS, "x_offsets"), arena.allocateFrom(JAVA_LONG, c.xOffsets()));
        s.set(ADDRESS, offset(CLOUDS, "y_offsets"), arena.allocateFrom(JAVA_LONG, c.yOffsets()));
        s.set(JAVA_LONG, offset(CLOUDS, "n"), c.n());
        s.set(JAVA_LONG, offset(CLOUDS, "m"), c.m());
        s.set(JAVA_LONG, offset(CLOUDS, "d"), c.d());
        s.set(ADDRESS, offset(CLOUDS, "x"), c.isOnCuda() ? c.cudaX().address() : io.input(c.x()));
        s.set(ADDRESS, offset(CLOUDS, "y"), c.isOnCuda() ? c.cudaY().address() : io.input(c.y()));
        s.set(JAVA_INT, offset(CLOUDS, "memory"), c.isOnCuda() ? 1 : 0);
        s.set(ADDRESS, offset(CLOUDS, "a"), io.input(c.a()));
        s.set(ADDRESS, offset(CLOUDS, "b"), io.input(c.b()));
        return s;
    }

    static void setAddress(MemorySegment struct, java.lang.foreign.StructLayout layout, String field, MemorySegment value) {
        struct.set(ADDRESS, offset(layout, field), value);
    }

    static RuntimeException rethrow(Throwable t) {
        if (t instanceof RuntimeException r) return r;
        if (t instanceof Error e) throw e;
        return new IllegalStateException(t);
    }

    /** Native stand-ins for heap segments: inputs copied in, outputs copied back after the call. */
    static final class Transfers {
        private final Arena arena;
        private final List<MemorySegment[]> pending = new ArrayList<>();

        Transfers(Arena arena) {
            this.arena = arena;
        }

        MemorySegment input(MemorySegment s) {
            if (s == null) return MemorySegment.NULL;
            if (s.isNative()) return s;
            MemorySegment copy = arena.allocate(s.byteSize(), 8);
            copy.copyFrom(s);
            return copy;
        }

        MemorySegment output(MemorySegment s) {
            if (s == null) return MemorySegment.NULL;
            if (s.isNative()) return s;
            MemorySegment copy = arena.allocate(s.byteSize(), 8);
            pending.add(new MemorySegment[] {s, copy});
            return copy;
        }

        void copyBack() {
            for (MemorySegment[] p : pending) p[0].copyFrom(p[1]);
        }
    }
}
