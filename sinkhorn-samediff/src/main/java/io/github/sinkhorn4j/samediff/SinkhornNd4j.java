package io.github.sinkhorn4j.samediff;

import java.lang.reflect.Field;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.imports.converters.ImportClassMapping;
import org.nd4j.linalg.api.ops.executioner.OpExecutioner;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Makes ND4J run sinkhorn4j's ops (docs/design.md, "How SameDiff reaches sinkhorn4j"). Two steps,
 * both idempotent and done without any user action:
 * <ol>
 * <li>the executioner: {@link Nd4j#getExecutioner()} is replaced by a {@link RoutingExecutioner}
 * over it, at ND4J's start through {@link Nd4jStartupAction} (a service ND4J loads), and again by
 * every entry point when missing (ND4J started by a class loader that does not see this jar, or a
 * backend re-initialised);</li>
 * <li>the op classes are entered by name into ND4J's op-name map, where graph deserialisation looks
 * up ops unknown to libnd4j (they are saved with op hash 0).</li>
 * </ol>
 */
public final class SinkhornNd4j {
    private static final Object EXECUTIONER_LOCK = new Object(), REGISTRATION_LOCK = new Object();
    private static volatile boolean opsRegistered;

    private SinkhornNd4j() {}

    /** Installs the routing executioner and registers the ops, unless already done; cheap when done. */
    public static void install() {
        installExecutioner();
        registerOps();
    }

    static void installExecutioner() {
        if (RoutingExecutioner.isRouting(Nd4j.getExecutioner())) return;
        synchronized (EXECUTIONER_LOCK) {
            OpExecutioner current = Nd4j.getExecutioner();
            if (!RoutingExecutioner.isRouting(current)) setExecutioner(RoutingExecutioner.wrap(current));
        }
    }

    static void registerOps() {
        if (opsRegistered) return;
        synchronized (REGISTRATION_LOCK) {
            if (opsRegistered) return;
            Map<String, DifferentialFunction> byName = ImportClassMapping.getOpNameMapping();
            for (DifferentialFunction op : List.of(new SinkhornDivergenceOp(), new SinkhornDivergenceBpOp(),
                    new SinkhornDivergenceHvpOp(), new DenseSinkhornOp(), new DenseSinkhornBpOp())) {
                byName.putIfAbsent(op.opName(), op);
            }
            opsRegistered = true;
        }
    }

    private static void setExecutioner(OpExecutioner executioner) {
        try {
            // Nd4j keeps its executioner in a private static field with no setter.
            Field field = Nd4j.class.getDeclaredField("OP_EXECUTIONER_INSTANCE");
            field.setAccessible(true);
            field.set(null, executioner);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("cannot install sinkhorn4j's op routing into this ND4J version "
                    + "(expected the field Nd4j.OP_EXECUTIONER_INSTANCE of ND4J 1.0.0-M2.1)", e);
        }
    }
}
