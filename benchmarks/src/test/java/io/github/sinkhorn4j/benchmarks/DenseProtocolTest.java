package io.github.sinkhorn4j.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.DenseReport;
import io.github.sinkhorn4j.core.Device;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The dense protocol's command line, its memory-traffic floor, and one (CPU) run of exactly --iters iterations. */
class DenseProtocolTest {
    private final Anchors anchors = new Anchors(Path.of("no-such-folder"));

    @Test
    void theCommandLineGivesTheRunAndItsFloor() {
        List<RunSpec> plan = BenchmarkRunner.plan(Map.of("protocol", "dense", "device", "cuda", "batch", "8", "n", "256",
                "m", "256", "iters", "100"), anchors);
        assertEquals(1, plan.size());
        RunSpec s = plan.get(0);
        assertEquals(Protocol.DENSE, s.protocol());
        assertEquals(Device.CUDA, s.device());
        assertEquals(8, s.batch());
        assertEquals(DType.FLOAT32, s.dtype());
        // 8 x 256 x 256 float32 values (2 MiB) read twice per iteration, 100 iterations, at 3 TB/s.
        assertEquals(8.0 * 256 * 256 * 4 * 200 / 3e12 * 1e3, DenseWorkload.floorMs(s), 1e-15);
        assertEquals(0, anchors.matching(s).size());
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("protocol", "dense", "batch", "0"), anchors));
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("suite", "anchors", "batch", "2"), anchors));
    }

    @Test
    void aRunIteratesExactlyItersTimes() {
        RunSpec s = BenchmarkRunner.plan(Map.of("protocol", "dense", "batch", "3", "n", "40", "m", "30", "iters", "7",
                "dtype", "float64"), anchors).get(0);
        try (DenseWorkload work = new DenseWorkload(s)) {
            DenseReport r = work.run();
            assertEquals(List.of(7, 7, 7), List.of(r.iterations()[0], r.iterations()[1], r.iterations()[2]));
            assertEquals(Device.CPU, r.device());
        }
    }
}
