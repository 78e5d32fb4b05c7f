package io.github.sinkhorn4j.core;

import java.util.Random;

/** Random test problems: Gaussian clouds and (U(0,1) + 0.1) weights normalised to a given mass. */
final class RandomClouds {
    private RandomClouds() {}

    static double[] gaussian(Random rnd, int rows, int d, double shift) {
        double[] v = new double[rows * d];
        for (int i = 0; i < v.length; i++) v[i] = rnd.nextGaussian() + shift;
        return v;
    }

    static double[] weights(Random rnd, int rows, double mass) {
        double[] w = new double[rows];
        double sum = 0;
        for (int i = 0; i < rows; i++) sum += w[i] = rnd.nextDouble() + 0.1;
        for (int i = 0; i < rows; i++) w[i] *= mass / sum;
        return w;
    }

    static double maxRelative(double[] a, double[] b) {
        double diff = 0, ref = 0;
        for (int i = 0; i < a.length; i++) {
            diff = Math.max(diff, Math.abs(a[i] - b[i]));
            ref = Math.max(ref, Math.abs(b[i]));
        }
        return diff / Math.max(ref, 1e-300);
    }
}
