"""Keras 3 conventions that a drop-in replacement must follow (issue 14, item 1).

Gradients of another floating dtype are cast to the variable's dtype, as every
Keras 3 optimizer does in its ``update_step``; non-floating gradients are an
error. Default names are made unique as Keras makes them (``adam``, ``adam_1``).
"""

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab


def _run(optimizer, grads, dtype="float32", sparse=False):
    x = tf.Variable(np.linspace(-1.0, 1.0, 12).reshape(4, 3), dtype=dtype)

    @tf.function
    def step(g):
        if sparse:
            g = tf.IndexedSlices(tf.gather(g, [0, 2]), tf.constant([0, 2]), tf.constant([4, 3]))
        optimizer.apply_gradients([(g, x)])

    for g in grads:
        step(g)
    return x.numpy()


@pytest.mark.parametrize("grad_dtype", ["float64", "float16", "bfloat16"])
@pytest.mark.parametrize("sparse", [False, True], ids=["dense", "sparse"])
def test_other_floating_gradients_are_cast_as_keras_casts_them(grad_dtype, sparse):
    rng = np.random.default_rng(0)
    grads = [tf.constant(rng.normal(size=(4, 3)), grad_dtype) for _ in range(20)]
    ours = _run(optimlab.Adam(0.05, epsilon_hat=True), grads, sparse=sparse)
    theirs = _run(keras.optimizers.Adam(0.05), grads, sparse=sparse)
    # The same as casting by hand first, and the same as Keras, bit for bit.
    cast_first = _run(optimlab.Adam(0.05, epsilon_hat=True), [tf.cast(g, "float32") for g in grads], sparse=sparse)
    np.testing.assert_array_equal(ours, cast_first)
    np.testing.assert_array_equal(ours, theirs)
    assert np.abs(ours - np.linspace(-1.0, 1.0, 12).reshape(4, 3)).max() > 0.1


def test_float32_gradient_for_float64_variable_is_cast_up():
    g = tf.constant(np.full((4, 3), 0.1), tf.float32)
    ours = _run(optimlab.SGD(0.5), [g], dtype="float64")
    expected = np.linspace(-1.0, 1.0, 12).reshape(4, 3) - 0.5 * np.float64(np.float32(0.1))
    np.testing.assert_array_equal(ours, expected)


@pytest.mark.parametrize("grad_dtype", [tf.int32, tf.int64, tf.bool, tf.complex64])
def test_non_floating_gradients_are_rejected_before_any_change(grad_dtype):
    x = tf.Variable(np.ones((2, 3), np.float32), name="kernel")
    opt = optimlab.Adam(0.1)
    with pytest.raises(TypeError, match=f"kernel.*{tf.as_dtype(grad_dtype).name}.*floating"):
        opt.apply_gradients([(tf.ones((2, 3), grad_dtype), x)])
    np.testing.assert_array_equal(x.numpy(), np.ones((2, 3)))
    assert int(opt.iterations) == 0


def _base(name):
    return re.sub(r"_\d+$", "", name)


def test_default_names_are_unique_as_in_keras():
    first, second = optimlab.Adam(), optimlab.Adam()
    assert first.name != second.name
    assert _base(first.name) == _base(second.name) == "adam"
    # Keras's counter is shared, so a Keras Adam made in between takes its own number.
    names = [optimlab.Adam().name, keras.optimizers.Adam().name, optimlab.Adam().name]
    assert len(set(names)) == 3


@pytest.mark.parametrize("cls", ["Adam", "RMSprop", "SGD", "Ftrl", "Muon", "ScheduleFreeAdamW", "Lamb"])
def test_default_names_follow_keras(cls):
    assert _base(getattr(optimlab, cls)().name) == _base(getattr(keras.optimizers, cls)().name)


def test_explicit_names_are_kept():
    assert optimlab.Adam(name="mine").name == optimlab.Adam(name="mine").name == "mine"


def test_sparse_gradient_with_tuple_indices_is_accepted_as_in_keras():
    """Keras's own sparse tests build ``tf.IndexedSlices(values, (0, 2, 4), (5, 10))``."""
    values = 0.5 * tf.ones((3, 10))
    x, y = tf.Variable(tf.ones((5, 10))), tf.Variable(tf.ones((5, 10)))
    optimlab.Adam(0.1).apply_gradients([(tf.IndexedSlices(values, (0, 2, 4), (5, 10)), x)])
    optimlab.Adam(0.1).apply_gradients([(tf.IndexedSlices(values, tf.constant([0, 2, 4]), tf.constant([5, 10])), y)])
    np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert x.numpy()[0, 0] < 1.0 and x.numpy()[1, 0] == 1.0
