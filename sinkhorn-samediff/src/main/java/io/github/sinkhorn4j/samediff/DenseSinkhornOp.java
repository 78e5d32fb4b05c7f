package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.NdDenseProblem;
import io.github.sinkhorn4j.core.DenseSinkhornOptions;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;

/**
 * {@code dense_sinkhorn}: entropic OT on explicit costs. Inputs C (N, M) or (B, N, M), then, when
 * given, the weights a and b and the masks maskA and maskB (see {@link NdDenseProblem}); outputs
 * <ol start="0">
 * <li>the cost: a scalar, or (B);</li>
 * <li>f (N) or (B, N) and g (M) or (B, M), the potentials;</li>
 * <li>the gradients of the cost with respect to C (the plan) and to a and b when given, only in a
 * gradient function (else empty arrays).</li>
 * </ol>
 * One native call solves and, in a gradient function, also returns the gradients (the envelope
 * theorem at the final potentials, docs/math.md); {@link DenseSinkhornBpOp} scales them by the
 * incoming gradient. The potentials are not differentiable outputs.
 */
public final class DenseSinkhornOp extends RoutedOp {
    public static final String OP_NAME = "dense_sinkhorn";
    static final int COST = 0, F = 1, G = 2, GRAD_C = 3;
    private static final String WEIGHTS_A = "weightsA", WEIGHTS_B = "weightsB", MASK_A = "maskA", MASK_B = "maskB",
            WITH_GRADIENTS = "withGradients";

    private DenseSinkhornOptions options;
    private boolean weightsA, weightsB, maskA, maskB;
    /** Set on the op of a gradient function by {@link #doDiff}: also output the gradients. */
    private boolean withGradients;

    public DenseSinkhornOp() {}

    /** In a graph: a, b, maskA, maskB may be null. */
    public DenseSinkhornOp(SameDiff sameDiff, SDVariable c, SDVariable a, SDVariable b, SDVariable maskA, SDVariable maskB,
                           DenseSinkhornOptions options) {
        super(sameDiff, present(c, a, b, maskA, maskB).toArray(SDVariable[]::new));
        setUp(options, a != null, b != null, maskA != null, maskB != null);
    }

    /** Eager, through {@code Nd4j.exec}: a, b, maskA, maskB may be null. */
    public DenseSinkhornOp(INDArray c, INDArray a, INDArray b, INDArray maskA, INDArray maskB, DenseSinkhornOptions options) {
        super(present(c, a, b, maskA, maskB).toArray(INDArray[]::new));
        setUp(options, a != null, b != null, maskA != null, maskB != null);
    }

    private void setUp(DenseSinkhornOptions options, boolean weightsA, boolean weightsB, boolean maskA, boolean maskB) {
        this.options = Objects.requireNonNull(options, "options");
        this.weightsA = weightsA;
        this.weightsB = weightsB;
        this.maskA = maskA;
        this.maskB = maskB;
    }

    public DenseSinkhornOptions options() {
        return options;
    }

    @Override
    public String opName() {
        return OP_NAME;
    }

    @Override
    public int getNumOutputs() {
        return GRAD_C + 1 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0);
    }

    private int indexOfA() { return weightsA ? 1 : -1; }
    private int indexOfB() { return weightsB ? 1 + (weightsA ? 1 : 0) : -1; }
    private int indexOfMaskA() { return maskA ? 1 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0) : -1; }
    private int indexOfMaskB() { return maskB ? 1 + (weightsA ? 1 : 0) + (weightsB ? 1 : 0) + (maskA ? 1 : 0) : -1; }

    private NdDenseProblem problem(List<INDArray> in) {
        return NdDenseProblem.of(in.get(0), weightsA ? in.get(indexOfA()) : null, weightsB ? in.get(indexOfB()) : null,
                maskA ? in.get(indexOfMaskA()) : null, maskB ? in.get(indexOfMaskB()) : null);
    }

    @Override
    protected List<LongShapeDescriptor> outputShapes(List<INDArray> in) {
        NdDenseProblem p = problem(in);
        DataType type = p.dataType();
        LongShapeDescriptor empty = LongShapeDescriptor.empty(type);
        List<LongShapeDescriptor> shapes = new ArrayList<>();
        shapes.add(LongShapeDescriptor.fromShape(p.perItemShape(), type));
        shapes.add(LongShapeDescriptor.fromShape(p.rowsShape(), type));
        shapes.add(LongShapeDescriptor.fromShape(p.columnsShape(), type));
        shapes.add(withGradients ? LongShapeDescriptor.fromShape(p.costShape(), type) : empty);
        if (weightsA) shapes.add(withGradients ? LongShapeDescriptor.fromShape(p.rowsShape(), type) : empty);
        if (weightsB) shapes.add(withGradients ? LongShapeDescriptor.fromShape(p.columnsShape(), type) : empty);
        return shapes;
    }

    @Override
    protected void compute(List<INDArray> in, List<INDArray> out) {
        int gradA = GRAD_C + 1, gradB = GRAD_C + 1 + (weightsA ? 1 : 0);
        problem(in).solve(options, out.get(COST), new NdDenseProblem.Destinations(out.get(F), out.get(G),
                withGradients ? out.get(GRAD_C) : null, withGradients && weightsA ? out.get(gradA) : null,
                withGradients && weightsB ? out.get(gradB) : null));
    }

    /**
     * The gradient with respect to every input: dcost/dC, [dcost/da], [dcost/db] from a
     * {@link DenseSinkhornBpOp} over this op's gradients and the cost's incoming gradient; zeros for
     * the masks.
     */
    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        for (int i = COST + 1; i < gradients.size(); i++) {
            if (!isStructuralZero(gradients.get(i))) {
                throw new UnsupportedOperationException(OP_NAME + ": the loss depends on output " + i
                        + " (a potential or a gradient), which is not differentiable; differentiate through the cost output only");
            }
        }
        withGradients = true;
        SDVariable[] outputs = outputVariables();
        List<SDVariable> bpArgs = new ArrayList<>(List.of(outputs).subList(GRAD_C, outputs.length));
        bpArgs.add(gradients.get(COST));
        List<SDVariable> result = new ArrayList<>(List.of(
                new DenseSinkhornBpOp(sameDiff, bpArgs.toArray(SDVariable[]::new), weightsA, weightsB).outputVariables()));
        SDVariable[] args = args();
        if (maskA) result.add(sameDiff.zerosLike(args[indexOfMaskA()]));
        if (maskB) result.add(sameDiff.zerosLike(args[indexOfMaskB()]));
        return result;
    }

    @Override
    public Map<String, Object> propertiesForFunction() {
        Map<String, Object> properties = new LinkedHashMap<>(options.toMap());
        properties.put(WEIGHTS_A, weightsA);
        properties.put(WEIGHTS_B, weightsB);
        properties.put(MASK_A, maskA);
        properties.put(MASK_B, maskB);
        properties.put(WITH_GRADIENTS, withGradients);
        return properties;
    }

    @Override
    public void setPropertiesForFunction(Map<String, Object> properties) {
        Map<String, Object> rest = new LinkedHashMap<>(properties);
        weightsA = Boolean.TRUE.equals(rest.remove(WEIGHTS_A));
        weightsB = Boolean.TRUE.equals(rest.remove(WEIGHTS_B));
        maskA = Boolean.TRUE.equals(rest.remove(MASK_A));
        maskB = Boolean.TRUE.equals(rest.remove(MASK_B));
        withGradients = Boolean.TRUE.equals(rest.remove(WITH_GRADIENTS));
        options = DenseSinkhornOptions.fromMap(rest);
    }

    @SafeVarargs
    private static <V> List<V> present(V c, V... optional) {
        List<V> out = new ArrayList<>(List.of(Objects.requireNonNull(c, "C")));
        for (V v : optional) if (v != null) out.add(v);
        return out;
    }

    @Override
    public String toString() {
        return super.toString() + " " + options;
    }
}
