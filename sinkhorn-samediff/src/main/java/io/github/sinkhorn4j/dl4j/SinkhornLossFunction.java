package io.github.sinkhorn4j.dl4j;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.SinkhornResult;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Map;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.shade.jackson.annotation.JsonCreator;
import org.nd4j.shade.jackson.annotation.JsonProperty;

/**
 * The Sinkhorn divergence as a DL4J loss ({@code OutputLayer}, {@code LossLayer}, in a
 * MultiLayerNetwork or a ComputationGraph): the minibatch's predictions (n, d) are one point cloud,
 * its labels (n, d) the other; a mask (n, 1) weights the rows of both (normalised; uniform without a
 * mask). The network minimises weight * S(predictions, labels); see {@link SetLoss} for how the set
 * loss is spread over DL4J's per-example score and gradient. Serialises to JSON with the network's
 * configuration.
 */
public final class SinkhornLossFunction extends SetLoss {
    private static final long serialVersionUID = 1L;

    public SinkhornLossFunction() {
        this(SinkhornOptions.defaults(), 1.0);
    }

    public SinkhornLossFunction(SinkhornOptions options) {
        this(options, 1.0);
    }

    public SinkhornLossFunction(SinkhornOptions options, double weight) {
        super(options, weight);
    }

    @JsonCreator
    public SinkhornLossFunction(@JsonProperty("options") Map<String, Object> options, @JsonProperty("weight") double weight) {
        this(SinkhornOptions.fromMap(options), weight);
    }

    @Override
    Pair<Double, INDArray> lossAndGradient(INDArray labels, INDArray predictions, INDArray rowWeights) {
        if (labels == null) throw new IllegalArgumentException("labels are required: they are the target cloud");
        INDArray y = labels.castTo(predictions.dataType());
        INDArray w = rowWeights == null ? null : normalised(rowWeights);
        SinkhornResult r = new SinkhornLoss(options).compute(w, predictions, w, y, true);
        return new Pair<>(r.value(), r.gradX());
    }

    @Override
    public String name() {
        return "SinkhornLossFunction";
    }
}
