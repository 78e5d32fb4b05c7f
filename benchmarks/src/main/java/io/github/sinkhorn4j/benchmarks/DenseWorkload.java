package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.CudaArray;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.DenseOutputs;
import io.github.sinkhorn4j.core.DenseProblem;
import io.github.sinkhorn4j.core.DenseReport;
import io.github.sinkhorn4j.core.DenseSinkhorn;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * The data of one dense configuration in native memory (C copied to CUDA memory with cudaInputs):
 * costs C ~ U(0, 1) (batch x n x m), uniform weights, no masks; and one solve on it (exactly iters
 * iterations, the potentials written out).
 */
final class DenseWorkload implements AutoCloseable {
    /**
     * A PyTorch-style dense log-domain loop reads all of C in each half-iteration: its memory-traffic
     * floor is batch n m (bytes per value) bytes per half-iteration at this bandwidth (an H100's HBM3).
     */
    static final double FLOOR_BANDWIDTH = 3e12;

    private final Arena arena = Arena.ofConfined();
    private final DenseSinkhornOptions options;
    private final DenseProblem problem;
    private final DenseOutputs outputs;
    private final CudaArray cudaC;

    DenseWorkload(RunSpec spec) {
        SplittableRandom random = new SplittableRandom(spec.seed());
        DType t = spec.dtype();
        long count = spec.batch() * spec.n() * spec.m();
        MemorySegment c = arena.allocate(t.bytes() * count, 64);
        for (long i = 0; i < count; i++) {
            if (t == DType.FLOAT32) c.setAtIndex(ValueLayout.JAVA_FLOAT, i, (float) random.nextDouble());
            else c.setAtIndex(ValueLayout.JAVA_DOUBLE, i, random.nextDouble());
        }
        options = spec.denseOptions();
        cudaC = spec.cudaInputs() ? CudaArray.upload(t, c) : null;
        problem = cudaC != null ? DenseProblem.onCuda(spec.batch(), spec.n(), spec.m(), cudaC, null, null, null, null)
                : DenseProblem.of(t, spec.batch(), spec.n(), spec.m(), c, null, null, null, null);
        outputs = DenseOutputs.none().f(arena.allocate(t.bytes() * spec.batch() * spec.n(), 64))
                .g(arena.allocate(t.bytes() * spec.batch() * spec.m(), 64));
    }

    /** The floor of a run in milliseconds: 2 iters half-iterations, each reading C once. */
    static double floorMs(RunSpec spec) {
        double bytes = (double) spec.batch() * spec.n() * spec.m() * spec.dtype().bytes();
        return 2.0 * spec.iters() * bytes / FLOOR_BANDWIDTH * 1e3;
    }

    DenseReport run() {
        return DenseSinkhorn.solve(options, problem, outputs);
    }

    @Override
    public void close() {
        if (cudaC != null) cudaC.close();
        arena.close();
    }
}
