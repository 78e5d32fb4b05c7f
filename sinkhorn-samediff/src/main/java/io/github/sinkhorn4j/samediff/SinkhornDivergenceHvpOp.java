package io.github.sinkhorn4j.samediff;

import io.github.sinkhorn4j.NdClouds;
import io.github.sinkhorn4j.core.HvpOptions;
import io.github.sinkhorn4j.core.Potentials;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Wrt;
import java.lang.foreign.MemorySegment;
import java.lang.ref.Reference;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.shape.LongShapeDescriptor;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@code sinkhorn_divergence_hvp}, what differentiating {@code sinkhorn_divergence_bp} gives: inputs
 * x, y, [a], [b], the forward's potentials f_ba, g_ab, f_aa, g_bb, its gradients G_x, G_y, the
 * loss's incoming gradient g, and directions v_x, v_y (the incoming gradients of dL/dx and dL/dy);
 * outputs g H_xx v_x (shaped as x), g H_yy v_y (as y) and v_x . G_x + v_y . G_y (as g), per problem.
 * The Hessian blocks come from {@link Sinkhorn#hvp} (implicit differentiation at the potentials,
 * conjugate gradient with default {@link HvpOptions}; a CG that misses its tolerance raises a
 * SinkhornException); a block not asked for ({@code wrtX}, {@code wrtY}) is zero.
 */
public final class SinkhornDivergenceHvpOp extends SinkhornCustomOp {
    public static final String OP_NAME = "sinkhorn_divergence_hvp";
    private static final String WRT_X = "wrtX", WRT_Y = "wrtY";

    private boolean wrtX, wrtY;

    public SinkhornDivergenceHvpOp() {}

    SinkhornDivergenceHvpOp(SameDiff sameDiff, SDVariable[] args, SinkhornOptions options, boolean weightsA,
                            boolean weightsB, boolean wrtX, boolean wrtY) {
        super(sameDiff, args, options, weightsA, weightsB);
        this.wrtX = wrtX;
        this.wrtY = wrtY;
    }

    @Override
    public String opName() {
        return OP_NAME;
    }

    @Override
    public int getNumOutputs() {
        return 3;
    }

    private int potentialsIndex() { return cloudInputs(); }
    private int forwardGradientsIndex() { return cloudInputs() + 4; }
    private int incomingIndex() { return cloudInputs() + 6; }

    @Override
    protected List<LongShapeDescriptor> outputShapes(List<INDArray> in) {
        var type = in.get(0).dataType();
        return List.of(LongShapeDescriptor.fromShape(in.get(0).shape(), type),
                LongShapeDescriptor.fromShape(in.get(1).shape(), type),
                LongShapeDescriptor.fromShape(in.get(incomingIndex()).shape(), type));
    }

    @Override
    protected void compute(List<INDArray> in, List<INDArray> out) {
        INDArray x = in.get(0), y = in.get(1), incoming = in.get(incomingIndex());
        INDArray vx = in.get(incomingIndex() + 1), vy = in.get(incomingIndex() + 2);
        INDArray gx = in.get(forwardGradientsIndex()), gy = in.get(forwardGradientsIndex() + 1);
        boolean batched = x.rank() == 3;
        long problems = batched ? x.size(0) : 1;
        INDArray hx = out.get(0), hy = out.get(1), dIncoming = out.get(2);
        hx.assign(0);
        hy.assign(0);
        double[] directional = new double[(int) problems];
        for (int k = 0; k < problems; k++) {
            double scale = incoming.length() == 1 ? incoming.getDouble(0) : incoming.getDouble(k);
            NdClouds clouds = NdClouds.of(item(x, k, batched), item(y, k, batched),
                    weightsA ? item(in.get(indexOfA()), k, batched) : null,
                    weightsB ? item(in.get(indexOfB()), k, batched) : null);
            List<INDArray> held = new ArrayList<>();
            Potentials potentials = potentials(in, k, batched, held);
            if (wrtX) hessianProduct(clouds, potentials, Wrt.X, item(vx, k, batched), item(hx, k, batched), scale);
            if (wrtY) hessianProduct(clouds, potentials, Wrt.Y, item(vy, k, batched), item(hy, k, batched), scale);
            // The potentials' segments point into these arrays: alive until the products are done.
            Reference.reachabilityFence(held);
            Reference.reachabilityFence(clouds);
            directional[k] = item(vx, k, batched).mul(item(gx, k, batched)).sumNumber().doubleValue()
                    + item(vy, k, batched).mul(item(gy, k, batched)).sumNumber().doubleValue();
        }
        if (dIncoming.length() == 1) {
            double total = 0;
            for (double v : directional) total += v;
            dIncoming.assign(total);
        } else {
            for (int k = 0; k < problems; k++) dIncoming.putScalar(k, directional[k]);
        }
    }

    private void hessianProduct(NdClouds clouds, Potentials potentials, Wrt wrt, INDArray direction, INDArray target,
                                double scale) {
        INDArray v = NdClouds.hostContiguous(direction);
        INDArray product = Nd4j.create(target.dataType(), target.shape());
        Sinkhorn.hvp(options, HvpOptions.defaults(), clouds.clouds(), potentials, wrt, NdClouds.segment(v),
                NdClouds.segment(product));
        Reference.reachabilityFence(v);
        target.assign(product.muli(scale));
    }

    /** The four potentials of problem k (self potentials only when debiased), contiguous in host memory. */
    private Potentials potentials(List<INDArray> in, int k, boolean batched, List<INDArray> held) {
        int p = potentialsIndex();
        return new Potentials(memory(in.get(p), k, batched, held), memory(in.get(p + 1), k, batched, held),
                options.debias() ? memory(in.get(p + 2), k, batched, held) : null,
                options.debias() ? memory(in.get(p + 3), k, batched, held) : null);
    }

    private static MemorySegment memory(INDArray array, int k, boolean batched, List<INDArray> held) {
        INDArray contiguous = NdClouds.hostContiguous(item(array, k, batched));
        held.add(contiguous);
        return NdClouds.segment(contiguous);
    }

    private static INDArray item(INDArray array, int k, boolean batched) {
        return batched ? array.slice(k) : array;
    }

    /** Third derivatives are not available. */
    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        throw new UnsupportedOperationException(OP_NAME + ": third derivatives of the Sinkhorn divergence are not available");
    }

    @Override
    protected void writeProperties(Map<String, Object> properties) {
        properties.put(WRT_X, wrtX);
        properties.put(WRT_Y, wrtY);
    }

    @Override
    protected void readProperties(Map<String, Object> properties) {
        wrtX = Boolean.TRUE.equals(properties.remove(WRT_X));
        wrtY = Boolean.TRUE.equals(properties.remove(WRT_Y));
    }
}
