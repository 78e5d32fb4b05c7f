package io.github.sinkhorn4j.samediff;

import static io.github.sinkhorn4j.TestArrays.close;
import static io.github.sinkhorn4j.TestArrays.doubles;
import static io.github.sinkhorn4j.TestArrays.floats;
import static io.github.sinkhorn4j.TestArrays.matrix;
import static io.github.sinkhorn4j.TestArrays.vector;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.github.sinkhorn4j.TestArrays;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.fixtures.Fixture;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The op's values and gradients (through SameDiff's gradient function) equal the direct API's on
 * every fixture, in float64 and float32, and in float64 the fixture's reference values.
 */
class OpFixtureTest {
    @TestFactory
    Stream<DynamicTest> float64() {
        return Fixture.all().stream().map(f -> DynamicTest.dynamicTest(f.name() + " float64", () -> check(f, DataType.DOUBLE)));
    }

    @TestFactory
    Stream<DynamicTest> float32() {
        return Fixture.all().stream().map(f -> DynamicTest.dynamicTest(f.name() + " float32", () -> check(f, DataType.FLOAT)));
    }

    private static DivergenceResult direct(Fixture f, SinkhornOptions o, boolean single, boolean gradients) {
        int d = f.dimension();
        return single
                ? Sinkhorn.divergence(o, floats(f.x()), floats(f.y()), d, floats(f.a()), floats(f.b()), gradients)
                : Sinkhorn.divergence(o, f.x(), f.y(), d, f.a(), f.b(), gradients);
    }

    private static void check(Fixture f, DataType type) {
        boolean single = type == DataType.FLOAT;
        SinkhornOptions o = TestArrays.options(f, single);
        int d = f.dimension();
        // The forward graph solves without gradients, the gradient function with them.
        DivergenceResult direct = direct(f, o, single, false), withGradients = direct(f, o, single, true);

        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", matrix(f.x(), d, type)), y = sd.var("y", matrix(f.y(), d, type));
        SDVariable a = sd.var("a", vector(f.a(), type)), b = sd.var("b", vector(f.b(), type));
        SinkhornDivergenceVariables out = SinkhornOps.divergenceWithPotentials(sd, "loss", a, x, b, y, o);
        Map<String, INDArray> values = sd.output((Map<String, INDArray>) null, "loss", "loss/f_ba", "loss/g_ab", "loss/f_aa", "loss/g_bb");
        Map<String, INDArray> grads = sd.calculateGradients(null, "x", "y", "a", "b");

        INDArray loss = values.get("loss");
        assertEquals(0, loss.rank());
        assertEquals(type, loss.dataType());
        assertEquals(single ? (float) direct.loss() : direct.loss(), loss.getDouble(0), "loss");
        assertArrayEquals(direct.fBa(), doubles(values.get("loss/f_ba")), "f_ba");
        assertArrayEquals(direct.gAb(), doubles(values.get("loss/g_ab")), "g_ab");
        if (o.debias()) {
            assertArrayEquals(direct.fAa(), doubles(values.get("loss/f_aa")), "f_aa");
            assertArrayEquals(direct.gBb(), doubles(values.get("loss/g_bb")), "g_bb");
        } else {
            assertEquals(0, values.get("loss/f_aa").length(), "f_aa is empty when not debiased");
        }
        assertArrayEquals(withGradients.gradX(), doubles(grads.get("x")), "grad x");
        assertArrayEquals(withGradients.gradY(), doubles(grads.get("y")), "grad y");
        assertArrayEquals(withGradients.gradA(), doubles(grads.get("a")), "grad a");
        assertArrayEquals(withGradients.gradB(), doubles(grads.get("b")), "grad b");
        assertEquals(out.loss().name(), "loss");

        if (!single) {
            close(f.name() + " loss vs reference", loss.getDouble(0), f.expectedScalar("loss"), 1e-9);
            close(f.name() + " grad_x vs reference", doubles(grads.get("x")), f.expected("grad_x"), 1e-9);
            close(f.name() + " grad_y vs reference", doubles(grads.get("y")), f.expected("grad_y"), 1e-9);
        }
    }

}
