package io.github.sinkhorn4j.dl4j;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.SinkhornResult;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Map;
import java.util.stream.IntStream;
import org.nd4j.common.primitives.Pair;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.jackson.annotation.JsonCreator;
import org.nd4j.shade.jackson.annotation.JsonProperty;

/**
 * The Sinkhorn divergence between two groups of rows of one activation: the way to put an alignment
 * term between intermediate features into a network's loss (domain adaptation). Feed source and
 * target examples in one minibatch; attach a {@code LossLayer} with this loss (identity activation)
 * to the features layer of a ComputationGraph, as a second output beside the task's; its labels are
 * one column marking the source rows with 1 and the target rows with 0. The loss is
 * weight * S(source features, target features); a mask (n, 1) weights rows within each group. The
 * task's output gets its labels masked out on the target rows. See docs/design.md.
 */
public final class SinkhornAlignmentLoss extends SetLoss {
    private static final long serialVersionUID = 1L;

    public SinkhornAlignmentLoss() {
        this(SinkhornOptions.defaults(), 1.0);
    }

    public SinkhornAlignmentLoss(SinkhornOptions options) {
        this(options, 1.0);
    }

    public SinkhornAlignmentLoss(SinkhornOptions options, double weight) {
        super(options, weight);
    }

    @JsonCreator
    public SinkhornAlignmentLoss(@JsonProperty("options") Map<String, Object> options, @JsonProperty("weight") double weight) {
        this(SinkhornOptions.fromMap(options), weight);
    }

    @Override
    Pair<Double, INDArray> lossAndGradient(INDArray labels, INDArray features, INDArray rowWeights) {
        long rows = features.size(0);
        if (labels == null || labels.length() != rows) {
            throw new IllegalArgumentException("labels must be one column marking source rows with 1 and target rows with 0 ("
                    + rows + " values)");
        }
        double[] group = labels.reshape(rows).toDoubleVector();
        int[] source = select(group, true), target = select(group, false);
        if (source.length == 0 || target.length == 0) {
            throw new IllegalArgumentException("the minibatch needs source rows (label 1) and target rows (label 0): got "
                    + source.length + " and " + target.length);
        }
        INDArray a = rowWeights == null ? null : normalised(pick(rowWeights, source));
        INDArray b = rowWeights == null ? null : normalised(pick(rowWeights, target));
        SinkhornResult r = new SinkhornLoss(options).compute(a, Nd4j.pullRows(features, 1, source), b,
                Nd4j.pullRows(features, 1, target), true);
        INDArray gradient = Nd4j.create(features.dataType(), features.shape());
        for (int i = 0; i < source.length; i++) gradient.putRow(source[i], r.gradX().getRow(i));
        for (int j = 0; j < target.length; j++) gradient.putRow(target[j], r.gradY().getRow(j));
        return new Pair<>(r.value(), gradient);
    }

    private static int[] select(double[] group, boolean source) {
        return IntStream.range(0, group.length).filter(i -> (group[i] > 0.5) == source).toArray();
    }

    private static INDArray pick(INDArray vector, int[] rows) {
        double[] values = new double[rows.length];
        for (int i = 0; i < rows.length; i++) values[i] = vector.getDouble(rows[i]);
        return Nd4j.createFromArray(values).castTo(vector.dataType());
    }

    @Override
    public String name() {
        return "SinkhornAlignmentLoss";
    }
}
