package io.github.sinkhorn4j.core;

import java.lang.foreign.ValueLayout;

/** Element type of every array of one call. */
public enum DType {
    FLOAT32(ValueLayout.JAVA_FLOAT),
    FLOAT64(ValueLayout.JAVA_DOUBLE);

    private final ValueLayout layout;

    DType(ValueLayout layout) {
        this.layout = layout;
    }

    public long bytes() {
        return layout.byteSize();
    }

    ValueLayout layout() {
        return layout;
    }

    /**
     * Whether the first {@code count} elements are all finite. A value is NaN or infinite exactly when
     * its exponent bits are all set, so the largest masked exponent decides: a branch-free integer
     * maximum over the raw bits, several times faster than a widening {@code isFinite} test per element.
     */
    boolean allFinite(java.lang.foreign.MemorySegment s, long count) {
        if (this == FLOAT32) {
            final int exponent = 0x7f800000;
            int largest = 0;
            for (long i = 0; i < count; i++) largest = Math.max(largest, s.getAtIndex(ValueLayout.JAVA_INT_UNALIGNED, i) & exponent);
            return largest != exponent;
        }
        final long exponent = 0x7ff0000000000000L;
        long largest = 0;
        for (long i = 0; i < count; i++) largest = Math.max(largest, s.getAtIndex(ValueLayout.JAVA_LONG_UNALIGNED, i) & exponent);
        return largest != exponent;
    }

    /** Element {@code index} of a segment of this type, widened to double. */
    public double get(java.lang.foreign.MemorySegment s, long index) {
        return this == FLOAT32 ? s.getAtIndex(ValueLayout.JAVA_FLOAT, index) : s.getAtIndex(ValueLayout.JAVA_DOUBLE, index);
    }
}
