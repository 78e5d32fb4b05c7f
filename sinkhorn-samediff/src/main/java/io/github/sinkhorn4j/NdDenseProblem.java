package io.github.sinkhorn4j;

import static io.github.sinkhorn4j.NdClouds.hostContiguous;
import static io.github.sinkhorn4j.NdClouds.segment;
import static io.github.sinkhorn4j.NdClouds.shapeOf;

import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.DenseOutputs;
import io.github.sinkhorn4j.core.DenseProblem;
import io.github.sinkhorn4j.core.DenseReport;
import io.github.sinkhorn4j.core.DenseSinkhorn;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Dense problems held in ND4J arrays, handed to the native library without copies: costs C (N, M)
 * or a batch (B, N, M), optional weights a (N) / (B, N) and b (M) / (B, M) of C's type (FLOAT or
 * DOUBLE), and optional masks of the same shapes, BOOL (or numeric: nonzero is present, converted
 * to BOOL). c-ordered arrays are passed by address, others copied to c-order first. Used by
 * {@link DenseSinkhornNd} and the SameDiff ops.
 */
public final class NdDenseProblem {
    private final INDArray c, a, b, maskA, maskB;
    private final boolean batched;
    private final long batch, n, m;
    private final DenseProblem problem;

    private NdDenseProblem(INDArray c, INDArray a, INDArray b, INDArray maskA, INDArray maskB) {
        Objects.requireNonNull(c, "C");
        DataType type = c.dataType();
        if (type != DataType.FLOAT && type != DataType.DOUBLE) {
            throw new IllegalArgumentException("C must be FLOAT or DOUBLE (got " + type + ")");
        }
        if (c.rank() != 2 && c.rank() != 3) {
            throw new IllegalArgumentException("C must have shape (N, M) or (B, N, M) (got " + shapeOf(c) + ")");
        }
        if (c.isEmpty()) throw new IllegalArgumentException("C must not be empty (got shape " + shapeOf(c) + ")");
        batched = c.rank() == 3;
        batch = batched ? c.size(0) : 1;
        n = c.size(-2);
        m = c.size(-1);
        if (a != null) NdClouds.requireType("a", a, type, "C");
        if (b != null) NdClouds.requireType("b", b, type, "C");
        requireShape("a", a, n);
        requireShape("b", b, m);
        requireShape("maskA", maskA, n);
        requireShape("maskB", maskB, m);
        this.c = hostContiguous(c);
        this.a = a == null ? null : hostContiguous(a);
        this.b = b == null ? null : hostContiguous(b);
        this.maskA = maskA == null ? null : hostContiguous(asBool(maskA));
        this.maskB = maskB == null ? null : hostContiguous(asBool(maskB));
        problem = DenseProblem.of(type == DataType.FLOAT ? DType.FLOAT32 : DType.FLOAT64, batch, n, m, segment(this.c),
                this.a == null ? null : segment(this.a), this.b == null ? null : segment(this.b),
                this.maskA == null ? null : segment(this.maskA), this.maskB == null ? null : segment(this.maskB));
    }

    /** Costs c with optional weights and masks (null: uniform over the present entries, all present). */
    public static NdDenseProblem of(INDArray c, INDArray a, INDArray b, INDArray maskA, INDArray maskB) {
        return new NdDenseProblem(c, a, b, maskA, maskB);
    }

    public DenseProblem problem() { return problem; }
    public DataType dataType() { return c.dataType(); }
    public boolean batched() { return batched; }
    public long batch() { return batch; }
    public long n() { return n; }
    public long m() { return m; }

    /** One value per item: a scalar, or (B). */
    public long[] perItemShape() {
        return batched ? new long[] {batch} : new long[0];
    }

    /** One value per row of C: (N) or (B, N). */
    public long[] rowsShape() {
        return batched ? new long[] {batch, n} : new long[] {n};
    }

    /** One value per column of C: (M) or (B, M). */
    public long[] columnsShape() {
        return batched ? new long[] {batch, m} : new long[] {m};
    }

    public long[] costShape() {
        return c.shape();
    }

    /**
     * One native solve writing into the given arrays (null: not asked for): the cost per item, shaped
     * as {@link #perItemShape()}, and the destinations.
     */
    public DenseReport solve(DenseSinkhornOptions options, INDArray cost, Destinations out) {
        Objects.requireNonNull(options, "options");
        Objects.requireNonNull(out, "out");
        List<NdClouds.Writable> writes = new ArrayList<>();
        DenseOutputs outputs = DenseOutputs.none()
                .f(NdClouds.writable(out.f(), writes)).g(NdClouds.writable(out.g(), writes))
                .plan(NdClouds.writable(out.plan(), writes))
                .gradA(NdClouds.writable(out.gradA(), writes)).gradB(NdClouds.writable(out.gradB(), writes));
        DenseReport report;
        try {
            report = DenseSinkhorn.solve(options, problem, outputs);
        } finally {
            // The segments point into these arrays' memory: keep them alive through the native call.
            Reference.reachabilityFence(this);
            Reference.reachabilityFence(writes);
        }
        for (NdClouds.Writable w : writes) w.finish();
        if (cost != null) {
            for (int k = 0; k < report.cost().length; k++) cost.putScalar(k, report.cost()[k]);
        }
        return report;
    }

    /** Where a solve writes; every array optional. plan is also dcost/dC. */
    public record Destinations(INDArray f, INDArray g, INDArray plan, INDArray gradA, INDArray gradB) {}

    private void requireShape(String name, INDArray array, long length) {
        if (array == null) return;
        long[] expected = batched ? new long[] {batch, length} : new long[] {length};
        if (!Arrays.equals(array.shape(), expected)) {
            throw new IllegalArgumentException(name + " must have shape " + Arrays.toString(expected) + " (got " + shapeOf(array) + ")");
        }
    }

    private static INDArray asBool(INDArray mask) {
        return mask.dataType() == DataType.BOOL ? mask : mask.castTo(DataType.BOOL);
    }
}
