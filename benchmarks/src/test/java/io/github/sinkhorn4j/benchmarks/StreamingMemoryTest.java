package io.github.sinkhorn4j.benchmarks;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.Solver;
import org.junit.jupiter.api.Test;

/**
 * The forward protocol on the CPU never holds an n x m matrix: the resident memory a solve adds
 * stays within a linear bound in n + m, far below the quadratic size (memory only, nothing is timed).
 * The 100000-point acceptance run of docs/benchmarks.md is the same call, 40 times larger.
 */
class StreamingMemoryTest {
    private static final long MIB = 1L << 20;
    // Thread stacks, allocator arenas and the solver's O(n + m) buffers (a few vectors of n floats).
    private static final long FIXED_BYTES = 24 * MIB;
    private static final long BYTES_PER_POINT = 1024;

    @Test
    void forwardSolveAddsLinearMemory() {
        for (long n : new long[] {4000, 16000}) {
            long added = addedPeakBytes(n);
            long bound = FIXED_BYTES + BYTES_PER_POINT * 2 * n;
            long dense = 4 * n * n;
            assertTrue(added <= bound, "n = m = " + n + ": the solve added " + added / MIB + " MiB of resident memory, more than the "
                    + bound / MIB + " MiB linear bound (an n x m float matrix: " + dense / MIB + " MiB)");
        }
    }

    private static long addedPeakBytes(long n) {
        RunSpec spec = new RunSpec(Protocol.FORWARD, Device.CPU, 1, n, n, 3, 2, 0.1, 0.05, 0.5, Solver.SYMMETRIC, DType.FLOAT32,
                1, 0, false, 0, false);
        try (Workload work = new Workload(spec)) {
            long before = HostMemory.residentBytes();
            assumeTrue(before > 0 && HostMemory.resetPeak(), "needs /proc/self/status and a resettable VmHWM");
            work.run();
            return HostMemory.peakBytes() - before;
        }
    }
}
