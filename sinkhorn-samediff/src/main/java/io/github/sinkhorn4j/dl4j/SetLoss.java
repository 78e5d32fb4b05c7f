package io.github.sinkhorn4j.dl4j;

import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Map;
import java.util.Objects;
import org.nd4j.linalg.activations.IActivation;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.lossfunctions.ILossFunction;
import org.nd4j.common.primitives.Pair;

/**
 * A loss on the minibatch as a whole (a set of points), fitted into DL4J's per-example conventions.
 * DL4J sums {@code computeScore(..., average = false)} over the minibatch's n rows and divides by n,
 * and divides the gradients by n before the update; so that the network minimises weight * S for
 * the set loss S: the score is n * weight * S (weight * S averaged), each row of the score array
 * holds weight * S, and the gradient with respect to the activations is n * weight * dS/d(activations).
 */
abstract class SetLoss implements ILossFunction {
    private static final long serialVersionUID = 1L;

    final SinkhornOptions options;
    final double weight;

    SetLoss(SinkhornOptions options, double weight) {
        this.options = Objects.requireNonNull(options, "options");
        if (!(weight >= 0) || Double.isInfinite(weight)) {
            throw new IllegalArgumentException("weight must be finite and >= 0 (got " + weight + ")");
        }
        this.weight = weight;
    }

    /** The set loss S and dS/d(activations) (shaped as the activations) for a minibatch. */
    abstract Pair<Double, INDArray> lossAndGradient(INDArray labels, INDArray activations, INDArray rowWeights);

    public SinkhornOptions options() {
        return options;
    }

    /** The options, for JSON; {@link SinkhornOptions#fromMap} reads them back. */
    public Map<String, Object> getOptions() {
        return options.toMap();
    }

    /** The factor on the divergence (a loss weight in multi-output graphs). */
    public double getWeight() {
        return weight;
    }

    @Override
    public double computeScore(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask, boolean average) {
        double s = weight * lossAndGradient(labels, activate(activationFn, preOutput), rowWeights(mask, preOutput)).getFirst();
        return average ? s : preOutput.size(0) * s;
    }

    /** Each row holds weight * S: a set loss has no per-example decomposition, and this averages to it. */
    @Override
    public INDArray computeScoreArray(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        double s = weight * lossAndGradient(labels, activate(activationFn, preOutput), rowWeights(mask, preOutput)).getFirst();
        return Nd4j.valueArrayOf(new long[] {preOutput.size(0), 1}, s, preOutput.dataType());
    }

    @Override
    public INDArray computeGradient(INDArray labels, INDArray preOutput, IActivation activationFn, INDArray mask) {
        return computeGradientAndScore(labels, preOutput, activationFn, mask, true).getSecond();
    }

    @Override
    public Pair<Double, INDArray> computeGradientAndScore(INDArray labels, INDArray preOutput, IActivation activationFn,
                                                          INDArray mask, boolean average) {
        long rows = preOutput.size(0);
        Pair<Double, INDArray> sg = lossAndGradient(labels, activate(activationFn, preOutput), rowWeights(mask, preOutput));
        INDArray dActivations = sg.getSecond().muli(rows * weight);
        INDArray dPreOutput = activationFn.backprop(preOutput.dup(), dActivations).getFirst();
        double s = weight * sg.getFirst();
        return new Pair<>(average ? s : rows * s, dPreOutput);
    }

    private static INDArray activate(IActivation activationFn, INDArray preOutput) {
        if (preOutput.rank() != 2) {
            throw new IllegalArgumentException("activations must be (minibatch, features) (got rank " + preOutput.rank() + ")");
        }
        return activationFn.getActivation(preOutput.dup(), true);
    }

    /** A mask's per-row weights as a vector (n), or null; per-output masks mean nothing for a cloud. */
    private static INDArray rowWeights(INDArray mask, INDArray preOutput) {
        if (mask == null) return null;
        long rows = preOutput.size(0);
        if (mask.length() != rows) {
            throw new IllegalArgumentException("mask must hold one weight per row (" + rows + "), as (n) or (n, 1) (got shape "
                    + java.util.Arrays.toString(mask.shape()) + ")");
        }
        return mask.reshape(rows).castTo(preOutput.dataType());
    }

    /** w / sum(w): the clouds' weights from row weights. */
    static INDArray normalised(INDArray w) {
        double total = w.sumNumber().doubleValue();
        if (!(total > 0)) throw new IllegalArgumentException("the mask's weights must have a positive sum (got " + total + ")");
        return w.div(total);
    }

    @Override
    public boolean equals(Object o) {
        return o != null && o.getClass() == getClass() && ((SetLoss) o).options.equals(options) && ((SetLoss) o).weight == weight;
    }

    @Override
    public int hashCode() {
        return Objects.hash(getClass(), options, weight);
    }

    @Override
    public String toString() {
        return name() + "(weight=" + weight + ", " + options + ")";
    }
}
