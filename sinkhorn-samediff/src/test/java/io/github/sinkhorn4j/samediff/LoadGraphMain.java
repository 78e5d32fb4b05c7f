package io.github.sinkhorn4j.samediff;

import java.io.File;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Run in a fresh JVM by {@link FreshJvmTest}: loads a saved graph and runs it, without naming any
 * sinkhorn4j class (ND4J's start-up action and the op-name registration must do everything).
 */
public final class LoadGraphMain {
    private LoadGraphMain() {}

    public static void main(String[] args) throws Exception {
        SameDiff sd = SameDiff.load(new File(args[0]), false);
        System.out.println("routing=" + Nd4j.getExecutioner().toString().startsWith("sinkhorn4j routing"));
        FreshJvmTest.print("loss", sd.output((Map<String, INDArray>) null, "loss").get("loss"));
        FreshJvmTest.print("grad", sd.calculateGradients(null, "x").get("x"));
    }
}
