package io.github.sinkhorn4j.core;

import java.util.Arrays;
import java.util.Random;

/**
 * An independent float64 reference for the dense solver, one item at a time: the present rows and
 * columns are gathered into a compact problem (masked entries take no part), solved by plain
 * alternating log-domain iterations until the potentials change by less than 1e-13, and scattered
 * back (0 at masked entries). Its cost is the primal objective of the plan,
 * {@code <P, C> + eps KL(P | a x b) + tauA KL(P 1 | a) + tauB KL(P^T 1 | b)} (generalised KL; a balanced
 * side's term is a constraint), which equals the library's dual value at convergence.
 */
final class DenseReference {
    final double[] f, g, plan;
    final double cost;

    private DenseReference(double[] f, double[] g, double[] plan, double cost) {
        this.f = f;
        this.g = g;
        this.plan = plan;
        this.cost = cost;
    }

    /** One batch of equal padded sizes: c batch x n x m, weights and masks per item (any may be null). */
    record Batch(int batch, int n, int m, double[] c, double[] a, double[] b, boolean[] maskA, boolean[] maskB) {
        DenseReference[] solve(double eps, Double tauA, Double tauB) {
            DenseReference[] out = new DenseReference[batch];
            for (int k = 0; k < batch; k++) {
                out[k] = DenseReference.solve(Arrays.copyOfRange(c, k * n * m, (k + 1) * n * m), n, m, part(a, k, n),
                        part(b, k, m), part(maskA, k, n), part(maskB, k, m), eps, tauA, tauB);
            }
            return out;
        }

        /** The same batch with the weights of a and b multiplied by massA and massB. */
        Batch withMasses(double massA, double massB) {
            double[] sa = a.clone(), sb = b.clone();
            for (int i = 0; i < sa.length; i++) sa[i] *= massA;
            for (int j = 0; j < sb.length; j++) sb[j] *= massB;
            return new Batch(batch, n, m, c, sa, sb, maskA, maskB);
        }

        float[] cFloats() { return floats(c); }
        float[] aFloats() { return floats(a); }
        float[] bFloats() { return floats(b); }

        private static double[] part(double[] v, int k, int len) {
            return v == null ? null : Arrays.copyOfRange(v, k * len, (k + 1) * len);
        }

        private static boolean[] part(boolean[] v, int k, int len) {
            return v == null ? null : Arrays.copyOfRange(v, k * len, (k + 1) * len);
        }
    }

    /**
     * A random batch: costs U(0, 1), weights U(0.1, 1.1) normalised to mass 1 over the present
     * entries, and per item a random number of present rows and columns (at least one each,
     * masked entries scattered); masked entries of C and of the weights hold NaN, which must never
     * be read.
     */
    static Batch random(Random rnd, int batch, int n, int m, boolean masked) {
        double[] c = new double[batch * n * m], a = new double[batch * n], b = new double[batch * m];
        boolean[] maskA = new boolean[batch * n], maskB = new boolean[batch * m];
        for (int k = 0; k < batch; k++) {
            present(rnd, maskA, k * n, n, masked);
            present(rnd, maskB, k * m, m, masked);
            weights(rnd, a, maskA, k * n, n);
            weights(rnd, b, maskB, k * m, m);
            for (int i = 0; i < n; i++) {
                for (int j = 0; j < m; j++) {
                    int at = (k * n + i) * m + j;
                    c[at] = maskA[k * n + i] && maskB[k * m + j] ? rnd.nextDouble() : Double.NaN;
                }
            }
        }
        return new Batch(batch, n, m, c, a, b, masked ? maskA : null, masked ? maskB : null);
    }

    private static void present(Random rnd, boolean[] mask, int from, int len, boolean masked) {
        int count = masked ? 1 + rnd.nextInt(len) : len;
        Integer[] order = new Integer[len];
        for (int i = 0; i < len; i++) order[i] = i;
        java.util.Collections.shuffle(Arrays.asList(order), rnd);
        for (int i = 0; i < count; i++) mask[from + order[i]] = true;
    }

    private static void weights(Random rnd, double[] w, boolean[] mask, int from, int len) {
        double sum = 0;
        for (int i = from; i < from + len; i++) if (mask[i]) sum += w[i] = rnd.nextDouble() + 0.1;
        for (int i = from; i < from + len; i++) w[i] = mask[i] ? w[i] / sum : Double.NaN;
    }

    static float[] floats(double[] v) {
        if (v == null) return null;
        float[] out = new float[v.length];
        for (int i = 0; i < v.length; i++) out[i] = (float) v[i];
        return out;
    }

    /** One item: c n x m; a, b null for uniform weights over the present entries; masks null for all present. */
    static DenseReference solve(double[] c, int n, int m, double[] a, double[] b, boolean[] maskA, boolean[] maskB,
                                double eps, Double tauA, Double tauB) {
        int[] rows = presentIndices(maskA, n), cols = presentIndices(maskB, m);
        int nr = rows.length, nc = cols.length;
        double[] wa = new double[nr], wb = new double[nc];
        for (int i = 0; i < nr; i++) wa[i] = a == null ? 1.0 / nr : a[rows[i]];
        for (int j = 0; j < nc; j++) wb[j] = b == null ? 1.0 / nc : b[cols[j]];
        double[][] cost = new double[nr][nc];
        for (int i = 0; i < nr; i++) for (int j = 0; j < nc; j++) cost[i][j] = c[rows[i] * m + cols[j]];
        double dampA = tauA == null ? 1 : tauA / (tauA + eps), dampB = tauB == null ? 1 : tauB / (tauB + eps);

        double[] f = new double[nr], g = new double[nc], terms = new double[Math.max(nr, nc)];
        for (int it = 0; it < 1_000_000; it++) {
            double change = 0;
            for (int i = 0; i < nr; i++) {
                for (int j = 0; j < nc; j++) terms[j] = Math.log(wb[j]) + (g[j] - cost[i][j]) / eps;
                double v = -eps * dampA * logSumExp(terms, nc);
                change = Math.max(change, Math.abs(v - f[i]));
                f[i] = v;
            }
            for (int j = 0; j < nc; j++) {
                for (int i = 0; i < nr; i++) terms[i] = Math.log(wa[i]) + (f[i] - cost[i][j]) / eps;
                double v = -eps * dampB * logSumExp(terms, nr);
                change = Math.max(change, Math.abs(v - g[j]));
                g[j] = v;
            }
            if (change < 1e-13) break;
        }

        double[][] p = new double[nr][nc];
        double[] rowSum = new double[nr], colSum = new double[nc];
        double transport = 0, entropy = 0, massA = 0, massB = 0, planMass = 0;
        for (int i = 0; i < nr; i++) massA += wa[i];
        for (int j = 0; j < nc; j++) massB += wb[j];
        for (int i = 0; i < nr; i++) {
            for (int j = 0; j < nc; j++) {
                double logRatio = (f[i] + g[j] - cost[i][j]) / eps;  // log(P_ij / (a_i b_j))
                double pij = wa[i] * wb[j] * Math.exp(logRatio);
                p[i][j] = pij;
                rowSum[i] += pij;
                colSum[j] += pij;
                transport += pij * cost[i][j];
                entropy += pij * logRatio;
                planMass += pij;
            }
        }
        double primal = transport + eps * (entropy - planMass + massA * massB);
        if (tauA != null) primal += tauA * kl(rowSum, wa);
        if (tauB != null) primal += tauB * kl(colSum, wb);

        double[] fullF = new double[n], fullG = new double[m], fullPlan = new double[n * m];
        for (int i = 0; i < nr; i++) fullF[rows[i]] = f[i];
        for (int j = 0; j < nc; j++) fullG[cols[j]] = g[j];
        for (int i = 0; i < nr; i++) for (int j = 0; j < nc; j++) fullPlan[rows[i] * m + cols[j]] = p[i][j];
        return new DenseReference(fullF, fullG, fullPlan, primal);
    }

    /** Generalised KL(p | q) = sum p log(p/q) - p + q. */
    private static double kl(double[] p, double[] q) {
        double s = 0;
        for (int i = 0; i < p.length; i++) s += (p[i] > 0 ? p[i] * Math.log(p[i] / q[i]) : 0) - p[i] + q[i];
        return s;
    }

    private static double logSumExp(double[] v, int count) {
        double max = Double.NEGATIVE_INFINITY;
        for (int i = 0; i < count; i++) max = Math.max(max, v[i]);
        double s = 0;
        for (int i = 0; i < count; i++) s += Math.exp(v[i] - max);
        return max + Math.log(s);
    }

    private static int[] presentIndices(boolean[] mask, int len) {
        return java.util.stream.IntStream.range(0, len).filter(i -> mask == null || mask[i]).toArray();
    }
}
