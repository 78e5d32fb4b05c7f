package io.github.sinkhorn4j.examples;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.BitmapEncoder.BitmapFormat;
import org.knowm.xchart.CategoryChart;
import org.knowm.xchart.CategoryChartBuilder;
import org.knowm.xchart.style.Styler.LegendPosition;

/**
 * Bar charts of the benchmark results: for every JSON file of the benchmark runner's results
 * (docs/benchmarks/*.json) and every protocol in it, the median time of each configuration next to
 * the anchors it was matched with (FlashSinkhorn on the H100, GeomLoss on the CPU), on a log scale.
 * Writes {@code <file>-<protocol>.png} beside the JSON files (protocols with anchors only) and prints
 * one Markdown table row per bar group.
 *
 * <p>A file holds either {@code results} (rows) or {@code runs} (each with its own {@code results});
 * rows of repeated runs of one configuration are reduced to the median of their medians.
 *
 * <p>Options: {@code --dir DIR} (default docs/benchmarks).
 */
public final class BenchmarkPlots {
    static {
        System.setProperty("java.awt.headless", "true");
    }

    private BenchmarkPlots() {}

    public static void main(String[] args) throws IOException {
        Path dir = CommandLine.parse(args, "--dir").path("--dir", Path.of("docs/benchmarks"));
        ObjectMapper json = new ObjectMapper();
        List<Path> files;
        try (Stream<Path> s = Files.list(dir)) {
            files = s.filter(p -> p.toString().endsWith(".json")).sorted().toList();
        }
        for (Path file : files) {
            JsonNode root = json.readTree(file.toFile());
            Map<String, Map<String, Bars>> byProtocol = new LinkedHashMap<>();
            for (JsonNode row : rows(root)) {
                if (row.has("error") || !row.has("median_ms")) continue;
                String protocol = row.path("protocol").asText();
                byProtocol.computeIfAbsent(protocol, p -> new LinkedHashMap<>())
                        .computeIfAbsent(configuration(row), c -> new Bars()).add(row);
            }
            String device = root.has("device") ? root.get("device").asText() : root.path("machine").asText();
            for (var entry : byProtocol.entrySet()) {
                // Without anchors there is nothing to compare against: the tables say it.
                if (entry.getValue().values().stream().allMatch(b -> b.anchors.isEmpty())) continue;
                String stem = file.getFileName().toString().replaceFirst("\\.json$", "");
                Path png = dir.resolve(stem + "-" + entry.getKey().replaceAll("[^A-Za-z0-9]+", "-") + ".png");
                chart(stem + ": " + entry.getKey(), device, entry.getValue(), png);
                System.out.println("wrote " + png);
            }
        }
    }

    private static List<JsonNode> rows(JsonNode root) {
        List<JsonNode> out = new ArrayList<>();
        if (root.has("results")) root.get("results").forEach(out::add);
        if (root.has("runs")) root.get("runs").forEach(run -> run.path("results").forEach(out::add));
        return out;
    }

    /** The row's size and settings as a bar label: what differs between rows of one protocol. */
    private static String configuration(JsonNode row) {
        StringBuilder s = new StringBuilder();
        s.append("n=").append(size(row.path("n").asLong()));
        if (row.path("m").asLong() != row.path("n").asLong()) s.append(" m=").append(size(row.path("m").asLong()));
        s.append(" d=").append(row.path("d").asInt());
        if (row.has("iters") && !row.get("iters").isNull()) s.append(" it=").append(row.get("iters").asInt());
        if (row.path("dtype").asText().equals("float64")) s.append(" f64");
        if (row.path("solver").asText().equals("alternating")) s.append(" alt");
        return s.toString();
    }

    private static String size(long v) {
        return v >= 1000 && v % 1000 == 0 ? v / 1000 + "k" : Long.toString(v);
    }

    /** Medians of one configuration over repeated runs, with its anchors. */
    private static final class Bars {
        final List<Double> ours = new ArrayList<>();
        final Map<String, Double> anchors = new LinkedHashMap<>();

        void add(JsonNode row) {
            ours.add(row.get("median_ms").asDouble());
            row.path("anchors").forEach(a -> {
                if (a.path("ms").asDouble() > 0) anchors.put(a.path("what").asText(), a.path("ms").asDouble());
            });
        }

        double median() {
            List<Double> sorted = ours.stream().sorted().toList();
            return sorted.get(sorted.size() / 2);
        }
    }

    private static void chart(String title, String device, Map<String, Bars> bars, Path png) throws IOException {
        List<String> labels = new ArrayList<>(bars.keySet());
        List<String> anchorNames = bars.values().stream().flatMap(b -> b.anchors.keySet().stream()).distinct().toList();
        CategoryChart chart = new CategoryChartBuilder().width(Math.max(700, 90 * labels.size())).height(520)
                .title(title).xAxisTitle(device).yAxisTitle("median time (ms, log scale)").build();
        chart.getStyler().setYAxisLogarithmic(true);
        chart.getStyler().setLegendPosition(LegendPosition.OutsideS);
        chart.getStyler().setLegendLayout(org.knowm.xchart.style.Styler.LegendLayout.Horizontal);
        chart.getStyler().setXAxisLabelRotation(30);
        chart.getStyler().setChartBackgroundColor(java.awt.Color.WHITE);
        List<Double> ours = labels.stream().map(l -> bars.get(l).median()).toList();
        chart.addSeries("sinkhorn4j", labels, ours);
        double smallest = ours.stream().mapToDouble(Double::doubleValue).min().orElse(1);
        for (Bars b : bars.values()) smallest = Math.min(smallest, b.anchors.values().stream().mapToDouble(Double::doubleValue).min().orElse(smallest));
        // Log axes need a positive floor: bars rise from it.
        chart.getStyler().setYAxisMin(Math.pow(10, Math.floor(Math.log10(smallest))));
        for (String anchor : anchorNames) {
            // null: no bar where a configuration has no such anchor.
            List<Double> ms = new ArrayList<>();
            for (String l : labels) ms.add(bars.get(l).anchors.get(anchor));
            chart.addSeries(anchor, labels, ms);
        }
        for (String l : labels) {
            Bars b = bars.get(l);
            StringBuilder row = new StringBuilder(String.format(Locale.ROOT, "| %s | %.1f ms", l, b.median()));
            b.anchors.forEach((name, ms) -> row.append(String.format(Locale.ROOT, " | %s %.1f ms (x%.2f)", name, ms, b.median() / ms)));
            System.out.println(row.append(" |"));
        }
        try {
            BitmapEncoder.saveBitmap(chart, png.toString(), BitmapFormat.PNG);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
