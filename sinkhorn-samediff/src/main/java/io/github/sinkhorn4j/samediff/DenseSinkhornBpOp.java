package io.github.sinkhorn4j.samediff;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;

/**
 * {@code dense_sinkhorn_bp}, the gradient of {@code dense_sinkhorn}: inputs the forward op's
 * gradients of the cost with respect to C, [a], [b], then the incoming gradient of the cost (a
 * scalar, or (B)); outputs dL/dC, [dL/da], [dL/db]: each item's gradients times its incoming
 * gradient. No backpropagation through the iterations (the envelope theorem; docs/math.md), and no
 * second derivatives.
 */
public final class DenseSinkhornBpOp extends RoutedOp {
    public static final String OP_NAME = "dense_sinkhorn_bp";
    private static final String WEIGHTS_A = "weightsA", WEIGHTS_B = "weightsB";

    private boolean weightsA, weightsB;

    public DenseSinkhornBpOp() {}

    DenseSinkhornBpOp(SameDiff sameDiff, SDVariable[] args, boolean weightsA, boolean weightsB) {
        super(sameDiff, args);
        this.weightsA = weightsA;
        this.weightsB = weightsB;
    }

    @Override
    public String opName() {
        return OP_NAME;
    }

    /** One gradient per differentiable input of the forward op: C and the weights given. */
    @Override
    public int getNumOutputs() {
        return 1 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0);
    }

    @Override
    protected List<LongShapeDescriptor> outputShapes(List<INDArray> in) {
        List<LongShapeDescriptor> shapes = new ArrayList<>();
        for (int i = 0; i < getNumOutputs(); i++) shapes.add(LongShapeDescriptor.fromShape(in.get(i).shape(), in.get(0).dataType()));
        return shapes;
    }

    @Override
    protected void compute(List<INDArray> in, List<INDArray> out) {
        INDArray incoming = in.get(getNumOutputs());
        boolean batched = in.get(0).rank() == 3;
        for (int i = 0; i < getNumOutputs(); i++) {
            if (in.get(i).isEmpty()) {
                throw new IllegalStateException(OP_NAME + ": the forward op produced no gradients (it was not asked for them)");
            }
            scaleByItem(out.get(i), in.get(i), incoming, batched);
        }
    }

    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        throw new UnsupportedOperationException(OP_NAME + ": second derivatives of dense_sinkhorn are not computed");
    }

    @Override
    public Map<String, Object> propertiesForFunction() {
        Map<String, Object> properties = new LinkedHashMap<>();
        properties.put(WEIGHTS_A, weightsA);
        properties.put(WEIGHTS_B, weightsB);
        return properties;
    }

    @Override
    public void setPropertiesForFunction(Map<String, Object> properties) {
        weightsA = Boolean.TRUE.equals(properties.get(WEIGHTS_A));
        weightsB = Boolean.TRUE.equals(properties.get(WEIGHTS_B));
    }
}
