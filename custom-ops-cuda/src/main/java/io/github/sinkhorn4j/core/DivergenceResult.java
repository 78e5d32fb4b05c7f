package io.github.sinkhorn4j.core;

/**
 * Result of a single-problem solve on Java arrays: the report, the four potentials and, when asked
 * for, the gradients with respect to x (n x d, row-major), y, a and b.
 */
public record DivergenceResult(Report report, double[] fBa, double[] gAb, double[] fAa, double[] gBb,
                               double[] gradX, double[] gradY, double[] gradA, double[] gradB) {
    public double loss() {
        return report.loss0();
    }
}
