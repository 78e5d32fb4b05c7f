package io.github.sinkhorn4j.benchmarks;

import io.github.sinkhorn4j.core.CudaMemory;
import io.github.sinkhorn4j.core.DType;
import io.github.sinkhorn4j.core.DenseReport;
import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.Solver;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;

/**
 * The benchmark runner: times protocols of the anchors file on the CPU or CUDA backend and prints
 * one JSON line per run (stdout; progress and errors of the command line go to stderr).
 */
public final class BenchmarkRunner {
    private static final String USAGE = """
            usage: benchmarks/run [options]          (or .gpu-bundle/run.sh io.github.sinkhorn4j.benchmarks.BenchmarkRunner [options])
              --device cpu|cuda              backend (default cpu; cuda for --suite anchors)
              --protocol forward|loss+grad|hvp|dense
                                             forward: fixed eps, full cost, no debias, exactly --iters iterations, value only
                                             loss+grad: GeomLoss schedule (--blur, --scaling), debias, half cost, value + grad x
                                             hvp: value, gradient, then H v w.r.t. x (blur 0.1, no debias)   (default loss+grad)
                                             dense: the dense cost-matrix solver on --batch random n x m costs U(0, 1),
                                             exactly --iters iterations at --eps, beside its memory-traffic floor
              --n N --m M --d D              cloud sizes and dimension (default n 2000, m = n, d 3); dense: C is n x m
              --batch B                      dense protocol: items of the batch (default 1)
              --iters K --eps E              forward and dense protocols (default 100, 0.1)
              --blur B --scaling S           loss+grad and hvp (default 0.05 (hvp 0.1), 0.5)
              --solver symmetric|alternating (default symmetric)
              --dtype float32|float64        (default float32)
              --reps R --warmup W            timed runs and warm-ups (default 5, 1; suites: as their anchors)
              --tf32 on|off                  CUDA float32 dot products of the solve on tensor cores (default on)
              --cuda-graphs auto|on|off      CUDA: the iterations at the final eps replayed as CUDA graphs (auto: on
                                             small problems; default auto); sets the property sinkhorn4j.cudaGraphs
              --seed S                       data seed (default 0)
              --inputs host|cuda             where the clouds (dense: C) are when a call starts (default cuda for the
                                             forward, loss+grad and dense protocols on --device cuda, as the anchors'
                                             tensors on the GPU; a suite's other rows stay host)
              --suite anchors|geomloss-cpu   every row of ../shared/anchors/flashsinkhorn-h100.json (CUDA; 10 reps, 3
                                             warm-ups) or of geomloss-cpu.json (CPU; 3 reps, 1 warm-up), with ratios
              --anchors DIR                  where the anchor files are (default ../shared/anchors; else built-in copies)
            Threads of the CPU backend: SINKHORN4J_NUM_THREADS (default: every hardware thread).""";

    private static final Set<String> OPTIONS = Set.of("device", "protocol", "batch", "n", "m", "d", "iters", "eps", "blur",
            "scaling", "solver", "dtype", "reps", "warmup", "tf32", "cuda-graphs", "seed", "suite", "anchors", "inputs");

    private final Map<Device, String> deviceNames = new EnumMap<>(Device.class);
    private final Anchors anchors;

    private BenchmarkRunner(Anchors anchors) {
        this.anchors = anchors;
    }

    public static void main(String[] args) {
        Map<String, String> given;
        List<RunSpec> plan;
        Anchors anchors;
        try {
            given = parse(args);
            if (given.containsKey("help")) {
                System.out.println(USAGE);
                return;
            }
            anchors = new Anchors(Path.of(given.getOrDefault("anchors", "../shared/anchors")));
            plan = plan(given, anchors);
            System.setProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, cudaGraphs(given));
        } catch (IllegalArgumentException e) {
            System.err.println("benchmarks: " + e.getMessage());
            System.err.println(USAGE);
            System.exit(2);
            return;
        }
        BenchmarkRunner runner = new BenchmarkRunner(anchors);
        int failures = 0;
        for (RunSpec spec : plan) {
            Map<String, Object> result = runner.measure(spec);
            if (result.containsKey("error")) failures++;
            System.out.println(Json.write(result));
            System.out.flush();
        }
        if (failures > 0) System.exit(1);
    }

    private static Map<String, String> parse(String[] args) {
        Map<String, String> given = new LinkedHashMap<>();
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            if (a.equals("--help") || a.equals("-h")) {
                given.put("help", "");
                continue;
            }
            if (!a.startsWith("--")) throw new IllegalArgumentException("unexpected argument '" + a + "'");
            String key = a.substring(2), value;
            int eq = key.indexOf('=');
            if (eq >= 0) {
                value = key.substring(eq + 1);
                key = key.substring(0, eq);
            } else {
                if (i + 1 >= args.length) throw new IllegalArgumentException("--" + key + " needs a value");
                value = args[++i];
            }
            if (!OPTIONS.contains(key)) throw new IllegalArgumentException("unknown option --" + key);
            given.put(key, value);
        }
        return given;
    }

    /** The runs asked for: one from the options, or a suite's rows (deduplicated) with the options as overrides. */
    static List<RunSpec> plan(Map<String, String> given, Anchors anchors) {
        String suite = given.get("suite");
        if (suite == null) return List.of(single(given));
        for (String k : List.of("protocol", "batch", "n", "m", "d", "iters", "eps", "blur", "scaling", "solver")) {
            if (given.containsKey(k)) throw new IllegalArgumentException("--" + k + " is set by the suite's rows");
        }
        List<Anchors.Row> rows = switch (suite) {
            case "anchors" -> anchors.rows(Anchors.FLASH_SINKHORN);
            case "geomloss-cpu" -> anchors.rows(Anchors.GEOMLOSS_CPU);
            default -> throw new IllegalArgumentException("--suite must be anchors or geomloss-cpu (got " + suite + ")");
        };
        boolean gpu = suite.equals("anchors");
        Set<RunSpec> specs = new LinkedHashSet<>();
        for (Anchors.Row row : rows) {
            RunSpec s = row.spec(integer(given, "reps", gpu ? 10 : 3), integer(given, "warmup", gpu ? 3 : 1));
            Device device = device(given, row.device());
            specs.add(new RunSpec(s.protocol(), device, s.batch(), s.n(), s.m(), s.d(), s.iters(), s.eps(), s.blur(),
                    s.scaling(), s.solver(), dtype(given), s.reps(), s.warmup(), tf32(given), integer(given, "seed", 0),
                    cudaInputs(given, s.protocol(), device, true)));
        }
        return new ArrayList<>(specs);
    }

    private static RunSpec single(Map<String, String> given) {
        Protocol protocol = Protocol.of(given.getOrDefault("protocol", Protocol.LOSS_AND_GRAD.label));
        long n = integer(given, "n", 2000);
        return new RunSpec(protocol, device(given, Device.CPU), integer(given, "batch", 1), n, integer(given, "m", n),
                integer(given, "d", 3),
                integer(given, "iters", RunSpec.DEFAULT_ITERS), number(given, "eps", RunSpec.DEFAULT_EPS),
                number(given, "blur", protocol.defaultBlur()), number(given, "scaling", 0.5), solver(given), dtype(given),
                integer(given, "reps", 5), integer(given, "warmup", 1), tf32(given), integer(given, "seed", 0),
                cudaInputs(given, protocol, device(given, Device.CPU), false));
    }

    /** --inputs: cuda where the protocol allows it unless host is asked for; in a suite, cuda applies to the rows that allow it. */
    private static boolean cudaInputs(Map<String, String> given, Protocol protocol, Device device, boolean suite) {
        boolean possible = RunSpec.cudaInputsPossible(protocol, device);
        return switch (given.getOrDefault("inputs", possible ? "cuda" : "host")) {
            case "host" -> false;
            case "cuda" -> possible || !suite;  // a single run that cannot is refused by RunSpec
            default -> throw new IllegalArgumentException("--inputs must be host or cuda (got " + given.get("inputs") + ")");
        };
    }

    private static Device device(Map<String, String> given, Device fallback) {
        return choice(given, "device", fallback, Device.CPU, Device.CUDA);
    }

    private static Solver solver(Map<String, String> given) {
        return choice(given, "solver", Solver.SYMMETRIC, Solver.values());
    }

    private static DType dtype(Map<String, String> given) {
        return switch (given.getOrDefault("dtype", "float32")) {
            case "float32" -> DType.FLOAT32;
            case "float64" -> DType.FLOAT64;
            default -> throw new IllegalArgumentException("--dtype must be float32 or float64 (got " + given.get("dtype") + ")");
        };
    }

    private static boolean tf32(Map<String, String> given) {
        return switch (given.getOrDefault("tf32", "on")) {
            case "on" -> true;
            case "off" -> false;
            default -> throw new IllegalArgumentException("--tf32 must be on or off (got " + given.get("tf32") + ")");
        };
    }

    private static String cudaGraphs(Map<String, String> given) {
        String v = given.getOrDefault("cuda-graphs", System.getProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY, "auto"));
        if (!List.of("auto", "on", "off").contains(v)) {
            throw new IllegalArgumentException("--cuda-graphs must be auto, on or off (got " + v + ")");
        }
        return v;
    }

    @SafeVarargs
    private static <E extends Enum<E>> E choice(Map<String, String> given, String key, E fallback, E... allowed) {
        String v = given.get(key);
        if (v == null) return fallback;
        return Arrays.stream(allowed).filter(e -> e.name().equalsIgnoreCase(v)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("--" + key + " must be one of "
                        + Arrays.stream(allowed).map(BenchmarkRunner::lower).toList() + " (got " + v + ")"));
    }

    private static int integer(Map<String, String> given, String key, long fallback) {
        String v = given.get(key);
        try {
            return v == null ? Math.toIntExact(fallback) : Integer.parseInt(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " must be an integer (got " + v + ")");
        }
    }

    private static double number(Map<String, String> given, String key, double fallback) {
        String v = given.get(key);
        try {
            return v == null ? fallback : Double.parseDouble(v);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("--" + key + " must be a number (got " + v + ")");
        }
    }

    private static String lower(Enum<?> e) {
        return e.name().toLowerCase(Locale.ROOT);
    }

    /** The record of one run: its configuration, then its timings and results (or an error). */
    private Map<String, Object> measure(RunSpec spec) {
        Map<String, Object> r = describe(spec);
        if (spec.device() == Device.CUDA && Sinkhorn.cudaDeviceCount() == 0) {
            r.put("error", "no CUDA device usable by the library (built without CUDA, no driver or no GPU)");
            return r;
        }
        try {
            if (spec.protocol() == Protocol.DENSE) measureDense(spec, r);
            else measureSolve(spec, r);
        } catch (RuntimeException e) {
            r.put("error", e.getClass().getSimpleName() + ": " + e.getMessage());
        }
        return r;
    }

    private void measureSolve(RunSpec spec, Map<String, Object> r) {
        try (Workload work = new Workload(spec)) {
            Timed<Workload.Result> timed = Timed.of(spec, work::run);
            timed.putTimes(r);
            Workload.Result last = timed.last();
            r.put("loss", last.solve().loss0());
            r.put("iterations", last.solve().iterations()[0]);
            r.put("device_used", lower(last.solve().device()));
            if (last.hvp() != null) {
                r.put("cg_iterations", last.hvp().cgIterations());
                r.put("cg_residual", last.hvp().cgResidual());
                r.put("cg_converged", last.hvp().converged());
                r.put("cg_plan_entries", last.hvp().planEntries());
            }
            timed.putMemory(r);
            List<Map<String, Object>> refs = new ArrayList<>();
            for (Anchors.Row a : anchors.matching(spec)) {
                Map<String, Object> ref = new LinkedHashMap<>();
                ref.put("what", a.what());
                ref.put("source", a.source());
                ref.put("ms", a.ms());
                ref.put("ratio", timed.medianMs() / a.ms());
                refs.add(ref);
            }
            if (!refs.isEmpty()) r.put("anchors", refs);
        }
    }

    /**
     * The whole call's times, and the library's time of the iterations alone (solve_ms: no transfers,
     * argument checks or outputs), each beside the memory-traffic floor of a dense log-domain loop.
     */
    private void measureDense(RunSpec spec, Map<String, Object> r) {
        try (DenseWorkload work = new DenseWorkload(spec)) {
            Timed<DenseReport> timed = Timed.of(spec, work::run);
            timed.putTimes(r);
            double solveMs = median(timed.results().stream().mapToDouble(DenseReport::solveMs).sorted().toArray());
            double floor = DenseWorkload.floorMs(spec);
            r.put("median_solve_ms", solveMs);
            r.put("floor_ms", floor);
            r.put("floor_bandwidth_bytes_per_s", DenseWorkload.FLOOR_BANDWIDTH);
            r.put("solve_floor_ratio", solveMs / floor);
            r.put("call_floor_ratio", timed.medianMs() / floor);
            DenseReport last = timed.last();
            r.put("cost", last.cost0());
            r.put("iterations", last.iterations()[0]);
            r.put("device_used", lower(last.device()));
            timed.putMemory(r);
        }
    }

    /** Warm-ups, then reps timed runs (wall clock around the synchronous call), with the process's memory. */
    private record Timed<R>(double[] sortedMs, List<R> results, long runPeak, boolean perRun, long processPeak) {
        static <R> Timed<R> of(RunSpec spec, Supplier<R> run) {
            long processPeak = HostMemory.peakBytes();
            boolean perRun = HostMemory.resetPeak();
            CudaMemory.resetPeak();
            for (int i = 0; i < spec.warmup(); i++) run.get();
            double[] ms = new double[spec.reps()];
            List<R> results = new ArrayList<>();
            for (int i = 0; i < spec.reps(); i++) {
                long t0 = System.nanoTime();
                results.add(run.get());
                ms[i] = (System.nanoTime() - t0) / 1e6;
            }
            long runPeak = HostMemory.peakBytes();
            Arrays.sort(ms);
            return new Timed<>(ms, results, runPeak, perRun, processPeak);
        }

        double medianMs() {
            return median(sortedMs);
        }

        R last() {
            return results.get(results.size() - 1);
        }

        void putTimes(Map<String, Object> r) {
            r.put("median_ms", medianMs());
            r.put("min_ms", sortedMs[0]);
            r.put("max_ms", sortedMs[sortedMs.length - 1]);
        }

        void putMemory(Map<String, Object> r) {
            r.put("peak_rss_bytes", runPeak);
            r.put("peak_rss_scope", perRun ? "run" : "process");
            r.put("process_peak_rss_bytes", Math.max(processPeak, runPeak));
            // What the library held on the device (in use and cached) at its peak; 0 on the CPU.
            r.put("peak_device_bytes", CudaMemory.usage().peakBytes());
        }
    }

    private static double median(double[] sorted) {
        int n = sorted.length;
        return n % 2 == 1 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
    }

    private Map<String, Object> describe(RunSpec s) {
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("protocol", s.protocol().label);
        r.put("device", lower(s.device()));
        r.put("device_name", deviceNames.computeIfAbsent(s.device(), DeviceNames::of));
        if (s.device() == Device.CPU) r.put("threads", cpuThreads());
        boolean dense = s.protocol() == Protocol.DENSE;
        if (dense) r.put("batch", s.batch());
        r.put("n", s.n());
        r.put("m", s.m());
        if (!dense) r.put("d", s.d());
        r.put("dtype", lower(s.dtype()));
        if (!dense) r.put("solver", lower(s.solver()));
        if (s.protocol() == Protocol.FORWARD || dense) {
            r.put("iters", s.iters());
            r.put("eps", s.eps());
        } else {
            r.put("blur", s.blur());
            r.put("scaling", s.scaling());
        }
        r.put("inputs", s.cudaInputs() ? "cuda" : "host");
        if (s.device() == Device.CUDA && !dense) {
            r.put("tf32", s.tf32());
            r.put("cuda_graphs", System.getProperty(Sinkhorn.CUDA_GRAPHS_PROPERTY));
        }
        r.put("reps", s.reps());
        r.put("warmup", s.warmup());
        r.put("seed", s.seed());
        return r;
    }

    // As the library counts them (cpu_backend.cpp): SINKHORN4J_NUM_THREADS, else every hardware thread.
    private static int cpuThreads() {
        String env = System.getenv("SINKHORN4J_NUM_THREADS");
        try {
            if (env != null && Integer.parseInt(env.trim()) > 0) return Integer.parseInt(env.trim());
        } catch (NumberFormatException e) {
            // the library ignores it too
        }
        return Runtime.getRuntime().availableProcessors();
    }
}
