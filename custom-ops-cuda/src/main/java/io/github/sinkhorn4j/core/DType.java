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

    /** Element {@code index} of a segment of this type, widened to double. */
    public double get(java.lang.foreign.MemorySegment s, long index) {
        return this == FLOAT32 ? s.getAtIndex(ValueLayout.JAVA_FLOAT, index) : s.getAtIndex(ValueLayout.JAVA_DOUBLE, index);
    }
}
