package io.github.sinkhorn4j.core;

/**
 * What a Hessian-vector product reports: the conjugate-gradient iterations over its solves (the
 * cross term's and, debiased, the self term's), the larger final true relative residual
 * |A u - rhs| / |rhs|, whether both reached the tolerance, the device used, and the entries of the
 * plan supports CG's products read (0 when they were streamed; see {@link HvpOptions}).
 */
public record HvpReport(int cgIterations, double cgResidual, boolean converged, Device device, long planEntries) {}
