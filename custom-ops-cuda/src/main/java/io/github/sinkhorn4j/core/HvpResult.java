package io.github.sinkhorn4j.core;

/** A Hessian-vector product on Java arrays: the solve it was taken at, H v (rows x d, row-major) and its report. */
public record HvpResult(DivergenceResult divergence, double[] hvp, HvpReport report) {}
