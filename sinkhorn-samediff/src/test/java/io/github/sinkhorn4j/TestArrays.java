package io.github.sinkhorn4j;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.fixtures.Fixture;
import io.github.sinkhorn4j.fixtures.Norms;
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

    /** The fixture's options: GeomLoss's schedule, or its fixed eps iterated to convergence. */
    public static SinkhornOptions options(Fixture f, boolean single) {
        SinkhornOptions.Builder b = f.options().allowTf32(false);
        if (f.converged()) b.nIters(single ? 3000 : 20000).threshold(single ? 1e-6 : 1e-13);
        return b.build();
    }
}
