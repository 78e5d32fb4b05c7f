package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;

/**
 * One measured configuration. {@code iters} and {@code eps} apply to the forward and dense
 * protocols, {@code blur} and {@code scaling} to the others; {@code batch} (items of n x m costs) to
 * the dense protocol, which has no d. {@code cudaInputs}: the clouds (the dense protocol's C) are in CUDA
 * device memory when a call starts (the anchors' protocol: tensors on the GPU), else in host memory.
 */
record RunSpec(Protocol protocol, Device device, long batch, long n, long m, long d, int iters, double eps, double blur,
               double scaling, Solver solver, DType dtype, int reps, int warmup, boolean tf32, long seed,
               boolean cudaInputs) {

    static final int DEFAULT_ITERS = 100;
    static final double DEFAULT_EPS = 0.1;

    RunSpec {
        if (device == Device.AUTO) throw new IllegalArgumentException("--device must be cpu or cuda");
        positive("--batch", batch);
        positive("--n", n);
        positive("--m", m);
        positive("--d", d);
        positive("--iters", iters);
        positive("--reps", reps);
        if (warmup < 0) throw new IllegalArgumentException("--warmup must be >= 0 (got " + warmup + ")");
        if (!(eps > 0)) throw new IllegalArgumentException("--eps must be > 0 (got " + eps + ")");
        if (!(blur > 0)) throw new IllegalArgumentException("--blur must be > 0 (got " + blur + ")");
        if (!(scaling > 0 && scaling < 1)) throw new IllegalArgumentException("--scaling must be in (0, 1) (got " + scaling + ")");
        if (cudaInputs && !cudaInputsPossible(protocol, device)) {
            throw new IllegalArgumentException("--inputs cuda needs --device cuda and the forward, loss+grad or dense protocol");
        }
    }

    /** Whether a call of this protocol can take its clouds (or C) in CUDA memory (its solve reads them there only). */
    static boolean cudaInputsPossible(Protocol protocol, Device device) {
        return device == Device.CUDA && protocol != Protocol.HVP;
    }

    private static void positive(String name, long v) {
        if (v < 1) throw new IllegalArgumentException(name + " must be >= 1 (got " + v + ")");
    }

    /** The solver options of this protocol. */
    SinkhornOptions options() {
        SinkhornOptions.Builder b = SinkhornOptions.builder().solver(solver).device(device).allowTf32(tf32);
        return switch (protocol) {
            case FORWARD -> b.eps(eps).nIters(iters).debias(false).halfCost(false).lastExtrapolation(false).build();
            case LOSS_AND_GRAD -> b.blur(blur).scaling(scaling).debias(true).halfCost(true).build();
            case HVP -> b.blur(blur).scaling(scaling).debias(false).halfCost(true).build();
            case DENSE -> throw new IllegalStateException("the dense protocol runs the dense solver: see denseOptions()");
        };
    }

    /** The dense protocol's options: exactly iters iterations at eps (no threshold). */
    DenseSinkhornOptions denseOptions() {
        return DenseSinkhornOptions.builder().eps(eps).maxIters(iters).threshold(0).device(device).build();
    }
}
