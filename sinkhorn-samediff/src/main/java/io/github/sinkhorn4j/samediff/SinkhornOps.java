package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Objects;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The Sinkhorn divergence in SameDiff graphs, in the style of {@code sd.loss()}: x (n, d) and y
 * (m, d), or batches (B, n, d) and (B, m, d) giving B losses; optional weights a (n) / (B, n) and b
 * (m) / (B, m); FLOAT or DOUBLE. Like {@code sd.loss()} ops, the result is marked as a loss variable:
 * when it is one term of a larger loss, set the graph's loss variables to that total
 * ({@code sd.setLossVariables(total)}). Gradients ({@code sd.calculateGradients}, {@code sd.grad},
 * training through a {@code TrainingConfig}) come from {@link SinkhornDivergenceBpOp}; the ops need no
 * setup (docs/design.md, "How SameDiff reaches sinkhorn4j").
 */
public final class SinkhornOps {
    private SinkhornOps() {}

    /** The divergence between uniform clouds x and y. */
    public static SDVariable divergence(SameDiff sd, String name, SDVariable x, SDVariable y, SinkhornOptions options) {
        return divergence(sd, name, null, x, null, y, options);
    }

    /** The divergence between clouds x and y weighted by a and b (either may be null: uniform). */
    public static SDVariable divergence(SameDiff sd, String name, SDVariable a, SDVariable x, SDVariable b, SDVariable y,
                                        SinkhornOptions options) {
        return divergenceWithPotentials(sd, name, a, x, b, y, options).loss();
    }

    /**
     * The divergence and the potentials, named {@code name} and {@code name + "/f_ba"},
     * {@code "/g_ab"}, {@code "/f_aa"}, {@code "/g_bb"} (a null name lets SameDiff choose).
     */
    public static SinkhornDivergenceVariables divergenceWithPotentials(SameDiff sd, String name, SDVariable a, SDVariable x,
                                                                       SDVariable b, SDVariable y, SinkhornOptions options) {
        Objects.requireNonNull(sd, "sd");
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        Objects.requireNonNull(options, "options");
        SDVariable[] out = new SinkhornDivergenceOp(sd, x, y, a, b, options).outputVariables();
        SDVariable loss = out[SinkhornDivergenceOp.LOSS];
        loss.markAsLoss();
        if (name != null) {
            loss = sd.updateVariableNameAndReference(loss, name);
            out[SinkhornDivergenceOp.F_BA] = sd.updateVariableNameAndReference(out[SinkhornDivergenceOp.F_BA], name + "/f_ba");
            out[SinkhornDivergenceOp.G_AB] = sd.updateVariableNameAndReference(out[SinkhornDivergenceOp.G_AB], name + "/g_ab");
            out[SinkhornDivergenceOp.F_AA] = sd.updateVariableNameAndReference(out[SinkhornDivergenceOp.F_AA], name + "/f_aa");
            out[SinkhornDivergenceOp.G_BB] = sd.updateVariableNameAndReference(out[SinkhornDivergenceOp.G_BB], name + "/g_bb");
        }
        return new SinkhornDivergenceVariables(loss, out[SinkhornDivergenceOp.F_BA], out[SinkhornDivergenceOp.G_AB],
                out[SinkhornDivergenceOp.F_AA], out[SinkhornDivergenceOp.G_BB]);
    }

    /**
     * The divergence and its gradients dL/dx, dL/dy (and dL/da, dL/db for the weights given) as graph
     * variables, named {@code name}, {@code name + "/grad_x"}, ... The loss is not marked as a loss
     * variable. A loss built from the gradients differentiates into Hessian-vector products
     * ({@link SinkhornDivergenceHvpOp}): d/dx of sum(dL/dx * v) is H_xx v.
     */
    public static SinkhornDivergenceGradients divergenceAndGradients(SameDiff sd, String name, SDVariable a, SDVariable x,
                                                                     SDVariable b, SDVariable y, SinkhornOptions options) {
        Objects.requireNonNull(sd, "sd");
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        Objects.requireNonNull(options, "options");
        SinkhornDivergenceOp op = new SinkhornDivergenceOp(sd, x, y, a, b, options);
        SDVariable loss = op.outputVariables()[SinkhornDivergenceOp.LOSS];
        SDVariable[] g = op.gradients(sd.constant(Nd4j.scalar(x.dataType(), 1.0)));
        SDVariable gradA = a != null ? g[2] : null, gradB = b != null ? g[a != null ? 3 : 2] : null;
        if (name != null) {
            loss = sd.updateVariableNameAndReference(loss, name);
            g[0] = sd.updateVariableNameAndReference(g[0], name + "/grad_x");
            g[1] = sd.updateVariableNameAndReference(g[1], name + "/grad_y");
            if (gradA != null) gradA = sd.updateVariableNameAndReference(gradA, name + "/grad_a");
            if (gradB != null) gradB = sd.updateVariableNameAndReference(gradB, name + "/grad_b");
        }
        return new SinkhornDivergenceGradients(loss, g[0], g[1], gradA, gradB);
    }

    /**
     * Entropic OT on explicit costs c (N, M) or (B, N, M), computed by other ops or given, with
     * weights a and b (null: uniform over the present entries): the cost, a scalar or (B), marked as a
     * loss variable. Gradients reach c, a and b ({@link DenseSinkhornBpOp}).
     */
    public static SDVariable denseSinkhorn(SameDiff sd, String name, SDVariable c, SDVariable a, SDVariable b,
                                           DenseSinkhornOptions options) {
        return denseSinkhorn(sd, name, c, a, b, null, null, options).cost();
    }

    /**
     * The same with masks maskA (N) / (B, N) and maskB (M) / (B, M) for variable lengths (BOOL or
     * numeric, nonzero for present; null: all present), and the potentials, named {@code name},
     * {@code name + "/f"} and {@code name + "/g"} (a null name lets SameDiff choose).
     */
    public static DenseSinkhornVariables denseSinkhorn(SameDiff sd, String name, SDVariable c, SDVariable a, SDVariable b,
                                                       SDVariable maskA, SDVariable maskB, DenseSinkhornOptions options) {
        Objects.requireNonNull(sd, "sd");
        Objects.requireNonNull(c, "C");
        Objects.requireNonNull(options, "options");
        SDVariable[] out = new DenseSinkhornOp(sd, c, a, b, maskA, maskB, options).outputVariables();
        SDVariable cost = out[DenseSinkhornOp.COST], f = out[DenseSinkhornOp.F], g = out[DenseSinkhornOp.G];
        cost.markAsLoss();
        if (name != null) {
            cost = sd.updateVariableNameAndReference(cost, name);
            f = sd.updateVariableNameAndReference(f, name + "/f");
            g = sd.updateVariableNameAndReference(g, name + "/g");
        }
        return new DenseSinkhornVariables(cost, f, g);
    }

    /** Eager: the divergence between uniform clouds, a scalar or (B), run through the op. */
    public static INDArray divergence(INDArray x, INDArray y, SinkhornOptions options) {
        return divergence(null, x, null, y, options);
    }

    /** Eager: the divergence between weighted clouds (null weights: uniform), run through the op. */
    public static INDArray divergence(INDArray a, INDArray x, INDArray b, INDArray y, SinkhornOptions options) {
        Objects.requireNonNull(x, "x");
        Objects.requireNonNull(y, "y");
        Objects.requireNonNull(options, "options");
        return Nd4j.exec(new SinkhornDivergenceOp(x, y, a, b, options))[SinkhornDivergenceOp.LOSS];
    }
}
