package io.github.sinkhorn4j.examples;

import io.github.sinkhorn4j.core.Device;
import io.github.sinkhorn4j.core.DivergenceResult;
import io.github.sinkhorn4j.core.HvpOptions;
import io.github.sinkhorn4j.core.Sinkhorn;
import io.github.sinkhorn4j.core.SinkhornOptions;
import io.github.sinkhorn4j.core.Solver;
import io.github.sinkhorn4j.core.Wrt;
import java.util.Locale;
import java.util.Random;

/**
 * Affine registration of two point clouds in the plane without correspondences: minimise the
 * debiased Sinkhorn divergence between A x0 + t and y over theta = (A, t), by Newton-CG with
 * Hessian-vector products and by gradient descent, from the identity, to the same gradient
 * tolerance; prints both step counts.
 *
 * <p>x_i(theta) = A x0_i + t is linear in theta, so with J its Jacobian, grad_theta = J^T grad_x and
 * Hess_theta = J^T Hess_x J exactly: one product with the Hessian in theta is one
 * {@link Sinkhorn#hvp} in x. Both methods use the same Armijo backtracking line search.
 *
 * <p>Options: {@code --n N --m M --eps E --tol T --device cpu|cuda|auto} (default cpu); the tolerance
 * is on the gradient norm relative to its value at the identity.
 */
public final class NewtonRegistration {
    private static final int D = 2, PARAMS = 6;  // theta = (A00, A01, A10, A11, t0, t1)
    private static final double ARMIJO = 1e-4;

    private final double[] x0, y;
    private final SinkhornOptions options;
    private int lossEvaluations, hessianProducts;

    private NewtonRegistration(double[] x0, double[] y, SinkhornOptions options) {
        this.x0 = x0;
        this.y = y;
        this.options = options;
    }

    /** The loss and its gradient in theta at one point, with the solve that gave them. */
    private record Evaluation(double[] theta, double[] x, DivergenceResult solved, double loss, double[] gradient) {}

    public static void main(String[] args) {
        CommandLine line = CommandLine.parse(args, "--n", "--m", "--eps", "--tol", "--device");
        int n = line.integer("--n", 300), m = line.integer("--m", 260);
        double eps = line.number("--eps", 0.02), tol = line.number("--tol", 1e-6);
        // small problem; the CUDA kernels have no pair-weighted average yet
        Device device = line.device("--device", Device.CPU);
        Random rnd = new Random(3);
        double angle = 0.6;
        double[] trueTheta = {1.3 * Math.cos(angle), -Math.sin(angle), 0.9 * Math.sin(angle) + 0.2, 0.8 * Math.cos(angle), 0.4, -0.3};
        double[] x0 = star(rnd, n);
        double[] y = apply(trueTheta, star(rnd, m));  // another sample of the shape: no correspondences
        // Converged potentials at a fixed eps: the gradient and the Hessian are those of the loss itself.
        SinkhornOptions options = SinkhornOptions.builder().eps(eps).nIters(50000).threshold(1e-10)
                .solver(Solver.ALTERNATING).device(device).build();
        System.out.printf(Locale.ROOT, "affine registration: n=%d m=%d eps=%.3g, gradient tolerance %.1e (relative)%n", n, m, eps, tol);

        double[] identity = {1, 0, 0, 1, 0, 0};
        NewtonRegistration newton = new NewtonRegistration(x0, y, options);
        long t0 = System.nanoTime();
        Evaluation start = newton.evaluate(identity);
        double gradientTolerance = tol * norm(start.gradient());
        Result byNewton = newton.newtonCg(start, gradientTolerance);
        double newtonSeconds = (System.nanoTime() - t0) / 1e9;

        NewtonRegistration descent = new NewtonRegistration(x0, y, options);
        t0 = System.nanoTime();
        Result byDescent = descent.gradientDescent(descent.evaluate(identity), gradientTolerance);
        double descentSeconds = (System.nanoTime() - t0) / 1e9;

        System.out.printf(Locale.ROOT, "Newton-CG:        %4d steps, loss %.12f, |grad| %.2e (%d loss evaluations, %d Hessian-vector products, %.1f s)%n",
                byNewton.steps, byNewton.last.loss(), norm(byNewton.last.gradient()), newton.lossEvaluations,
                newton.hessianProducts, newtonSeconds);
        System.out.printf(Locale.ROOT, "gradient descent: %4d steps, loss %.12f, |grad| %.2e (%d loss evaluations, %.1f s)%n",
                byDescent.steps, byDescent.last.loss(), norm(byDescent.last.gradient()), descent.lossEvaluations, descentSeconds);
        System.out.println("A, t found:       " + format(byNewton.last.theta()));
        System.out.println("A, t that made y: " + format(trueTheta) + "  (y is another sample, blurred by eps)");
    }

    private record Result(Evaluation last, int steps) {}

    /**
     * Truncated Newton: CG on Hess p = -grad to the forcing tolerance min(1/2, sqrt|grad|) |grad|,
     * stopping early on non-positive curvature (then the steepest descent direction if that was the
     * first CG step), then the line search from the full step.
     */
    private Result newtonCg(Evaluation e, double gradientTolerance) {
        int steps = 0;
        while (norm(e.gradient()) > gradientTolerance) {
            double[] g = e.gradient();
            double forcing = Math.min(0.5, Math.sqrt(norm(g))) * norm(g);
            double[] p = new double[PARAMS], r = scaled(-1, g), dir = r.clone();
            for (int j = 0; j < PARAMS; j++) {
                double[] hd = hessianTimes(e, dir);
                double curvature = dot(dir, hd);
                if (curvature <= 0) {
                    if (j == 0) p = scaled(-1, g);
                    break;
                }
                double alpha = dot(r, r) / curvature;
                double[] rNext = new double[PARAMS];
                for (int i = 0; i < PARAMS; i++) {
                    p[i] += alpha * dir[i];
                    rNext[i] = r[i] - alpha * hd[i];
                }
                if (norm(rNext) <= forcing) break;
                double beta = dot(rNext, rNext) / dot(r, r);
                for (int i = 0; i < PARAMS; i++) dir[i] = rNext[i] + beta * dir[i];
                r = rNext;
            }
            e = lineSearch(e, p, 1.0).accepted;
            steps++;
        }
        return new Result(e, steps);
    }

    /** Steepest descent; each search starts from twice the step accepted last. */
    private Result gradientDescent(Evaluation e, double gradientTolerance) {
        int steps = 0;
        double step = 1.0;
        while (norm(e.gradient()) > gradientTolerance) {
            Search s = lineSearch(e, scaled(-1, e.gradient()), step);
            e = s.accepted;
            step = 2 * s.step;
            steps++;
        }
        return new Result(e, steps);
    }

    private record Search(Evaluation accepted, double step) {}

    /** Armijo backtracking along p from the given step: loss(theta + s p) <= loss + 1e-4 s grad.p. */
    private Search lineSearch(Evaluation e, double[] p, double step) {
        double slope = dot(e.gradient(), p);
        while (true) {
            double[] theta = e.theta().clone();
            for (int i = 0; i < PARAMS; i++) theta[i] += step * p[i];
            Evaluation next = evaluate(theta);
            if (next.loss() <= e.loss() + ARMIJO * step * slope) return new Search(next, step);
            step *= 0.5;
        }
    }

    private Evaluation evaluate(double[] theta) {
        lossEvaluations++;
        double[] x = apply(theta, x0);
        DivergenceResult r = Sinkhorn.divergence(options, x, y, D, null, null, true);
        return new Evaluation(theta, x, r, r.loss(), pullBack(r.gradX()));
    }

    /** Hess_theta v = J^T Hess_x (J v), at the solve of e. */
    private double[] hessianTimes(Evaluation e, double[] v) {
        hessianProducts++;
        double[] direction = pushForward(v);
        return pullBack(Sinkhorn.hvp(options, HvpOptions.defaults(), e.x(), y, D, null, null, e.solved(), Wrt.X, direction).hvp());
    }

    /** J v: the displacement of every point, dA x0_i + dt. */
    private double[] pushForward(double[] v) {
        int n = x0.length / D;
        double[] out = new double[x0.length];
        for (int i = 0; i < n; i++) {
            double a = x0[i * D], b = x0[i * D + 1];
            out[i * D] = v[0] * a + v[1] * b + v[4];
            out[i * D + 1] = v[2] * a + v[3] * b + v[5];
        }
        return out;
    }

    /** J^T w: (sum_i w_i x0_i^T, sum_i w_i). */
    private double[] pullBack(double[] w) {
        int n = x0.length / D;
        double[] out = new double[PARAMS];
        for (int i = 0; i < n; i++) {
            double a = x0[i * D], b = x0[i * D + 1], u = w[i * D], v = w[i * D + 1];
            out[0] += u * a;
            out[1] += u * b;
            out[2] += v * a;
            out[3] += v * b;
            out[4] += u;
            out[5] += v;
        }
        return out;
    }

    private static double[] apply(double[] theta, double[] points) {
        double[] out = new double[points.length];
        for (int i = 0; i < points.length / D; i++) {
            double a = points[i * D], b = points[i * D + 1];
            out[i * D] = theta[0] * a + theta[1] * b + theta[4];
            out[i * D + 1] = theta[2] * a + theta[3] * b + theta[5];
        }
        return out;
    }

    /** A star of three arms of different lengths (so that the affine map is identifiable), with noise. */
    private static double[] star(Random rnd, int count) {
        double[] angles = {0.3, 2.2, 4.0}, lengths = {1.0, 0.7, 0.45};
        double[] p = new double[count * D];
        for (int i = 0; i < count; i++) {
            int arm = rnd.nextInt(3);
            double s = rnd.nextDouble() * lengths[arm];
            p[i * D] = s * Math.cos(angles[arm]) + 0.03 * rnd.nextGaussian();
            p[i * D + 1] = s * Math.sin(angles[arm]) + 0.03 * rnd.nextGaussian();
        }
        return p;
    }

    private static double[] scaled(double s, double[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) out[i] = s * v[i];
        return out;
    }

    private static double dot(double[] a, double[] b) {
        double s = 0;
        for (int i = 0; i < a.length; i++) s += a[i] * b[i];
        return s;
    }

    private static double norm(double[] v) {
        return Math.sqrt(dot(v, v));
    }

    private static String format(double[] theta) {
        return String.format(Locale.ROOT, "A = [[%.3f, %.3f], [%.3f, %.3f]], t = [%.3f, %.3f]", theta[0], theta[1], theta[2],
                theta[3], theta[4], theta[5]);
    }
}
