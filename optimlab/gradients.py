"""Gradient processing as small pure functions on lists of ``(gradient, variable)`` pairs.

The order is the one of Keras 2's optimizer contract (``OptimizerV2``): aggregate
across replicas (sum), then ``clipvalue``, ``clipnorm``, ``global_clipnorm``, then the
user's ``gradient_transformers``. Every function accepts and returns a list of
pairs so that user-supplied aggregators and transformers compose with them.
"""

import tensorflow as tf


def all_reduce_sum(grads_and_vars):
    """Sum gradients across replicas (the default ``gradient_aggregator``).

    Outside a ``tf.distribute`` replica context, or under the default strategy,
    the pairs come back unchanged.
    """
    grads_and_vars = list(grads_and_vars)
    context = tf.distribute.get_replica_context()
    if context is None or not tf.distribute.has_strategy():
        return grads_and_vars
    present = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
    if not present:
        return grads_and_vars
    reduced = context.all_reduce(tf.distribute.ReduceOp.SUM, [grads_and_vars[i][0] for i in present])
    out = list(grads_and_vars)
    for i, g in zip(present, reduced):
        out[i] = (g, grads_and_vars[i][1])
    return out


def _map_grads(fn, grads_and_vars):
    return [(None if g is None else fn(g), v) for g, v in grads_and_vars]


def clip_by_value(grads_and_vars, clipvalue):
    """Clip every gradient element to ``[-clipvalue, clipvalue]``."""

    def clip(g):
        if isinstance(g, tf.IndexedSlices):
            values = tf.clip_by_value(g.values, -clipvalue, clipvalue)
            return tf.IndexedSlices(values, g.indices, g.dense_shape)
        return tf.clip_by_value(g, -clipvalue, clipvalue)

    return _map_grads(clip, grads_and_vars)


def clip_by_norm(grads_and_vars, clipnorm):
    """Rescale each gradient on its own so that its L2 norm is at most ``clipnorm``."""
    return _map_grads(lambda g: tf.clip_by_norm(g, clipnorm), grads_and_vars)


def clip_by_global_norm(grads_and_vars, global_clipnorm):
    """Rescale all gradients jointly so that their global L2 norm is at most ``global_clipnorm``."""
    grads_and_vars = list(grads_and_vars)
    present = [i for i, (g, _) in enumerate(grads_and_vars) if g is not None]
    clipped, _ = tf.clip_by_global_norm([grads_and_vars[i][0] for i in present], global_clipnorm)
    out = list(grads_and_vars)
    for i, g in zip(present, clipped):
        out[i] = (g, grads_and_vars[i][1])
    return out


def clip_and_transform(grads_and_vars, clipvalue=None, clipnorm=None, global_clipnorm=None, transformers=()):
    """After aggregation, in Keras 2's order: ``clipvalue``, ``clipnorm``, ``global_clipnorm``, then ``transformers``."""
    if clipvalue is not None:
        grads_and_vars = clip_by_value(grads_and_vars, clipvalue)
    if clipnorm is not None:
        grads_and_vars = clip_by_norm(grads_and_vars, clipnorm)
    if global_clipnorm is not None:
        grads_and_vars = clip_by_global_norm(grads_and_vars, global_clipnorm)
    for fn in transformers:
        grads_and_vars = list(fn(grads_and_vars))
    return grads_and_vars


def deduplicate(gradient):
    """Sum the rows of an ``IndexedSlices`` that share an index; indices come back unique."""
    unique, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(unique)[0])
    return tf.IndexedSlices(values, unique, gradient.dense_shape)


def frobenius_norm(x):
    """``||x||_F`` from one pass over ``x`` (``l2_loss`` is ``sum(x**2) / 2``; ``tf.norm`` takes two)."""
    return tf.sqrt(2.0 * tf.nn.l2_loss(x))


def cast_like(gradient, variable):
    """``gradient`` in ``variable``'s dtype, as each Keras 3 optimizer casts it before its update.

    A float64 or float16 gradient for a float32 variable is common in user code;
    ``None`` and gradients already of the right dtype come back unchanged.
    """
    dtype = tf.as_dtype(variable.dtype)
    if gradient is None:
        return None
    if isinstance(gradient, tf.IndexedSlices):
        if gradient.values.dtype == dtype:
            return gradient
        return tf.IndexedSlices(tf.cast(gradient.values, dtype), gradient.indices, gradient.dense_shape)
    gradient = tf.convert_to_tensor(gradient)
    return gradient if gradient.dtype == dtype else tf.cast(gradient, dtype)


def sparse_as_tensors(gradient):
    """An ``IndexedSlices`` whose indices and dense shape are tensors (Keras accepts tuples there).

    Anything else comes back unchanged; a conversion that fails is left to the validation.
    """
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    indices, shape = gradient.indices, gradient.dense_shape
    if isinstance(indices, tf.Tensor) and (shape is None or isinstance(shape, tf.Tensor)):
        return gradient
    try:
        indices = tf.convert_to_tensor(indices)
        shape = None if shape is None else tf.convert_to_tensor(shape)
    except (TypeError, ValueError):
        return gradient
    return tf.IndexedSlices(gradient.values, indices, shape)
