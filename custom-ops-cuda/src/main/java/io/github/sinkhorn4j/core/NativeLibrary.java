package io.github.sinkhorn4j.core;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;

/**
 * The native library (include/sinkhorn4j.h) through java.lang.foreign: its struct layouts and
 * downcall handles. The library is taken from the jar (native/linux-x86_64/), or from the file named
 * by the system property {@code sinkhorn4j.library}.
 */
final class NativeLibrary {
    static final StructLayout OPTIONS = MemoryLayout.structLayout(
            JAVA_DOUBLE.withName("blur"), JAVA_DOUBLE.withName("scaling"),
            JAVA_DOUBLE.withName("reach_x"), JAVA_DOUBLE.withName("reach_y"),
            JAVA_DOUBLE.withName("diameter"), JAVA_DOUBLE.withName("eps"),
            ADDRESS.withName("eps_list"), JAVA_INT.withName("eps_list_length"), JAVA_INT.withName("n_iters"),
            JAVA_DOUBLE.withName("threshold"), JAVA_INT.withName("inner_iterations"), JAVA_INT.withName("debias"),
            JAVA_INT.withName("half_cost"), JAVA_INT.withName("solver"), JAVA_INT.withName("last_extrapolation"),
            JAVA_INT.withName("geomloss_gradients"), JAVA_INT.withName("device"), JAVA_INT.withName("allow_tf32"),
            JAVA_INT.withName("cuda_graphs"), MemoryLayout.paddingLayout(4));

    static final StructLayout CLOUDS = MemoryLayout.structLayout(
            JAVA_INT.withName("dtype"), MemoryLayout.paddingLayout(4), JAVA_LONG.withName("batch"),
            ADDRESS.withName("x_offsets"), ADDRESS.withName("y_offsets"),
            JAVA_LONG.withName("n"), JAVA_LONG.withName("m"), JAVA_LONG.withName("d"),
            ADDRESS.withName("x"), ADDRESS.withName("y"), ADDRESS.withName("a"), ADDRESS.withName("b"),
            JAVA_INT.withName("memory"), MemoryLayout.paddingLayout(4));

    static final StructLayout OUTPUTS = MemoryLayout.structLayout(
            ADDRESS.withName("loss"), ADDRESS.withName("iterations"), ADDRESS.withName("converged"),
            ADDRESS.withName("max_change"), ADDRESS.withName("device_used"),
            ADDRESS.withName("f_ba"), ADDRESS.withName("g_ab"), ADDRESS.withName("f_aa"), ADDRESS.withName("g_bb"),
            ADDRESS.withName("grad_x"), ADDRESS.withName("grad_y"), ADDRESS.withName("grad_a"), ADDRESS.withName("grad_b"));

    static final StructLayout HVP_OPTIONS = MemoryLayout.structLayout(
            JAVA_DOUBLE.withName("cg_tol"), JAVA_INT.withName("cg_max_iters"), MemoryLayout.paddingLayout(4),
            JAVA_DOUBLE.withName("regularization"), JAVA_INT.withName("wrt"), JAVA_INT.withName("allow_unconverged"),
            JAVA_INT.withName("allow_tf32"), MemoryLayout.paddingLayout(4), JAVA_LONG.withName("max_plan_entries"));

    static final StructLayout HVP_REPORT = MemoryLayout.structLayout(
            JAVA_INT.withName("cg_iterations"), JAVA_INT.withName("converged"), JAVA_DOUBLE.withName("cg_residual"),
            JAVA_INT.withName("device_used"), MemoryLayout.paddingLayout(4), JAVA_LONG.withName("plan_entries"));

    static final StructLayout DENSE_OPTIONS = MemoryLayout.structLayout(
            JAVA_DOUBLE.withName("eps"), JAVA_DOUBLE.withName("tau_a"), JAVA_DOUBLE.withName("tau_b"),
            JAVA_DOUBLE.withName("threshold"), JAVA_INT.withName("max_iters"), JAVA_INT.withName("check_every"),
            JAVA_INT.withName("device"), MemoryLayout.paddingLayout(4));

    static final StructLayout DENSE_INPUTS = MemoryLayout.structLayout(
            JAVA_INT.withName("dtype"), MemoryLayout.paddingLayout(4), JAVA_LONG.withName("batch"),
            JAVA_LONG.withName("n"), JAVA_LONG.withName("m"), ADDRESS.withName("c"), ADDRESS.withName("a"),
            ADDRESS.withName("b"), ADDRESS.withName("mask_a"), ADDRESS.withName("mask_b"), JAVA_INT.withName("memory"),
            MemoryLayout.paddingLayout(4));

    static final StructLayout DENSE_OUTPUTS = MemoryLayout.structLayout(
            ADDRESS.withName("cost"), ADDRESS.withName("iterations"), ADDRESS.withName("converged"),
            ADDRESS.withName("device_used"), ADDRESS.withName("solve_ms"), ADDRESS.withName("f"), ADDRESS.withName("g"),
            ADDRESS.withName("plan"), ADDRESS.withName("grad_a"), ADDRESS.withName("grad_b"));

    static final MethodHandle DENSE_SINKHORN;
    static final MethodHandle DENSE_PLAN_PRODUCT;
    static final MethodHandle DIVERGENCE;
    static final MethodHandle PLAN_PRODUCT;
    static final MethodHandle HVP;
    static final MethodHandle LAST_ERROR;
    static final MethodHandle CUDA_DEVICE_COUNT;
    static final StructLayout CUDA_MEMORY = MemoryLayout.structLayout(
            JAVA_LONG.withName("held"), JAVA_LONG.withName("peak"), JAVA_LONG.withName("limit"));
    static final MethodHandle CUDA_MEMORY_USAGE;
    static final MethodHandle CUDA_RESET_PEAK_MEMORY;
    static final MethodHandle CUDA_SET_MEMORY_LIMIT;
    static final MethodHandle CUDA_RELEASE_CACHED_MEMORY;
    static final MethodHandle CUDA_UPLOAD;
    static final MethodHandle CUDA_FREE;

    static {
        SymbolLookup lookup = SymbolLookup.libraryLookup(libraryPath(), Arena.global());
        Linker linker = Linker.nativeLinker();
        DENSE_SINKHORN = linker.downcallHandle(lookup.findOrThrow("sk_dense_sinkhorn"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        DENSE_PLAN_PRODUCT = linker.downcallHandle(lookup.findOrThrow("sk_dense_plan_product"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        DIVERGENCE = linker.downcallHandle(lookup.findOrThrow("sk_divergence"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
        PLAN_PRODUCT = linker.downcallHandle(lookup.findOrThrow("sk_plan_product"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT, JAVA_LONG, ADDRESS, ADDRESS));
        HVP = linker.downcallHandle(lookup.findOrThrow("sk_hvp"), FunctionDescriptor.of(JAVA_INT, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS));
        LAST_ERROR = linker.downcallHandle(lookup.findOrThrow("sk_last_error"), FunctionDescriptor.of(ADDRESS));
        CUDA_DEVICE_COUNT = linker.downcallHandle(lookup.findOrThrow("sk_cuda_device_count"), FunctionDescriptor.of(JAVA_INT));
        CUDA_MEMORY_USAGE = linker.downcallHandle(lookup.findOrThrow("sk_cuda_memory_usage"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS));
        CUDA_RESET_PEAK_MEMORY = linker.downcallHandle(lookup.findOrThrow("sk_cuda_reset_peak_memory"),
                FunctionDescriptor.of(JAVA_INT));
        CUDA_SET_MEMORY_LIMIT = linker.downcallHandle(lookup.findOrThrow("sk_cuda_set_memory_limit"),
                FunctionDescriptor.of(JAVA_INT, JAVA_LONG));
        CUDA_RELEASE_CACHED_MEMORY = linker.downcallHandle(lookup.findOrThrow("sk_cuda_release_cached_memory"),
                FunctionDescriptor.of(JAVA_INT));
        CUDA_UPLOAD = linker.downcallHandle(lookup.findOrThrow("sk_cuda_upload"),
                FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS));
        CUDA_FREE = linker.downcallHandle(lookup.findOrThrow("sk_cuda_free"), FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    private NativeLibrary() {}

    static long offset(StructLayout layout, String field) {
        return layout.byteOffset(MemoryLayout.PathElement.groupElement(field));
    }

    /** A call of a native entry point that returns the library's status. */
    @FunctionalInterface
    interface StatusCall {
        int invoke() throws Throwable;
    }

    /** Makes the call; a failed call or a non-zero status becomes the exception check throws. */
    static void call(StatusCall call) {
        int status;
        try {
            status = call.invoke();
        } catch (Throwable t) {
            throw Sinkhorn.rethrow(t);
        }
        check(status);
    }

    /** Throws the library's error for a non-zero status, with its message. */
    static void check(int status) {
        if (status == 0) return;
        String message;
        try {
            MemorySegment text = (MemorySegment) LAST_ERROR.invokeExact();
            message = text.reinterpret(4096).getString(0);
        } catch (Throwable t) {
            message = "(no message: " + t + ")";
        }
        SinkhornException.Status s = SinkhornException.Status.of(status);
        if (s == SinkhornException.Status.INVALID_ARGUMENT) throw new IllegalArgumentException(message);
        throw new SinkhornException(s, message);
    }

    private static Path libraryPath() {
        String override = System.getProperty("sinkhorn4j.library");
        if (override != null) return Path.of(override);
        String resource = "/native/linux-x86_64/libsinkhorn4j.so";
        try (InputStream in = NativeLibrary.class.getResourceAsStream(resource)) {
            if (in == null) throw new UnsatisfiedLinkError("sinkhorn4j: " + resource + " is not on the class path");
            Path dir = Files.createTempDirectory("sinkhorn4j");
            Path lib = dir.resolve("libsinkhorn4j.so");
            Files.copy(in, lib, StandardCopyOption.REPLACE_EXISTING);
            dir.toFile().deleteOnExit();  // deleted after the file, which is registered later
            lib.toFile().deleteOnExit();
            return lib;
        } catch (IOException e) {
            throw new UncheckedIOException("sinkhorn4j: cannot extract the native library", e);
        }
    }
}
