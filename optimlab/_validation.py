"""Input validation of the optimizer bases: pure functions, no optimizer state.

Two moments are checked. At construction: the base arguments every optimizer
takes (``check_*_args``); Keras 3 itself lets NaN, -1 and strings through. At
every apply, before any state changes: the gradients and variables
(``check_apply_inputs``) and the rows a sparse gradient indexes
(``check_indices``). Messages follow :mod:`optimlab._checks`: the argument, what
is allowed, the bad value.

Used by ``optimlab.optimizer``, ``optimlab.legacy`` and ``optimlab.wrappers``.
"""

import keras
import numpy as np
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from optimlab._checks import check_bool, check_int, check_nonnegative, check_positive, check_range

# Constructor arguments of Keras 3's base that optimlab passes through untouched.
KERAS_BASE_ARGS = (
    "weight_decay",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)
CLIP_ARGS = ("clipvalue", "clipnorm", "global_clipnorm")


class ArgumentError(TypeError, ValueError):
    """An argument of the wrong name or kind: a TypeError by Python's convention, a ValueError as Keras 3 raises it.

    Code written for ``keras.optimizers`` (``except ValueError``) and for Python
    (``except TypeError``) both catch it.
    """


# ------------------------------------------------------------------ value forms
def is_dynamic(value):
    """Schedules and zero-argument callables: evaluated at every step, not checked as numbers."""
    if isinstance(value, LearningRateSchedule):
        return True
    return callable(value) and not isinstance(value, (tf.Variable, keras.Variable, tf.Tensor))


def var_label(variable):
    """How messages name a variable: its Keras path, else its name."""
    return getattr(variable, "path", None) or getattr(variable, "name", repr(variable))


# ---------------------------------------------------------------- construction
def check_keyword_args(owner, kwargs):
    """Only Keras 3's base arguments may come through ``**kwargs`` (``owner``: the class name)."""
    unknown = sorted(set(kwargs) - set(KERAS_BASE_ARGS))
    if "decay" in unknown:
        raise ArgumentError(
            f"{owner} does not take Keras 2's `decay` (Keras 3 ignores it with a warning); for Keras 2's "
            "lr / (1 + decay * t) pass learning_rate=keras.optimizers.schedules.InverseTimeDecay(lr, 1, decay). "
            f"Received: decay={kwargs['decay']!r}"
        )
    if unknown:
        allowed = sorted(set(KERAS_BASE_ARGS) | set(CLIP_ARGS) | {"learning_rate", "name"})
        raise ArgumentError(
            f"{owner} got unexpected keyword argument(s) {unknown}; "
            f"allowed besides the optimizer's own arguments: {allowed}"
        )


def check_keras2_keyword_args(kwargs, keras2_args, other_args):
    """Keras 2's own check and messages (legacy base): known names, and ``keras2_args`` >= 0 unless callable."""
    allowed = set(keras2_args) | set(other_args)
    for key, value in kwargs.items():
        if key not in allowed:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {key}. "
                f"Allowed kwargs are {sorted(allowed)}"
            )
        if key in keras2_args and value is not None and not callable(value) and value < 0:
            raise ValueError(f"Expected {key} >= 0, received: {value}")


def check_name(name):
    if name is not None and not isinstance(name, str):
        raise TypeError(f"name must be a string; got {name!r}")
    return name


def check_learning_rate(value):
    """A non-negative number; variables, callables and schedules are read (not checked) at each step."""
    if is_dynamic(value) or isinstance(value, (tf.Variable, keras.Variable)):
        return value
    try:
        return check_range("learning_rate", value, 0.0)
    except TypeError as error:  # Keras 3 raises ValueError here: ArgumentError is both
        raise ArgumentError(str(error)) from None


def check_clip(arg, value, gradient_transformers=None):
    """``clipvalue``, ``clipnorm`` or ``global_clipnorm``: None or >= 0, and not with transformers (Keras 2)."""
    if value is not None and gradient_transformers:
        raise ValueError(
            f"`{arg}` cannot be set when `gradient_transformers` is set; use the "
            f"transformers for clipping instead. Got {arg}={value}, "
            f"gradient_transformers={gradient_transformers}"
        )
    if value is not None:
        check_nonnegative(arg, value)
    return value


def check_one_norm_clip(clipnorm, global_clipnorm):
    """``clipnorm`` and ``global_clipnorm`` exclude each other, as in Keras 2 and 3 (``clipvalue`` combines with either)."""
    if clipnorm is not None and global_clipnorm is not None:
        raise ValueError(
            "Only one of `clipnorm` and `global_clipnorm` can be set (`clipvalue` may be combined with "
            f"either; it is applied first, as in Keras 2). Received: clipnorm={clipnorm}, global_clipnorm={global_clipnorm}"
        )


def check_base_args(kwargs):
    """Keras 3's base arguments, checked before anything is built."""
    if kwargs.get("weight_decay") is not None:
        check_nonnegative("weight_decay", kwargs["weight_decay"])
    if "use_ema" in kwargs:
        check_bool("use_ema", kwargs["use_ema"])
    if "ema_momentum" in kwargs:
        check_range("ema_momentum", kwargs["ema_momentum"], 0.0, 1.0, dynamic=False)
    if kwargs.get("ema_overwrite_frequency") is not None:
        check_int("ema_overwrite_frequency", kwargs["ema_overwrite_frequency"], 1)
    if kwargs.get("loss_scale_factor") is not None:
        check_positive("loss_scale_factor", kwargs["loss_scale_factor"], dynamic=False)
    if kwargs.get("gradient_accumulation_steps") is not None:
        check_int("gradient_accumulation_steps", kwargs["gradient_accumulation_steps"], 2)


def check_fused(fused):
    if fused not in (None, True, False):
        raise ValueError(f"fused must be None (automatic), True or False; got {fused!r}")
    return fused


def check_gradient_aggregator(gradient_aggregator):
    if gradient_aggregator is not None and not callable(gradient_aggregator):
        raise TypeError(f"gradient_aggregator must be callable; got {gradient_aggregator!r}")
    return gradient_aggregator


def check_gradient_transformers(gradient_transformers):
    """None or a list (tuple) of callables; returns them as a new list."""
    if gradient_transformers is not None and not isinstance(gradient_transformers, (list, tuple)):
        raise TypeError(f"gradient_transformers must be a list of callables or None; got {gradient_transformers!r}")
    transformers = list(gradient_transformers or [])
    for fn in transformers:
        if not callable(fn):
            raise TypeError(f"gradient_transformers must be a list of callables; got {gradient_transformers!r}")
    return transformers


def check_constructor_args(owner, kwargs, *, learning_rate, clips, gradient_aggregator, gradient_transformers,
                           fused, name, skip_nonfinite):
    """Every argument of the modern base, before Keras' constructor runs; returns the transformers as a list.

    ``owner`` is the class name, ``kwargs`` Keras 3's base arguments, ``clips``
    ``(clipvalue, clipnorm, global_clipnorm)``.
    """
    check_keyword_args(owner, kwargs)
    check_name(name)
    for arg, value in zip(CLIP_ARGS, clips):
        check_clip(arg, value)
    check_one_norm_clip(clips[1], clips[2])
    check_base_args(kwargs)
    check_bool("skip_nonfinite", skip_nonfinite)
    check_learning_rate(learning_rate)
    check_fused(fused)
    check_gradient_aggregator(gradient_aggregator)
    return check_gradient_transformers(gradient_transformers)


# ----------------------------------------------------------------------- apply
def check_grads_and_vars(grads_and_vars, name=None):
    """``apply_gradients``' arguments: ``(gradient, variable)`` pairs (returned as a list) and a string name."""
    if name is not None and not isinstance(name, str):
        raise TypeError(
            f"name must be a string; got {type(name).__name__}. To pass gradients and "
            "variables as two lists, call apply(grads, variables)"
        )
    pairs = list(grads_and_vars)
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError(f"grads_and_vars must hold (gradient, variable) pairs; got {pair!r}")
    return pairs


def _check_dense_gradient(i, g, v, label):
    """``(dtype, shape, variable shape)`` of a dense gradient, or TypeError when it is no tensor."""
    if isinstance(g, (str, bytes, bool, np.bool_)):
        raise TypeError(f"grads[{i}] for variable {label!r} must be a tensor of dtype {tf.as_dtype(v.dtype).name}; got {g!r}")
    try:
        g_tensor = g if isinstance(g, tf.Tensor) else tf.convert_to_tensor(g, dtype_hint=v.dtype)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"grads[{i}] for variable {label!r} must be a tensor of dtype {tf.as_dtype(v.dtype).name} "
            f"and shape {tf.TensorShape(v.shape)}; got {g!r}"
        ) from error
    return g_tensor.dtype, g_tensor.shape, v.shape


def _check_sparse_gradient(i, g, v, label):
    """``(dtype, shape of a row, shape of a variable row)`` of an ``IndexedSlices`` gradient."""
    if not g.indices.dtype.is_integer:
        raise TypeError(f"grads[{i}] for variable {label!r} has indices of dtype {g.indices.dtype.name}; they must be integers")
    return g.values.dtype, g.values.shape[1:], v.shape[1:]


def check_apply_inputs(grads, variables):
    """Gradients and variables of one apply: same count, variables, tensors of matching shape, floating dtype."""
    if len(grads) != len(variables):
        raise ValueError(
            f"grads and variables must have the same length; got {len(grads)} gradients "
            f"for {len(variables)} variables"
        )
    if variables and all(g is None for g in grads):
        names = [var_label(v) for v in variables]
        raise ValueError(f"No gradients provided for any variable: {names}; at least one must be a tensor")
    for i, (g, v) in enumerate(zip(grads, variables)):
        if not isinstance(v, (tf.Variable, keras.Variable)):
            raise TypeError(f"variables[{i}] must be a tf.Variable or keras.Variable; got {type(v).__name__}: {v!r}")
        if g is None:
            continue
        label = var_label(v)
        check = _check_sparse_gradient if isinstance(g, tf.IndexedSlices) else _check_dense_gradient
        grad_dtype, grad_shape, var_shape = check(i, g, v, label)
        if tf.as_dtype(grad_dtype) != tf.as_dtype(v.dtype) and not tf.as_dtype(grad_dtype).is_floating:
            raise TypeError(
                f"grads[{i}] for variable {label!r} has dtype {tf.as_dtype(grad_dtype).name}; "
                f"it must be floating (it is cast to the variable's dtype {tf.as_dtype(v.dtype).name}, as Keras does)"
            )
        if not tf.TensorShape(grad_shape).is_compatible_with(var_shape):
            raise ValueError(
                f"grads[{i}] for variable {label!r} has shape {tf.TensorShape(grad_shape)}; "
                f"it must match the variable's shape {tf.TensorShape(var_shape)}"
            )


def check_indices(grads, variables):
    """Sparse gradients must index existing rows: checked now (eagerly) or first in the graph.

    Returns the graph's assertions, on which every later op of the step depends
    (see :func:`after`).
    """
    guards = []
    for i, (g, v) in enumerate(zip(grads, variables)):
        if not isinstance(g, tf.IndexedSlices):
            continue
        rows = tf.cast(tf.shape(v)[0], g.indices.dtype)
        message = f"grads[{i}] for variable {var_label(v)!r} has indices outside [0, number of rows)"
        if tf.executing_eagerly():
            indices = g.indices.numpy()
            bad = indices[(indices < 0) | (indices >= int(rows))]
            if bad.size:
                raise ValueError(f"{message}; got {bad.tolist()[:10]} for {int(rows)} rows")
        else:
            in_range = tf.reduce_all((g.indices >= 0) & (g.indices < rows))
            guards.append(tf.debugging.Assert(in_range, [message, g.indices, rows]))
    return guards


def after(guards, gradient):
    """``gradient`` made to depend on ``guards`` (the index assertions of :func:`check_indices`) in a graph."""
    if not guards or gradient is None:
        return gradient
    with tf.control_dependencies(guards):
        if isinstance(gradient, tf.IndexedSlices):
            return tf.IndexedSlices(tf.identity(gradient.values), tf.identity(gradient.indices), gradient.dense_shape)
        return tf.identity(gradient)


def all_finite(grads):
    """True when no gradient holds a NaN or an infinity (one scalar for the whole step)."""
    checks = []
    for g in grads:
        values = g.values if isinstance(g, tf.IndexedSlices) else tf.convert_to_tensor(g)
        checks.append(tf.reduce_all(tf.math.is_finite(values)))
    return tf.reduce_all(tf.stack(checks))
