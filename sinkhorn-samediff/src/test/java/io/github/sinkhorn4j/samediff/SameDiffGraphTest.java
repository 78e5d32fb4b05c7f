package io.github.sinkhorn4j.samediff;

import static io.github.sinkhorn4j.TestArrays.centralDifferences;
import static io.github.sinkhorn4j.TestArrays.close;
import static io.github.sinkhorn4j.TestArrays.doubles;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.SinkhornResult;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.io.File;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

class SameDiffGraphTest {
    /** Converged potentials: the loss is then differentiable in the usual sense, so finite differences apply. */
    private static final SinkhornOptions CONVERGED = SinkhornOptions.builder().eps(0.1).nIters(20000).threshold(1e-13).build();

    /** x = tanh(z W + c), a = softmax(logits): gradients of W, c and logits through the op, by central differences. */
    @Test
    void gradientsThroughOtherOpsMatchFiniteDifferences() {
        Nd4j.getRandom().setSeed(11);
        SameDiff sd = SameDiff.create();
        SDVariable z = sd.constant("z", Nd4j.randn(DataType.DOUBLE, 12, 3));
        SDVariable w = sd.var("W", Nd4j.randn(DataType.DOUBLE, 3, 2).muli(0.7));
        SDVariable c = sd.var("c", Nd4j.randn(DataType.DOUBLE, 1, 2).muli(0.3));
        SDVariable logits = sd.var("logits", Nd4j.randn(DataType.DOUBLE, 12).muli(0.5));
        SDVariable x = sd.math.tanh(z.mmul(w).add(c));
        SDVariable a = sd.nn.softmax(logits.reshape(1, 12), 1).reshape(12);
        SDVariable y = sd.constant("y", Nd4j.randn(DataType.DOUBLE, 10, 2).muli(0.5));
        SDVariable divergence = SinkhornOps.divergence(sd, "divergence", a, x, null, y, CONVERGED);
        SDVariable total = divergence.mul(2).add(w.mul(w).sum().mul(0.1)).rename("total");
        sd.setLossVariables("total");

        Map<String, INDArray> grads = sd.calculateGradients(null, "W", "c", "logits");
        for (String name : List.of("W", "c", "logits")) {
            close("d total / d " + name, doubles(grads.get(name)), centralDifferences(sd, null, "total", name, 1e-5), 1e-6);
        }
    }

    @Test
    void batchedLossesHaveOneGradientPerProblem() {
        SinkhornOptions options = SinkhornOptions.builder().blur(0.1).diameter(6.0).build();
        Nd4j.getRandom().setSeed(5);
        INDArray xs = Nd4j.randn(DataType.FLOAT, 4, 20, 3), ys = Nd4j.randn(DataType.FLOAT, 4, 16, 3).addi(1);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", xs);
        SDVariable losses = SinkhornOps.divergence(sd, "losses", x, sd.constant("y", ys), options);
        SDVariable weighted = losses.mul(sd.constant(Nd4j.createFromArray(1f, 2f, 3f, 4f))).sum().rename("weighted");
        sd.setLossVariables("weighted");
        INDArray values = losses.eval();
        assertArrayEquals(new long[] {4}, values.shape());
        INDArray grad = sd.calculateGradients(null, "x").get("x");
        for (int k = 0; k < 4; k++) {
            SinkhornResult one = new SinkhornLoss(options).compute(null, xs.slice(k), null, ys.slice(k), true);
            assertEquals(one.value(), values.getDouble(k), 1e-6 * Math.abs(one.value()));
            close("grad x " + k, doubles(grad.slice(k)), doubles(one.gradX().mul(k + 1)), 1e-5);
        }

        // The (B) losses themselves as the loss: SameDiff's scalar initial gradient reaches every problem.
        sd.setLossVariables("losses");
        INDArray unweighted = sd.calculateGradients(null, "x").get("x");
        for (int k = 0; k < 4; k++) close("unweighted grad x " + k, doubles(unweighted.slice(k)), doubles(grad.slice(k).div(k + 1)), 1e-6);
    }

    @Test
    void savedGraphsRunAgainWithTheSameValuesAndGradients(@TempDir Path dir) throws Exception {
        Nd4j.getRandom().setSeed(9);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.randn(DataType.DOUBLE, 2, 15, 2));
        SDVariable b = sd.placeHolder("b", DataType.DOUBLE, 2, 11);
        SDVariable y = sd.var("y", Nd4j.randn(DataType.DOUBLE, 2, 11, 2));
        SinkhornOptions options = SinkhornOptions.builder().blur(0.2).scaling(0.7).reachY(1.5).halfCost(false)
                .epsList(new double[] {4, 1, 0.3, 0.04}).build();
        SDVariable loss = SinkhornOps.divergence(sd, "loss", null, sd.math.sin(x), b, y, options).sum().rename("total");
        sd.setLossVariables("total");
        INDArray bValues = Nd4j.rand(DataType.DOUBLE, 2, 11).addi(0.1);
        Map<String, INDArray> placeholders = Map.of("b", bValues);
        INDArray value = sd.output(placeholders, "total").get("total");
        Map<String, INDArray> grads = sd.calculateGradients(placeholders, "x", "y", "b");

        File file = dir.resolve("graph.fb").toFile();
        sd.save(file, false);
        SameDiff loaded = SameDiff.load(file, false);
        SinkhornDivergenceOp op = (SinkhornDivergenceOp) loaded.getOpById(loaded.getVariableOutputOp("loss").getOwnName());
        assertEquals(options, op.options());
        assertEquals(value, loaded.output(placeholders, "total").get("total"));
        Map<String, INDArray> again = loaded.calculateGradients(placeholders, "x", "y", "b");
        for (String name : List.of("x", "y", "b")) assertEquals(grads.get(name), again.get(name), name);
        loss.getSameDiff().getVariable("x").getArr().addi(0.5);
        assertTrue(sd.output(placeholders, "total").get("total").getDouble(0) != value.getDouble(0));
        assertEquals(value, loaded.output(placeholders, "total").get("total"), "the loaded graph owns its arrays");
    }

    @Test
    void aLossOnThePotentialsIsRefused() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.randn(DataType.DOUBLE, 6, 2));
        SinkhornDivergenceVariables out = SinkhornOps.divergenceWithPotentials(sd, "d", null, x, null,
                sd.constant(Nd4j.randn(DataType.DOUBLE, 5, 2)), SinkhornOptions.defaults());
        out.fBa().sum().rename("total");
        sd.setLossVariables("total");
        UnsupportedOperationException e = assertThrows(UnsupportedOperationException.class,
                () -> sd.calculateGradients(null, "x"));
        assertTrue(e.getMessage().contains("not differentiable"), e.getMessage());
    }

    /** Two threads, two graphs, run at once: each gives what it gives alone. */
    @Test
    void separateGraphsRunConcurrently() throws Exception {
        List<Callable<double[]>> jobs = List.of(graphJob(1), graphJob(2));
        double[][] alone = new double[2][];
        for (int i = 0; i < 2; i++) alone[i] = jobs.get(i).call();
        ExecutorService pool = Executors.newFixedThreadPool(2);
        try {
            for (int round = 0; round < 10; round++) {
                List<Future<double[]>> running = pool.invokeAll(jobs);
                for (int i = 0; i < 2; i++) assertArrayEquals(alone[i], running.get(i).get(), "graph " + i + " round " + round);
            }
        } finally {
            pool.shutdownNow();
        }
    }

    private static Callable<double[]> graphJob(int seed) {
        return () -> {
            java.util.Random rnd = new java.util.Random(seed);
            double[] xv = new double[300 * 3], yv = new double[250 * 3];
            for (int i = 0; i < xv.length; i++) xv[i] = rnd.nextGaussian();
            for (int i = 0; i < yv.length; i++) yv[i] = rnd.nextGaussian() + seed;
            SameDiff sd = SameDiff.create();
            SDVariable x = sd.var("x", Nd4j.createFromArray(xv).reshape(300, 3));
            SinkhornOps.divergence(sd, "loss", x, sd.constant(Nd4j.createFromArray(yv).reshape(250, 3)),
                    SinkhornOptions.builder().blur(0.05).build());
            double loss = sd.output((Map<String, INDArray>) null, "loss").get("loss").getDouble(0);
            double[] grad = doubles(sd.calculateGradients(null, "x").get("x"));
            double[] out = new double[grad.length + 1];
            out[0] = loss;
            System.arraycopy(grad, 0, out, 1, grad.length);
            return out;
        };
    }

    /**
     * A generator z -> tanh(z W1 + c1) W2 trained with Adam to match a target cloud: the divergence
     * drops by at least 10x in 300 steps.
     */
    @Test
    void adamTrainingDrivesTheDivergenceDown() {
        Nd4j.getRandom().setSeed(21);
        int n = 64;
        SameDiff sd = SameDiff.create();
        SDVariable z = sd.placeHolder("z", DataType.FLOAT, -1, 4);
        SDVariable target = sd.placeHolder("target", DataType.FLOAT, -1, 2);
        SDVariable w1 = sd.var("W1", Nd4j.randn(DataType.FLOAT, 4, 32).muli(0.5));
        SDVariable c1 = sd.var("c1", Nd4j.zeros(DataType.FLOAT, 1, 32));
        SDVariable w2 = sd.var("W2", Nd4j.randn(DataType.FLOAT, 32, 2).muli(0.1));
        SDVariable x = sd.math.tanh(z.mmul(w1).add(c1)).mmul(w2);
        SinkhornOps.divergence(sd, "loss", x, target, SinkhornOptions.builder().blur(0.05).build());
        sd.setTrainingConfig(TrainingConfig.builder().updater(new Adam(0.01)).dataSetFeatureMapping("z")
                .dataSetLabelMapping("target").minimize("loss").build());

        INDArray zs = Nd4j.randn(DataType.FLOAT, n, 4);
        INDArray angles = Nd4j.rand(DataType.FLOAT, n).muli(2 * Math.PI);
        INDArray ring = Nd4j.concat(1, Nd4j.math().cos(angles).reshape(n, 1), Nd4j.math().sin(angles).reshape(n, 1))
                .muli(2).addi(Nd4j.createFromArray(1f, -1f).reshape(1, 2));
        DataSet data = new DataSet(zs, ring);
        Map<String, INDArray> feed = Map.of("z", zs, "target", ring);
        double before = sd.output(feed, "loss").get("loss").getDouble(0);
        sd.fit(new SingletonDataSetIterator(data), 300);
        double after = sd.output(feed, "loss").get("loss").getDouble(0);
        assertTrue(after * 10 <= before, () -> "divergence " + before + " -> " + after);
    }
}
