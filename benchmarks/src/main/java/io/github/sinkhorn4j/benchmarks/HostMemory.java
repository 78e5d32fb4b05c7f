package io.github.sinkhorn4j.benchmarks;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The process's resident memory from /proc/self/status. Its high-water mark VmHWM can be reset to
 * the current resident size (Linux: write 5 to /proc/self/clear_refs), which gives the peak of one
 * run rather than of the whole process.
 */
final class HostMemory {
    private static final Path STATUS = Path.of("/proc/self/status");
    private static final Path CLEAR_REFS = Path.of("/proc/self/clear_refs");

    private HostMemory() {}

    /** Resets the high-water mark; false where the kernel does not allow it (the peak then covers the process). */
    static boolean resetPeak() {
        try {
            Files.writeString(CLEAR_REFS, "5");
            return true;
        } catch (IOException | SecurityException e) {
            return false;
        }
    }

    /** Peak resident bytes (VmHWM), or -1 without /proc. */
    static long peakBytes() {
        return statusKilobytes("VmHWM:") * 1024;
    }

    /** Current resident bytes (VmRSS), or -1 without /proc. */
    static long residentBytes() {
        return statusKilobytes("VmRSS:") * 1024;
    }

    private static long statusKilobytes(String key) {
        try {
            for (String line : Files.readAllLines(STATUS)) {
                if (line.startsWith(key)) return Long.parseLong(line.substring(key.length()).replace("kB", "").trim());
            }
        } catch (IOException | NumberFormatException e) {
            return -1;
        }
        return -1;
    }
}
