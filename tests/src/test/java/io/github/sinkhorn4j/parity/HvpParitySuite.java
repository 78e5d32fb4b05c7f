package io.github.sinkhorn4j.parity;

import static io.github.sinkhorn4j.fixtures.Norms.relativeError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.HvpOptions;
import io.github.sinkhorn4j.core.HvpResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import io.github.sinkhorn4j.core.Wrt;
import io.github.sinkhorn4j.fixtures.Fixture;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/**
 * Hessian-vector products of every fixture that has one (`hvp_x`, converged/): H v at converged
 * potentials against the reference (central differences of the converged gradient, ~1e-8 accurate)
 * within 1e-6 in float64 and 1e-3 in float32, and the symmetry u.Hv = v.Hu on random directions.
 * One dynamic test per case and precision, named after its file.
 */
abstract class HvpParitySuite {
    private static final double F64 = 1e-6;
    private static final double F32 = 1e-3;

    abstract Device device();

    @TestFactory
    Stream<DynamicTest> float64() {
        return cases().map(f -> DynamicTest.dynamicTest(f.name() + " hvp float64 " + device(), () -> check(f, false)));
    }

    @TestFactory
    Stream<DynamicTest> float32() {
        return cases().map(f -> DynamicTest.dynamicTest(f.name() + " hvp float32 " + device(), () -> check(f, true)));
    }

    private static Stream<Fixture> cases() {
        return Fixture.all().stream().filter(f -> f.has("hvp_x"));
    }

    private void check(Fixture f, boolean single) {
        SinkhornOptions o = f.options().device(device()).allowTf32(false).solver(Solver.ALTERNATING)
                .nIters(single ? 3000 : 20000).threshold(single ? 1e-6 : 1e-13).innerIterations(10).build();
        HvpOptions h = HvpOptions.defaults();
        int d = f.dimension();
        double[] x = f.x(), y = f.y(), a = f.a(), b = f.b(), v = f.v();
        DivergenceResult solved = single
                ? Sinkhorn.divergence(o, floats(x), floats(y), d, floats(a), floats(b), false)
                : Sinkhorn.divergence(o, x, y, d, a, b, false);
        HvpResult hv = hvp(o, h, f, solved, v, single);
        assertTrue(hv.report().converged(), () -> f.name() + ": " + hv.report());
        assertEquals(device(), hv.report().device());
        double tol = single ? F32 : F64;
        double err = relativeError(hv.hvp(), f.expected("hvp_x"), 1e-12);
        assertTrue(err <= tol, () -> f.name() + ": hvp_x relative error " + err + " > " + tol + " (" + hv.report() + ")");

        double[] u = new double[v.length];
        Random rnd = new Random(f.name().hashCode());
        for (int i = 0; i < u.length; i++) u[i] = rnd.nextGaussian();
        double[] hu = hvp(o, h, f, solved, u, single).hvp();
        double uHv = dot(u, hv.hvp()), vHu = dot(v, hu);
        double asymmetry = Math.abs(uHv - vHu) / Math.max(Math.abs(uHv), Math.abs(vHu));
        assertTrue(asymmetry <= tol, () -> f.name() + ": u.Hv = " + uHv + ", v.Hu = " + vHu);
    }

    private static HvpResult hvp(SinkhornOptions o, HvpOptions h, Fixture f, DivergenceResult solved, double[] v,
                                 boolean single) {
        int d = f.dimension();
        if (single) {
            return Sinkhorn.hvp(o, h, floats(f.x()), floats(f.y()), d, floats(f.a()), floats(f.b()), solved, Wrt.X, floats(v));
        }
        return Sinkhorn.hvp(o, h, f.x(), f.y(), d, f.a(), f.b(), solved, Wrt.X, v);
    }

    private static double dot(double[] p, double[] q) {
        double s = 0;
        for (int i = 0; i < p.length; i++) s += p[i] * q[i];
        return s;
    }

    private static float[] floats(double[] v) {
        return FixtureParitySuite.floats(v);
    }
}
