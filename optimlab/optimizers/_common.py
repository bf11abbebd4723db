"""Small pure pieces of optimizer maths shared by the optimizer modules.

Scalar coefficients are computed in float64 (the dtype of optimlab's
hyperparameter variables) and cast once to the variable's dtype, which is what
Python-float code such as seed 000 does implicitly; this keeps float32 results
identical to such code.
"""

import tensorflow as tf


def step_count(optimizer):
    """The 1-based step number ``t`` of the update being made, in float64."""
    return tf.cast(optimizer.iterations + 1, tf.float64)


def bias_correction(beta, t):
    """``1 - beta**t`` in float64 (``beta`` a float64 scalar)."""
    return 1.0 - tf.pow(beta, t)


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
