package io.github.sinkhorn4j.samediff;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.sinkhorn4j.core.SinkhornOptions;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The ops in JVMs that start cold: a saved graph loaded before any sinkhorn4j class is touched
 * ({@link LoadGraphMain}), and ND4J started through a class loader that cannot see sinkhorn4j's
 * start-up action ({@link LateInstallMain}). Each prints its values; they must equal this JVM's.
 */
class FreshJvmTest {
    /** x (18, 2) through sin, y (13, 2) with weights, batch of one problem: the graph both JVMs run. */
    static SameDiff graph() {
        Random rnd = new Random(42);
        double[] x = new double[18 * 2], y = new double[13 * 2], b = new double[13];
        for (int i = 0; i < x.length; i++) x[i] = rnd.nextGaussian();
        for (int i = 0; i < y.length; i++) y[i] = rnd.nextGaussian() + 0.5;
        for (int i = 0; i < b.length; i++) b[i] = 0.1 + rnd.nextDouble();
        SameDiff sd = SameDiff.create();
        SDVariable xv = sd.var("x", Nd4j.createFromArray(x).reshape(18, 2));
        SinkhornOps.divergence(sd, "loss", null, sd.math.sin(xv), sd.constant(Nd4j.createFromArray(b)),
                sd.constant(Nd4j.createFromArray(y).reshape(13, 2)), SinkhornOptions.builder().blur(0.1).reachY(2.0).build());
        return sd;
    }

    static void print(String key, INDArray values) {
        System.out.println(key + "=" + Arrays.stream(values.dup('c').data().asDouble()).mapToObj(Double::toString)
                .collect(Collectors.joining(",")));
    }

    private static String text(INDArray values) {
        return Arrays.stream(values.dup('c').data().asDouble()).mapToObj(Double::toString).collect(Collectors.joining(","));
    }

    @Test
    void aSavedGraphRunsInAJvmThatNeverNamedSinkhorn4j(@TempDir Path dir) throws Exception {
        SameDiff sd = graph();
        Path file = dir.resolve("graph.fb");
        sd.save(file.toFile(), false);
        Map<String, String> child = run(LoadGraphMain.class, file);
        assertEquals("true", child.get("routing"));
        assertEquals(text(sd.output((Map<String, INDArray>) null, "loss").get("loss")), child.get("loss"));
        assertEquals(text(sd.calculateGradients(null, "x").get("x")), child.get("grad"));
    }

    @Test
    void theOpsRouteThemselvesWhenNd4jStartedWithoutThem(@TempDir Path dir) throws Exception {
        SameDiff sd = graph();
        Map<String, String> child = run(LateInstallMain.class, dir.resolve("graph.fb"));
        assertEquals("false", child.get("routingAtStart"), "the start-up action was hidden");
        assertEquals("true", child.get("routing"));
        String loss = text(sd.output((Map<String, INDArray>) null, "loss").get("loss"));
        String grad = text(sd.calculateGradients(null, "x").get("x"));
        assertEquals(loss, child.get("loss"));
        assertEquals(grad, child.get("grad"));
        assertEquals(loss, child.get("loadedLoss"));
        assertEquals(grad, child.get("loadedGrad"));
    }

    private static Map<String, String> run(Class<?> main, Path file) throws IOException, InterruptedException {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED", "-cp",
                System.getProperty("java.class.path"), main.getName(), file.toString())).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(120, TimeUnit.SECONDS), "child JVM timed out");
        String text = new String(out, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), () -> "child JVM failed:\n" + text);
        Map<String, String> values = new HashMap<>();
        for (String line : text.split("\n")) {
            int eq = line.indexOf('=');
            if (eq > 0 && line.substring(0, eq).matches("[A-Za-z]+")) values.put(line.substring(0, eq), line.substring(eq + 1).trim());
        }
        return values;
    }
}
