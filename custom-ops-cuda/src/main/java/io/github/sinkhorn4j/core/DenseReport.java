package io.github.sinkhorn4j.core;

/**
 * What a dense solve reports per batch item: the regularised OT cost (the dual value at the final
 * potentials, docs/math.md), the iterations run and whether the threshold was reached; the device
 * used, and the wall time of the iterations alone in milliseconds (no transfers, input checks or
 * outputs).
 */
public record DenseReport(double[] cost, int[] iterations, boolean[] converged, Device device, double solveMs) {
    /** The cost of the first (or only) item. */
    public double cost0() {
        return cost[0];
    }
}
