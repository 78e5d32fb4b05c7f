package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Outputs;
import io.github.sinkhorn4j.core.Report;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

/**
 * The data of one configuration in native memory, generated as in the anchors (x, y ~ N(0, I_d);
 * weights U(0, 1) + 0.1, normalised), and one call of the protocol on it. Native segments go to the
 * library as they are, so a call copies nothing on the Java side.
 */
final class Workload implements AutoCloseable {
    private final Arena arena = Arena.ofConfined();
    private final SinkhornOptions options;
    private final Clouds clouds;
    private final Outputs outputs;

    Workload(RunSpec spec) {
        SplittableRandom random = new SplittableRandom(spec.seed());
        DType t = spec.dtype();
        MemorySegment x = gaussian(t, spec.n() * spec.d(), random);
        MemorySegment y = gaussian(t, spec.m() * spec.d(), random);
        MemorySegment a = weights(t, spec.n(), random);
        MemorySegment b = weights(t, spec.m(), random);
        options = spec.options();
        clouds = Clouds.of(t, spec.n(), spec.m(), spec.d(), x, y, a, b);
        outputs = spec.protocol() == Protocol.FORWARD ? Outputs.none()
                : Outputs.none().gradX(arena.allocate(t.bytes() * spec.n() * spec.d(), 64));
    }

    /** One synchronous solve: the value, and the gradient w.r.t. x where the protocol asks for it. */
    Report run() {
        return Sinkhorn.divergence(options, clouds, outputs);
    }

    @Override
    public void close() {
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
