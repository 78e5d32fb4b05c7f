package io.github.sinkhorn4j;

import static io.github.sinkhorn4j.TestArrays.doubles;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.samediff.SinkhornOps;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

class SinkhornLossTest {
    private static final SinkhornOptions OPTIONS = SinkhornOptions.builder().blur(0.1).build();

    @Test
    void singleProblemEqualsTheDirectApiInBothPrecisions() {
        for (DataType type : new DataType[] {DataType.DOUBLE, DataType.FLOAT}) {
            Nd4j.getRandom().setSeed(7);
            INDArray x = Nd4j.randn(type, 30, 3), y = Nd4j.randn(type, 20, 3).addi(1);
            INDArray a = Nd4j.rand(type, 30).addi(0.1), b = Nd4j.rand(type, 20).addi(0.1);
            SinkhornResult r = new SinkhornLoss(OPTIONS).compute(a, x, b, y, true);
            DivergenceResult direct = type == DataType.DOUBLE
                    ? Sinkhorn.divergence(OPTIONS, doubles(x), doubles(y), 3, doubles(a), doubles(b), true)
                    : Sinkhorn.divergence(OPTIONS, floats(x), floats(y), 3, floats(a), floats(b), true);
            assertEquals(type, r.loss().dataType());
            assertEquals(0, r.loss().rank());
            assertEquals(direct.loss(), r.value());
            assertArrayEquals(direct.fBa(), doubles(r.fBa()));
            assertArrayEquals(direct.gBb(), doubles(r.gBb()));
            assertArrayEquals(direct.gradX(), doubles(r.gradX()));
            assertArrayEquals(direct.gradY(), doubles(r.gradY()));
            assertArrayEquals(direct.gradA(), doubles(r.gradA()));
            assertArrayEquals(direct.gradB(), doubles(r.gradB()));
            assertArrayEquals(new long[] {30, 3}, r.gradX().shape());
        }
    }

    /** A batch shares one eps schedule (its diameter is that of all clouds, as in GeomLoss): fixed here. */
    @Test
    void aBatchEqualsItsProblemsSolvedOneByOne() {
        SinkhornOptions options = OPTIONS.toBuilder().diameter(8.0).build();
        Nd4j.getRandom().setSeed(3);
        INDArray x = Nd4j.randn(DataType.DOUBLE, 3, 25, 2), y = Nd4j.randn(DataType.DOUBLE, 3, 15, 2).addi(0.5);
        INDArray b = Nd4j.rand(DataType.DOUBLE, 3, 15).addi(0.2);
        b.diviColumnVector(b.sum(1).reshape(3, 1));
        SinkhornResult batch = new SinkhornLoss(options).compute(null, x, b, y, true);
        assertArrayEquals(new long[] {3}, batch.loss().shape());
        assertArrayEquals(new long[] {3, 25}, batch.fBa().shape());
        assertArrayEquals(new long[] {3, 15, 2}, batch.gradY().shape());
        for (int k = 0; k < 3; k++) {
            SinkhornResult one = new SinkhornLoss(options).compute(null, x.slice(k), b.slice(k), y.slice(k), true);
            assertEquals(one.value(), batch.loss().getDouble(k), 1e-12 * Math.abs(one.value()));
            TestArrays.close("grad x " + k, doubles(batch.gradX().slice(k)), doubles(one.gradX()), 1e-12);
            TestArrays.close("grad b " + k, doubles(batch.gradB().slice(k)), doubles(one.gradB()), 1e-12);
        }
    }

    @Test
    void contiguousArraysAndViewsAreReadInPlaceOtherLayoutsCopied() {
        INDArray big = Nd4j.randn(DataType.DOUBLE, 50, 3);
        INDArray rows = big.get(NDArrayIndex.interval(10, 40), NDArrayIndex.all());
        assertTrue(rows.offset() > 0);
        NdClouds view = NdClouds.of(rows, big, null, null);
        assertSame(rows, view.x(), "a contiguous view is passed as it is");
        assertEquals(rows.data().address() + rows.offset() * 8, view.clouds().x().address());

        INDArray fortran = rows.dup('f');
        INDArray columns = big.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 2));
        assertTrue(NdClouds.of(fortran, big, null, null).x() != fortran, "an f-ordered array is copied");
        assertTrue(NdClouds.of(columns, columns, null, null).x() != columns, "a strided view is copied");

        SinkhornLoss loss = new SinkhornLoss(OPTIONS);
        double expected = loss.value(rows.dup(), big);
        assertEquals(expected, loss.value(rows, big));
        assertEquals(expected, loss.value(fortran, big));
        assertEquals(loss.value(columns.dup(), big.get(NDArrayIndex.all(), NDArrayIndex.interval(1, 3)).dup()),
                loss.value(columns, big.get(NDArrayIndex.all(), NDArrayIndex.interval(1, 3))));
    }

    @Test
    void eagerOpEqualsTheLoss() {
        INDArray x = Nd4j.randn(DataType.FLOAT, 2, 12, 4), y = Nd4j.randn(DataType.FLOAT, 2, 9, 4);
        INDArray expected = new SinkhornLoss(OPTIONS).loss(x, y);
        assertEquals(expected, SinkhornOps.divergence(x, y, OPTIONS));
    }

    @Test
    void resultsWithoutDebiasingOrGradientsLeaveThoseOut() {
        SinkhornResult r = new SinkhornLoss(OPTIONS.toBuilder().debias(false).build())
                .compute(null, Nd4j.randn(DataType.DOUBLE, 5, 2), null, Nd4j.randn(DataType.DOUBLE, 6, 2), false);
        assertNull(r.fAa());
        assertNull(r.gradX());
        assertEquals(1, r.report().iterations().length);
    }

    @Test
    void badInputsAreNamed() {
        SinkhornLoss loss = new SinkhornLoss(OPTIONS);
        INDArray x = Nd4j.randn(DataType.DOUBLE, 5, 2);
        assertMessage("y has data type FLOAT", () -> loss.value(x, Nd4j.randn(DataType.FLOAT, 5, 2)));
        assertMessage("x must be FLOAT or DOUBLE", () -> loss.value(Nd4j.zeros(DataType.INT, 5, 2), x));
        assertMessage("x must have shape (n, d) or (B, n, d)", () -> loss.value(Nd4j.randn(DataType.DOUBLE, 5), x));
        assertMessage("same dimension d", () -> loss.value(x, Nd4j.randn(DataType.DOUBLE, 5, 3)));
        assertMessage("same number of problems", () -> loss.value(Nd4j.randn(DataType.DOUBLE, 2, 5, 2), Nd4j.randn(DataType.DOUBLE, 3, 5, 2)));
        assertMessage("a must have shape [5]", () -> loss.loss(Nd4j.ones(DataType.DOUBLE, 4), x, null, x));
        INDArray nan = x.dup();
        nan.putScalar(3, Double.NaN);
        assertMessage("x contains NaN", () -> loss.value(nan, x));
    }

    private static void assertMessage(String part, org.junit.jupiter.api.function.Executable call) {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, call);
        assertTrue(e.getMessage().contains(part), () -> "message '" + e.getMessage() + "' lacks '" + part + "'");
    }

    private static float[] floats(INDArray array) {
        return array.dup('c').data().asFloat();
    }
}
