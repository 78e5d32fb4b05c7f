package io.github.sinkhorn4j.parity;

import io.github.sinkhorn4j.core.Device;
import org.junit.jupiter.api.Tag;

/** The Hessian-vector product fixtures on the CUDA backend (strict FP32: TF32 off), run on the GPU machine. */
@Tag("gpu")
class CudaHvpParityTest extends HvpParitySuite {
    @Override
    Device device() {
        return Device.CUDA;
    }
}
