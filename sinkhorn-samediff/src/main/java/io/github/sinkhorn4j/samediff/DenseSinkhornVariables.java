package io.github.sinkhorn4j.samediff;

import org.nd4j.autodiff.samediff.SDVariable;

/**
 * The outputs of a {@code dense_sinkhorn} op: the cost (differentiable with respect to C, a and b)
 * and the potentials f (rows) and g (columns), which are values, not differentiable outputs.
 */
public record DenseSinkhornVariables(SDVariable cost, SDVariable f, SDVariable g) {}
