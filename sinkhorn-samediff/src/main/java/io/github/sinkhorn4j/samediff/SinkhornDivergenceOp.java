package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.NdClouds;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;

/**
 * {@code sinkhorn_divergence}: inputs x (n, d) and y (m, d), or batches (B, n, d) and (B, m, d), then
 * the weights a and b when given; outputs
 * <ol start="0">
 * <li>the loss: a scalar, or (B);</li>
 * <li>f_ba (n) and g_ab (m), per problem (B, n) and (B, m);</li>
 * <li>f_aa and g_bb, the self potentials when debiased (else empty arrays);</li>
 * <li>the gradients of the loss with respect to x, y (and a, b when given), only in a gradient
 * function (else empty arrays).</li>
 * </ol>
 * One native call solves and, in a gradient function, also takes the gradients from the solve's last
 * pass (exactly those of {@code Sinkhorn.divergence}); {@link SinkhornDivergenceBpOp} scales them by
 * the incoming gradient. The potentials and gradient outputs are not differentiable: a loss that
 * depends on them is refused when the gradient function is built.
 */
public final class SinkhornDivergenceOp extends SinkhornCustomOp {
    public static final String OP_NAME = "sinkhorn_divergence";
    static final int LOSS = 0, F_BA = 1, G_AB = 2, F_AA = 3, G_BB = 4, GRAD_X = 5, GRAD_Y = 6;
    private static final String WITH_GRADIENTS = "withGradients";

    /** Set on the op of a gradient function by {@link #doDiff}: also output the gradients. */
    private boolean withGradients;

    public SinkhornDivergenceOp() {}

    /** In a graph: a and b may be null (uniform weights). */
    public SinkhornDivergenceOp(SameDiff sameDiff, SDVariable x, SDVariable y, SDVariable a, SDVariable b,
                                SinkhornOptions options) {
        super(sameDiff, cloudArgs(x, y, a, b), options, a != null, b != null);
    }

    /** Eager, through {@code Nd4j.exec}: a and b may be null (uniform weights). */
    public SinkhornDivergenceOp(INDArray x, INDArray y, INDArray a, INDArray b, SinkhornOptions options) {
        super(cloudArrays(x, y, a, b), options, a != null, b != null);
    }

    @Override
    public String opName() {
        return OP_NAME;
    }

    @Override
    public int getNumOutputs() {
        return GRAD_Y + 1 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0);
    }

    private int gradAIndex() {
        return weightsA ? GRAD_Y + 1 : -1;
    }

    private int gradBIndex() {
        return weightsB ? GRAD_Y + 1 + (weightsA ? 1 : 0) : -1;
    }

    @Override
    protected List<LongShapeDescriptor> outputShapes(List<INDArray> in) {
        INDArray x = in.get(0), y = in.get(1);
        checkCloudShapes(x, y);
        DataType type = x.dataType();
        boolean batched = x.rank() == 3;
        long[] xPoints = batched ? new long[] {x.size(0), x.size(1)} : new long[] {x.size(0)};
        long[] yPoints = batched ? new long[] {y.size(0), y.size(1)} : new long[] {y.size(0)};
        LongShapeDescriptor empty = LongShapeDescriptor.empty(type);
        List<LongShapeDescriptor> shapes = new ArrayList<>();
        shapes.add(LongShapeDescriptor.fromShape(batched ? new long[] {x.size(0)} : new long[0], type));
        shapes.add(LongShapeDescriptor.fromShape(xPoints, type));
        shapes.add(LongShapeDescriptor.fromShape(yPoints, type));
        shapes.add(options.debias() ? LongShapeDescriptor.fromShape(xPoints, type) : empty);
        shapes.add(options.debias() ? LongShapeDescriptor.fromShape(yPoints, type) : empty);
        shapes.add(withGradients ? LongShapeDescriptor.fromShape(x.shape(), type) : empty);
        shapes.add(withGradients ? LongShapeDescriptor.fromShape(y.shape(), type) : empty);
        if (weightsA) shapes.add(withGradients ? LongShapeDescriptor.fromShape(xPoints, type) : empty);
        if (weightsB) shapes.add(withGradients ? LongShapeDescriptor.fromShape(yPoints, type) : empty);
        return shapes;
    }

    @Override
    protected void compute(List<INDArray> in, List<INDArray> out) {
        NdClouds clouds = NdClouds.of(in.get(0), in.get(1), weightsA ? in.get(indexOfA()) : null,
                weightsB ? in.get(indexOfB()) : null);
        boolean debias = options.debias();
        clouds.solve(options, out.get(LOSS), new NdClouds.Destinations(
                out.get(F_BA), out.get(G_AB), debias ? out.get(F_AA) : null, debias ? out.get(G_BB) : null,
                withGradients ? out.get(GRAD_X) : null, withGradients ? out.get(GRAD_Y) : null,
                withGradients && weightsA ? out.get(gradAIndex()) : null,
                withGradients && weightsB ? out.get(gradBIndex()) : null));
    }

    /**
     * The gradient with respect to every input: the {@link SinkhornDivergenceBpOp} of this op's
     * potentials and gradients and the loss's incoming gradient.
     */
    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        for (int i = LOSS + 1; i < gradients.size(); i++) {
            if (!isStructuralZero(gradients.get(i))) {
                throw new UnsupportedOperationException(OP_NAME + ": the loss depends on output " + i
                        + " (a potential or a gradient), which is not differentiable; differentiate through the loss output only");
            }
        }
        return List.of(gradients(gradients.get(LOSS)));
    }

    /**
     * Makes this op output its gradients and returns dL/dx, dL/dy, [dL/da], [dL/db] scaled by the
     * loss's incoming gradient, through a new {@link SinkhornDivergenceBpOp}.
     */
    SDVariable[] gradients(SDVariable incoming) {
        withGradients = true;
        SDVariable[] outputs = outputVariables();
        List<SDVariable> bpArgs = new ArrayList<>(List.of(args()).subList(0, cloudInputs()));
        for (int i = F_BA; i < outputs.length; i++) bpArgs.add(outputs[i]);
        bpArgs.add(incoming);
        return new SinkhornDivergenceBpOp(sameDiff, bpArgs.toArray(SDVariable[]::new), options, weightsA, weightsB)
                .outputVariables();
    }

    @Override
    protected void writeProperties(Map<String, Object> properties) {
        properties.put(WITH_GRADIENTS, withGradients);
    }

    @Override
    protected void readProperties(Map<String, Object> properties) {
        withGradients = Boolean.TRUE.equals(properties.remove(WITH_GRADIENTS));
    }

    private static SDVariable[] cloudArgs(SDVariable x, SDVariable y, SDVariable a, SDVariable b) {
        List<SDVariable> args = new ArrayList<>(List.of(x, y));
        if (a != null) args.add(a);
        if (b != null) args.add(b);
        return args.toArray(SDVariable[]::new);
    }

    private static INDArray[] cloudArrays(INDArray x, INDArray y, INDArray a, INDArray b) {
        List<INDArray> args = new ArrayList<>(List.of(x, y));
        if (a != null) args.add(a);
        if (b != null) args.add(b);
        return args.toArray(INDArray[]::new);
    }
}
