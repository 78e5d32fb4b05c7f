package io.github.sinkhorn4j.dl4j;

import static io.github.sinkhorn4j.TestArrays.close;
import static io.github.sinkhorn4j.TestArrays.doubles;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import org.deeplearning4j.nn.conf.MultiLayerConfiguration;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.multilayer.MultiLayerNetwork;
import org.junit.jupiter.api.Test;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

class SinkhornLossFunctionTest {
    private static final SinkhornOptions CONVERGED = SinkhornOptions.builder().eps(0.2).nIters(20000).threshold(1e-13).build();

    /** Score, score array and gradient agree: the gradient is d(score, not averaged)/d(preOutput), by finite differences. */
    @Test
    void scoreArrayAndGradientAreConsistent() {
        Nd4j.getRandom().setSeed(2);
        int n = 16;
        INDArray pre = Nd4j.randn(DataType.DOUBLE, n, 2), labels = Nd4j.randn(DataType.DOUBLE, n, 2).muli(0.5);
        INDArray mask = Nd4j.rand(DataType.DOUBLE, n, 1).addi(0.2);
        IActivation tanh = Activation.TANH.getActivationFunction();
        SinkhornLossFunction loss = new SinkhornLossFunction(CONVERGED, 0.5);

        INDArray w = mask.reshape(n).div(mask.sumNumber().doubleValue());
        double s = new SinkhornLoss(CONVERGED).compute(w, tanh.getActivation(pre.dup(), false), w, labels, false).value();
        assertEquals(0.5 * s, loss.computeScore(labels, pre, tanh, mask, true), 1e-14);
        assertEquals(n * 0.5 * s, loss.computeScore(labels, pre, tanh, mask, false), 1e-12);
        INDArray scores = loss.computeScoreArray(labels, pre, tanh, mask);
        assertEquals(n, scores.length());
        assertEquals(0.5 * s, scores.meanNumber().doubleValue(), 1e-14);
        Pair<Double, INDArray> both = loss.computeGradientAndScore(labels, pre, tanh, mask, false);
        assertEquals(n * 0.5 * s, both.getFirst(), 1e-12);
        INDArray gradient = loss.computeGradient(labels, pre, tanh, mask);
        assertEquals(gradient, both.getSecond());

        double[] numeric = new double[(int) pre.length()];
        double h = 1e-6;
        for (int i = 0; i < numeric.length; i++) {
            double v = pre.getDouble(i);
            pre.putScalar(i, v + h);
            double up = loss.computeScore(labels, pre, tanh, mask, false);
            pre.putScalar(i, v - h);
            double down = loss.computeScore(labels, pre, tanh, mask, false);
            pre.putScalar(i, v);
            numeric[i] = (up - down) / (2 * h);
        }
        close("gradient", doubles(gradient), numeric, 1e-6);
    }

    @Test
    void aNetworkConfigurationWithTheLossSurvivesJson() {
        SinkhornOptions options = SinkhornOptions.builder().blur(0.2).reachX(1.5).solver(Solver.ALTERNATING)
                .epsList(new double[] {1, 0.5, 0.1}).halfCost(false).build();
        MultiLayerConfiguration conf = new NeuralNetConfiguration.Builder().list()
                .layer(new DenseLayer.Builder().nIn(3).nOut(5).build())
                .layer(new OutputLayer.Builder(new SinkhornLossFunction(options, 0.25)).nIn(5).nOut(2).activation(Activation.IDENTITY).build())
                .build();
        MultiLayerConfiguration back = MultiLayerConfiguration.fromJson(conf.toJson());
        assertEquals(conf, back);
        SinkhornLossFunction loss = (SinkhornLossFunction) ((OutputLayer) back.getConf(1).getLayer()).getLossFn();
        assertEquals(options, loss.options());
        assertEquals(0.25, loss.getWeight());
    }

    /** A one-hidden-layer network maps fixed noise onto a target cloud: the divergence drops at least 10x. */
    @Test
    void aMultiLayerNetworkLearnsATargetCloud() {
        Nd4j.getRandom().setSeed(8);
        int n = 64;
        MultiLayerNetwork net = new MultiLayerNetwork(new NeuralNetConfiguration.Builder().seed(8).updater(new Adam(0.01))
                .dataType(DataType.FLOAT).list()
                .layer(new DenseLayer.Builder().nIn(4).nOut(32).activation(Activation.TANH).build())
                .layer(new OutputLayer.Builder(new SinkhornLossFunction(SinkhornOptions.builder().blur(0.05).build()))
                        .nIn(32).nOut(2).activation(Activation.IDENTITY).build())
                .build());
        net.init();
        INDArray z = Nd4j.randn(DataType.FLOAT, n, 4);
        INDArray target = Nd4j.randn(DataType.FLOAT, n, 2).muli(0.3).addi(Nd4j.createFromArray(2f, -1f).reshape(1, 2));
        SinkhornLoss divergence = new SinkhornLoss(SinkhornOptions.builder().blur(0.05).build());
        double before = divergence.value(net.output(z), target);
        for (int step = 0; step < 300; step++) net.fit(z, target);
        double after = divergence.value(net.output(z), target);
        assertEquals(after, net.score(new org.nd4j.linalg.dataset.DataSet(z, target)), 1e-5 * Math.max(1, after),
                "the network's score is the divergence");
        assertTrue(after * 10 <= before, () -> "divergence " + before + " -> " + after);
    }
}
