package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import java.util.Locale;
import java.util.Random;

/**
 * The smallest use of the library: the debiased Sinkhorn divergence between two Gaussian clouds and
 * its gradient, then a few gradient steps that move x onto y.
 *
 * <p>Options: {@code --n N --m M --d D --blur B --steps S --device auto|cpu|cuda}.
 */
public final class DivergenceDemo {
    private DivergenceDemo() {}

    public static void main(String[] args) {
        CommandLine line = CommandLine.parse(args, "--n", "--m", "--d", "--blur", "--steps", "--device");
        int n = line.integer("--n", 2000), m = line.integer("--m", 1500), d = line.integer("--d", 3);
        int steps = line.integer("--steps", 20);
        double blur = line.number("--blur", 0.05);
        Device device = line.device("--device", Device.AUTO);
        Random rnd = new Random(0);
        double[] x = new double[n * d], y = new double[m * d];
        for (int i = 0; i < x.length; i++) x[i] = rnd.nextGaussian();
        for (int i = 0; i < y.length; i++) y[i] = 0.5 * rnd.nextGaussian() + (i % d == 0 ? 3 : 0);

        SinkhornOptions options = SinkhornOptions.builder().blur(blur).scaling(0.5).device(device).build();
        System.out.printf(Locale.ROOT, "sinkhorn4j demo: n=%d m=%d d=%d blur=%.3g (CUDA devices: %d)%n", n, m, d, blur,
                Sinkhorn.cudaDeviceCount());
        // With uniform weights 1/n, -n * grad_x is the displacement of each point towards y.
        for (int step = 0; step <= steps; step++) {
            long t0 = System.nanoTime();
            DivergenceResult r = Sinkhorn.divergence(options, x, y, d, null, null, true);
            double ms = (System.nanoTime() - t0) / 1e6;
            if (step % 5 == 0 || step == steps) {
                System.out.printf(Locale.ROOT, "step %2d  loss %.6f  |grad_x| %.3e  %s %.1f ms  (%d iterations)%n", step,
                        r.loss(), norm(r.gradX()), r.report().device(), ms, r.report().iterations()[0]);
            }
            for (int i = 0; i < x.length; i++) x[i] -= 0.5 * n * r.gradX()[i];
        }
    }

    private static double norm(double[] v) {
        double s = 0;
        for (double e : v) s += e * e;
        return Math.sqrt(s);
    }
}
