package io.github.sinkhorn4j.benchmarks;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.Device;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** The suites reproduce every anchor row once, and each timed run finds its anchors. */
class AnchorSuiteTest {
    private final Anchors anchors = new Anchors(Path.of("no-such-folder"));  // the copies on the classpath

    @Test
    void anchorsSuiteRunsEveryRowOnce() {
        List<RunSpec> plan = BenchmarkRunner.plan(Map.of("suite", "anchors"), anchors);
        // 18 forward rows, 4 loss+grad rows (GeomLoss's row at n = 10000, d = 64 is the same run), 1 hvp row
        assertEquals(23, plan.size());
        assertEquals(18, plan.stream().filter(s -> s.protocol() == Protocol.FORWARD).count());
        assertEquals(4, plan.stream().filter(s -> s.protocol() == Protocol.LOSS_AND_GRAD).count());
        assertEquals(1, plan.stream().filter(s -> s.protocol() == Protocol.HVP).count());
        for (RunSpec s : plan) {
            assertEquals(Device.CUDA, s.device());
            assertEquals(10, s.reps());
            assertEquals(3, s.warmup());
            int expected = s.protocol() == Protocol.LOSS_AND_GRAD && s.n() == 10000 && s.d() == 64 ? 2 : 1;
            assertEquals(expected, anchors.matching(s).size(), s.toString());
            // the anchors' tensors are on the GPU: so are the clouds of every row whose call reads them there only
            assertEquals(s.protocol() != Protocol.HVP, s.cudaInputs(), s.toString());
        }
        assertTrue(BenchmarkRunner.plan(Map.of("suite", "anchors", "inputs", "host"), anchors).stream().noneMatch(RunSpec::cudaInputs));
        assertEquals(22, BenchmarkRunner.plan(Map.of("suite", "anchors", "inputs", "cuda"), anchors).stream()
                .filter(RunSpec::cudaInputs).count());
    }

    @Test
    void cudaInputsOnlyWhereTheSolveReadsThem() {
        assertTrue(BenchmarkRunner.plan(Map.of("protocol", "forward", "device", "cuda"), anchors).get(0).cudaInputs());
        assertFalse(BenchmarkRunner.plan(Map.of("protocol", "forward"), anchors).get(0).cudaInputs());
        assertFalse(BenchmarkRunner.plan(Map.of("protocol", "hvp", "device", "cuda"), anchors).get(0).cudaInputs());
        assertTrue(BenchmarkRunner.plan(Map.of("protocol", "dense", "device", "cuda"), anchors).get(0).cudaInputs());
        assertFalse(BenchmarkRunner.plan(Map.of("protocol", "dense", "device", "cuda", "inputs", "host"), anchors).get(0)
                .cudaInputs());
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("protocol", "dense", "inputs", "cuda"), anchors));
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("protocol", "forward", "inputs", "cuda"), anchors));
        assertThrows(IllegalArgumentException.class,
                () -> BenchmarkRunner.plan(Map.of("protocol", "hvp", "device", "cuda", "inputs", "cuda"), anchors));
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("inputs", "gpu"), anchors));
    }

    @Test
    void geomlossSuiteRunsOnTheCpuWithItsTiming() {
        List<RunSpec> plan = BenchmarkRunner.plan(Map.of("suite", "geomloss-cpu"), anchors);
        assertEquals(4, plan.size());
        for (RunSpec s : plan) {
            assertEquals(Device.CPU, s.device());
            assertEquals(3, s.reps());
            assertEquals(1, s.warmup());
            assertEquals(1, anchors.matching(s).size(), s.toString());
        }
    }

    @Test
    void suiteRowsCannotBeOverridden() {
        assertThrows(IllegalArgumentException.class, () -> BenchmarkRunner.plan(Map.of("suite", "anchors", "n", "5"), anchors));
    }
}
