package io.github.sinkhorn4j;

import io.github.sinkhorn4j.core.Report;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What {@link SinkhornLoss#compute} returns: the loss (a scalar, or one value per problem of a batch),
 * the potentials f_ba, g_ab and, when debiased, the self potentials f_aa, g_bb (else null), and,
 * when asked for, the gradients with respect to x, y, a and b (else null), shaped as the inputs
 * (gradients of the weights as a and b, also when the weights were left uniform). The report holds
 * the iterations run and convergence per problem.
 */
public record SinkhornResult(INDArray loss, INDArray fBa, INDArray gAb, INDArray fAa, INDArray gBb,
                             INDArray gradX, INDArray gradY, INDArray gradA, INDArray gradB, Report report) {
    /** The loss of the first (or only) problem. */
    public double value() {
        return report.loss0();
    }
}
