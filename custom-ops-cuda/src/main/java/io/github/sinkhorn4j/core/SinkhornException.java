package io.github.sinkhorn4j.core;

/** A failure reported by the native library (out of memory, device error, missing device, ...). */
public class SinkhornException extends RuntimeException {
    /** The library's status codes (sk_status in sinkhorn4j.h). */
    public enum Status {
        OK, INVALID_ARGUMENT, OUT_OF_MEMORY, DEVICE_ERROR, NO_DEVICE, INTERNAL_ERROR,
        /** An iterative solve missed its tolerance (the conjugate gradient of {@link Sinkhorn#hvp}). */
        NOT_CONVERGED;

        static Status of(int code) {
            return code >= 0 && code < values().length ? values()[code] : INTERNAL_ERROR;
        }
    }

    private final Status status;

    public SinkhornException(Status status, String message) {
        super(status + ": " + message);
        this.status = status;
    }

    public Status status() {
        return status;
    }
}
