package io.github.sinkhorn4j.core;

/**
 * What a solve reports per problem of the batch: the loss, the iterations run, whether the
 * threshold was reached, and the largest potential change at the last check; and the device used.
 */
public record Report(double[] loss, int[] iterations, boolean[] converged, double[] maxChange, Device device) {
    /** The loss of the first (or only) problem. */
    public double loss0() {
        return loss[0];
    }
}
