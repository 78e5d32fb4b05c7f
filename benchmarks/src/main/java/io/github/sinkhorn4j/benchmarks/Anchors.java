package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.Solver;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Reference timings to compare with: FlashSinkhorn (and GeomLoss tensorized) on an H100, and
 * GeomLoss tensorized on 2 CPU cores. Read from ../shared/anchors when it is there (the project's
 * checkout), else from the copies on the classpath (the GPU bundle).
 */
final class Anchors {
    static final String FLASH_SINKHORN = "flashsinkhorn-h100.json";
    static final String GEOMLOSS_CPU = "geomloss-cpu.json";

    /** One timed reference row, with the protocol parameters it was measured under. */
    record Row(String source, String what, Protocol protocol, Device device, long n, long d, Solver solver, int iters,
               double eps, double blur, double scaling, double ms) {

        boolean matches(RunSpec s) {
            if (s.protocol() != protocol || s.device() != device || s.n() != n || s.m() != n || s.d() != d
                    || s.dtype() != DType.FLOAT32 || s.solver() != solver) {
                return false;
            }
            return switch (protocol) {
                case FORWARD -> s.iters() == iters && s.eps() == eps && s.tf32();
                case LOSS_AND_GRAD -> s.blur() == blur && s.scaling() == scaling && (device == Device.CPU || s.tf32());
                case HVP -> s.blur() == blur && s.tf32();
                case DENSE -> false;  // no anchor rows: the dense runs report their memory-traffic floor instead
            };
        }

        /** The run this row was timed with, under the timing given (reps, warm-ups) and a fixed seed. */
        RunSpec spec(int reps, int warmup) {
            return new RunSpec(protocol, device, 1, n, n, d, iters, eps, blur, scaling, solver, DType.FLOAT32, reps, warmup,
                    true, 0, false);
        }
    }

    private final List<Row> rows = new ArrayList<>();

    Anchors(Path sharedDir) {
        rows.addAll(flashSinkhorn(read(sharedDir, FLASH_SINKHORN)));
        rows.addAll(geomlossCpu(read(sharedDir, GEOMLOSS_CPU)));
    }

    List<Row> rows(String source) {
        return rows.stream().filter(r -> r.source.equals(source)).toList();
    }

    List<Row> matching(RunSpec spec) {
        return rows.stream().filter(r -> r.matches(spec)).toList();
    }

    private static Map<?, ?> read(Path dir, String name) {
        Path file = dir.resolve(name);
        try {
            if (Files.isRegularFile(file)) return (Map<?, ?>) Json.parse(Files.readString(file));
            try (InputStream in = Anchors.class.getResourceAsStream("/anchors/" + name)) {
                if (in == null) throw new IllegalStateException("anchor file " + name + " is neither in " + dir + " nor on the classpath");
                return (Map<?, ?>) Json.parse(new String(in.readAllBytes(), StandardCharsets.UTF_8));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static List<Row> flashSinkhorn(Map<?, ?> file) {
        List<Row> out = new ArrayList<>();
        for (Object o : (List<?>) file.get("results")) {
            Map<?, ?> r = (Map<?, ?>) o;
            String kind = (String) r.get("kind");
            long n = required(r, "n").longValue(), d = required(r, "d").longValue();
            double ms = required(r, "ms").doubleValue();
            switch (kind) {
                case "forward" -> out.add(new Row(FLASH_SINKHORN, "flashsinkhorn", Protocol.FORWARD, Device.CUDA, n, d,
                        Solver.valueOf(((String) r.get("backend")).toUpperCase(Locale.ROOT)),
                        required(r, "iters").intValue(), required(r, "eps").doubleValue(), Protocol.FORWARD.defaultBlur(), 0.5, ms));
                case "loss+grad" -> out.add(lossAndGrad(FLASH_SINKHORN, "flashsinkhorn", Device.CUDA, r, n, d, ms));
                case "geomloss-tensorized loss+grad" ->
                        out.add(lossAndGrad(FLASH_SINKHORN, "geomloss-tensorized", Device.CUDA, r, n, d, ms));
                case "hvp" -> out.add(new Row(FLASH_SINKHORN, "flashsinkhorn", Protocol.HVP, Device.CUDA, n, d, Solver.SYMMETRIC,
                        RunSpec.DEFAULT_ITERS, RunSpec.DEFAULT_EPS, num(r, "blur", Protocol.HVP.defaultBlur()).doubleValue(), 0.5, ms));
                default -> throw new IllegalStateException(FLASH_SINKHORN + ": unknown kind '" + kind + "'");
            }
        }
        return out;
    }

    private static List<Row> geomlossCpu(Map<?, ?> file) {
        List<Row> out = new ArrayList<>();
        for (Object o : (List<?>) file.get("results")) {
            Map<?, ?> r = (Map<?, ?>) o;
            out.add(lossAndGrad(GEOMLOSS_CPU, "geomloss-tensorized-cpu", Device.CPU, r, required(r, "n").longValue(),
                    required(r, "d").longValue(), required(r, "ms").doubleValue()));
        }
        return out;
    }

    // The loss+grad rows all use GeomLoss's defaults of the protocol where the file leaves them out.
    private static Row lossAndGrad(String source, String what, Device device, Map<?, ?> r, long n, long d, double ms) {
        return new Row(source, what, Protocol.LOSS_AND_GRAD, device, n, d, Solver.SYMMETRIC, RunSpec.DEFAULT_ITERS,
                RunSpec.DEFAULT_EPS, num(r, "blur", 0.05).doubleValue(), num(r, "scaling", 0.5).doubleValue(), ms);
    }

    private static Number required(Map<?, ?> r, String key) {
        if (!(r.get(key) instanceof Number v)) throw new IllegalStateException("anchor row without '" + key + "': " + r);
        return v;
    }

    private static Number num(Map<?, ?> r, String key, double fallback) {
        Object v = r.get(key);
        return v == null ? fallback : (Number) v;
    }
}
