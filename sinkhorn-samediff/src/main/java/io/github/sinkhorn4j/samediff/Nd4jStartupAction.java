package io.github.sinkhorn4j.samediff;

import org.nd4j.linalg.env.EnvironmentalAction;

/**
 * ND4J instantiates every {@link EnvironmentalAction} service at the end of its start-up, after
 * creating its executioner: creating this one installs sinkhorn4j's op routing, so that a graph
 * loaded in a fresh JVM runs before any sinkhorn4j class is touched. Listed in
 * META-INF/services/org.nd4j.linalg.env.EnvironmentalAction.
 */
public final class Nd4jStartupAction implements EnvironmentalAction {
    public Nd4jStartupAction() {
        SinkhornNd4j.installExecutioner();
    }

    /** ND4J asks for an environment variable to pass to {@link #process}; this action needs none. */
    @Override
    public String targetVariable() {
        return "SINKHORN4J_ND4J_STARTUP";
    }

    @Override
    public void process(String value) {
        // The work is done at construction; the variable carries nothing.
    }
}
