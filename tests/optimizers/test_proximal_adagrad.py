"""ProximalAdagrad against a float64 NumPy transcription of FOBOS with Adagrad rates over 150 steps."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 150
X0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def reference(x, lr, a0=0.1, l1=0.0, l2=0.0, rows_of=None):
    a = np.full_like(x, a0)
    for t in range(STEPS):
        idx = slice(None) if rows_of is None else rows_of(t)
        g = grad(x[idx])
        a[idx] = a[idx] + g * g
        eta = lr / np.sqrt(a[idx])
        z = x[idx] - eta * g
        x[idx] = np.sign(z) * np.maximum(np.abs(z) - eta * l1, 0) / (1 + eta * l2)
    return x


@pytest.mark.parametrize(
    "kwargs, ref",
    [
        ({"learning_rate": 0.1}, {"lr": 0.1}),
        ({"learning_rate": 0.2, "l1_regularization_strength": 0.05, "l2_regularization_strength": 0.3}, {"lr": 0.2, "l1": 0.05, "l2": 0.3}),
        ({"learning_rate": 0.2, "initial_accumulator_value": 1.0, "l2_regularization_strength": 0.1}, {"lr": 0.2, "a0": 1.0, "l2": 0.1}),
    ],
)
def test_dense_matches_numpy_reference(kwargs, ref):
    x = tf.Variable(X0)
    opt = optimlab.ProximalAdagrad(**kwargs)
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(grad(x.numpy())), x)])
    np.testing.assert_allclose(x.numpy(), reference(X0.copy(), **ref), rtol=1e-10, atol=1e-12)


def test_sparse_updates_only_the_indexed_rows():
    rows_of = lambda t: np.array([t % 2])  # noqa: E731  (row 0 on even steps, row 1 on odd ones)
    x = tf.Variable(X0)
    opt = optimlab.ProximalAdagrad(learning_rate=0.2, l1_regularization_strength=0.05, l2_regularization_strength=0.3)
    for t in range(STEPS):
        rows = rows_of(t)
        values = tf.constant(grad(x.numpy()[rows]))
        opt.apply_gradients([(tf.IndexedSlices(values, tf.constant(rows), tf.constant(X0.shape)), x)])
    np.testing.assert_allclose(x.numpy(), reference(X0.copy(), lr=0.2, l1=0.05, l2=0.3, rows_of=rows_of), rtol=1e-10, atol=1e-12)


def test_l1_gives_exact_zeros():
    x = tf.Variable([0.05, 3.0])
    opt = optimlab.ProximalAdagrad(learning_rate=0.5, l1_regularization_strength=1.0)
    for _ in range(20):
        opt.minimize(lambda: 0.01 * x[0] ** 2 + (x[1] - 3.0) ** 2, [x])
    assert x.numpy()[0] == 0.0 and x.numpy()[1] != 0.0


@pytest.mark.parametrize("kwargs, match", [({"initial_accumulator_value": 0.0}, "initial_accumulator_value"), ({"l2_regularization_strength": -0.1}, "l2_regularization_strength")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimlab.ProximalAdagrad(**kwargs)


def test_config_round_trip():
    opt = optimlab.ProximalAdagrad(learning_rate=0.3, l1_regularization_strength=0.01)
    assert optimlab.ProximalAdagrad.from_config(opt.get_config()).get_config() == opt.get_config()
