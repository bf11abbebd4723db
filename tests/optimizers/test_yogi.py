"""Yogi against a float64 NumPy transcription of TF Addons' Yogi over 150 steps."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 150
X0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def run(opt, steps=STEPS, dtype=tf.float64):
    x = tf.Variable(X0, dtype=dtype)
    for _ in range(steps):
        opt.apply_gradients([(tf.constant(grad(x.numpy().astype(np.float64)), dtype=dtype), x)])
    return x.numpy()


def reference(x, lr=0.01, b1=0.9, b2=0.999, eps=1e-3, l1=0.0, l2=0.0, v0=1e-6, activation="sign", steps=STEPS):
    m, v = np.zeros_like(x), np.full_like(x, v0)
    for t in range(1, steps + 1):
        g = grad(x)
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        m = b1 * m + (1 - b1) * g
        sign = np.sign(g * g - v) if activation == "sign" else np.tanh(10 * (g * g - v))
        v = v + (1 - b2) * sign * g * g
        eta = lr_t / (np.sqrt(v) + eps)
        x = x - eta * m
        x = np.sign(x) * np.maximum(np.abs(x) - eta * l1, 0) / (1 + eta * l2)
    return x


@pytest.mark.parametrize(
    "kwargs, ref",
    [
        ({}, {}),
        ({"learning_rate": 0.05, "activation": "tanh"}, {"lr": 0.05, "activation": "tanh"}),
        ({"learning_rate": 0.05, "l1_regularization_strength": 0.1, "l2_regularization_strength": 0.2}, {"lr": 0.05, "l1": 0.1, "l2": 0.2}),
        ({"beta_1": 0.0, "beta_2": 0.9, "initial_accumulator_value": 0.5, "epsilon": 1e-6}, {"b1": 0.0, "b2": 0.9, "v0": 0.5, "eps": 1e-6}),
    ],
)
def test_matches_numpy_reference(kwargs, ref):
    np.testing.assert_allclose(run(optimlab.Yogi(**kwargs)), reference(X0, **ref), rtol=1e-10, atol=1e-12)


def test_l1_gives_exact_zeros():
    x = run(optimlab.Yogi(learning_rate=0.05, l1_regularization_strength=5.0))
    assert np.any(x == 0.0)


def test_float32_follows_float64_reference():
    np.testing.assert_allclose(run(optimlab.Yogi(learning_rate=0.05), dtype=tf.float32), reference(X0, lr=0.05), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"activation": "relu"}, "activation"), ({"l1_regularization_strength": -1.0}, "l1_regularization_strength"), ({"initial_accumulator_value": -1.0}, "initial_accumulator_value")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimlab.Yogi(**kwargs)


def test_config_round_trip():
    opt = optimlab.Yogi(learning_rate=0.02, activation="tanh", initial_accumulator_value=0.1)
    assert optimlab.Yogi.from_config(opt.get_config()).get_config() == opt.get_config()
