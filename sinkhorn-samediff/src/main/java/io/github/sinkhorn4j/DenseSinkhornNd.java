package io.github.sinkhorn4j;

import io.github.sinkhorn4j.core.DenseReport;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import java.util.Objects;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Entropic optimal transport on explicit cost matrices in ND4J arrays (eager; for graphs see
 * {@code io.github.sinkhorn4j.samediff.SinkhornOps#denseSinkhorn}): C (N, M) or a batch (B, N, M),
 * weights a and b (null: uniform over the present entries), masks maskA and maskB (null: all
 * present; BOOL, or numeric with nonzero for present). See {@link NdDenseProblem} for the arrays and
 * {@link DenseSinkhornOptions} for the options.
 */
public final class DenseSinkhornNd {
    private DenseSinkhornNd() {}

    /** The cost per item, the potentials, and the plan and gradients as the options ask. */
    public static DenseSinkhornNdResult solve(DenseSinkhornOptions options, INDArray c, INDArray a, INDArray b, INDArray maskA,
                                              INDArray maskB) {
        Objects.requireNonNull(options, "options");
        NdDenseProblem p = NdDenseProblem.of(c, a, b, maskA, maskB);
        DataType type = p.dataType();
        INDArray cost = Nd4j.create(type, p.perItemShape());
        INDArray f = Nd4j.create(type, p.rowsShape()), g = Nd4j.create(type, p.columnsShape());
        INDArray plan = options.plan() || options.gradients() ? Nd4j.create(type, p.costShape()) : null;
        INDArray gradA = options.gradients() ? Nd4j.create(type, p.rowsShape()) : null;
        INDArray gradB = options.gradients() ? Nd4j.create(type, p.columnsShape()) : null;
        DenseReport report = p.solve(options, cost, new NdDenseProblem.Destinations(f, g, plan, gradA, gradB));
        return new DenseSinkhornNdResult(cost, f, g, plan, gradA, gradB, report);
    }
}
