package io.github.sinkhorn4j.samediff;

import static io.github.sinkhorn4j.TestArrays.centralDifferences;
import static io.github.sinkhorn4j.TestArrays.close;
import static io.github.sinkhorn4j.TestArrays.doubles;
import static io.github.sinkhorn4j.TestArrays.floats;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.DenseSinkhornNd;
import io.github.sinkhorn4j.DenseSinkhornNdResult;
import io.github.sinkhorn4j.core.DenseSinkhorn;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import io.github.sinkhorn4j.core.DenseSinkhornResult;
import io.github.sinkhorn4j.core.Device;
import java.io.File;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The dense solver over ND4J arrays and as the SameDiff ops dense_sinkhorn / dense_sinkhorn_bp. */
class DenseSinkhornOpTest {
    /** Converged potentials: the cost is then differentiable in the usual sense, so finite differences apply. */
    private static final DenseSinkhornOptions CONVERGED = DenseSinkhornOptions.builder().eps(0.3).maxIters(100_000)
            .threshold(1e-13).checkEvery(1).device(Device.CPU).build();
    private static final int B = 2, N = 6, M = 5;

    private static double[] random(Random rnd, int count, double low, double high) {
        double[] v = new double[count];
        for (int i = 0; i < count; i++) v[i] = low + (high - low) * rnd.nextDouble();
        return v;
    }

    private static double[] normalisedRows(double[] w, int rows, int width) {
        double[] out = w.clone();
        for (int k = 0; k < rows; k++) {
            double s = 0;
            for (int i = 0; i < width; i++) s += out[k * width + i];
            for (int i = 0; i < width; i++) out[k * width + i] /= s;
        }
        return out;
    }

    /** maskB: item 1 has its column 2 masked (its weight there is then not read). */
    private static boolean[] maskB() {
        boolean[] mask = new boolean[B * M];
        java.util.Arrays.fill(mask, true);
        mask[M + 2] = false;
        return mask;
    }

    private static INDArray boolArray(boolean[] values, long... shape) {
        return Nd4j.createFromArray(values).reshape(shape);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource({"DOUBLE", "FLOAT"})
    void ndArraysGiveWhatTheBindingGives(DataType type) {
        Random rnd = new Random(1);
        double[] c = random(rnd, B * N * M, 0, 1), a = normalisedRows(random(rnd, B * N, 0.1, 1), B, N);
        boolean[] maskB = maskB();
        DenseSinkhornOptions o = CONVERGED.toBuilder().threshold(1e-6).tauB(2.0).gradients(true).build();
        DenseSinkhornNdResult nd = DenseSinkhornNd.solve(o, Nd4j.createFromArray(c).castTo(type).reshape(B, N, M),
                Nd4j.createFromArray(a).castTo(type).reshape(B, N), null, null, boolArray(maskB, B, M));
        DenseSinkhornResult direct = type == DataType.DOUBLE
                ? DenseSinkhorn.solve(o, c, B, N, M, a, null, null, maskB)
                : DenseSinkhorn.solve(o, floats(c), B, N, M, floats(a), null, null, maskB);
        assertArrayEquals(new long[] {B}, nd.cost().shape());
        assertArrayEquals(new long[] {B, N, M}, nd.plan().shape());
        assertArrayEquals(doubles(Nd4j.createFromArray(direct.cost()).castTo(type)), doubles(nd.cost()), "the cost, in C's type");
        assertArrayEquals(direct.f(), doubles(nd.f()));
        assertArrayEquals(direct.g(), doubles(nd.g()));
        assertArrayEquals(direct.plan(), doubles(nd.plan()));
        assertArrayEquals(direct.gradA(), doubles(nd.gradA()));
        assertArrayEquals(direct.gradB(), doubles(nd.gradB()));
        // A numeric mask (nonzero: present), and one (N, M) problem on its own.
        INDArray numericMask = boolArray(maskB, B, M).castTo(type);
        DenseSinkhornNdResult numeric = DenseSinkhornNd.solve(o, Nd4j.createFromArray(c).castTo(type).reshape(B, N, M),
                Nd4j.createFromArray(a).castTo(type).reshape(B, N), null, null, numericMask);
        assertEquals(nd.cost(), numeric.cost());
        INDArray second = Nd4j.createFromArray(c).castTo(type).reshape(B, N, M).slice(1);
        DenseSinkhornNdResult single = DenseSinkhornNd.solve(o, second, Nd4j.createFromArray(a).castTo(type).reshape(B, N).slice(1),
                null, null, boolArray(maskB, B, M).slice(1));
        assertEquals(0, single.cost().rank());
        assertEquals(nd.cost().getDouble(1), single.cost().getDouble(0));
    }

    /**
     * C = squared distances between x (B, N, 3) and y (B, M, 3) by broadcasting ops, a = softmax of
     * logits, b uniform over the unmasked columns: d total / d x, y, logits through the op, by central
     * differences.
     */
    @ParameterizedTest(name = "tauA {0}, tauB {1}")
    @CsvSource({",", ",1.5", "0.7,1.5"})
    void gradientsThroughOtherOpsMatchFiniteDifferences(Double tauA, Double tauB) {
        Nd4j.getRandom().setSeed(3);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.randn(DataType.DOUBLE, B, N, 3).muli(0.6));
        SDVariable y = sd.var("y", Nd4j.randn(DataType.DOUBLE, B, M, 3).muli(0.6));
        SDVariable logits = sd.var("logits", Nd4j.randn(DataType.DOUBLE, B, N).muli(0.5));
        SDVariable mask = sd.placeHolder("maskB", DataType.BOOL, B, M);
        SDVariable c = x.reshape(B, N, 1, 3).sub(y.reshape(B, 1, M, 3)).mul(x.reshape(B, N, 1, 3).sub(y.reshape(B, 1, M, 3)))
                .sum(3);
        SDVariable a = sd.nn.softmax(logits, 1);
        DenseSinkhornOptions o = CONVERGED.toBuilder().tauA(tauA).tauB(tauB).build();
        SDVariable cost = SinkhornOps.denseSinkhorn(sd, "ot", c, a, null, null, mask, o).cost();
        SDVariable total = cost.mul(sd.constant(Nd4j.createFromArray(1.0, 2.0))).sum().add(x.mul(x).sum().mul(0.1))
                .rename("total");
        sd.setLossVariables("total");
        Map<String, INDArray> feed = Map.of("maskB", boolArray(maskB(), B, M));

        Map<String, INDArray> grads = sd.calculateGradients(feed, "x", "y", "logits");
        for (String name : List.of("x", "y", "logits")) {
            close("d total / d " + name, doubles(grads.get(name)), centralDifferences(sd, feed, "total", name, 1e-5), 1e-6);
        }
        // The masked column of item 1 takes no part: its costs receive no gradient.
        INDArray dC = sd.calculateGradients(feed, c.name()).get(c.name());
        for (int i = 0; i < N; i++) assertEquals(0.0, dC.getDouble(1, i, 2));
    }

    @Test
    void savedGraphsRunAgainWithTheSameValuesAndGradients(@TempDir Path dir) throws Exception {
        Random rnd = new Random(5);
        SameDiff sd = SameDiff.create();
        SDVariable c = sd.var("c", Nd4j.createFromArray(random(rnd, B * N * M, 0, 1)).reshape(B, N, M));
        SDVariable b = sd.placeHolder("b", DataType.DOUBLE, B, M);
        SDVariable maskA = sd.constant("maskA", Nd4j.createFromArray(random(rnd, B * N, 0, 1)).reshape(B, N).gt(0.2));
        DenseSinkhornOptions o = DenseSinkhornOptions.builder().eps(0.2).tauA(1.0).threshold(1e-9).device(Device.CPU).build();
        SinkhornOps.denseSinkhorn(sd, "ot", sd.math.exp(c), null, b, maskA, null, o).cost().sum().rename("total");
        sd.setLossVariables("total");
        Map<String, INDArray> feed = Map.of("b", Nd4j.createFromArray(random(rnd, B * M, 0.1, 1)).reshape(B, M));
        INDArray value = sd.output(feed, "total").get("total");
        Map<String, INDArray> grads = sd.calculateGradients(feed, "c", "b");

        File file = dir.resolve("dense.fb").toFile();
        sd.save(file, false);
        SameDiff loaded = SameDiff.load(file, false);
        DenseSinkhornOp op = (DenseSinkhornOp) loaded.getOpById(loaded.getVariableOutputOp("ot").getOwnName());
        assertEquals(o, op.options());
        assertEquals(value, loaded.output(feed, "total").get("total"));
        Map<String, INDArray> again = loaded.calculateGradients(feed, "c", "b");
        for (String name : List.of("c", "b")) assertEquals(grads.get(name), again.get(name), name);
        assertTrue(grads.get("b").norm2Number().doubleValue() > 0);
    }

    @Test
    void theOpInAGraphGivesTheEagerValues() {
        Random rnd = new Random(7);
        INDArray c = Nd4j.createFromArray(random(rnd, B * N * M, 0, 2)).reshape(B, N, M);
        SameDiff sd = SameDiff.create();
        DenseSinkhornVariables out = SinkhornOps.denseSinkhorn(sd, "ot", sd.placeHolder("c", DataType.DOUBLE, B, N, M), null,
                null, null, null, CONVERGED);
        Map<String, INDArray> values = sd.output(Map.of("c", c), "ot", "ot/f", "ot/g");
        DenseSinkhornNdResult eager = DenseSinkhornNd.solve(CONVERGED, c, null, null, null, null);
        assertEquals(eager.cost(), values.get("ot"));
        assertEquals(eager.f(), values.get("ot/f"));
        assertEquals(eager.g(), values.get("ot/g"));
        assertEquals("ot/f", out.f().name());
    }

    @Test
    void aLossOnThePotentialsIsRefused() {
        SameDiff sd = SameDiff.create();
        SDVariable c = sd.var("c", Nd4j.rand(DataType.DOUBLE, N, M));
        SinkhornOps.denseSinkhorn(sd, "ot", c, null, null, null, null, CONVERGED).f().sum().rename("total");
        sd.setLossVariables("total");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class, () -> sd.calculateGradients(null, "c"));
        assertTrue(e.getMessage().contains("not differentiable"), e.getMessage());
    }

    private static void named(String name, Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(name), "message should name " + name + ": " + e.getMessage());
    }

    @Test
    void badArraysAreRefusedNamingThem() {
        INDArray c = Nd4j.rand(DataType.DOUBLE, B, N, M);
        named("C", () -> DenseSinkhornNd.solve(CONVERGED, Nd4j.rand(DataType.DOUBLE, 5), null, null, null, null));
        named("C", () -> DenseSinkhornNd.solve(CONVERGED, Nd4j.rand(DataType.DOUBLE, B, N, M).castTo(DataType.INT), null, null,
                null, null));
        named("a", () -> DenseSinkhornNd.solve(CONVERGED, c, Nd4j.rand(DataType.FLOAT, B, N), null, null, null));
        named("b", () -> DenseSinkhornNd.solve(CONVERGED, c, null, Nd4j.rand(DataType.DOUBLE, B, N), null, null));
        named("maskA", () -> DenseSinkhornNd.solve(CONVERGED, c, null, null, Nd4j.ones(DataType.BOOL, B, M), null));
        named("maskB", () -> DenseSinkhornNd.solve(CONVERGED, c, null, null, null, Nd4j.zeros(DataType.BOOL, B, M)));
        INDArray nan = c.dup();
        nan.putScalar(new long[] {1, 2, 3}, Double.NaN);
        named("C", () -> DenseSinkhornNd.solve(CONVERGED, nan, null, null, null, null));
    }
}
