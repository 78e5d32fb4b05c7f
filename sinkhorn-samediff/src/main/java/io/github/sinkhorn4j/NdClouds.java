package io.github.sinkhorn4j;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Outputs;
import io.github.sinkhorn4j.core.Report;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.concurrency.AffinityManager;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.Shape;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Point clouds held in ND4J arrays, handed to the native library without copies: x (n, d) and y
 * (m, d), or a batch x (B, n, d) and y (B, m, d) of B problems of equal sizes, with optional weights
 * a (n) / (B, n) and b (m) / (B, m), all FLOAT or all DOUBLE. A c-ordered array is passed by the
 * address of its first element (its buffer offset respected); any other layout is copied to a
 * c-ordered array first. Used by {@link SinkhornLoss} and the SameDiff ops.
 */
public final class NdClouds {
    private final INDArray x, y, a, b;
    private final boolean batched;
    private final long batch, n, m, d;
    private final Clouds clouds;

    private NdClouds(INDArray x, INDArray y, INDArray a, INDArray b) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        DataType type = x.dataType();
        if (type != DataType.FLOAT && type != DataType.DOUBLE) {
            throw new IllegalArgumentException("x must be FLOAT or DOUBLE (got " + type + ")");
        }
        requireType("y", y, type, "x");
        if (x.rank() != 2 && x.rank() != 3) {
            throw new IllegalArgumentException("x must have shape (n, d) or (B, n, d) (got " + shapeOf(x) + ")");
        }
        if (y.rank() != x.rank()) {
            throw new IllegalArgumentException("y must have the rank of x (" + x.rank() + ", got shape " + shapeOf(y) + ")");
        }
        batched = x.rank() == 3;
        batch = batched ? x.size(0) : 1;
        if (batched && y.size(0) != batch) {
            throw new IllegalArgumentException("x and y must hold the same number of problems (" + batch + " vs " + y.size(0) + ")");
        }
        n = x.size(-2);
        m = y.size(-2);
        d = x.size(-1);
        if (batch < 1) throw new IllegalArgumentException("the batch must hold at least one problem");
        if (n < 1) throw new IllegalArgumentException("x must hold at least one point (empty cloud)");
        if (m < 1) throw new IllegalArgumentException("y must hold at least one point (empty cloud)");
        if (y.size(-1) != d) throw new IllegalArgumentException("x and y must have the same dimension d (" + d + " vs " + y.size(-1) + ")");
        if (a != null) requireWeights("a", a, type, n);
        if (b != null) requireWeights("b", b, type, m);
        this.x = hostContiguous(x);
        this.y = hostContiguous(y);
        this.a = a == null ? null : hostContiguous(a);
        this.b = b == null ? null : hostContiguous(b);
        DType dtype = type == DataType.FLOAT ? DType.FLOAT32 : DType.FLOAT64;
        MemorySegment sa = this.a == null ? null : segment(this.a), sb = this.b == null ? null : segment(this.b);
        clouds = batched
                ? Clouds.batched(dtype, offsets(batch, n), offsets(batch, m), d, segment(this.x), segment(this.y), sa, sb)
                : Clouds.of(dtype, n, m, d, segment(this.x), segment(this.y), sa, sb);
    }

    /** Clouds x and y with optional weights a and b (null: uniform per problem). */
    public static NdClouds of(INDArray x, INDArray y, INDArray a, INDArray b) {
        return new NdClouds(x, y, a, b);
    }

    public Clouds clouds() { return clouds; }
    public DataType dataType() { return x.dataType(); }
    public boolean batched() { return batched; }
    public long batch() { return batch; }
    public long n() { return n; }
    public long m() { return m; }
    public long d() { return d; }
    public INDArray x() { return x; }
    public INDArray y() { return y; }
    public INDArray a() { return a; }
    public INDArray b() { return b; }

    /** Shape of one value per problem: a scalar, or (B). */
    public long[] perProblemShape() {
        return batched ? new long[] {batch} : new long[0];
    }

    /** Shape of one value per point of x: (n) or (B, n). */
    public long[] xPointsShape() {
        return batched ? new long[] {batch, n} : new long[] {n};
    }

    /** Shape of one value per point of y: (m) or (B, m). */
    public long[] yPointsShape() {
        return batched ? new long[] {batch, m} : new long[] {m};
    }

    public long[] xShape() { return x.shape(); }
    public long[] yShape() { return y.shape(); }

    /**
     * One native solve writing into the given arrays (null: not asked for): the loss per problem, the
     * potentials and the gradients, shaped as {@link #perProblemShape()}, {@link #xPointsShape()},
     * {@link #yPointsShape()}, x and y.
     */
    public Report solve(SinkhornOptions options, INDArray loss, Destinations out) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(out, "out");
        List<Writable> writes = new ArrayList<>();
        Outputs outputs = Outputs.none()
                .fBa(writable(out.fBa(), writes)).gAb(writable(out.gAb(), writes))
                .fAa(writable(out.fAa(), writes)).gBb(writable(out.gBb(), writes))
                .gradX(writable(out.gradX(), writes)).gradY(writable(out.gradY(), writes))
                .gradA(writable(out.gradA(), writes)).gradB(writable(out.gradB(), writes));
        Report report;
        try {
            report = Sinkhorn.divergence(options, clouds, outputs);
        } finally {
            // The segments point into these arrays' memory: keep them alive through the native call.
            Reference.reachabilityFence(this);
            Reference.reachabilityFence(writes);
        }
        for (Writable w : writes) w.finish();
        if (loss != null) {
            for (int k = 0; k < report.loss().length; k++) loss.putScalar(k, report.loss()[k]);
        }
        return report;
    }

    /** Where a solve writes; every array optional. */
    public record Destinations(INDArray fBa, INDArray gAb, INDArray fAa, INDArray gBb,
                               INDArray gradX, INDArray gradY, INDArray gradA, INDArray gradB) {}

    /** The array itself when c-ordered and contiguous, else a c-ordered copy; in host memory. */
    public static INDArray hostContiguous(INDArray array) {
        INDArray c = array.ordering() == 'c' && Shape.hasDefaultStridesForShape(array) ? array : array.dup('c');
        Nd4j.getAffinityManager().ensureLocation(c, AffinityManager.Location.HOST);
        return c;
    }

    /** The memory of a contiguous c-ordered array, from its first element. */
    public static MemorySegment segment(INDArray contiguous) {
        long width = contiguous.dataType().width();
        return MemorySegment.ofAddress(contiguous.data().address() + contiguous.offset() * width)
                .reinterpret(contiguous.length() * width);
    }

    static MemorySegment writable(INDArray target, List<Writable> writes) {
        if (target == null) return null;
        Writable w = new Writable(target);
        writes.add(w);
        return segment(w.memory);
    }

    /** An output array, or a contiguous scratch array assigned to it after the call. */
    static final class Writable {
        final INDArray target, memory;

        Writable(INDArray target) {
            this.target = target;
            this.memory = target.ordering() == 'c' && Shape.hasDefaultStridesForShape(target)
                    ? target : Nd4j.create(target.dataType(), target.shape());
        }

        void finish() {
            // Written on the host: tells a device backend that its copy is stale.
            Nd4j.getAffinityManager().tagLocation(memory, AffinityManager.Location.HOST);
            if (memory != target) target.assign(memory);
        }
    }

    private void requireWeights(String name, INDArray w, DataType type, long rows) {
        requireType(name, w, type, "x");
        long[] expected = batched ? new long[] {batch, rows} : new long[] {rows};
        if (!java.util.Arrays.equals(w.shape(), expected)) {
            throw new IllegalArgumentException(name + " must have shape " + java.util.Arrays.toString(expected)
                    + " (got " + shapeOf(w) + ")");
        }
    }

    /** The array, named `name`, has the type of the array named `reference`. */
    static void requireType(String name, INDArray array, DataType type, String reference) {
        Objects.requireNonNull(array, name);
        if (array.dataType() != type) {
            throw new IllegalArgumentException(name + " has data type " + array.dataType() + ", " + reference + " has " + type
                    + ": all arrays must share one floating-point type");
        }
    }

    static String shapeOf(INDArray array) {
        return java.util.Arrays.toString(array.shape());
    }

    private static long[] offsets(long batch, long rows) {
        long[] o = new long[(int) batch + 1];
        for (int k = 0; k <= batch; k++) o[k] = k * rows;
        return o;
    }
}
