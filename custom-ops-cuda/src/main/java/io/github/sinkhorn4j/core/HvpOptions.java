package io.github.sinkhorn4j.core;

/**
 * Options of a Hessian-vector product ({@link Sinkhorn#hvp}): the conjugate gradient's relative
 * tolerance and iteration cap per solve, the Tikhonov weight on the balanced gauge (relative to the
 * system's diagonal), whether a CG that misses the tolerance is only reported
 * ({@code allowUnconverged}) instead of raising a {@link SinkhornException} with status
 * NOT_CONVERGED, and whether CUDA float32 products may use TF32-class tensor cores. A null tolerance
 * or regularisation takes the default of the clouds' precision: 1e-10 and 1e-10 in float64, 1e-5
 * and 1e-5 in float32 (100 times the rounding of float32 plan products, below which CG would only
 * see noise); 1000 iterations per solve. The HVP's products are strict float32 unless
 * {@code allowTf32}: the solve's own {@link SinkhornOptions#allowTf32()} does not apply, as TF32
 * rounding (~1e-3) is far above CG's tolerance. Immutable; a bad value raises an
 * IllegalArgumentException naming it.
 *
 * <p>The regularisation trades accuracy for CG iterations where the plan is nearly a permutation
 * (eps small against the spacing of the points, e.g. d = 64 with blur 0.1): the HVP's relative
 * error grows roughly like regularization / (spectral gap of the plan).
 *
 * <p>{@code maxPlanEntries} bounds the plan support kept for CG: the entries of the plan's row
 * softmax of at least 1e-15, found in two streamed passes; when a plan has at most that many
 * (12 bytes each) CG's products read them, O(entries) each, instead of streaming the clouds twice
 * per iteration. Null: 64 (n + m); 0: every product is streamed.
 */
public record HvpOptions(Double cgTol, int cgMaxIters, Double regularization, boolean allowUnconverged,
                         boolean allowTf32, Long maxPlanEntries) {
    public static final int DEFAULT_CG_MAX_ITERS = 1000;

    public HvpOptions {
        if (cgTol != null && !(cgTol > 0 && cgTol < 1)) {
            throw new IllegalArgumentException("cgTol must be in (0, 1) (got " + cgTol + ")");
        }
        if (cgMaxIters < 1) throw new IllegalArgumentException("cgMaxIters must be >= 1 (got " + cgMaxIters + ")");
        if (regularization != null && (!(regularization >= 0) || Double.isInfinite(regularization))) {
            throw new IllegalArgumentException("regularization must be finite and >= 0 (got " + regularization + ")");
        }
        if (maxPlanEntries != null && maxPlanEntries < 0) {
            throw new IllegalArgumentException("maxPlanEntries must be >= 0 (got " + maxPlanEntries + ")");
        }
    }

    public static HvpOptions defaults() {
        return new HvpOptions(null, DEFAULT_CG_MAX_ITERS, null, false, false, null);
    }

    public HvpOptions withCgTol(Double v) { return new HvpOptions(v, cgMaxIters, regularization, allowUnconverged, allowTf32, maxPlanEntries); }
    public HvpOptions withCgMaxIters(int v) { return new HvpOptions(cgTol, v, regularization, allowUnconverged, allowTf32, maxPlanEntries); }
    public HvpOptions withRegularization(Double v) { return new HvpOptions(cgTol, cgMaxIters, v, allowUnconverged, allowTf32, maxPlanEntries); }
    public HvpOptions withAllowUnconverged(boolean v) { return new HvpOptions(cgTol, cgMaxIters, regularization, v, allowTf32, maxPlanEntries); }
    public HvpOptions withAllowTf32(boolean v) { return new HvpOptions(cgTol, cgMaxIters, regularization, allowUnconverged, v, maxPlanEntries); }
    public HvpOptions withMaxPlanEntries(Long v) { return new HvpOptions(cgTol, cgMaxIters, regularization, allowUnconverged, allowTf32, v); }
}
