package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
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
 * descriptors (output count, shapes and types; its properties for serialisation). Its inputs start
 * with x and y, then the weights a and b when given; the options are a property.
 */
public abstract class SinkhornCustomOp extends DynamicCustomOp {
    private static final String WEIGHTS_A = "weightsA", WEIGHTS_B = "weightsB";

    protected SinkhornOptions options = SinkhornOptions.defaults();
    protected boolean weightsA, weightsB;

    /** For deserialisation: ND4J creates the op, then sets its properties. */
    protected SinkhornCustomOp() {}

    protected SinkhornCustomOp(SameDiff sameDiff, SDVariable[] args, SinkhornOptions options, boolean weightsA,
                               boolean weightsB) {
        super(null, sameDiff, args);
        SinkhornNd4j.install();
        this.options = Objects.requireNonNull(options, "options");
        this.weightsA = weightsA;
        this.weightsB = weightsB;
    }

    protected SinkhornCustomOp(INDArray[] inputs, SinkhornOptions options, boolean weightsA, boolean weightsB) {
        SinkhornNd4j.install();
        this.options = Objects.requireNonNull(options, "options");
        this.weightsA = weightsA;
        this.weightsB = weightsB;
        addInputArgument(inputs);
    }

    public SinkhornOptions options() {
        return options;
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

    /** Properties beyond the options and the weight flags, for serialisation. */
    protected void writeProperties(Map<String, Object> properties) {}

    /** Reads back what {@link #writeProperties} wrote, removing it from the map. */
    protected void readProperties(Map<String, Object> properties) {}

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

    /** Every output has the type of x. */
    @Override
    public List<DataType> calculateOutputDataTypes(List<DataType> inputTypes) {
        DataType type = inputTypes.get(0);
        if (!type.isFPType()) throw new IllegalArgumentException(opName() + ": x must be floating point (got " + type + ")");
        return Collections.nCopies(getNumOutputs(), type);
    }

    @Override
    public Map<String, Object> propertiesForFunction() {
        Map<String, Object> properties = new LinkedHashMap<>(options.toMap());
        properties.put(WEIGHTS_A, weightsA);
        properties.put(WEIGHTS_B, weightsB);
        writeProperties(properties);
        return properties;
    }

    @Override
    public void setPropertiesForFunction(Map<String, Object> properties) {
        Map<String, Object> rest = new LinkedHashMap<>(properties);
        weightsA = Boolean.TRUE.equals(rest.remove(WEIGHTS_A));
        weightsB = Boolean.TRUE.equals(rest.remove(WEIGHTS_B));
        readProperties(rest);
        options = SinkhornOptions.fromMap(rest);
    }

    /** Number of cloud inputs: x, y and the weights given. */
    protected final int cloudInputs() {
        return 2 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0);
    }

    protected final int indexOfA() {
        return weightsA ? 2 : -1;
    }

    protected final int indexOfB() {
        return weightsB ? 2 + (weightsA ? 1 : 0) : -1;
    }

    /** A gradient SameDiff made for an output that the loss does not depend on. */
    protected static boolean isStructuralZero(SDVariable gradient) {
        return gradient == null || gradient.getSameDiff().getVariableOutputOp(gradient.name()) instanceof ZerosLike;
    }

    /** Constants and placeholders get no gradient unless asked for explicitly. */
    protected static boolean mayNeedGradient(SDVariable v) {
        return v.getVariableType() == VariableType.VARIABLE || v.getVariableType() == VariableType.ARRAY;
    }

    /** Checks the ranks of clouds x and y (both 2, or both 3 with one batch size). */
    protected final void checkCloudShapes(INDArray x, INDArray y) {
        if (x.rank() != 2 && x.rank() != 3) {
            throw new IllegalArgumentException(opName() + ": x must have shape (n, d) or (B, n, d) (got " + Arrays.toString(x.shape()) + ")");
        }
        if (y.rank() != x.rank() || (x.rank() == 3 && y.size(0) != x.size(0))) {
            throw new IllegalArgumentException(opName() + ": y must have the rank and batch size of x (x " + Arrays.toString(x.shape())
                    + ", y " + Arrays.toString(y.shape()) + ")");
        }
    }

    @Override
    public String toString() {
        return opName() + (getOwnName() != null ? " " + getOwnName() : "") + " " + options;
    }
}
