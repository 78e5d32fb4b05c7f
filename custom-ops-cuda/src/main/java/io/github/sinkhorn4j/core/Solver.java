package io.github.sinkhorn4j.core;

/** How the potentials are updated. */
public enum Solver {
    /** GeomLoss's loop: every potential from the previous ones, averaged, then a last extrapolation. */
    SYMMETRIC,
    /** OTT's loop: f from g, then g from the new f. */
    ALTERNATING
}
