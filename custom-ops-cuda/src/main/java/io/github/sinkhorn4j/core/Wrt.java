package io.github.sinkhorn4j.core;

/** The cloud a Hessian is taken with respect to. */
public enum Wrt {
    X,
    Y
}
