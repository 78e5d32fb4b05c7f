package io.github.sinkhorn4j.core;

/** Where a solve runs. */
public enum Device {
    /** CUDA when the library has it and a device is present, the CPU otherwise. */
    AUTO,
    CPU,
    CUDA
}
