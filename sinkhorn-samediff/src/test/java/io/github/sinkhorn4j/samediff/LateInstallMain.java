package io.github.sinkhorn4j.samediff;

import java.io.File;
import java.io.IOException;
import java.net.URL;
import java.util.Collections;
import java.util.Enumeration;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.common.config.ND4JClassLoading;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Run in a fresh JVM by {@link FreshJvmTest}: ND4J starts through a class loader that hides
 * sinkhorn4j's start-up action (as when this jar is loaded after ND4J, by another class loader);
 * then the graph is built, run, saved and loaded again, and must work with no user action.
 */
public final class LateInstallMain {
    private static final String STARTUP_SERVICE = "META-INF/services/org.nd4j.linalg.env.EnvironmentalAction";

    private LateInstallMain() {}

    public static void main(String[] args) throws Exception {
        ClassLoader app = LateInstallMain.class.getClassLoader();
        ND4JClassLoading.setNd4jClassloader(new ClassLoader(app) {
            @Override
            public Enumeration<URL> getResources(String name) throws IOException {
                List<URL> urls = Collections.list(super.getResources(name));
                if (name.equals(STARTUP_SERVICE)) urls.removeIf(u -> u.toString().contains("sinkhorn-samediff"));
                return Collections.enumeration(urls);
            }
        });
        Nd4j.create(1);
        System.out.println("routingAtStart=" + Nd4j.getExecutioner().toString().startsWith("sinkhorn4j routing"));
        SameDiff sd = FreshJvmTest.graph();
        FreshJvmTest.print("loss", sd.output((Map<String, INDArray>) null, "loss").get("loss"));
        FreshJvmTest.print("grad", sd.calculateGradients(null, "x").get("x"));
        System.out.println("routing=" + Nd4j.getExecutioner().toString().startsWith("sinkhorn4j routing"));
        File file = new File(args[0]);
        sd.save(file, false);
        SameDiff loaded = SameDiff.load(file, false);
        FreshJvmTest.print("loadedLoss", loaded.output((Map<String, INDArray>) null, "loss").get("loss"));
        FreshJvmTest.print("loadedGrad", loaded.calculateGradients(null, "x").get("x"));
    }
}
