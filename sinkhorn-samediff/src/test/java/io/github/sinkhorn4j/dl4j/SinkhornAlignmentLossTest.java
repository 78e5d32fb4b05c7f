package io.github.sinkhorn4j.dl4j;

import static io.github.sinkhorn4j.TestArrays.doubles;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.SinkhornResult;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Map;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;

class SinkhornAlignmentLossTest {
    private static final SinkhornOptions OPTIONS = SinkhornOptions.builder().blur(0.1).build();

    /** Rows marked 1 form x, rows marked 0 form y; each row's gradient is its point's, times n * weight. */
    @Test
    void theGradientOfEachRowIsItsPointsGradient() {
        Nd4j.getRandom().setSeed(3);
        INDArray features = Nd4j.randn(DataType.DOUBLE, 10, 3);
        INDArray domains = Nd4j.createFromArray(1.0, 0, 0, 1, 1, 0, 1, 0, 0, 1).reshape(10, 1);
        SinkhornAlignmentLoss loss = new SinkhornAlignmentLoss(OPTIONS, 2.0);
        var identity = Activation.IDENTITY.getActivationFunction();
        var result = loss.computeGradientAndScore(domains, features, identity, null, true);

        int[] source = {0, 3, 4, 6, 9}, target = {1, 2, 5, 7, 8};
        SinkhornResult expected = new SinkhornLoss(OPTIONS).compute(null, Nd4j.pullRows(features, 1, source), null,
                Nd4j.pullRows(features, 1, target), true);
        assertEquals(2.0 * expected.value(), result.getFirst());
        for (int i = 0; i < 5; i++) {
            assertArrayEquals(doubles(expected.gradX().getRow(i).mul(10 * 2.0)), doubles(result.getSecond().getRow(source[i])));
            assertArrayEquals(doubles(expected.gradY().getRow(i).mul(10 * 2.0)), doubles(result.getSecond().getRow(target[i])));
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> loss.computeScore(Nd4j.ones(DataType.DOUBLE, 10, 1), features, identity, null, true));
        assertTrue(e.getMessage().contains("target rows (label 0)"), e.getMessage());
    }

    /**
     * Domain adaptation as documented: source and target rows in one minibatch, the task's labels
     * masked out on target rows, the alignment loss on the features. Its JSON round trip keeps the
     * loss; training brings the two groups of features together.
     */
    @Test
    void aComputationGraphAlignsSourceAndTargetFeatures() {
        ComputationGraphConfiguration conf = new NeuralNetConfiguration.Builder().seed(5).updater(new Adam(0.01))
                .dataType(DataType.FLOAT).graphBuilder()
                .addInputs("points")
                .addLayer("features", new DenseLayer.Builder().nIn(2).nOut(8).activation(Activation.TANH).build(), "points")
                .addLayer("classes", new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(8).nOut(2)
                        .activation(Activation.SOFTMAX).build(), "features")
                .addLayer("alignment", new LossLayer.Builder(new SinkhornAlignmentLoss(OPTIONS, 1.0))
                        .activation(Activation.IDENTITY).build(), "features")
                .setOutputs("classes", "alignment")
                .build();
        ComputationGraphConfiguration back = ComputationGraphConfiguration.fromJson(conf.toJson());
        assertEquals(conf, back);
        ComputationGraph net = new ComputationGraph(back);
        net.init();

        Nd4j.getRandom().setSeed(6);
        int half = 60;
        INDArray source = Nd4j.randn(DataType.FLOAT, half, 2);
        INDArray target = Nd4j.randn(DataType.FLOAT, half, 2).muli(0.8).addi(Nd4j.createFromArray(1.5f, -1f).reshape(1, 2));
        INDArray points = Nd4j.vstack(source, target);
        INDArray classes = Nd4j.zeros(DataType.FLOAT, 2 * half, 2);
        for (int i = 0; i < 2 * half; i++) classes.putScalar(i, points.getDouble(i, 0) > (i < half ? 0 : 1.5) ? 1 : 0, 1);
        INDArray domains = Nd4j.vstack(Nd4j.ones(DataType.FLOAT, half, 1), Nd4j.zeros(DataType.FLOAT, half, 1));
        MultiDataSet data = new MultiDataSet(new INDArray[] {points}, new INDArray[] {classes, domains}, null,
                new INDArray[] {domains, null});

        double before = alignment(net, points, half);
        for (int step = 0; step < 150; step++) net.fit(data);
        double after = alignment(net, points, half);
        assertTrue(after * 4 <= before, () -> "alignment " + before + " -> " + after);
    }

    private static double alignment(ComputationGraph net, INDArray points, int half) {
        Map<String, INDArray> acts = net.feedForward(points, false);
        INDArray f = acts.get("features");
        return new SinkhornLoss(OPTIONS).value(f.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, half),
                org.nd4j.linalg.indexing.NDArrayIndex.all()), f.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(half, 2 * half),
                org.nd4j.linalg.indexing.NDArrayIndex.all()));
    }
}
