package io.github.sinkhorn4j.samediff;

import org.nd4j.autodiff.samediff.SDVariable;

/**
 * The outputs of a {@code sinkhorn_divergence} op: the loss (differentiable) and the potentials f_ba
 * (on x), g_ab (on y) and the self potentials f_aa, g_bb (empty arrays when not debiased). The
 * potentials are values, not differentiable outputs.
 */
public record SinkhornDivergenceVariables(SDVariable loss, SDVariable fBa, SDVariable gAb, SDVariable fAa,
                                          SDVariable gBb) {}
