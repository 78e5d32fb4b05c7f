package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Clouds;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.awt.Color;
import java.awt.GradientPaint;
import java.awt.Graphics2D;
import java.awt.RenderingHints;
import java.awt.geom.Ellipse2D;
import java.awt.geom.Path2D;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Random;
import javax.imageio.ImageIO;

/**
 * Colour transfer by barycentric mapping: the colours of a picture (a cloud in RGB space) are moved
 * onto the palette of another picture along the entropic transport plan between the two clouds.
 *
 * <p>The solve runs on the colours of every pixel of the source picture and a random sample of the
 * target's; each pixel then takes the plan-weighted mean of the target colours,
 * T(x_i) = (pi @ y)_i / (pi @ 1)_i, computed by one streaming plan product with v = [y, 1], so the
 * n x m plan is never stored. Both pictures are drawn in code (a daylight and a dusk landscape).
 * Writes {@code colour-transfer.png} (source, target, result) and the colour clouds before and after
 * ({@code colour-transfer-clouds.png}).
 *
 * <p>Options: {@code --width W --height H} (picture size, default 160 x 120), {@code --samples M}
 * (target colours used, default 4096), {@code --blur B} (default 0.02, in RGB units of [0, 1]),
 * {@code --device auto|cpu|cuda}, {@code --output DIR} (default examples/output).
 */
public final class ColourTransfer {
    private ColourTransfer() {}

    public static void main(String[] args) {
        CommandLine line = CommandLine.parse(args, "--width", "--height", "--samples", "--blur", "--device", "--output");
        int width = line.integer("--width", 160), height = line.integer("--height", 120);
        int samples = line.integer("--samples", 4096);
        double blur = line.number("--blur", 0.02);
        Device device = line.device("--device", Device.AUTO);
        Path output = line.path("--output", Path.of("examples/output"));
        BufferedImage source = landscape(width, height, false), target = landscape(width, height, true);
        double[] x = colours(source);
        double[] y = sample(colours(target), samples, new Random(0));
        int n = x.length / 3, m = y.length / 3;

        // Balanced OT (no debiasing): the plan of OT_eps(a, b) itself, at eps = blur^2.
        SinkhornOptions options = SinkhornOptions.builder().blur(blur).scaling(0.7).debias(false).device(device).build();
        long t0 = System.nanoTime();
        DivergenceResult r = Sinkhorn.divergence(options, x, y, 3, null, null, false);
        double solveSeconds = (System.nanoTime() - t0) / 1e9;

        double[] targetAndOne = new double[m * 4];
        for (int j = 0; j < m; j++) {
            System.arraycopy(y, 3 * j, targetAndOne, 4 * j, 3);
            targetAndOne[4 * j + 3] = 1;
        }
        double[] planTimes = new double[n * 4];
        Clouds clouds = Clouds.of(DType.FLOAT64, n, m, 3, MemorySegment.ofArray(x), MemorySegment.ofArray(y), null, null);
        Sinkhorn.planProduct(options.toBuilder().eps(blur * blur).build(), clouds, MemorySegment.ofArray(r.fBa()),
                MemorySegment.ofArray(r.gAb()), false, 4, MemorySegment.ofArray(targetAndOne), MemorySegment.ofArray(planTimes));
        double[] mapped = new double[n * 3];
        for (int i = 0; i < n; i++) {
            for (int c = 0; c < 3; c++) mapped[3 * i + c] = planTimes[4 * i + c] / planTimes[4 * i + 3];
        }
        System.out.printf(Locale.ROOT, "colour transfer: %d pixels onto %d target colours, blur %.3g: OT_eps %.5f, "
                + "%d iterations on %s, %.2f s%n", n, m, blur, r.loss(), r.report().iterations()[0], r.report().device(), solveSeconds);

        BufferedImage result = withColours(width, height, mapped);
        Path file = output.resolve("colour-transfer.png");
        writeSideBySide(file, source, target, result);
        plotClouds(output.resolve("colour-transfer-clouds.png"), x, y, mapped);
        System.out.println("wrote " + file + " and " + output.resolve("colour-transfer-clouds.png"));
    }

    /** A landscape of sky, sun, hills and water; dusk swaps the daylight palette for an evening one. */
    static BufferedImage landscape(int w, int h, boolean dusk) {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = img.createGraphics();
        g.setRenderingHint(RenderingHints.KEY_ANTIALIASING, RenderingHints.VALUE_ANTIALIAS_ON);
        Color skyTop = dusk ? new Color(40, 20, 80) : new Color(70, 130, 220);
        Color skyLow = dusk ? new Color(250, 120, 60) : new Color(190, 225, 250);
        g.setPaint(new GradientPaint(0, 0, skyTop, 0, h * 0.6f, skyLow));
        g.fillRect(0, 0, w, h);
        g.setColor(dusk ? new Color(255, 210, 90) : new Color(255, 250, 200));
        g.fill(new Ellipse2D.Double(w * (dusk ? 0.6 : 0.15), h * (dusk ? 0.38 : 0.1), h * 0.22, h * 0.22));
        g.setPaint(new GradientPaint(0, h * 0.45f, dusk ? new Color(120, 40, 70) : new Color(90, 170, 70), 0, h * 0.75f,
                dusk ? new Color(50, 15, 40) : new Color(30, 100, 40)));
        g.fill(hills(w, h, dusk ? 1.7 : 1.0));
        g.setPaint(new GradientPaint(0, h * 0.72f, dusk ? new Color(200, 90, 80) : new Color(40, 110, 180), 0, h,
                dusk ? new Color(60, 30, 70) : new Color(10, 50, 110)));
        g.fillRect(0, (int) (h * 0.72), w, h);
        g.dispose();
        return img;
    }

    private static Path2D hills(int w, int h, double phase) {
        Path2D p = new Path2D.Double();
        p.moveTo(0, h);
        for (int i = 0; i <= w; i++) {
            double t = i / (double) w;
            p.lineTo(i, h * (0.55 - 0.08 * Math.sin(6 * t + phase) - 0.05 * Math.sin(15 * t + 2 * phase)));
        }
        p.lineTo(w, h);
        p.closePath();
        return p;
    }

    /** The colours of every pixel as rows (r, g, b) in [0, 1]. */
    static double[] colours(BufferedImage img) {
        int w = img.getWidth(), h = img.getHeight();
        double[] out = new double[w * h * 3];
        for (int yy = 0; yy < h; yy++) {
            for (int xx = 0; xx < w; xx++) {
                int rgb = img.getRGB(xx, yy), k = 3 * (yy * w + xx);
                out[k] = ((rgb >> 16) & 255) / 255.0;
                out[k + 1] = ((rgb >> 8) & 255) / 255.0;
                out[k + 2] = (rgb & 255) / 255.0;
            }
        }
        return out;
    }

    private static double[] sample(double[] rows, int count, Random rnd) {
        int total = rows.length / 3;
        if (count >= total) return rows;
        double[] out = new double[count * 3];
        for (int i = 0; i < count; i++) System.arraycopy(rows, 3 * rnd.nextInt(total), out, 3 * i, 3);
        return out;
    }

    private static BufferedImage withColours(int w, int h, double[] rows) {
        BufferedImage img = new BufferedImage(w, h, BufferedImage.TYPE_INT_RGB);
        for (int i = 0; i < w * h; i++) {
            int r = channel(rows[3 * i]), g = channel(rows[3 * i + 1]), b = channel(rows[3 * i + 2]);
            img.setRGB(i % w, i / w, (r << 16) | (g << 8) | b);
        }
        return img;
    }

    private static int channel(double v) {
        return (int) Math.round(255 * Math.min(1, Math.max(0, v)));
    }

    private static void writeSideBySide(Path file, BufferedImage... images) {
        int gap = 8, w = images[0].getWidth(), h = images[0].getHeight(), scale = 2;
        BufferedImage out = new BufferedImage(images.length * (w * scale + gap) - gap, h * scale, BufferedImage.TYPE_INT_RGB);
        Graphics2D g = out.createGraphics();
        g.setColor(Color.WHITE);
        g.fillRect(0, 0, out.getWidth(), out.getHeight());
        for (int k = 0; k < images.length; k++) g.drawImage(images[k], k * (w * scale + gap), 0, w * scale, h * scale, null);
        g.dispose();
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            ImageIO.write(out, "png", file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Red against blue of the three colour clouds, each point drawn in its own colour. */
    private static void plotClouds(Path file, double[] x, double[] y, double[] mapped) {
        var charts = new java.util.ArrayList<org.knowm.xchart.XYChart>();
        String[] titles = {"source colours", "target colours", "mapped colours"};
        double[][] clouds = {x, y, mapped};
        for (int k = 0; k < 3; k++) {
            var chart = Plots.scatter(titles[k], 420, 4);
            chart.setXAxisTitle("red");
            chart.setYAxisTitle("blue");
            chart.getStyler().setLegendVisible(false);
            Plots.axes(chart, 0, 1, 0, 1);
            // One series per quantised colour keeps the number of series small.
            var byColour = new java.util.TreeMap<Integer, java.util.List<double[]>>();
            double[] c = clouds[k];
            for (int i = 0; i < c.length / 3; i += Math.max(1, c.length / 3 / 3000)) {
                int key = (channel(c[3 * i]) >> 4) << 8 | (channel(c[3 * i + 1]) >> 4) << 4 | (channel(c[3 * i + 2]) >> 4);
                byColour.computeIfAbsent(key, q -> new java.util.ArrayList<>()).add(new double[] {c[3 * i], c[3 * i + 2]});
            }
            byColour.forEach((key, pts) -> Plots.add(chart, "c" + key, pts.toArray(double[][]::new),
                    new Color(((key >> 8) & 15) * 17, ((key >> 4) & 15) * 17, (key & 15) * 17),
                    org.knowm.xchart.style.markers.SeriesMarkers.CIRCLE, false));
            charts.add(chart);
        }
        Plots.savePng(file, charts);
    }
}
