package io.github.sinkhorn4j.core;

import static io.github.sinkhorn4j.core.SinkhornOptions.bad;
import static io.github.sinkhorn4j.core.SinkhornOptions.bool;
import static io.github.sinkhorn4j.core.SinkhornOptions.enumValue;
import static io.github.sinkhorn4j.core.SinkhornOptions.forEachOption;
import static io.github.sinkhorn4j.core.SinkhornOptions.number;
import static io.github.sinkhorn4j.core.SinkhornOptions.positive;

import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Options of the dense cost-matrix solver ({@link DenseSinkhorn}). Immutable and validated: a bad
 * value raises an {@link IllegalArgumentException} naming the option.
 *
 * <p>{@code tauA} and {@code tauB} relax the marginals of a (rows of C) and b (columns) by a KL
 * penalty of that strength; null keeps a marginal a constraint (balanced). tau is the rho = reach^2
 * of the point-cloud API ({@link SinkhornOptions#reachX()}): a reach r there is tau = r^2 here, and
 * the update of a relaxed side is damped by tau / (tau + eps) = 1 / (1 + eps / rho).
 */
public final class DenseSinkhornOptions {
    public static final int DEFAULT_MAX_ITERS = 1000;
    public static final double DEFAULT_THRESHOLD = 1e-6;
    public static final int DEFAULT_CHECK_EVERY = 10;

    private final double eps;
    private final Double tauA;
    private final Double tauB;
    private final int maxIters;
    private final double threshold;
    private final int checkEvery;
    private final Device device;
    private final boolean plan;
    private final boolean gradients;

    private DenseSinkhornOptions(Builder b) {
        if (b.eps == null) throw new IllegalArgumentException("eps is required (the temperature, in the units of C)");
        eps = b.eps;
        tauA = b.tauA;
        tauB = b.tauB;
        maxIters = b.maxIters;
        threshold = b.threshold;
        checkEvery = b.checkEvery;
        device = Objects.requireNonNull(b.device, "device");
        plan = b.plan;
        gradients = b.gradients;
        positive("eps", eps);
        if (tauA != null) positive("tauA", tauA);
        if (tauB != null) positive("tauB", tauB);
        if (maxIters < 1) throw bad("maxIters", maxIters, "must be >= 1");
        if (!(threshold >= 0) || Double.isInfinite(threshold)) throw bad("threshold", threshold, "must be finite and >= 0");
        if (checkEvery < 1) throw bad("checkEvery", checkEvery, "must be >= 1");
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.eps = eps;
        b.tauA = tauA;
        b.tauB = tauB;
        b.maxIters = maxIters;
        b.threshold = threshold;
        b.checkEvery = checkEvery;
        b.device = device;
        b.plan = plan;
        b.gradients = gradients;
        return b;
    }

    /** The temperature, in the units of C. */
    public double eps() { return eps; }
    /** KL strength of the marginal of a (rows of C), reach^2 of the point-cloud API; null: balanced. */
    public Double tauA() { return tauA; }
    /** KL strength of the marginal of b (columns of C); null: balanced. */
    public Double tauB() { return tauB; }
    public int maxIters() { return maxIters; }
    /** An item stops once the largest change of its potentials over an iteration is below this; 0: run maxIters. */
    public double threshold() { return threshold; }
    /** Iterations between two threshold checks. */
    public int checkEvery() { return checkEvery; }
    public Device device() { return device; }
    /** The array entry points also return the transport plan. */
    public boolean plan() { return plan; }
    /** The array entry points also return dcost/dC (the plan), dcost/da and dcost/db. */
    public boolean gradients() { return gradients; }
    /** Both marginals are constraints: a and b must then have equal masses. */
    public boolean balanced() { return tauA == null && tauB == null; }

    /** The options as a map of option names to values; {@link #fromMap} reads it back. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("eps", eps);
        if (tauA != null) m.put("tauA", tauA);
        if (tauB != null) m.put("tauB", tauB);
        m.put("maxIters", maxIters);
        m.put("threshold", threshold);
        m.put("checkEvery", checkEvery);
        m.put("device", device.name().toLowerCase(Locale.ROOT));
        m.put("plan", plan);
        m.put("gradients", gradients);
        return m;
    }

    /**
     * Options from a map of names to values; names are those of the builder, snake_case spellings
     * (tau_a, max_iters, check_every) accepted. An unknown name raises an IllegalArgumentException naming it.
     */
    public static DenseSinkhornOptions fromMap(Map<String, ?> map) {
        Builder b = builder();
        forEachOption(map, (name, key, v) -> {
            switch (name) {
                case "eps" -> b.eps(number(key, v));
                case "tauA" -> b.tauA(number(key, v));
                case "tauB" -> b.tauB(number(key, v));
                case "maxIters" -> b.maxIters((int) number(key, v));
                case "threshold" -> b.threshold(number(key, v));
                case "checkEvery" -> b.checkEvery((int) number(key, v));
                case "device" -> b.device(enumValue(Device.class, key, v));
                case "plan" -> b.plan(bool(key, v));
                case "gradients" -> b.gradients(bool(key, v));
                default -> throw new IllegalArgumentException("unknown option '" + key + "'");
            }
        });
        return b.build();
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof DenseSinkhornOptions other && toMap().equals(other.toMap());
    }

    @Override
    public int hashCode() {
        return toMap().hashCode();
    }

    @Override
    public String toString() {
        return "DenseSinkhornOptions" + toMap();
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private Double eps;
        private Double tauA;
        private Double tauB;
        private int maxIters = DEFAULT_MAX_ITERS;
        private double threshold = DEFAULT_THRESHOLD;
        private int checkEvery = DEFAULT_CHECK_EVERY;
        private Device device = Device.AUTO;
        private boolean plan;
        private boolean gradients;

        private Builder() {}

        public Builder eps(double v) { eps = v; return this; }
        public Builder tauA(Double v) { tauA = v; return this; }
        public Builder tauB(Double v) { tauB = v; return this; }
        public Builder maxIters(int v) { maxIters = v; return this; }
        public Builder threshold(double v) { threshold = v; return this; }
        public Builder checkEvery(int v) { checkEvery = v; return this; }
        public Builder device(Device v) { device = v; return this; }
        public Builder plan(boolean v) { plan = v; return this; }
        public Builder gradients(boolean v) { gradients = v; return this; }

        public DenseSinkhornOptions build() {
            return new DenseSinkhornOptions(this);
        }
    }
}
