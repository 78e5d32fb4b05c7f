package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.samediff.SinkhornOps;
import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.deeplearning4j.datasets.iterator.utilty.SingletonDataSetIterator;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;

/**
 * A gradient flow of the Sinkhorn divergence: the points of a cloud x, a SameDiff variable, descend
 * S(x, y) towards a target cloud y shaped as a heart, by SGD through SameDiff's training loop
 * ({@code TrainingConfig}, {@code fit}); y is the graph's placeholder, fed as the features of a
 * one-example data set.
 *
 * <p>With uniform weights 1/n and the half cost, dS/dx_i = (X_i - T_i) / n (docs/math.md), where T_i
 * is the plan-weighted mean of the points of y that x_i is sent to and X_i the same in the debiasing
 * term OT(x, x), close to x_i at a small blur. So the updater's rate is {@code lr * n}: every step
 * moves each point about the fraction {@code lr} of the way to T_i, the discrete Wasserstein
 * gradient flow.
 *
 * <p>Writes {@code gradient-flow/frame-NNN.png} (one picture per frame), {@code gradient-flow.gif}
 * (the frames as a looping animation) and {@code gradient-flow.png} (four frames side by side).
 *
 * <p>Options: {@code --points N} (of x and of y, default 1000), {@code --steps S} (default 60),
 * {@code --frames F} (pictures, evenly spaced, default 31), {@code --lr R} (fraction of the way per
 * step, default 0.1), {@code --blur B} (default 0.01), {@code --device auto|cpu|cuda},
 * {@code --output DIR} (default examples/output).
 */
public final class GradientFlow {
    static final String[] OPTIONS = {"--points", "--steps", "--frames", "--lr", "--blur", "--device", "--output"};

    private GradientFlow() {}

    /** Everything a flow depends on. */
    record Settings(int points, int steps, int frames, double learningRate, double blur, Device device) {
        Settings {
            if (points < 2) throw new IllegalArgumentException("--points must be at least 2 (got " + points + ")");
            if (steps < 1) throw new IllegalArgumentException("--steps must be at least 1 (got " + steps + ")");
            if (frames < 2) throw new IllegalArgumentException("--frames must be at least 2 (got " + frames + ")");
            if (!(learningRate > 0)) throw new IllegalArgumentException("--lr must be > 0 (got " + learningRate + ")");
        }

        static Settings from(CommandLine options) {
            return new Settings(options.integer("--points", 1000), options.integer("--steps", 60), options.integer("--frames", 31),
                    options.number("--lr", 0.1), options.number("--blur", 0.01), options.device("--device", Device.AUTO));
        }

        SinkhornOptions divergence() {
            return SinkhornOptions.builder().blur(blur).scaling(0.7).device(device).build();
        }
    }

    /** Called at every frame with the step count, the cloud (n, 2) and its divergence to the target. */
    interface FrameListener {
        void frame(int step, INDArray x, double divergence);
    }

    public static void main(String[] args) {
        CommandLine options = CommandLine.parse(args, OPTIONS);
        Settings s = Settings.from(options);
        Path output = options.path("--output", Path.of("examples/output"));
        Random rnd = new Random(0);
        INDArray x0 = blob(rnd, s.points), target = heart(rnd, s.points);
        System.out.printf(Locale.ROOT, "gradient flow: %d points to a heart of %d, %d SGD steps of %.3g, blur %.3g%n", s.points,
                s.points, s.steps, s.learningRate, s.blur);
        double[] bounds = {-2.2, 2.2, -2.2, 2.2};
        Path frameDirectory = output.resolve("gradient-flow");
        deleteFrames(frameDirectory);
        List<BufferedImage> frames = new ArrayList<>();
        List<XYChart> strip = new ArrayList<>();
        long start = System.nanoTime();
        flow(s, x0, target, (step, x, divergence) -> {
            System.out.printf(Locale.ROOT, "step %4d  divergence %.6f  %.1f s%n", step, divergence, (System.nanoTime() - start) / 1e9);
            XYChart chart = picture(String.format(Locale.ROOT, "step %d: S = %.5f", step, divergence), x, target, bounds);
            frames.add(Plots.image(chart));
            Plots.savePng(frameDirectory.resolve(String.format(Locale.ROOT, "frame-%03d.png", frames.size() - 1)), List.of(chart));
            if (isShown(frames.size() - 1, s.frames)) strip.add(chart);
        });
        Plots.savePng(output.resolve("gradient-flow.png"), strip);
        Gif.write(output.resolve("gradient-flow.gif"), frames, 120, 1500);
        System.out.println("wrote " + frames.size() + " frames under " + frameDirectory + ", "
                + output.resolve("gradient-flow.gif") + " and " + output.resolve("gradient-flow.png"));
    }

    /**
     * Runs {@code steps} SGD steps on x from {@code x0} in a SameDiff graph whose loss is
     * S(x, target), calling the listener at {@code frames} evenly spaced steps (the first at step 0,
     * the last at the end). Returns the final cloud.
     */
    static INDArray flow(Settings s, INDArray x0, INDArray target, FrameListener listener) {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", x0.dup());
        SDVariable y = sd.placeHolder("target", target.dataType(), target.shape());
        SinkhornOps.divergence(sd, "loss", x, y, s.divergence());
        sd.setTrainingConfig(TrainingConfig.builder().updater(new Sgd(s.learningRate * x0.size(0)))
                .dataSetFeatureMapping("target").markLabelsUnused().minimize("loss").build());
        var data = new SingletonDataSetIterator(new DataSet(target, null));
        Map<String, INDArray> feed = Map.of("target", target);
        int done = 0;
        for (int frame = 0; frame < s.frames; frame++) {
            int until = (int) Math.round((double) s.steps * frame / (s.frames - 1));
            if (until > done) sd.fit(data, until - done);
            done = until;
            listener.frame(done, x.getArr(), sd.output(feed, "loss").get("loss").getDouble(0));
        }
        return x.getArr().dup();
    }

    /** Frames of an earlier run, which could outnumber this run's. */
    private static void deleteFrames(Path directory) {
        if (!Files.isDirectory(directory)) return;
        try (Stream<Path> files = Files.list(directory)) {
            for (Path f : files.filter(p -> p.getFileName().toString().matches("frame-\\d+\\.png")).toList()) Files.delete(f);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Frames shown in the four-panel summary: the first, the last and two between. */
    private static boolean isShown(int frame, int frames) {
        for (int k = 0; k < 4; k++) if (frame == Math.round((frames - 1) * k / 3.0)) return true;
        return false;
    }

    /** An isotropic Gaussian cloud (standard deviation 0.35) centred at (-1, -1). */
    static INDArray blob(Random rnd, int n) {
        double[][] p = new double[n][];
        for (int i = 0; i < n; i++) p[i] = new double[] {-1 + 0.35 * rnd.nextGaussian(), -1 + 0.35 * rnd.nextGaussian()};
        return Nd4j.createFromArray(p).castTo(DataType.FLOAT);
    }

    /**
     * Uniform points in a heart, by rejection from the implicit curve (u^2 + v^2 - 1)^3 <= u^2 v^3
     * (|u| <= 1.14, v in [-1, 1.25]), scaled by 1.4 and moved up to be centred near (0.4, 0.4).
     */
    static INDArray heart(Random rnd, int n) {
        double[][] p = new double[n][];
        for (int i = 0; i < n; ) {
            double u = 2.3 * (rnd.nextDouble() - 0.5), v = -1 + 2.25 * rnd.nextDouble();
            double r = u * u + v * v - 1;
            if (r * r * r <= u * u * v * v * v) p[i++] = new double[] {0.4 + 1.4 * u, 0.3 + 1.4 * v};
        }
        return Nd4j.createFromArray(p).castTo(DataType.FLOAT);
    }

    private static XYChart picture(String title, INDArray x, INDArray target, double[] bounds) {
        XYChart chart = Plots.scatter(title, 480, 4);
        chart.getStyler().setLegendVisible(false);
        Plots.add(chart, "target", target.castTo(DataType.DOUBLE).toDoubleMatrix(), new Color(255, 150, 150), SeriesMarkers.CIRCLE, false);
        Plots.add(chart, "x", x.castTo(DataType.DOUBLE).toDoubleMatrix(), Plots.CLASS_COLOURS[0], SeriesMarkers.CIRCLE, false);
        Plots.axes(chart, bounds[0], bounds[1], bounds[2], bounds[3]);
        return chart;
    }
}
