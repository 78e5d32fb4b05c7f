package io.github.sinkhorn4j.parity;

import io.github.sinkhorn4j.core.Device;
import org.junit.jupiter.api.Tag;

/** The fixture suite on the CUDA backend (strict FP32: TF32 off), run on the GPU machine through the bundle. */
@Tag("gpu")
class CudaFixtureParityTest extends FixtureParitySuite {
    @Override
    Device device() {
        return Device.CUDA;
    }
}
