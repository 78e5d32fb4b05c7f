package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A sinkhorn_divergence op (or its gradient ops), run in Java ({@link RoutedOp}). Its inputs start
 * with x and y, then the weights a and b when given; the options are a property.
 */
public abstract class SinkhornCustomOp extends RoutedOp {
    private static final String WEIGHTS_A = "weightsA", WEIGHTS_B = "weightsB";

    protected SinkhornOptions options = SinkhornOptions.defaults();
    protected boolean weightsA, weightsB;

    /** For deserialisation: ND4J creates the op, then sets its properties. */
    protected SinkhornCustomOp() {}

    protected SinkhornCustomOp(SameDiff sameDiff, SDVariable[] args, SinkhornOptions options, boolean weightsA,
                               boolean weightsB) {
        super(sameDiff, args);
        this.options = Objects.requireNonNull(options, "options");
        this.weightsA = weightsA;
        this.weightsB = weightsB;
    }

    protected SinkhornCustomOp(INDArray[] inputs, SinkhornOptions options, boolean weightsA, boolean weightsB) {
        super(inputs);
        this.options = Objects.requireNonNull(options, "options");
        this.weightsA = weightsA;
        this.weightsB = weightsB;
    }

    public SinkhornOptions options() {
        return options;
    }

    /** Properties beyond the options and the weight flags, for serialisation. */
    protected void writeProperties(Map<String, Object> properties) {}

    /** Reads back what {@link #writeProperties} wrote, removing it from the map. */
    protected void readProperties(Map<String, Object> properties) {}

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
        return super.toString() + " " + options;
    }
}
