package io.github.sinkhorn4j.examples;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.examples.GradientFlow.Settings;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

class GradientFlowTest {
    /**
     * 40 SGD steps through SameDiff's training loop take 300 points from a Gaussian blob onto the
     * heart: the divergence, computed directly by SinkhornLoss, falls at least a hundredfold; the
     * graph's loss at each frame is the divergence of the cloud it reports.
     */
    @Test
    void theFlowLowersTheDivergenceAHundredfold() {
        Settings s = new Settings(300, 40, 3, 0.1, 0.02, Device.CPU);
        Random rnd = new Random(5);
        INDArray x0 = GradientFlow.blob(rnd, 300), target = GradientFlow.heart(rnd, 300);
        SinkhornLoss direct = new SinkhornLoss(s.divergence());
        List<Integer> steps = new ArrayList<>();
        List<double[]> divergences = new ArrayList<>();
        INDArray x = GradientFlow.flow(s, x0, target, (step, cloud, divergence) -> {
            steps.add(step);
            divergences.add(new double[] {divergence, direct.value(cloud, target)});
        });

        double before = direct.value(x0, target), after = direct.value(x, target);
        assertTrue(after * 100 <= before, () -> "divergence " + before + " -> " + after);
        assertEquals(List.of(0, 20, 40), steps);
        for (double[] d : divergences) assertEquals(d[1], d[0], 1e-5 * d[1]);
        assertEquals(before, divergences.getFirst()[0], 1e-5 * before);
        assertEquals(after, divergences.getLast()[0], 1e-5 * after);
        // The flow moved x, and the caller's cloud x0 was left alone.
        assertArrayEquals(new long[] {300, 2}, x.shape());
        assertTrue(x.distance2(x0) > 1);
    }
}
