package io.github.sinkhorn4j.parity;

import io.github.sinkhorn4j.core.Device;

/** The fixture suite on the CPU backend. */
class CpuFixtureParityTest extends FixtureParitySuite {
    @Override
    Device device() {
        return Device.CPU;
    }
}
