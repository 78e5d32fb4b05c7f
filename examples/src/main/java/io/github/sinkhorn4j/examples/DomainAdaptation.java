package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.SinkhornLoss;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.dl4j.SinkhornAlignmentLoss;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Random;
import java.util.function.Consumer;
import java.util.stream.IntStream;
import org.deeplearning4j.nn.conf.ComputationGraphConfiguration.GraphBuilder;
import org.deeplearning4j.nn.conf.NeuralNetConfiguration;
import org.deeplearning4j.nn.conf.layers.DenseLayer;
import org.deeplearning4j.nn.conf.layers.LossLayer;
import org.deeplearning4j.nn.conf.layers.OutputLayer;
import org.deeplearning4j.nn.graph.ComputationGraph;
import org.deeplearning4j.nn.weights.WeightInit;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.style.Styler.LegendLayout;
import org.knowm.xchart.style.Styler.LegendPosition;
import org.knowm.xchart.style.markers.SeriesMarkers;
import org.nd4j.linalg.activations.Activation;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dimensionalityreduction.PCA;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.lossfunctions.LossFunctions;

/**
 * Unsupervised domain adaptation with the Sinkhorn divergence as a DL4J loss. The source domain is
 * labelled: two Gaussian blobs, one per class. The target domain is the same distribution rotated
 * (60 degrees) and shifted, and its labels are never used in training, only to measure accuracy.
 * One ComputationGraph, a feature extractor (2 -> 32 -> 8, tanh) and a softmax classifier on the
 * features, is trained on minibatches holding source and target points, with the loss
 *
 * <pre>
 *   cross-entropy(classifier, source labels) + lambda * S(source features, target features)
 * </pre>
 *
 * <p>where S is the debiased Sinkhorn divergence between the two groups of rows of the features
 * layer: a {@code LossLayer} with {@link SinkhornAlignmentLoss} on the features, a second output of
 * the graph beside the classifier (its labels: 1 on source rows, 0 on target rows; the classifier's
 * labels are masked out on target rows). DL4J averages the classifier's masked score over all the
 * minibatch's rows, so with as many target rows as source rows the cross-entropy enters at half its
 * mean over the source rows. The same network trained without the alignment output, on the same
 * minibatches, is the baseline. Both are trained for every seed (the data, the initialisation and the minibatches
 * depend on it); the last line is the target accuracy of both, averaged over the seeds.
 *
 * <p>Writes, for the first seed, {@code domain-adaptation-boundary.png} (the decision regions of the
 * baseline and of the aligned network, with the source and target points) and
 * {@code domain-adaptation-features.png} (the features of source and target points on their two
 * principal components, without and with alignment).
 *
 * <p>The Sinkhorn solves run on CUDA when a device is present ({@code --device auto}); the network
 * itself runs on ND4J's CPU backend, the one this build carries.
 *
 * <p>Options: {@code --data blobs|moons} (default blobs; see the README for moons),
 * {@code --points N} (per domain, default 512), {@code --noise SD} (of the blobs, default 0.3; of
 * the moons, 0.1), {@code --rotation DEG} (default 60), {@code --shift DX,DY} (default 1.5,-1),
 * {@code --epochs E} (default 40), {@code --batch B} (source points per minibatch, and as many
 * target points; default 128), {@code --lambda L} (weight of S, default 1), {@code --blur B} (of S,
 * default 0.1), {@code --lr R} (Adam, default 0.01), {@code --seeds K} (seeds 1..K, default 3),
 * {@code --device auto|cpu|cuda}, {@code --output DIR} (default examples/output).
 */
public final class DomainAdaptation {
    static final String[] OPTIONS = {"--data", "--points", "--noise", "--rotation", "--shift", "--epochs", "--batch",
        "--lambda", "--blur", "--lr", "--seeds", "--device", "--output"};
    private static final String INPUT = "points", FEATURES = "features", CLASSES = "classes", ALIGNMENT = "alignment";
    private static final int HIDDEN = 32, FEATURE_COUNT = 8;

    private DomainAdaptation() {}

    /** The source distribution. */
    enum Data {
        BLOBS(0.3), MOONS(0.1);

        final double defaultNoise;

        Data(double defaultNoise) {
            this.defaultNoise = defaultNoise;
        }
    }

    /** Everything a run depends on but the seed. */
    record Settings(Data data, int points, double noise, double rotationDegrees, double shiftX, double shiftY, int epochs,
                    int batch, double lambda, double blur, double learningRate, Device device) {
        Settings {
            if (points < 2) throw new IllegalArgumentException("--points must be at least 2 (got " + points + ")");
            if (batch < 1 || batch > points) {
                throw new IllegalArgumentException("--batch must be in [1, points = " + points + "] (got " + batch + ")");
            }
            if (epochs < 1) throw new IllegalArgumentException("--epochs must be at least 1 (got " + epochs + ")");
            if (!(noise >= 0)) throw new IllegalArgumentException("--noise must be >= 0 (got " + noise + ")");
            if (!(lambda >= 0)) throw new IllegalArgumentException("--lambda must be >= 0 (got " + lambda + ")");
            if (!(learningRate > 0)) throw new IllegalArgumentException("--lr must be > 0 (got " + learningRate + ")");
        }

        static Settings from(CommandLine options) {
            Data data = options.choice("--data", Data.class, Data.BLOBS);
            double[] shift = options.doubles("--shift", 1.5, -1);
            return new Settings(data, options.integer("--points", 512), options.number("--noise", data.defaultNoise),
                    options.number("--rotation", 60), shift[0], shift[1], options.integer("--epochs", 40),
                    options.integer("--batch", 128), options.number("--lambda", 1), options.number("--blur", 0.1),
                    options.number("--lr", 0.01), options.device("--device", Device.AUTO));
        }

        SinkhornOptions divergence() {
            return SinkhornOptions.builder().blur(blur).scaling(0.5).device(device).build();
        }
    }

    /** Source and target points (n, 2) with their classes (the target's only for evaluation). */
    record Domains(INDArray source, int[] sourceClasses, INDArray target, int[] targetClasses) {}

    /** A network and how it does: cross-entropy and accuracy on the source, accuracy on the target, S between the domains' features. */
    record Trained(ComputationGraph net, double crossEntropy, double sourceAccuracy, double targetAccuracy, double divergence) {}

    public static void main(String[] args) {
        CommandLine options = CommandLine.parse(args, OPTIONS);
        Settings s = Settings.from(options);
        int seeds = options.integer("--seeds", 3);
        if (seeds < 1) throw new IllegalArgumentException("--seeds must be at least 1 (got " + seeds + ")");
        Path output = options.path("--output", Path.of("examples/output"));
        System.out.printf(Locale.ROOT, "domain adaptation: %s, target rotated %.0f degrees and shifted by (%.2f, %.2f); "
                + "%d points per domain, %d epochs, lambda %.3g, blur %.3g, %d seeds (CUDA devices: %d)%n",
                s.data.name().toLowerCase(Locale.ROOT), s.rotationDegrees, s.shiftX, s.shiftY, s.points, s.epochs, s.lambda, s.blur,
                seeds, Sinkhorn.cudaDeviceCount());
        double baselineSum = 0, alignedSum = 0;
        for (int seed = 1; seed <= seeds; seed++) {
            Domains data = domains(s, seed);
            String tag = "seed " + seed;
            Trained baseline = train(s, data, seed, false, line -> System.out.println(tag + " baseline " + line));
            Trained aligned = train(s, data, seed, true, line -> System.out.println(tag + " sinkhorn " + line));
            baselineSum += baseline.targetAccuracy();
            alignedSum += aligned.targetAccuracy();
            if (seed == 1) {
                Path boundary = output.resolve("domain-adaptation-boundary.png"), features = output.resolve("domain-adaptation-features.png");
                plotBoundaries(boundary, data, baseline, aligned);
                plotFeatures(features, data, baseline, aligned);
                System.out.println("wrote " + boundary + " and " + features);
            }
        }
        System.out.printf(Locale.ROOT, "target accuracy: baseline=%.2f sinkhorn=%.2f%n", baselineSum / seeds, alignedSum / seeds);
    }

    /** Source and target samples of {@code points} points each, half per class; the target rotated about the origin, then shifted. */
    static Domains domains(Settings s, long seed) {
        Random rnd = new Random(seed);
        int[] sourceClasses = new int[s.points], targetClasses = new int[s.points];
        double[][] source = sample(s, rnd, sourceClasses), target = sample(s, rnd, targetClasses);
        double angle = Math.toRadians(s.rotationDegrees), cos = Math.cos(angle), sin = Math.sin(angle);
        for (double[] p : target) {
            double x = p[0], y = p[1];
            p[0] = cos * x - sin * y + s.shiftX;
            p[1] = sin * x + cos * y + s.shiftY;
        }
        return new Domains(Nd4j.createFromArray(source).castTo(DataType.FLOAT), sourceClasses,
                Nd4j.createFromArray(target).castTo(DataType.FLOAT), targetClasses);
    }

    /**
     * Blobs: class 0 around (-1, 0), class 1 around (1, 0), standard deviation {@code noise}. Moons:
     * two interleaved half circles (the upper centred at (0, 0), the lower at (1, 0.5)) moved so
     * that the pair is centred on the origin, with Gaussian noise.
     */
    private static double[][] sample(Settings s, Random rnd, int[] classes) {
        double[][] points = new double[classes.length][];
        for (int i = 0; i < classes.length; i++) {
            int c = classes[i] = i % 2;
            double x, y;
            if (s.data == Data.BLOBS) {
                x = c == 0 ? -1 : 1;
                y = 0;
            } else {
                double t = Math.PI * rnd.nextDouble();
                x = (c == 0 ? Math.cos(t) : 1 - Math.cos(t)) - 0.5;
                y = (c == 0 ? Math.sin(t) : 0.5 - Math.sin(t)) - 0.25;
            }
            points[i] = new double[] {x + s.noise * rnd.nextGaussian(), y + s.noise * rnd.nextGaussian()};
        }
        return points;
    }

    /** Points -> hidden -> features -> classes, and with {@code align} the alignment loss on the features as a second output. */
    static ComputationGraph network(Settings s, long seed, boolean align) {
        GraphBuilder graph = new NeuralNetConfiguration.Builder().seed(seed).updater(new Adam(s.learningRate))
                .weightInit(WeightInit.XAVIER).dataType(DataType.FLOAT).graphBuilder()
                .addInputs(INPUT)
                .addLayer("hidden", new DenseLayer.Builder().nIn(2).nOut(HIDDEN).activation(Activation.TANH).build(), INPUT)
                .addLayer(FEATURES, new DenseLayer.Builder().nIn(HIDDEN).nOut(FEATURE_COUNT).activation(Activation.TANH).build(),
                        "hidden")
                .addLayer(CLASSES, new OutputLayer.Builder(LossFunctions.LossFunction.MCXENT).nIn(FEATURE_COUNT).nOut(2)
                        .activation(Activation.SOFTMAX).build(), FEATURES);
        if (align) {
            graph.addLayer(ALIGNMENT, new LossLayer.Builder(new SinkhornAlignmentLoss(s.divergence(), s.lambda))
                    .activation(Activation.IDENTITY).build(), FEATURES)
                    .setOutputs(CLASSES, ALIGNMENT);
        } else {
            graph.setOutputs(CLASSES);
        }
        ComputationGraph net = new ComputationGraph(graph.build());
        net.init();
        return net;
    }

    /**
     * Trains on minibatches of {@code batch} source rows followed by {@code batch} target rows, drawn
     * without replacement in every epoch; the classifier's labels are masked out on the target rows.
     * Reports one line per epoch.
     */
    static Trained train(Settings s, Domains data, long seed, boolean align, Consumer<String> progress) {
        ComputationGraph net = network(s, seed, align);
        Random rnd = new Random(31 * seed + 1);
        INDArray domainColumn = Nd4j.vstack(Nd4j.ones(DataType.FLOAT, s.batch, 1), Nd4j.zeros(DataType.FLOAT, s.batch, 1));
        INDArray targetClasses = Nd4j.zeros(DataType.FLOAT, s.batch, 2);
        INDArray sourceClasses = oneHot(data.sourceClasses());
        long start = System.nanoTime();
        Trained t = null;
        for (int epoch = 1; epoch <= s.epochs; epoch++) {
            int[] sourceOrder = permutation(rnd, s.points), targetOrder = permutation(rnd, s.points);
            for (int from = 0; from + s.batch <= s.points; from += s.batch) {
                int[] sourceRows = Arrays.copyOfRange(sourceOrder, from, from + s.batch);
                int[] targetRows = Arrays.copyOfRange(targetOrder, from, from + s.batch);
                INDArray points = Nd4j.vstack(Nd4j.pullRows(data.source(), 1, sourceRows), Nd4j.pullRows(data.target(), 1, targetRows));
                INDArray classes = Nd4j.vstack(Nd4j.pullRows(sourceClasses, 1, sourceRows), targetClasses);
                net.fit(align
                        ? new MultiDataSet(new INDArray[] {points}, new INDArray[] {classes, domainColumn}, null,
                                new INDArray[] {domainColumn, null})
                        : new MultiDataSet(new INDArray[] {points}, new INDArray[] {classes}, null, new INDArray[] {domainColumn}));
            }
            t = evaluate(net, s, data);
            progress.accept(String.format(Locale.ROOT, "epoch %3d/%d  cross-entropy %.4f  divergence %.5f  source accuracy %.3f  "
                    + "target accuracy %.3f  %.1f s", epoch, s.epochs, t.crossEntropy(), t.divergence(), t.sourceAccuracy(),
                    t.targetAccuracy(), (System.nanoTime() - start) / 1e9));
        }
        return t;
    }

    static Trained evaluate(ComputationGraph net, Settings s, Domains data) {
        INDArray p = net.output(false, data.source())[0];
        int[] classes = data.sourceClasses();
        double crossEntropy = 0;
        for (int i = 0; i < classes.length; i++) crossEntropy -= Math.log(Math.max(1e-30, p.getDouble(i, classes[i])));
        double divergence = new SinkhornLoss(s.divergence()).value(features(net, data.source()), features(net, data.target()));
        return new Trained(net, crossEntropy / classes.length, accuracy(predict(p), classes),
                accuracy(predict(net.output(false, data.target())[0]), data.targetClasses()), divergence);
    }

    private static int[] predict(INDArray probabilities) {
        return probabilities.argMax(1).toIntVector();
    }

    private static double accuracy(int[] predicted, int[] classes) {
        return IntStream.range(0, classes.length).filter(i -> predicted[i] == classes[i]).count() / (double) classes.length;
    }

    private static INDArray features(ComputationGraph net, INDArray points) {
        return net.feedForward(points, false).get(FEATURES);
    }

    private static INDArray oneHot(int[] classes) {
        INDArray out = Nd4j.zeros(DataType.FLOAT, classes.length, 2);
        for (int i = 0; i < classes.length; i++) out.putScalar(i, classes[i], 1);
        return out;
    }

    private static int[] permutation(Random rnd, int n) {
        int[] p = IntStream.range(0, n).toArray();
        for (int i = n - 1; i > 0; i--) {
            int j = rnd.nextInt(i + 1), swap = p[i];
            p[i] = p[j];
            p[j] = swap;
        }
        return p;
    }

    /** Decision regions on a grid over both domains, with the source points (dots) and the target points (crosses). */
    private static void plotBoundaries(Path file, Domains data, Trained baseline, Trained aligned) {
        INDArray both = Nd4j.vstack(data.source(), data.target());
        double margin = 0.3, xMin = both.getColumn(0).minNumber().doubleValue() - margin;
        double xMax = both.getColumn(0).maxNumber().doubleValue() + margin;
        double yMin = both.getColumn(1).minNumber().doubleValue() - margin, yMax = both.getColumn(1).maxNumber().doubleValue() + margin;
        int cells = 100;
        double[][] grid = new double[cells * cells][];
        for (int r = 0; r < cells; r++) {
            for (int c = 0; c < cells; c++) {
                grid[r * cells + c] = new double[] {xMin + (xMax - xMin) * c / (cells - 1), yMin + (yMax - yMin) * r / (cells - 1)};
            }
        }
        INDArray gridPoints = Nd4j.createFromArray(grid).castTo(DataType.FLOAT);
        List<XYChart> charts = new ArrayList<>();
        for (Trained t : List.of(baseline, aligned)) {
            XYChart chart = Plots.scatter(String.format(Locale.ROOT, "%s: target accuracy %.2f",
                    t == baseline ? "baseline (source only)" : "with Sinkhorn alignment", t.targetAccuracy()), 560, 7);
            int[] regions = predict(t.net().output(false, gridPoints)[0]);
            for (int k = 0; k < 2; k++) {
                Plots.add(chart, "region " + k, rowsOfClass(grid, regions, k), Plots.REGION_COLOURS[k], SeriesMarkers.SQUARE, false);
            }
            addDomains(chart, data.source(), data.target(), data);
            Plots.axes(chart, xMin, xMax, yMin, yMax);
            chart.getStyler().setPlotContentSize(1.0);  // regions up to the plot's border
            charts.add(chart);
        }
        Plots.savePng(file, charts);
    }

    /** Source and target features on the two principal components of both, for each network. */
    private static void plotFeatures(Path file, Domains data, Trained baseline, Trained aligned) {
        List<XYChart> charts = new ArrayList<>();
        for (Trained t : List.of(baseline, aligned)) {
            INDArray source = features(t.net(), data.source()).castTo(DataType.DOUBLE);
            INDArray target = features(t.net(), data.target()).castTo(DataType.DOUBLE);
            INDArray both = Nd4j.vstack(source, target), mean = both.mean(0);
            INDArray components = PCA.pca_factor(both.dup(), 2, false);
            XYChart chart = Plots.scatter(String.format(Locale.ROOT, "features %s alignment: S = %.4f",
                    t == baseline ? "without" : "with", t.divergence()), 560, 5);
            chart.setXAxisTitle("principal component 1");
            chart.setYAxisTitle("principal component 2");
            addDomains(chart, source.subRowVector(mean).mmul(components), target.subRowVector(mean).mmul(components), data);
            charts.add(chart);
        }
        Plots.savePng(file, charts);
    }

    /** Source points as dots and target points as crosses, coloured by their true class; the legend below the plot. */
    private static void addDomains(XYChart chart, INDArray source, INDArray target, Domains data) {
        chart.getStyler().setLegendPosition(LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(LegendLayout.Horizontal);
        double[][] sourceRows = source.castTo(DataType.DOUBLE).toDoubleMatrix(), targetRows = target.castTo(DataType.DOUBLE).toDoubleMatrix();
        for (int k = 0; k < 2; k++) {
            Plots.add(chart, "source, class " + k, rowsOfClass(sourceRows, data.sourceClasses(), k), Plots.CLASS_COLOURS[k],
                    SeriesMarkers.CIRCLE, true);
        }
        for (int k = 0; k < 2; k++) {
            Plots.add(chart, "target, class " + k, rowsOfClass(targetRows, data.targetClasses(), k), Plots.CLASS_COLOURS[k].darker(),
                    SeriesMarkers.CROSS, true);
        }
    }

    private static double[][] rowsOfClass(double[][] rows, int[] classes, int klass) {
        return IntStream.range(0, classes.length).filter(i -> classes[i] == klass).mapToObj(i -> rows[i]).toArray(double[][]::new);
    }
}
