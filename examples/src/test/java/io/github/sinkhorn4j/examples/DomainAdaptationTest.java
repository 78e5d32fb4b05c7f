package io.github.sinkhorn4j.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.examples.DomainAdaptation.Domains;
import io.github.sinkhorn4j.examples.DomainAdaptation.Settings;
import io.github.sinkhorn4j.examples.DomainAdaptation.Trained;
import java.util.ArrayList;
import java.util.List;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.ndarray.INDArray;

class DomainAdaptationTest {
    private static Settings settings(String... args) {
        return Settings.from(CommandLine.parse(args, DomainAdaptation.OPTIONS));
    }

    /**
     * The example at a quarter of its size, one seed: the network trained with the Sinkhorn
     * alignment loss classifies the rotated, shifted target domain, the same network without it
     * does not (both classify the source). Accuracies are counted here from the networks' outputs.
     */
    @Test
    void theAlignmentLossAdaptsTheClassifierToTheTargetDomain() {
        Settings s = settings("--points", "256", "--batch", "64", "--epochs", "15", "--device", "cpu");
        Domains data = DomainAdaptation.domains(s, 1);
        List<String> progress = new ArrayList<>();
        Trained baseline = DomainAdaptation.train(s, data, 1, false, progress::add);
        Trained aligned = DomainAdaptation.train(s, data, 1, true, progress::add);

        double baselineTarget = accuracy(baseline.net(), data.target(), data.targetClasses());
        double alignedTarget = accuracy(aligned.net(), data.target(), data.targetClasses());
        assertTrue(accuracy(baseline.net(), data.source(), data.sourceClasses()) >= 0.95, "baseline on the source");
        assertTrue(accuracy(aligned.net(), data.source(), data.sourceClasses()) >= 0.95, "aligned network on the source");
        assertTrue(alignedTarget >= 0.9, () -> "aligned network on the target: " + alignedTarget);
        assertTrue(alignedTarget >= baselineTarget + 0.3, () -> "target: baseline " + baselineTarget + ", aligned " + alignedTarget);
        assertEquals(alignedTarget, aligned.targetAccuracy());
        assertEquals(baselineTarget, baseline.targetAccuracy());
        // The alignment is why: the features of the two domains are far closer with it.
        assertTrue(aligned.divergence() * 20 <= baseline.divergence(),
                () -> "divergence of the features: baseline " + baseline.divergence() + ", aligned " + aligned.divergence());
        assertEquals(2 * 15, progress.size());
        assertTrue(progress.getLast().startsWith("epoch  15/15  cross-entropy "), progress.getLast());
    }

    @Test
    void badOptionsAreRefusedByName() {
        var unknown = assertThrows(IllegalArgumentException.class, () -> settings("--epoch", "3"));
        assertTrue(unknown.getMessage().contains("--epoch"), unknown.getMessage());
        var batch = assertThrows(IllegalArgumentException.class, () -> settings("--points", "100", "--batch", "200"));
        assertTrue(batch.getMessage().contains("--batch"), batch.getMessage());
        var shift = assertThrows(IllegalArgumentException.class, () -> settings("--shift", "1"));
        assertTrue(shift.getMessage().contains("--shift"), shift.getMessage());
        var value = assertThrows(IllegalArgumentException.class, () -> settings("--lambda"));
        assertTrue(value.getMessage().contains("--lambda"), value.getMessage());
        var device = assertThrows(IllegalArgumentException.class, () -> settings("--device", "gpu"));
        assertTrue(device.getMessage().contains("--device"), device.getMessage());
    }

    /** The fraction of points whose larger class probability is their class's. */
    private static double accuracy(ComputationGraph net, INDArray points, int[] classes) {
        INDArray p = net.output(false, points)[0];
        int correct = 0;
        for (int i = 0; i < classes.length; i++) {
            int predicted = p.getDouble(i, 1) > p.getDouble(i, 0) ? 1 : 0;
            if (predicted == classes[i]) correct++;
        }
        return correct / (double) classes.length;
    }
}
