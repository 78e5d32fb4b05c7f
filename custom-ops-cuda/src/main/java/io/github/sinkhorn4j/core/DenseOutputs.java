package io.github.sinkhorn4j.core;

import java.lang.foreign.MemorySegment;

/**
 * Where a dense solve writes what was asked for; every destination is optional and holds the
 * problem's {@link DType}: potentials f (batch x n) and g (batch x m), 0 at masked entries; the plan
 * (batch x n x m), which is also dcost/dC; the weight gradients dcost/da (batch x n) and dcost/db
 * (batch x m). What is not asked for is not computed.
 */
public final class DenseOutputs {
    MemorySegment f, g, plan, gradA, gradB;

    public static DenseOutputs none() {
        return new DenseOutputs();
    }

    public DenseOutputs f(MemorySegment s) { f = s; return this; }
    public DenseOutputs g(MemorySegment s) { g = s; return this; }
    /** P_ij = a_i b_j exp((f_i + g_j - C_ij) / eps), the gradient of the cost with respect to C. */
    public DenseOutputs plan(MemorySegment s) { plan = s; return this; }
    public DenseOutputs gradA(MemorySegment s) { gradA = s; return this; }
    public DenseOutputs gradB(MemorySegment s) { gradB = s; return this; }

    void check(DenseProblem p) {
        long bytes = p.dtype().bytes();
        check("f", f, p.batch() * p.n(), bytes);
        check("g", g, p.batch() * p.m(), bytes);
        check("plan", plan, p.batch() * p.n() * p.m(), bytes);
        check("gradA", gradA, p.batch() * p.n(), bytes);
        check("gradB", gradB, p.batch() * p.m(), bytes);
    }

    private static void check(String name, MemorySegment s, long count, long bytes) {
        if (s != null) Sinkhorn.requireRoom("output " + name, s, count, bytes);
    }
}
