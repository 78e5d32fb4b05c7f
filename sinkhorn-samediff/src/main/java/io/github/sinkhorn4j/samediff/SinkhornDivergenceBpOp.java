package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.ArrayList;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;

/**
 * {@code sinkhorn_divergence_bp}, the gradient of {@code sinkhorn_divergence}: inputs x, y, [a], [b]
 * (as the forward op), the forward op's potentials f_ba, g_ab, f_aa, g_bb and its gradients of the
 * loss with respect to x, y, [a], [b], then the incoming gradient of the loss (a scalar, or (B));
 * outputs dL/dx, dL/dy, [dL/da], [dL/db]: the forward's gradients of each problem times the incoming
 * gradient of that problem. No backpropagation through the iterations (Danskin; docs/math.md).
 *
 * <p>Its own derivative ({@link #doDiff}, double backward) is the Hessian-vector product of
 * {@link SinkhornDivergenceHvpOp} at the forward's potentials.
 */
public final class SinkhornDivergenceBpOp extends SinkhornCustomOp {
    public static final String OP_NAME = "sinkhorn_divergence_bp";

    public SinkhornDivergenceBpOp() {}

    SinkhornDivergenceBpOp(SameDiff sameDiff, SDVariable[] args, SinkhornOptions options, boolean weightsA,
                           boolean weightsB) {
        super(sameDiff, args, options, weightsA, weightsB);
    }

    @Override
    public String opName() {
        return OP_NAME;
    }

    /** One gradient per cloud input. */
    @Override
    public int getNumOutputs() {
        return cloudInputs();
    }

    private int forwardGradientsIndex() {
        return cloudInputs() + 4;
    }

    private int incomingIndex() {
        return forwardGradientsIndex() + cloudInputs();
    }

    @Override
    protected List<LongShapeDescriptor> outputShapes(List<INDArray> in) {
        List<LongShapeDescriptor> shapes = new ArrayList<>();
        for (int i = 0; i < cloudInputs(); i++) shapes.add(LongShapeDescriptor.fromShape(in.get(i).shape(), in.get(0).dataType()));
        return shapes;
    }

    @Override
    protected void compute(List<INDArray> in, List<INDArray> out) {
        INDArray incoming = in.get(incomingIndex());
        boolean batched = in.get(0).rank() == 3;
        for (int i = 0; i < cloudInputs(); i++) {
            INDArray forward = in.get(forwardGradientsIndex() + i);
            if (forward.isEmpty()) {
                throw new IllegalStateException(OP_NAME + ": the forward op produced no gradients (it was not asked for them)");
            }
            scaleByItem(out.get(i), forward, incoming, batched);
        }
    }

    /**
     * Double backward. With v the incoming gradients of dL/dx and dL/dy and g the loss's incoming
     * gradient, x receives g H_xx v_x, y receives g H_yy v_y and g receives v_x . G_x + v_y . G_y per
     * problem (G the forward's gradients), all from one {@link SinkhornDivergenceHvpOp}; the
     * potentials and the forward's gradients receive zero, as the HVP already differentiates through
     * them (implicit differentiation). The cross blocks H_xy and the blocks of the weights are not
     * computed: a graph that needs them is refused here, when the gradient function is built.
     */
    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        SDVariable[] args = args();
        SDVariable x = args[0], y = args[1];
        SDVariable vx = gradients.get(0), vy = gradients.get(1);
        boolean zeroX = isStructuralZero(vx), zeroY = isStructuralZero(vy);
        boolean needX = mayNeedGradient(x), needY = mayNeedGradient(y);
        if ((needX && !zeroY) || (needY && !zeroX)) {
            throw new UnsupportedOperationException(OP_NAME + ": this second derivative needs the cross Hessian block "
                    + "d2L/dxdy, which sinkhorn4j does not compute (only d2L/dx2 and d2L/dy2); keep one of x and y constant "
                    + "or make the second-order loss depend on one of dL/dx and dL/dy");
        }
        for (int i = 2; i < cloudInputs(); i++) {
            if (mayNeedGradient(args[i]) || !isStructuralZero(gradients.get(i))) {
                throw new UnsupportedOperationException(OP_NAME + ": second derivatives involving the weights are not computed; "
                        + "make the weights constants or placeholders and keep dL/da, dL/db out of the second-order loss");
            }
        }
        List<SDVariable> hvpArgs = new ArrayList<>(List.of(args).subList(0, cloudInputs() + 4));
        hvpArgs.add(args[forwardGradientsIndex()]);
        hvpArgs.add(args[forwardGradientsIndex() + 1]);
        hvpArgs.add(args[incomingIndex()]);
        hvpArgs.add(vx);
        hvpArgs.add(vy);
        SDVariable[] hvp = new SinkhornDivergenceHvpOp(sameDiff, hvpArgs.toArray(SDVariable[]::new), options,
                weightsA, weightsB, needX && !zeroX, needY && !zeroY).outputVariables();

        List<SDVariable> result = new ArrayList<>(List.of(hvp[0], hvp[1]));
        for (int i = 2; i < incomingIndex(); i++) result.add(sameDiff.zerosLike(args[i]));
        result.add(hvp[2]);
        return result;
    }
}
