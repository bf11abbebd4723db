"""SAM / ASAM against a float64 NumPy two-gradient computation over 100 steps, in a custom loop and in fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab.sam import SAMModel, sam_gradients

STEPS = 100
RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 3))
Y = X @ np.array([[1.0], [-2.0], [0.5]]) + 0.1 * RNG.normal(size=(16, 1))
W0 = np.array([[0.3], [0.2], [-0.4]])


def mse_grad(w):
    return 2.0 * X.T @ (X @ w - Y) / len(X)


def reference(rho, lr, adaptive=False, eta=0.01, steps=STEPS):
    w = W0.copy()
    for _ in range(steps):
        g = mse_grad(w)
        if adaptive:
            t = np.abs(w) + eta
            e = rho * t * t * g / np.linalg.norm(t * g)
        else:
            e = rho * g / np.linalg.norm(g)
        w = w - lr * mse_grad(w + e)
    return w


@pytest.mark.parametrize("adaptive, rho", [(False, 0.05), (True, 0.5)])
def test_custom_loop_matches_numpy(adaptive, rho):
    w = tf.Variable(W0)
    opt = optimlab.SGD(0.05)
    loss = lambda: tf.reduce_mean(tf.square(tf.constant(X) @ w - tf.constant(Y)))  # noqa: E731
    for _ in range(STEPS):
        grads, _ = sam_gradients(loss, [w], rho=rho, adaptive=adaptive)
        opt.apply_gradients(zip(grads, [w]))
    # Near the minimum g / ||g|| amplifies round-off in g (1e-16 * |X||w| / |g|), hence 1e-7.
    np.testing.assert_allclose(w.numpy(), reference(rho, 0.05, adaptive), rtol=1e-7)
    assert not np.allclose(w.numpy(), reference(0.0, 0.05), rtol=1e-4)  # the perturbation matters


@pytest.mark.parametrize("adaptive, rho", [(False, 0.05), (True, 0.5)])
def test_fit_matches_numpy(adaptive, rho):
    inner = keras.Sequential([keras.Input((3,), dtype="float64"), keras.layers.Dense(1, use_bias=False, dtype="float64")])
    inner.layers[0].kernel.assign(W0)
    model = SAMModel(inner, rho=rho, adaptive=adaptive)
    model.compile(optimizer=optimlab.SGD(0.05), loss=keras.losses.MeanSquaredError(dtype="float64"))
    history = model.fit(X, Y, epochs=STEPS, batch_size=len(X), shuffle=False, verbose=0)
    # With Keras' default float32 "mse" the SAM direction near the optimum drifts by ~1%; float64 loss here.
    np.testing.assert_allclose(inner.layers[0].kernel.numpy(), reference(rho, 0.05, adaptive), rtol=1e-6)
    # The logged loss is the loss at the unperturbed weights before the last step.
    w = reference(rho, 0.05, adaptive, steps=STEPS - 1)
    np.testing.assert_allclose(history.history["loss"][-1], np.mean((X @ w - Y) ** 2), rtol=1e-5)


def test_any_optimizer_and_weights_restored():
    w = tf.Variable(W0)
    loss = lambda: tf.reduce_mean(tf.square(tf.constant(X) @ w - tf.constant(Y)))  # noqa: E731
    grads, value = sam_gradients(loss, [w], rho=0.1)
    np.testing.assert_array_equal(w.numpy(), W0)
    np.testing.assert_allclose(float(value), np.mean((X @ W0 - Y) ** 2))
    optimlab.Adam(0.01).apply_gradients(zip(grads, [w]))


@pytest.mark.parametrize("kwargs, match", [({"rho": -1.0}, "rho"), ({"adaptive": "yes"}, "adaptive"), ({"model": "dense"}, "model")])
def test_bad_arguments_are_named(kwargs, match):
    args = {"model": keras.Sequential([keras.layers.Dense(1)]), **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        SAMModel(**args)
