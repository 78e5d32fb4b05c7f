package io.github.sinkhorn4j.samediff;

import static io.github.sinkhorn4j.TestArrays.close;
import static io.github.sinkhorn4j.TestArrays.doubles;
import static io.github.sinkhorn4j.TestArrays.matrix;
import static io.github.sinkhorn4j.TestArrays.vector;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.HvpOptions;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import io.github.sinkhorn4j.core.Wrt;
import io.github.sinkhorn4j.fixtures.Fixture;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Double backward: d/dx of sum(dL/dx * v) is H_xx v, through sinkhorn_divergence_bp's doDiff and the HVP op. */
class SecondOrderTest {
    @TestFactory
    Stream<DynamicTest> hessianVectorProductsMatchTheFixtures() {
        return Fixture.all().stream().filter(f -> f.has("hvp_x"))
                .map(f -> DynamicTest.dynamicTest(f.name() + " hvp_x", () -> check(f)));
    }

    private static SinkhornOptions converged(Fixture f) {
        return f.options().solver(Solver.ALTERNATING).nIters(20000).threshold(1e-13).build();
    }

    private static void check(Fixture f) {
        SinkhornOptions o = converged(f);
        int d = f.dimension();
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", matrix(f.x(), d, DataType.DOUBLE));
        SinkhornDivergenceGradients g = SinkhornOps.divergenceAndGradients(sd, "d", sd.constant(vector(f.a(), DataType.DOUBLE)), x,
                sd.constant(vector(f.b(), DataType.DOUBLE)), sd.constant(matrix(f.y(), d, DataType.DOUBLE)), o);
        g.gradX().mul(sd.constant(matrix(f.v(), d, DataType.DOUBLE))).sum().rename("second");
        sd.setLossVariables("second");

        DivergenceResult direct = Sinkhorn.divergence(o, f.x(), f.y(), d, f.a(), f.b(), true);
        assertArrayEquals(direct.gradX(), doubles(g.gradX().eval()), "dL/dx as a graph variable");
        close(f.name() + " hvp_x", doubles(sd.calculateGradients(null, "x").get("x")), f.expected("hvp_x"), 1e-6);
    }

    /** H_yy of (x, y) is H_xx of (y, x) for a balanced problem: checks the y path against hvp_x. */
    @Test
    void hessianWithRespectToYIsTheMirroredProblem() {
        Fixture f = Fixture.all().stream().filter(c -> c.name().endsWith("conv_balanced_weighted.json")).findFirst().orElseThrow();
        int d = f.dimension();
        SameDiff sd = SameDiff.create();
        SDVariable y = sd.var("y", matrix(f.x(), d, DataType.DOUBLE));
        SinkhornDivergenceGradients g = SinkhornOps.divergenceAndGradients(sd, "d", sd.constant(vector(f.b(), DataType.DOUBLE)),
                sd.constant(matrix(f.y(), d, DataType.DOUBLE)), sd.constant(vector(f.a(), DataType.DOUBLE)), y, converged(f));
        g.gradY().mul(sd.constant(matrix(f.v(), d, DataType.DOUBLE))).sum().rename("second");
        sd.setLossVariables("second");
        close("hvp_y", doubles(sd.calculateGradients(null, "y").get("y")), f.expected("hvp_x"), 1e-6);
    }

    @Test
    void batchesTakeOneHessianProductPerProblem() {
        SinkhornOptions o = SinkhornOptions.builder().eps(0.5).nIters(20000).threshold(1e-12).build();
        Nd4j.getRandom().setSeed(4);
        INDArray xs = Nd4j.randn(DataType.DOUBLE, 2, 14, 2), ys = Nd4j.randn(DataType.DOUBLE, 2, 11, 2), v = Nd4j.randn(DataType.DOUBLE, 2, 14, 2);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xs);
        SinkhornDivergenceGradients g = SinkhornOps.divergenceAndGradients(sd, "d", null, x, null, sd.constant(ys), o);
        g.gradX().mul(sd.constant(v)).sum().rename("second");
        sd.setLossVariables("second");
        INDArray hessian = sd.calculateGradients(null, "x").get("x");
        for (int k = 0; k < 2; k++) {
            double[] xk = doubles(xs.slice(k)), yk = doubles(ys.slice(k));
            double[] expected = Sinkhorn.hvp(o, HvpOptions.defaults(), xk, yk, 2, null, null, Wrt.X, doubles(v.slice(k))).hvp();
            close("problem " + k, doubles(hessian.slice(k)), expected, 1e-9);
        }
    }

    @Test
    void crossBlocksAreRefusedWhenTheGradientFunctionIsBuilt() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.randn(DataType.DOUBLE, 6, 2)), y = sd.var("y", Nd4j.randn(DataType.DOUBLE, 5, 2));
        SinkhornDivergenceGradients g = SinkhornOps.divergenceAndGradients(sd, "d", null, x, null, y, SinkhornOptions.defaults());
        g.gradX().mul(g.gradX()).sum().rename("penalty");
        sd.setLossVariables("penalty");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> sd.calculateGradients(null, "x", "y"));
        assertTrue(e.getMessage().contains("d2L/dxdy"), e.getMessage());
    }
}
