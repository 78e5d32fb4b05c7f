package io.github.sinkhorn4j.core;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Objects;

/**
 * Options of a Sinkhorn divergence, named as in GeomLoss / FlashSinkhorn. Immutable and validated:
 * a bad value raises an {@link IllegalArgumentException} naming the option.
 *
 * <p>The eps sequence is, by priority: {@code epsList}; else {@code nIters} iterations at a fixed
 * {@code eps}; else GeomLoss's schedule from the diameter (estimated unless given) down to
 * {@code blur^2} in steps of {@code scaling^2}.
 */
public final class SinkhornOptions {
    /** Iterations at a fixed eps when nIters is not given. */
    public static final int DEFAULT_FIXED_EPS_ITERATIONS = 100;

    private final double blur;
    private final double scaling;
    private final boolean debias;
    private final Double reachX;
    private final Double reachY;
    private final boolean halfCost;
    private final Double eps;
    private final double[] epsList;
    private final Integer nIters;
    private final Double diameter;
    private final double threshold;
    private final int innerIterations;
    private final Solver solver;
    private final boolean lastExtrapolation;
    private final boolean geomlossGradients;
    private final Device device;
    private final boolean allowTf32;

    private SinkhornOptions(Builder b) {
        blur = b.blur;
        scaling = b.scaling;
        debias = b.debias;
        reachX = b.reachX;
        reachY = b.reachY;
        halfCost = b.halfCost;
        eps = b.eps;
        epsList = b.epsList == null ? null : b.epsList.clone();
        nIters = b.nIters;
        diameter = b.diameter;
        threshold = b.threshold;
        innerIterations = b.innerIterations;
        solver = Objects.requireNonNull(b.solver, "solver");
        lastExtrapolation = b.lastExtrapolation;
        geomlossGradients = b.geomlossGradients;
        device = Objects.requireNonNull(b.device, "device");
        allowTf32 = b.allowTf32;
        validate();
    }

    private void validate() {
        positive("blur", blur);
        if (!(scaling > 0 && scaling < 1)) throw bad("scaling", scaling, "must be in (0, 1)");
        if (reachX != null) positive("reachX", reachX);
        if (reachY != null) positive("reachY", reachY);
        if (eps != null) positive("eps", eps);
        if (diameter != null) positive("diameter", diameter);
        if (epsList != null) {
            if (epsList.length == 0) throw new IllegalArgumentException("epsList must not be empty");
            for (double e : epsList) positive("epsList", e);
        }
        if (nIters != null && nIters < 1) throw bad("nIters", nIters, "must be >= 1");
        if (!(threshold >= 0) || Double.isInfinite(threshold)) throw bad("threshold", threshold, "must be finite and >= 0");
        if (innerIterations < 1) throw bad("innerIterations", innerIterations, "must be >= 1");
    }

    static void positive(String name, double v) {
        if (!(v > 0) || Double.isInfinite(v)) throw bad(name, v, "must be finite and > 0");
    }

    static IllegalArgumentException bad(String name, Object value, String rule) {
        return new IllegalArgumentException(name + " " + rule + " (got " + value + ")");
    }

    public static Builder builder() {
        return new Builder();
    }

    public static SinkhornOptions defaults() {
        return builder().build();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.blur = blur;
        b.scaling = scaling;
        b.debias = debias;
        b.reachX = reachX;
        b.reachY = reachY;
        b.halfCost = halfCost;
        b.eps = eps;
        b.epsList = epsList;
        b.nIters = nIters;
        b.diameter = diameter;
        b.threshold = threshold;
        b.innerIterations = innerIterations;
        b.solver = solver;
        b.lastExtrapolation = lastExtrapolation;
        b.geomlossGradients = geomlossGradients;
        b.device = device;
        b.allowTf32 = allowTf32;
        return b;
    }

    public double blur() { return blur; }
    public double scaling() { return scaling; }
    public boolean debias() { return debias; }
    /** Relaxation of the marginal of x (weights a); null: balanced. */
    public Double reachX() { return reachX; }
    /** Relaxation of the marginal of y (weights b); null: balanced. */
    public Double reachY() { return reachY; }
    /** C(x, y) = |x - y|^2 / 2 when true (GeomLoss's p = 2), |x - y|^2 otherwise. */
    public boolean halfCost() { return halfCost; }
    public Double eps() { return eps; }
    public double[] epsList() { return epsList == null ? null : epsList.clone(); }
    public Integer nIters() { return nIters; }
    public Double diameter() { return diameter; }
    /** Early stopping on the largest change of a potential at the final eps; 0: off. */
    public double threshold() { return threshold; }
    public int innerIterations() { return innerIterations; }
    public Solver solver() { return solver; }
    /** GeomLoss's last extrapolation (symmetric solver only). */
    public boolean lastExtrapolation() { return lastExtrapolation; }
    /** Weight relaxed sides' gradients by rho + eps/2 as GeomLoss's autograd does, instead of the exact rho + eps. */
    public boolean geomlossGradients() { return geomlossGradients; }
    public Device device() { return device; }
    public boolean allowTf32() { return allowTf32; }

    /** The options as a map of option names to values; {@link #fromMap} reads it back. */
    public Map<String, Object> toMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("blur", blur);
        m.put("scaling", scaling);
        m.put("debias", debias);
        if (reachX != null) m.put("reachX", reachX);
        if (reachY != null) m.put("reachY", reachY);
        m.put("halfCost", halfCost);
        if (eps != null) m.put("eps", eps);
        if (epsList != null) m.put("epsList", epsList.clone());
        if (nIters != null) m.put("nIters", nIters);
        if (diameter != null) m.put("diameter", diameter);
        m.put("threshold", threshold);
        m.put("innerIterations", innerIterations);
        m.put("solver", solver.name().toLowerCase(Locale.ROOT));
        m.put("lastExtrapolation", lastExtrapolation);
        m.put("geomlossGradients", geomlossGradients);
        m.put("device", device.name().toLowerCase(Locale.ROOT));
        m.put("allowTf32", allowTf32);
        return m;
    }

    /**
     * Options from a map of names to values (numbers, booleans, strings, double arrays). Names are
     * those of the builder; GeomLoss's snake_case spellings (reach_x, half_cost, n_iters, ...) are
     * accepted too. An unknown name raises an IllegalArgumentException naming it.
     */
    public static SinkhornOptions fromMap(Map<String, ?> map) {
        Builder b = builder();
        forEachOption(map, (name, key, v) -> {
            switch (name) {
                case "blur" -> b.blur(number(key, v));
                case "scaling" -> b.scaling(number(key, v));
                case "debias" -> b.debias(bool(key, v));
                case "reach" -> b.reach(number(key, v));
                case "reachX" -> b.reachX(number(key, v));
                case "reachY" -> b.reachY(number(key, v));
                case "halfCost" -> b.halfCost(bool(key, v));
                case "eps" -> b.eps(number(key, v));
                case "epsList" -> b.epsList(doubles(key, v));
                case "nIters" -> b.nIters((int) number(key, v));
                case "diameter" -> b.diameter(number(key, v));
                case "threshold" -> b.threshold(number(key, v));
                case "innerIterations" -> b.innerIterations((int) number(key, v));
                case "solver" -> b.solver(enumValue(Solver.class, key, v));
                case "lastExtrapolation" -> b.lastExtrapolation(bool(key, v));
                case "geomlossGradients" -> b.geomlossGradients(bool(key, v));
                case "device" -> b.device(enumValue(Device.class, key, v));
                case "allowTf32" -> b.allowTf32(bool(key, v));
                default -> throw new IllegalArgumentException("unknown option '" + key + "'");
            }
        });
        return b.build();
    }

    /** One entry of an options map: the builder's name of the option, the key as given, its value. */
    interface OptionEntry {
        void accept(String name, String key, Object value);
    }

    /** The non-null entries of an options map, snake_case keys named in camelCase. */
    static void forEachOption(Map<String, ?> map, OptionEntry entry) {
        for (Map.Entry<String, ?> e : map.entrySet()) {
            if (e.getValue() != null) entry.accept(camelCase(e.getKey()), e.getKey(), e.getValue());
        }
    }

    private static String camelCase(String key) {
        StringBuilder sb = new StringBuilder();
        boolean upper = false;
        for (char c : key.toCharArray()) {
            if (c == '_') {
                upper = true;
            } else {
                sb.append(upper ? Character.toUpperCase(c) : c);
                upper = false;
            }
        }
        return sb.toString();
    }

    static double number(String key, Object v) {
        if (v instanceof Number n) return n.doubleValue();
        if (v instanceof String s) {
            try {
                return Double.parseDouble(s);
            } catch (NumberFormatException ex) {
                // reported below
            }
        }
        throw new IllegalArgumentException("option '" + key + "' must be a number (got " + v + ")");
    }

    static boolean bool(String key, Object v) {
        if (v instanceof Boolean b) return b;
        if (v instanceof Number n) return n.doubleValue() != 0;
        if (v instanceof String s && (s.equalsIgnoreCase("true") || s.equalsIgnoreCase("false"))) return Boolean.parseBoolean(s);
        throw new IllegalArgumentException("option '" + key + "' must be a boolean (got " + v + ")");
    }

    private static double[] doubles(String key, Object v) {
        if (v instanceof double[] d) return d.clone();
        if (v instanceof float[] f) {
            double[] d = new double[f.length];
            for (int i = 0; i < f.length; i++) d[i] = f[i];
            return d;
        }
        if (v instanceof java.util.List<?> list) {
            double[] d = new double[list.size()];
            for (int i = 0; i < d.length; i++) d[i] = number(key, list.get(i));
            return d;
        }
        throw new IllegalArgumentException("option '" + key + "' must be a list of numbers (got " + v + ")");
    }

    static <E extends Enum<E>> E enumValue(Class<E> type, String key, Object v) {
        if (type.isInstance(v)) return type.cast(v);
        try {
            return Enum.valueOf(type, v.toString().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException ex) {
            throw new IllegalArgumentException("option '" + key + "' must be one of "
                    + Arrays.toString(type.getEnumConstants()).toLowerCase(Locale.ROOT) + " (got " + v + ")");
        }
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof SinkhornOptions other && toString().equals(other.toString());
    }

    @Override
    public int hashCode() {
        return toString().hashCode();
    }

    @Override
    public String toString() {
        StringBuilder sb = new StringBuilder("SinkhornOptions{");
        toMap().forEach((k, v) -> sb.append(k).append('=').append(v instanceof double[] d ? Arrays.toString(d) : v).append(", "));
        sb.setLength(sb.length() - 2);
        return sb.append('}').toString();
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private double blur = 0.05;
        private double scaling = 0.5;
        private boolean debias = true;
        private Double reachX;
        private Double reachY;
        private boolean halfCost = true;
        private Double eps;
        private double[] epsList;
        private Integer nIters;
        private Double diameter;
        private double threshold;
        private int innerIterations = 10;
        private Solver solver = Solver.SYMMETRIC;
        private boolean lastExtrapolation = true;
        private boolean geomlossGradients;
        private Device device = Device.AUTO;
        private boolean allowTf32 = true;

        private Builder() {}

        public Builder blur(double v) { blur = v; return this; }
        public Builder scaling(double v) { scaling = v; return this; }
        public Builder debias(boolean v) { debias = v; return this; }
        /** Relaxes both marginals with the same reach. */
        public Builder reach(Double v) { reachX = v; reachY = v; return this; }
        public Builder reachX(Double v) { reachX = v; return this; }
        public Builder reachY(Double v) { reachY = v; return this; }
        public Builder halfCost(boolean v) { halfCost = v; return this; }
        public Builder eps(Double v) { eps = v; return this; }
        public Builder epsList(double[] v) { epsList = v == null ? null : v.clone(); return this; }
        public Builder nIters(Integer v) { nIters = v; return this; }
        public Builder diameter(Double v) { diameter = v; return this; }
        public Builder threshold(double v) { threshold = v; return this; }
        public Builder innerIterations(int v) { innerIterations = v; return this; }
        public Builder solver(Solver v) { solver = v; return this; }
        public Builder lastExtrapolation(boolean v) { lastExtrapolation = v; return this; }
        public Builder geomlossGradients(boolean v) { geomlossGradients = v; return this; }
        public Builder device(Device v) { device = v; return this; }
        public Builder allowTf32(boolean v) { allowTf32 = v; return this; }

        public SinkhornOptions build() {
            return new SinkhornOptions(this);
        }
    }
}
