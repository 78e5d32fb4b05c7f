package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.CudaArray;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.HvpOptions;
import io.github.sinkhorn4j.core.HvpReport;
import io.github.sinkhorn4j.core.Outputs;
import io.github.sinkhorn4j.core.Potentials;
import io.github.sinkhorn4j.core.Report;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Wrt;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * The data of one configuration in native memory (the clouds copied to CUDA memory with cudaInputs),
 * generated as in the anchors (x, y ~ N(0, I_d);
 * weights U(0, 1) + 0.1, normalised; for hvp a direction v ~ N(0, I)), and one call of the protocol
 * on it. Native segments go to the library as they are, so a call copies nothing on the Java side.
 */
final class Workload implements AutoCloseable {
    /** What one call returns: the solve's report, and the Hessian-vector product's for hvp. */
    record Result(Report solve, HvpReport hvp) {}


    static final int HVP_CG_MAX_ITERS = 300;

    private final Arena arena = Arena.ofConfined();
    private final SinkhornOptions options;
    private final HvpOptions hvpOptions;
    private final Clouds clouds;
    private final Outputs outputs;
    private final Potentials potentials;
    private final MemorySegment direction;
    private final MemorySegment product;
    private final CudaArray cudaX;
    private final CudaArray cudaY;

    Workload(RunSpec spec) {
        SplittableRandom random = new SplittableRandom(spec.seed());
        DType t = spec.dtype();
        MemorySegment x = gaussian(t, spec.n() * spec.d(), random);
        MemorySegment y = gaussian(t, spec.m() * spec.d(), random);
        MemorySegment a = weights(t, spec.n(), random);
        MemorySegment b = weights(t, spec.m(), random);
        options = spec.options();
        // CG misses are reported (cg_converged false) rather than raised, so that the run is still timed;
        // CG stops after 300 iterations, FlashSinkhorn's default (max_cg_iter) under this protocol. The
        // HVP's products stay strict float32 whatever --tf32 says: CG on TF32-rounded products diverges
        // where the plan is nearly a permutation (this protocol's blur 0.1 at d = 64).
        hvpOptions = HvpOptions.defaults().withAllowUnconverged(true).withCgMaxIters(HVP_CG_MAX_ITERS);
        if (spec.cudaInputs()) {
            cudaX = CudaArray.upload(t, x);
            cudaY = CudaArray.upload(t, y);
            clouds = Clouds.onCuda(spec.n(), spec.m(), spec.d(), cudaX, cudaY, a, b);
        } else {
            cudaX = cudaY = null;
            clouds = Clouds.of(t, spec.n(), spec.m(), spec.d(), x, y, a, b);
        }
        long gradient = spec.n() * spec.d();
        if (spec.protocol() == Protocol.HVP) {
            // Not debiased: H v needs the potentials of the (x, y) problem only.
            potentials = new Potentials(arena.allocate(t.bytes() * spec.n(), 64), arena.allocate(t.bytes() * spec.m(), 64),
                    null, null);
            direction = gaussian(t, gradient, random);
            product = arena.allocate(t.bytes() * gradient, 64);
            outputs = Outputs.none().gradX(arena.allocate(t.bytes() * gradient, 64)).fBa(potentials.fBa()).gAb(potentials.gAb());
        } else {
            potentials = null;
            direction = product = null;
            outputs = spec.protocol() == Protocol.FORWARD ? Outputs.none()
                    : Outputs.none().gradX(arena.allocate(t.bytes() * gradient, 64));
        }
    }

    /**
     * One synchronous run of the protocol: the value (forward); the value and the gradient w.r.t. x
     * (loss+grad); the value, the gradient and H v w.r.t. x at the solve's potentials (hvp).
     */
    Result run() {
        Report solve = Sinkhorn.divergence(options, clouds, outputs);
        if (potentials == null) return new Result(solve, null);
        return new Result(solve, Sinkhorn.hvp(options, hvpOptions, clouds, potentials, Wrt.X, direction, product));
    }

    @Override
    public void close() {
        if (cudaX != null) cudaX.close();
        if (cudaY != null) cudaY.close();
        arena.close();
    }

    private MemorySegment gaussian(DType t, long count, SplittableRandom random) {
        MemorySegment s = arena.allocate(t.bytes() * count, 64);
        for (long i = 0; i < count; i++) set(t, s, i, random.nextGaussian());
        return s;
    }

    private MemorySegment weights(DType t, long count, SplittableRandom random) {
        double[] w = new double[Math.toIntExact(count)];
        double sum = 0;
        for (int i = 0; i < w.length; i++) sum += w[i] = random.nextDouble() + 0.1;
        MemorySegment s = arena.allocate(t.bytes() * count, 64);
        for (int i = 0; i < w.length; i++) set(t, s, i, w[i] / sum);
        return s;
    }

    private static void set(DType t, MemorySegment s, long i, double v) {
        if (t == DType.FLOAT32) s.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) v);
        else s.setAtIndex(ValueLayout.JAVA_DOUBLE, i, v);
    }
}
