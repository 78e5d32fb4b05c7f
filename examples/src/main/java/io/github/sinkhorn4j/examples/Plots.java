package io.github.sinkhorn4j.examples;

import java.awt.Color;
import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.BitmapEncoder.BitmapFormat;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;
import org.knowm.xchart.XYSeries;
import org.knowm.xchart.XYSeries.XYSeriesRenderStyle;
import org.knowm.xchart.style.Styler.LegendPosition;
import org.knowm.xchart.style.markers.Marker;

/** XChart scatter plots written as PNG files; shared by the examples. */
final class Plots {
    /** Class colours (tab10's blue and orange) and their pale versions for decision regions. */
    static final Color[] CLASS_COLOURS = {new Color(31, 119, 180), new Color(255, 127, 14)};
    static final Color[] REGION_COLOURS = {new Color(210, 228, 242), new Color(255, 226, 200)};

    static {
        // Pictures are drawn off screen; no display is needed.
        System.setProperty("java.awt.headless", "true");
    }

    private Plots() {}

    /** An empty square scatter chart with a legend inside the plot. */
    static XYChart scatter(String title, int size, int markerSize) {
        XYChart chart = new XYChartBuilder().width(size).height(size).title(title).build();
        chart.getStyler().setDefaultSeriesRenderStyle(XYSeriesRenderStyle.Scatter);
        chart.getStyler().setMarkerSize(markerSize);
        chart.getStyler().setLegendPosition(LegendPosition.InsideNW);
        chart.getStyler().setChartBackgroundColor(Color.WHITE);
        chart.getStyler().setPlotGridLinesVisible(false);
        return chart;
    }

    /** Adds the rows (x, y) of points as one series. */
    static XYSeries add(XYChart chart, String name, double[][] points, Color colour, Marker marker, boolean inLegend) {
        double[] xs = new double[points.length], ys = new double[points.length];
        for (int i = 0; i < points.length; i++) {
            xs[i] = points[i][0];
            ys[i] = points[i][1];
        }
        if (points.length == 0) {
            xs = new double[] {Double.NaN};
            ys = new double[] {Double.NaN};
        }
        XYSeries s = chart.addSeries(name, xs, ys);
        s.setMarker(marker);
        s.setMarkerColor(colour);
        s.setShowInLegend(inLegend);
        return s;
    }

    static void axes(XYChart chart, double xMin, double xMax, double yMin, double yMax) {
        chart.getStyler().setXAxisMin(xMin);
        chart.getStyler().setXAxisMax(xMax);
        chart.getStyler().setYAxisMin(yMin);
        chart.getStyler().setYAxisMax(yMax);
    }

    static BufferedImage image(XYChart chart) {
        return BitmapEncoder.getBufferedImage(chart);
    }

    /** Charts side by side in one PNG. */
    static void savePng(Path file, List<XYChart> charts) {
        try {
            Files.createDirectories(file.toAbsolutePath().getParent());
            BitmapEncoder.saveBitmap(charts, 1, charts.size(), file.toString(), BitmapFormat.PNG);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
