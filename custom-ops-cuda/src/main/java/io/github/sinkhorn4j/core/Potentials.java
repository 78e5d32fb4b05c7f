package io.github.sinkhorn4j.core;

import java.lang.foreign.MemorySegment;

/**
 * The potentials of one solve, as {@link Outputs} receives them: f_ba (n) and g_ab (m) of the (x, y)
 * problem and the self potentials f_aa (n) and g_bb (m) of the debiasing terms (null when not debiased
 * or not needed), in the clouds' {@link DType}.
 */
public record Potentials(MemorySegment fBa, MemorySegment gAb, MemorySegment fAa, MemorySegment gBb) {}
