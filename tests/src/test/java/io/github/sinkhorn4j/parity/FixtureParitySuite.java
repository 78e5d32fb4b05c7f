package io.github.sinkhorn4j.parity;

import static io.github.sinkhorn4j.fixtures.Norms.centred;
import static io.github.sinkhorn4j.fixtures.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import io.github.sinkhorn4j.fixtures.Fixture;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Every case of the fixtures folder, solved on one device in float64 and float32: the GeomLoss
 * schedule cases (loss, potentials, exact and GeomLoss-weighted gradients) and the converged
 * fixed-eps cases (loss, gradients, plan products) with both solvers. One dynamic test per case,
 * named after its file.
 */
abstract class FixtureParitySuite {
    private static final double F64 = 1e-9;
    private static final double F32_LOSS = 1e-4;
    private static final double F32_GRAD = 1e-3;

    abstract Device device();

    @TestFactory
    Stream<DynamicTest> float64() {
        return Fixture.all().stream().map(f -> DynamicTest.dynamicTest(f.name() + " float64 " + device(), () -> check(f, false)));
    }

    @TestFactory
    Stream<DynamicTest> float32() {
        return Fixture.all().stream().map(f -> DynamicTest.dynamicTest(f.name() + " float32 " + device(), () -> check(f, true)));
    }

    private void check(Fixture f, boolean single) {
        if (f.converged()) {
            for (Solver solver : Solver.values()) checkConverged(f, single, solver);
        } else {
            checkSchedule(f, single);
        }
    }

    private void checkSchedule(Fixture f, boolean single) {
        SinkhornOptions o = f.options().device(device()).allowTf32(false).build();
        DivergenceResult r = solve(f, o, single);
        double lossTol = single ? F32_LOSS : F64, gradTol = single ? F32_GRAD : F64;
        close(f, "loss", r.loss(), f.expectedScalar("loss"), lossTol);
        close(f, "f_ba", r.fBa(), f.expected("f_ba"), gradTol, 1.0);
        close(f, "g_ab", r.gAb(), f.expected("g_ab"), gradTol, 1.0);
        if (f.debias()) {
            close(f, "f_aa", r.fAa(), f.expected("f_aa"), gradTol, 1.0);
            close(f, "g_bb", r.gBb(), f.expected("g_bb"), gradTol, 1.0);
        }
        close(f, "grad_x", r.gradX(), f.expected("grad_x"), gradTol, 1e-12);
        close(f, "grad_y", r.gradY(), f.expected("grad_y"), gradTol, 1e-12);
        DivergenceResult g = solve(f, o.toBuilder().geomlossGradients(true).build(), single);
        close(f, "grad_x_geomloss", g.gradX(), f.expected("grad_x_geomloss"), gradTol, 1e-12);
        close(f, "grad_y_geomloss", g.gradY(), f.expected("grad_y_geomloss"), gradTol, 1e-12);
    }

    private void checkConverged(Fixture f, boolean single, Solver solver) {
        SinkhornOptions o = f.options().device(device()).allowTf32(false).solver(solver)
                .nIters(single ? 3000 : 20000).threshold(single ? 1e-6 : 1e-13).innerIterations(10).build();
        DivergenceResult r = solve(f, o, single);
        String tag = solver.name().toLowerCase() + " ";
        double lossTol = single ? F32_LOSS : F64, gradTol = single ? F32_GRAD : F64;
        close(f, tag + "loss", r.loss(), f.expectedScalar("loss"), lossTol);
        close(f, tag + "grad_x", r.gradX(), f.expected("grad_x"), gradTol, 1e-12);
        close(f, tag + "grad_y", r.gradY(), f.expected("grad_y"), gradTol, 1e-12);
        boolean balanced = o.reachX() == null && o.reachY() == null;
        double[] fx = balanced ? centred(r.fBa(), f.a()) : r.fBa();
        double[] fe = balanced ? centred(f.expected("f"), f.a()) : f.expected("f");
        close(f, tag + "f", fx, fe, gradTol, 1.0);

        int n = f.a().length, m = f.b().length, d = f.dimension();
        close(f, tag + "plan_row_sums", plan(f, o, r, single, false, ones(m), 1), f.expected("plan_row_sums"), gradTol, 1e-12);
        close(f, tag + "plan_col_sums", plan(f, o, r, single, true, ones(n), 1), f.expected("plan_col_sums"), gradTol, 1e-12);
        close(f, tag + "plan_times_y", plan(f, o, r, single, false, f.y(), d), f.expected("plan_times_y"), gradTol, 1e-12);
        close(f, tag + "plan_t_times_x", plan(f, o, r, single, true, f.x(), d), f.expected("plan_t_times_x"), gradTol, 1e-12);
    }

    private static DivergenceResult solve(Fixture f, SinkhornOptions o, boolean single) {
        int d = f.dimension();
        if (!single) return Sinkhorn.divergence(o, f.x(), f.y(), d, f.a(), f.b(), true);
        return Sinkhorn.divergence(o, floats(f.x()), floats(f.y()), d, floats(f.a()), floats(f.b()), true);
    }

    private static double[] plan(Fixture f, SinkhornOptions o, DivergenceResult r, boolean single, boolean transpose,
                                 double[] v, int k) {
        int n = f.a().length, m = f.b().length, d = f.dimension();
        int rows = transpose ? m : n;
        if (single) {
            float[] out = new float[rows * k];
            Clouds c = Clouds.of(DType.FLOAT32, n, m, d, seg(floats(f.x())), seg(floats(f.y())), seg(floats(f.a())), seg(floats(f.b())));
            Sinkhorn.planProduct(o, c, seg(floats(r.fBa())), seg(floats(r.gAb())), transpose, k, seg(floats(v)), MemorySegment.ofArray(out));
            double[] res = new double[out.length];
            for (int i = 0; i < out.length; i++) res[i] = out[i];
            return res;
        }
        double[] out = new double[rows * k];
        Clouds c = Clouds.of(DType.FLOAT64, n, m, d, MemorySegment.ofArray(f.x()), MemorySegment.ofArray(f.y()),
                MemorySegment.ofArray(f.a()), MemorySegment.ofArray(f.b()));
        Sinkhorn.planProduct(o, c, MemorySegment.ofArray(r.fBa()), MemorySegment.ofArray(r.gAb()), transpose, k,
                MemorySegment.ofArray(v), MemorySegment.ofArray(out));
        return out;
    }

    private static MemorySegment seg(float[] v) {
        return MemorySegment.ofArray(v);
    }

    static float[] floats(double[] v) {
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = (float) v[i];
        return out;
    }

    private static double[] ones(int count) {
        double[] v = new double[count];
        Arrays.fill(v, 1.0);
        return v;
    }

    private static void close(Fixture f, String what, double actual, double expected, double tol) {
        double err = relativeError(actual, expected, 1e-12);
        assertTrue(err <= tol, () -> f.name() + ": " + what + " = " + actual + ", expected " + expected + " (relative error " + err + " > " + tol + ")");
    }

    private static void close(Fixture f, String what, double[] actual, double[] expected, double tol, double floor) {
        double err = relativeError(actual, expected, floor);
        assertTrue(err <= tol, () -> f.name() + ": " + what + " relative error " + err + " > " + tol);
    }
}
