package io.github.sinkhorn4j.samediff;

import org.nd4j.autodiff.samediff.SDVariable;

/**
 * The divergence and its gradients as graph variables ({@link SinkhornOps#divergenceAndGradients});
 * gradA and gradB are null when the weights were not given.
 */
public record SinkhornDivergenceGradients(SDVariable loss, SDVariable gradX, SDVariable gradY, SDVariable gradA,
                                          SDVariable gradB) {}
