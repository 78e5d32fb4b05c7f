package io.github.sinkhorn4j.core;

/**
 * Result of a dense solve on Java arrays: the report and the potentials f (batch x n) and g
 * (batch x m); with {@link DenseSinkhornOptions#plan()} or {@link DenseSinkhornOptions#gradients()}
 * the plan (batch x n x m, also dcost/dC), with gradients also dcost/da and dcost/db (else null).
 */
public record DenseSinkhornResult(DenseReport report, double[] f, double[] g, double[] plan, double[] gradA,
                                  double[] gradB) {
    public double[] cost() {
        return report.cost();
    }
}
