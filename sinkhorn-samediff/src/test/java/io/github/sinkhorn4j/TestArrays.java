package io.github.sinkhorn4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.fixtures.Fixture;
import io.github.sinkhorn4j.fixtures.Norms;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Conversions and comparisons shared by the tests. */
public final class TestArrays {
    private TestArrays() {}

    /** A row-major (rows, columns) array of the given type. */
    public static INDArray matrix(double[] values, int columns, DataType type) {
        return Nd4j.createFromArray(values).castTo(type).reshape('c', values.length / columns, columns);
    }

    public static INDArray vector(double[] values, DataType type) {
        return Nd4j.createFromArray(values).castTo(type);
    }

    public static double[] doubles(INDArray array) {
        return array.castTo(DataType.DOUBLE).dup('c').data().asDouble();
    }

    public static float[] floats(double[] values) {
        float[] out = new float[values.length];
        for (int i = 0; i < values.length; i++) out[i] = (float) values[i];
        return out;
    }

    public static double[] widen(float[] values) {
        double[] out = new double[values.length];
        for (int i = 0; i < values.length; i++) out[i] = values[i];
        return out;
    }

    /** Norm-wise relative error within the tolerance (absolute below 1e-12 of scale). */
    public static void close(String what, double[] actual, double[] expected, double tolerance) {
        double err = Norms.relativeError(actual, expected, 1e-12);
        assertTrue(err <= tolerance, () -> what + ": relative error " + err + " > " + tolerance);
    }

    public static void close(String what, double actual, double expected, double tolerance) {
        close(what, new double[] {actual}, new double[] {expected}, tolerance);
    }

    /**
     * Central differences (value(v + h) - value(v - h)) / 2h of the scalar output `loss` of a graph
     * with respect to every entry of the variable `variable`, whose array is perturbed in place.
     */
    public static double[] centralDifferences(SameDiff sd, Map<String, INDArray> placeholders, String loss, String variable,
                                              double h) {
        INDArray param = sd.getVariable(variable).getArr();
        double[] numeric = new double[(int) param.length()];
        for (int i = 0; i < numeric.length; i++) {
            double v = param.getDouble(i);
            param.putScalar(i, v + h);
            double up = sd.output(placeholders, loss).get(loss).getDouble(0);
            param.putScalar(i, v - h);
            double down = sd.output(placeholders, loss).get(loss).getDouble(0);
            param.putScalar(i, v);
            numeric[i] = (up - down) / (2 * h);
        }
        return numeric;
    }

    /** The fixture's options: GeomLoss's schedule, or its fixed eps iterated to convergence. */
    public static SinkhornOptions options(Fixture f, boolean single) {
        SinkhornOptions.Builder b = f.options().allowTf32(false);
        if (f.converged()) b.nIters(single ? 3000 : 20000).threshold(single ? 1e-6 : 1e-13);
        return b.build();
    }
}
