package io.github.sinkhorn4j.samediff;

import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.lang.reflect.Proxy;
import java.util.LinkedHashSet;
import java.util.Set;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.executioner.OpExecutioner;

/**
 * The op executioner ND4J hands every op to, wrapped: sinkhorn4j's ops run in Java (and from there in
 * the native library), everything else goes to the backend's own executioner unchanged. A dynamic
 * proxy over the backend's interfaces, so that it wraps the CPU and the CUDA executioner alike.
 */
final class RoutingExecutioner implements InvocationHandler {
    private final OpExecutioner backend;

    private RoutingExecutioner(OpExecutioner backend) {
        this.backend = backend;
    }

    static OpExecutioner wrap(OpExecutioner backend) {
        Set<Class<?>> interfaces = new LinkedHashSet<>();
        for (Class<?> c = backend.getClass(); c != null; c = c.getSuperclass()) {
            for (Class<?> i : c.getInterfaces()) {
                if (Modifier.isPublic(i.getModifiers())) interfaces.add(i);
            }
        }
        return (OpExecutioner) Proxy.newProxyInstance(backend.getClass().getClassLoader(),
                interfaces.toArray(Class<?>[]::new), new RoutingExecutioner(backend));
    }

    static boolean isRouting(OpExecutioner executioner) {
        return executioner != null && Proxy.isProxyClass(executioner.getClass())
                && Proxy.getInvocationHandler(executioner) instanceof RoutingExecutioner;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        String name = method.getName();
        if (args != null && args.length > 0 && args[0] instanceof RoutedOp op) {
            OpContext context = args.length > 1 && args[1] instanceof OpContext c ? c : null;
            switch (name) {
                case "exec" -> { return op.execute(context); }
                case "execAndReturn" -> { op.execute(null); return op; }
                case "calculateOutputShape" -> { return op.calculateOutputShape(context); }
                case "allocateOutputArrays" -> { return op.allocateOutputArrays(); }
                default -> { }
            }
        }
        if (method.getDeclaringClass() == Object.class) {
            return switch (name) {
                case "equals" -> proxy == args[0];
                case "hashCode" -> System.identityHashCode(proxy);
                default -> "sinkhorn4j routing over " + backend;
            };
        }
        // Graph (de)serialisation looks op classes up right after asking for the custom operations:
        // the first such call registers ours, even in a JVM that has not touched sinkhorn4j yet.
        if (name.equals("getCustomOperations")) SinkhornNd4j.registerOps();
        try {
            return method.invoke(backend, args);
        } catch (InvocationTargetException e) {
            throw e.getCause();
        }
    }
}
