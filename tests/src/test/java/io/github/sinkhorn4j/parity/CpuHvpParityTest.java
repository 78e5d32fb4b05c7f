package io.github.sinkhorn4j.parity;

import io.github.sinkhorn4j.core.Device;

/** The Hessian-vector product fixtures on the CPU backend. */
class CpuHvpParityTest extends HvpParitySuite {
    @Override
    Device device() {
        return Device.CPU;
    }
}
