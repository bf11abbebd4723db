"""Small pure pieces of optimizer maths shared by the optimizer modules.

Scalar coefficients are computed in float64 (the dtype of optimlab's
hyperparameter variables) and cast once to the variable's dtype, which is what
Python-float code such as the TensorFlow guide "Optimizers with Core APIs" does
implicitly; this keeps float32 results identical to such code.
"""

import re

import tensorflow as tf


def step_count(optimizer):
    """The 1-based step number ``t`` of the update being made, in float64."""
    return tf.cast(optimizer.iterations + 1, tf.float64)


def bias_correction(beta, t):
    """``1 - beta**t`` in float64 (``beta`` a float64 scalar)."""
    return 1.0 - tf.pow(beta, t)


def keras_adam_step_size(learning_rate, beta_1, beta_2, step, dtype):
    """``lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``: Adam's step size in Keras's form.

    Computed in ``dtype``, operation for operation as ``keras.optimizers.Adam``
    does (each argument cast to ``dtype`` first; ``step`` is ``t``, counting from 1).
    """
    lr, beta_1, beta_2, t = (tf.cast(x, dtype) for x in (learning_rate, beta_1, beta_2, step))
    return lr * tf.sqrt(1 - tf.pow(beta_2, t)) / (1 - tf.pow(beta_1, t))


def cast(dtype, *values):
    """Cast each value to ``dtype``; returns a tuple (or the value when only one)."""
    out = tuple(tf.cast(v, dtype) for v in values)
    return out[0] if len(out) == 1 else out


def constant(value):
    """A slot initializer filling ``value`` exactly in the slot's dtype (Keras's Constant rounds to float32)."""

    def initializer(shape, dtype=None):
        return tf.fill(shape, tf.constant(value, dtype=dtype or tf.float32))

    return initializer


def keras_ema(average, value, one_minus_beta):
    """``average + (value - average) * (1 - beta)``: the moving average as Keras 3 writes it."""
    return average + (value - average) * one_minus_beta


def own_weight_decay(optimizer, variable):
    """``optimizer.weight_decay`` for ``variable`` in float64: 0 when unset or excluded.

    For update rules that apply the decay themselves (coupled into a trust ratio,
    evaluated at an interpolated point, ...) instead of Keras's decoupled
    ``x <- x - lr * wd * x``; such optimizers turn the base decay off. Exclusions
    set with ``exclude_from_weight_decay`` are honoured.
    """
    if optimizer.weight_decay is None or not optimizer._use_weight_decay(variable):
        return tf.constant(0.0, tf.float64)
    return exact(optimizer.weight_decay, tf.float64)


def exact(value, dtype):
    """``value`` in ``dtype`` without a detour through float32 (``tf.cast(0.1, tf.float64)`` has one)."""
    if isinstance(value, (int, float)):
        return tf.constant(float(value), dtype)
    return tf.cast(value, dtype)


def check_patterns(name, patterns):
    """Regular expressions on variable paths (``exclude_layers``, ...): a tuple; None gives ().

    Not a list or tuple of strings: TypeError. A pattern that does not compile:
    ValueError naming it, at construction rather than at the first step.
    """
    if patterns is None:
        return ()
    if not isinstance(patterns, (list, tuple)) or not all(isinstance(p, str) for p in patterns):
        raise TypeError(f"{name} must be a list of regular-expression strings or None; got {patterns!r}")
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as error:
            raise ValueError(f"{name} holds an invalid regular expression {pattern!r}: {error}") from error
    return tuple(patterns)


def matches_any(patterns, variable):
    """Whether ``variable``'s path (its name where it has none) matches one of ``patterns`` (``re.search``)."""
    path = getattr(variable, "path", None) or variable.name
    return any(re.search(p, path) for p in patterns)
