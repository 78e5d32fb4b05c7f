package io.github.sinkhorn4j;

import io.github.sinkhorn4j.core.Report;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Objects;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The Sinkhorn divergence between point clouds in ND4J arrays (eager; for graphs see
 * {@code io.github.sinkhorn4j.samediff.SinkhornOps}, for networks {@code io.github.sinkhorn4j.dl4j}).
 * Clouds are (n, d) and (m, d), or batches (B, n, d) and (B, m, d) of independent problems; weights
 * a and b (n) and (m), or (B, n) and (B, m), default to uniform. FLOAT and DOUBLE arrays; c-ordered
 * arrays reach the native library without copies. Immutable and thread-safe.
 */
public final class SinkhornLoss {
    private final SinkhornOptions options;

    public SinkhornLoss(SinkhornOptions options) {
        this.options = Objects.requireNonNull(options, "options");
    }

    public static SinkhornLoss withDefaults() {
        return new SinkhornLoss(SinkhornOptions.defaults());
    }

    public SinkhornOptions options() {
        return options;
    }

    /** The divergence between uniform clouds: a scalar, or one value per problem (B). */
    public INDArray loss(INDArray x, INDArray y) {
        return compute(null, x, null, y, false).loss();
    }

    /** The divergence between weighted clouds (null weights: uniform). */
    public INDArray loss(INDArray a, INDArray x, INDArray b, INDArray y) {
        return compute(a, x, b, y, false).loss();
    }

    /** The divergence of one problem as a number. */
    public double value(INDArray x, INDArray y) {
        return compute(null, x, null, y, false).value();
    }

    /** Loss, potentials and, when {@code gradients}, the gradients with respect to x, y, a and b. */
    public SinkhornResult compute(INDArray a, INDArray x, INDArray b, INDArray y, boolean gradients) {
        NdClouds c = NdClouds.of(x, y, a, b);
        var type = c.dataType();
        INDArray loss = Nd4j.create(type, c.perProblemShape());
        INDArray fBa = Nd4j.create(type, c.xPointsShape()), gAb = Nd4j.create(type, c.yPointsShape());
        INDArray fAa = options.debias() ? Nd4j.create(type, c.xPointsShape()) : null;
        INDArray gBb = options.debias() ? Nd4j.create(type, c.yPointsShape()) : null;
        INDArray gradX = null, gradY = null, gradA = null, gradB = null;
        if (gradients) {
            gradX = Nd4j.create(type, c.xShape());
            gradY = Nd4j.create(type, c.yShape());
            gradA = Nd4j.create(type, c.xPointsShape());
            gradB = Nd4j.create(type, c.yPointsShape());
        }
        Report report = c.solve(options, loss, new NdClouds.Destinations(fBa, gAb, fAa, gBb, gradX, gradY, gradA, gradB));
        return new SinkhornResult(loss, fBa, gAb, fAa, gBb, gradX, gradY, gradA, gradB, report);
    }

    @Override
    public String toString() {
        return "SinkhornLoss" + options.toString().substring("SinkhornOptions".length());
    }
}
