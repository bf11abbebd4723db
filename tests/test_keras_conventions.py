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


# Refusals a user switching from keras.optimizers meets (issue 24, item 4): Keras 3's error and optimlab's side by side.
SAME_REFUSALS = [
    ("SGD", {"clipnorm": 0.1, "global_clipnorm": 0.2}, ["Only one of", "clipnorm=0.1", "global_clipnorm=0.2"]),
    ("SGD", {"nesterov_momentum": 0.9}, ["nesterov_momentum"]),
    ("SGD", {"learning_rate": "fast"}, ["learning_rate", "LearningRateSchedule", "callable"]),
    ("SGD", {"gradient_accumulation_steps": 1}, ["gradient_accumulation_steps", ">= 2", "1"]),
    ("SGD", {"use_ema": True, "ema_momentum": 1.5}, ["ema_momentum", "[0, 1]", "1.5"]),
    ("SGD", {"momentum": 1.5}, ["momentum"]),
    ("Lion", {"beta_1": -0.1}, ["beta_1", "[0, 1]", "-0.1"]),
    ("Lion", {"beta_1": 1.1}, ["beta_1", "[0, 1]", "1.1"]),
]


@pytest.mark.parametrize("cls, kwargs, words", SAME_REFUSALS, ids=[f"{c}-{'+'.join(k)}" for c, k, _ in SAME_REFUSALS])
def test_refusal_matches_keras(cls, kwargs, words):
    """Keras's exception type catches optimlab's, and both messages name the argument and the bad value."""
    with pytest.raises(Exception) as theirs:
        getattr(keras.optimizers, cls)(**kwargs)
    with pytest.raises(type(theirs.value)) as ours:
        getattr(optimlab, cls)(**kwargs)
    for word in words:
        assert word in str(ours.value) and word in str(theirs.value), (word, str(ours.value), str(theirs.value))


@pytest.mark.parametrize("kwargs", [{"nesterov_momentum": 0.9}, {"learning_rate": "fast"}], ids=["unknown", "lr-type"])
def test_argument_errors_are_type_and_value_errors(kwargs):
    """Keras 3 raises ValueError, Python TypeError: optimlab's ArgumentError is caught by either."""
    for error in (TypeError, ValueError):
        with pytest.raises(error):
            optimlab.SGD(**kwargs)


def test_clip_conflict_is_refused_before_keras_builds_anything():
    keras.backend.clear_session()  # restarts Keras's name counter
    with pytest.raises(ValueError, match="Only one of `clipnorm` and `global_clipnorm`"):
        optimlab.SGD(clipnorm=1.0, global_clipnorm=1.0)
    assert optimlab.SGD().name == "sgd"  # no half-built optimizer took the first name


def test_clipvalue_combines_with_clipnorm_where_keras_3_refuses():
    """Documented difference: Keras 2's order (clipvalue, then clipnorm) where Keras 3 refuses the pair."""
    with pytest.raises(ValueError, match="Only one of"):
        keras.optimizers.SGD(clipvalue=1.0, clipnorm=1.0)
    x = tf.Variable([0.0, 0.0])
    optimlab.SGD(1.0, clipvalue=1.0, clipnorm=1.0).apply_gradients([(tf.constant([100.0, 0.5]), x)])
    clipped = np.array([1.0, 0.5])
    np.testing.assert_allclose(-x.numpy(), clipped / np.linalg.norm(clipped), rtol=1e-6)


def test_lion_beta_1_zero_is_sign_sgd_where_keras_refuses():
    with pytest.raises(ValueError, match="beta_1"):
        keras.optimizers.Lion(beta_1=0.0)
    x = tf.Variable([1.0, -2.0, 3.0])
    opt = optimlab.Lion(learning_rate=0.1, beta_1=0.0)
    for g in ([0.5, -0.1, 2.0], [-3.0, 0.2, 1.0]):
        before = x.numpy()
        opt.apply_gradients([(tf.constant(g), x)])
        np.testing.assert_allclose(x.numpy(), before - 0.1 * np.sign(g), rtol=1e-6)  # the current sign, not the momentum's


STRICTER = [
    ("SGD", {"clipnorm": -1.0}, ValueError, "clipnorm"),
    ("SGD", {"weight_decay": -0.1}, ValueError, "weight_decay"),
    ("SGD", {"use_ema": True, "ema_overwrite_frequency": 0}, ValueError, "ema_overwrite_frequency"),
    ("Lion", {"beta_2": 1.5}, ValueError, "beta_2"),
    ("Adam", {"beta_1": 1.5}, ValueError, "beta_1"),
]


@pytest.mark.parametrize("cls, kwargs, error, name", STRICTER, ids=[f"{c}-{'+'.join(k)}" for c, k, _, _ in STRICTER])
def test_values_keras_accepts_silently_are_refused(cls, kwargs, error, name):
    getattr(keras.optimizers, cls)(**kwargs)  # Keras 3 takes it without a word
    with pytest.raises(error, match=f"{name} must be .*; got"):
        getattr(optimlab, cls)(**kwargs)


def test_keras_2_decay_is_refused_with_the_schedule_that_replaces_it():
    with pytest.warns(UserWarning, match="decay"):
        keras.optimizers.SGD(decay=0.1)  # Keras 3 warns and ignores it
    with pytest.raises(ValueError, match=r"`decay`.*InverseTimeDecay\(lr, 1, decay\).*decay=0.1") as error:
        optimlab.SGD(decay=0.1)
    assert isinstance(error.value, TypeError)
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.5, 1, 0.1)
    assert float(schedule(3)) == pytest.approx(0.5 / (1 + 0.1 * 3))  # Keras 2's lr / (1 + decay * t)
