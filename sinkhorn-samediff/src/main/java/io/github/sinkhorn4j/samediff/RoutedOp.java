package io.github.sinkhorn4j.samediff;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.impl.shape.ZerosLike;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A custom op that libnd4j does not know: it runs in Java, reached through
 * {@link RoutingExecutioner}, and answers the questions ND4J would otherwise ask libnd4j's op
 * descriptors (output count, shapes and types). Subclasses compute their outputs and carry their
 * settings as properties for serialisation.
 */
public abstract class RoutedOp extends DynamicCustomOp {
    /** For deserialisation: ND4J creates the op, then sets its properties. */
    protected RoutedOp() {}

    protected RoutedOp(SameDiff sameDiff, SDVariable[] args) {
        super(null, sameDiff, args);
        SinkhornNd4j.install();
    }

    protected RoutedOp(INDArray[] inputs) {
        SinkhornNd4j.install();
        addInputArgument(inputs);
    }

    @Override
    public abstract String opName();

    /** Unknown to libnd4j: serialised with hash 0 and found again by name. */
    @Override
    public long opHash() {
        return 0;
    }

    /** Output shapes for the given inputs. */
    protected abstract List<LongShapeDescriptor> outputShapes(List<INDArray> inputs);

    /** Computes the outputs (allocated by the caller, shaped by {@link #outputShapes}) from the inputs. */
    protected abstract void compute(List<INDArray> inputs, List<INDArray> outputs);

    /** Runs the op on a SameDiff context, or (null) on its own input and output arguments. */
    final INDArray[] execute(OpContext context) {
        List<INDArray> inputs = inputs(context);
        List<INDArray> outputs = new ArrayList<>(context != null ? context.getOutputArrays() : outputArguments());
        if (outputs.isEmpty()) {
            outputs.addAll(Arrays.asList(allocate(inputs)));
            if (context != null) context.setOutputArrays(outputs);
            else addOutputArgument(outputs.toArray(INDArray[]::new));
        }
        compute(inputs, outputs);
        return outputs.toArray(INDArray[]::new);
    }

    final INDArray[] allocateOutputArrays() {
        return allocate(inputArguments());
    }

    private INDArray[] allocate(List<INDArray> inputs) {
        return outputShapes(inputs).stream().map(Nd4j::create).toArray(INDArray[]::new);
    }

    private List<INDArray> inputs(OpContext context) {
        return context != null ? context.getInputArrays() : inputArguments();
    }

    @Override
    public List<LongShapeDescriptor> calculateOutputShape() {
        return calculateOutputShape(null);
    }

    @Override
    public List<LongShapeDescriptor> calculateOutputShape(OpContext context) {
        List<INDArray> inputs = inputs(context);
        return inputs.isEmpty() ? Collections.emptyList() : outputShapes(inputs);
    }

    /** Every output has the type of the first input. */
    @Override
    public List<DataType> calculateOutputDataTypes(List<DataType> inputTypes) {
        DataType type = inputTypes.get(0);
        if (!type.isFPType()) {
            throw new IllegalArgumentException(opName() + ": the first input must be floating point (got " + type + ")");
        }
        return Collections.nCopies(getNumOutputs(), type);
    }

    /** A gradient SameDiff made for an output that the loss does not depend on. */
    protected static boolean isStructuralZero(SDVariable gradient) {
        return gradient == null || gradient.getSameDiff().getVariableOutputOp(gradient.name()) instanceof ZerosLike;
    }

    /** Constants and placeholders get no gradient unless asked for explicitly. */
    protected static boolean mayNeedGradient(SDVariable v) {
        return v.getVariableType() == VariableType.VARIABLE || v.getVariableType() == VariableType.ARRAY;
    }

    /**
     * target = forward scaled by the incoming gradient of each item: one value for all, or one per
     * item of a batch (the first dimension).
     */
    protected static void scaleByItem(INDArray target, INDArray forward, INDArray incoming, boolean batched) {
        target.assign(forward);
        if (!batched || incoming.length() == 1) {
            target.muli(incoming.getDouble(0));
        } else {
            for (int k = 0; k < target.size(0); k++) target.slice(k).muli(incoming.getDouble(k));
        }
    }

    @Override
    public String toString() {
        return opName() + (getOwnName() != null ? " " + getOwnName() : "");
    }
}
