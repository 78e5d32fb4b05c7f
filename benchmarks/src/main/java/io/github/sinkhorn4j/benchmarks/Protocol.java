package io.github.sinkhorn4j.benchmarks;

import java.util.Arrays;

/** The measured workloads, as in the anchors file (../shared/anchors/flashsinkhorn-h100.json). */
enum Protocol {
    /** Fixed eps, full cost |x - y|^2, no debias, no extrapolation, exactly iters iterations; value only. */
    FORWARD("forward"),
    /** GeomLoss's schedule from blur and scaling, debiased, half cost; value and gradient w.r.t. x. */
    LOSS_AND_GRAD("loss+grad"),
    /** Value, gradient, then a Hessian-vector product w.r.t. x (blur 0.1, no debias). */
    HVP("hvp"),
    /**
     * The dense cost-matrix solver on random costs U(0, 1) (batch x n x m), balanced, uniform weights,
     * fixed eps, exactly iters iterations; cost and potentials only.
     */
    DENSE("dense");

    final String label;

    Protocol(String label) {
        this.label = label;
    }

    static Protocol of(String label) {
        return Arrays.stream(values()).filter(p -> p.label.equals(label)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("--protocol must be forward, loss+grad, hvp or dense (got " + label + ")"));
    }

    double defaultBlur() {
        return this == HVP ? 0.1 : 0.05;
    }
}
