package io.github.sinkhorn4j.core;

import java.lang.foreign.MemorySegment;

/**
 * Where a solve writes what was asked for; every destination is optional. Segments hold the
 * clouds' {@link DType}: potentials n or m values, point gradients n x d or m x d, weight gradients
 * n or m.
 */
public final class Outputs {
    MemorySegment fBa, gAb, fAa, gBb, gradX, gradY, gradA, gradB;

    public static Outputs none() {
        return new Outputs();
    }

    /** The potential on x of the (x, y) problem. */
    public Outputs fBa(MemorySegment s) { fBa = s; return this; }
    /** The potential on y of the (x, y) problem. */
    public Outputs gAb(MemorySegment s) { gAb = s; return this; }
    /** The self potential of x (debiasing term). */
    public Outputs fAa(MemorySegment s) { fAa = s; return this; }
    /** The self potential of y (debiasing term). */
    public Outputs gBb(MemorySegment s) { gBb = s; return this; }
    public Outputs gradX(MemorySegment s) { gradX = s; return this; }
    public Outputs gradY(MemorySegment s) { gradY = s; return this; }
    public Outputs gradA(MemorySegment s) { gradA = s; return this; }
    public Outputs gradB(MemorySegment s) { gradB = s; return this; }

    void check(Clouds c) {
        long bytes = c.dtype().bytes();
        check("fBa", fBa, c.n(), bytes);
        check("gAb", gAb, c.m(), bytes);
        check("fAa", fAa, c.n(), bytes);
        check("gBb", gBb, c.m(), bytes);
        check("gradX", gradX, c.n() * c.d(), bytes);
        check("gradY", gradY, c.m() * c.d(), bytes);
        check("gradA", gradA, c.n(), bytes);
        check("gradB", gradB, c.m(), bytes);
    }

    private static void check(String name, MemorySegment s, long count, long bytes) {
        if (s != null && s.byteSize() < count * bytes) {
            throw new IllegalArgumentException("output " + name + " has room for " + s.byteSize() / bytes + " values, " + count + " needed");
        }
    }
}
