package io.github.sinkhorn4j;

import io.github.sinkhorn4j.core.DenseReport;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What {@link DenseSinkhornNd#solve} returns: the cost (a scalar, or (B)), the potentials f (rows)
 * and g (columns), 0 at masked entries; with the options' plan or gradients the plan, shaped as C
 * (it is also dcost/dC), with gradients dcost/da and dcost/db (else null); and the report
 * (iterations, convergence, device).
 */
public record DenseSinkhornNdResult(INDArray cost, INDArray f, INDArray g, INDArray plan, INDArray gradA, INDArray gradB,
                                    DenseReport report) {}
