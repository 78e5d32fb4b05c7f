package io.github.sinkhorn4j.core;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Constructor;
import java.util.Random;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Clouds in CUDA memory (CudaArray, Clouds.onCuda): the same solve as from host memory, bit for bit
 * (the library copies them on the device where it would upload them), on the CUDA backend even when
 * the options say auto; and the clear refusals: the CPU backend, plan products and HVPs, wrong sizes
 * or dtypes, a closed array. Run on the GPU machine (tag "gpu").
 */
@Tag("gpu")
class CudaInputsTest {
    private static final int N = 700, M = 500, D = 5;

    @BeforeAll
    static void needsDevice() {
        assertTrue(Sinkhorn.cudaDeviceCount() > 0, "no CUDA device: these tests run on the GPU machine");
    }

    /** x, y and b of one random problem (a uniform), as segments of dtype. */
    private static MemorySegment[] data(DType t) {
        Random rnd = new Random(7);
        double[][] v = {RandomClouds.gaussian(rnd, N, D, 0), RandomClouds.gaussian(rnd, M, D, 0.5),
                RandomClouds.weights(rnd, M, 1)};
        MemorySegment[] s = new MemorySegment[v.length];
        for (int k = 0; k < v.length; k++) {
            if (t == DType.FLOAT64) {
                s[k] = MemorySegment.ofArray(v[k].clone());
            } else {
                float[] f = new float[v[k].length];
                for (int i = 0; i < f.length; i++) f[i] = (float) v[k][i];
                s[k] = MemorySegment.ofArray(f);
            }
        }
        return s;
    }

    /** loss, then f, g and the gradient w.r.t. x as doubles, and the device that solved. */
    private static Object[] solve(SinkhornOptions options, Clouds c) {
        DType t = c.dtype();
        MemorySegment f = segment(t, N), g = segment(t, M), gradX = segment(t, N * D);
        Report r = Sinkhorn.divergence(options, c, Outputs.none().fBa(f).gAb(g).gradX(gradX));
        return new Object[] {r.device(), r.loss(), r.iterations(), widen(t, f, N), widen(t, g, M), widen(t, gradX, N * D)};
    }

    private static double[] widen(DType t, MemorySegment s, int count) {
        double[] v = new double[count];
        for (int i = 0; i < count; i++) v[i] = t.get(s, i);
        return v;
    }

    private static MemorySegment segment(DType t, int count) {
        return t == DType.FLOAT32 ? MemorySegment.ofArray(new float[count]) : MemorySegment.ofArray(new double[count]);
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void sameSolveAsFromHostMemory(DType t) {
        MemorySegment[] s = data(t);
        for (Solver solver : Solver.values()) {
            SinkhornOptions cuda = SinkhornOptions.builder().device(Device.CUDA).solver(solver).blur(0.1).scaling(0.7).build();
            Object[] host = solve(cuda, Clouds.of(t, N, M, D, s[0], s[1], null, s[2]));
            try (CudaArray x = CudaArray.upload(t, s[0]); CudaArray y = CudaArray.upload(t, s[1])) {
                assertEquals(N * D, x.length());
                for (SinkhornOptions o : new SinkhornOptions[] {cuda, cuda.toBuilder().device(Device.AUTO).build()}) {
                    Object[] onCuda = solve(o, Clouds.onCuda(N, M, D, x, y, null, s[2]));
                    assertEquals(Device.CUDA, onCuda[0], "clouds in CUDA memory are solved there");
                    assertArrayEquals((double[]) host[1], (double[]) onCuda[1], solver + " loss");
                    assertArrayEquals((int[]) host[2], (int[]) onCuda[2], solver + " iterations");
                    for (int k = 3; k < host.length; k++) assertArrayEquals((double[]) host[k], (double[]) onCuda[k], solver + " output " + k);
                }
            }
        }
    }

    @Test
    void refusals() throws ReflectiveOperationException {
        MemorySegment[] s = data(DType.FLOAT32);
        SinkhornOptions cpu = SinkhornOptions.builder().device(Device.CPU).eps(0.5).build();
        try (CudaArray x = CudaArray.upload(DType.FLOAT32, s[0]); CudaArray y = CudaArray.upload(DType.FLOAT32, s[1])) {
            Clouds c = Clouds.onCuda(N, M, D, x, y, null, null);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> Sinkhorn.divergence(cpu, c, Outputs.none()));
            assertTrue(e.getMessage().contains("device cpu"), e.getMessage());
            MemorySegment f = segment(DType.FLOAT32, N), g = segment(DType.FLOAT32, M);
            e = assertThrows(IllegalArgumentException.class,
                    () -> Sinkhorn.planProduct(cpu, c, f, g, false, 1, segment(DType.FLOAT32, M), segment(DType.FLOAT32, N)));
            assertTrue(e.getMessage().contains("host memory"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Clouds.onCuda(N + 1, M, D, x, y, null, null));
            assertTrue(e.getMessage().contains("cudaX"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> Clouds.onCuda(N, M + 1, D, x, y, null, null));
            assertTrue(e.getMessage().contains("cudaY"), e.getMessage());
            try (CudaArray doubles = CudaArray.upload(DType.FLOAT64, data(DType.FLOAT64)[1])) {
                e = assertThrows(IllegalArgumentException.class, () -> Clouds.onCuda(N, M, D, x, doubles, null, null));
                assertTrue(e.getMessage().contains("cudaY"), e.getMessage());
            }
            e = assertThrows(IllegalArgumentException.class, () -> CudaArray.upload(DType.FLOAT64, MemorySegment.ofArray(new byte[12])));
            assertTrue(e.getMessage().contains("host"), e.getMessage());
        }
        // Host memory passed as CUDA memory: the library's own check names it (no device read of it).
        try (Arena arena = Arena.ofConfined(); CudaArray y = CudaArray.upload(DType.FLOAT32, s[1])) {
            MemorySegment host = arena.allocate(4L * N * D, 64).copyFrom(s[0]);
            Constructor<CudaArray> raw = CudaArray.class.getDeclaredConstructor(DType.class, long.class, MemorySegment.class);
            raw.setAccessible(true);
            CudaArray notOnDevice = raw.newInstance(DType.FLOAT32, (long) N * D, MemorySegment.ofAddress(host.address()));
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Sinkhorn.divergence(
                    SinkhornOptions.builder().eps(0.5).build(), Clouds.onCuda(N, M, D, notOnDevice, y, null, null), Outputs.none()));
            assertTrue(e.getMessage().contains("x is not CUDA memory"), e.getMessage());
        }
        CudaArray closed = CudaArray.upload(DType.FLOAT32, s[0]);
        CudaArray y = CudaArray.upload(DType.FLOAT32, s[1]);
        Clouds c = Clouds.onCuda(N, M, D, closed, y, null, null);
        closed.close();
        closed.close();  // a second close does nothing
        assertThrows(IllegalStateException.class, () -> Sinkhorn.divergence(SinkhornOptions.builder().eps(0.5).build(), c, Outputs.none()));
        y.close();
    }
}
