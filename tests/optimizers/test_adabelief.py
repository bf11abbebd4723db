"""AdaBelief against a float64 NumPy transcription of the paper / TF Addons over 150 steps."""

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


def reference(x, lr=1e-3, b1=0.9, b2=0.999, eps=1e-14, amsgrad=False, rectify=True, threshold=5.0, steps=STEPS):
    """Algorithm 2 of Zhuang et al. (2020), with TF Addons' RAdam-style rectification when ``rectify``."""
    m, s, s_max = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        g = grad(x)
        m = b1 * m + (1 - b1) * g
        s = b2 * s + (1 - b2) * (g - m) ** 2 + eps
        s_max = np.maximum(s_max, s)
        m_hat = m / (1 - b1**t)
        s_corr = np.sqrt((s_max if amsgrad else s) / (1 - b2**t))
        if not rectify:
            x = x - lr * m_hat / (s_corr + eps)
            continue
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t >= threshold:
            r_t = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            x = x - lr * r_t * m_hat / (s_corr + eps)
        else:
            x = x - lr * m_hat
    return x


@pytest.mark.parametrize(
    "kwargs, ref",
    [
        ({"learning_rate": 0.01}, {"lr": 0.01}),
        ({"learning_rate": 0.01, "rectify": False}, {"lr": 0.01, "rectify": False}),
        ({"learning_rate": 0.01, "rectify": False, "amsgrad": True, "epsilon": 1e-8}, {"lr": 0.01, "rectify": False, "amsgrad": True, "eps": 1e-8}),
        ({"learning_rate": 0.02, "beta_2": 0.99, "beta_1": 0.5}, {"lr": 0.02, "b2": 0.99, "b1": 0.5}),
    ],
)
def test_matches_numpy_reference(kwargs, ref):
    np.testing.assert_allclose(run(optimlab.AdaBelief(**kwargs)), reference(X0, **ref), rtol=1e-10, atol=1e-12)


def test_differs_from_adam():
    adam = run(optimlab.Adam(learning_rate=0.01, epsilon=1e-14), steps=20)
    assert not np.allclose(run(optimlab.AdaBelief(learning_rate=0.01, rectify=False), steps=20), adam, rtol=1e-3)


def test_float32_follows_float64_reference():
    np.testing.assert_allclose(
        run(optimlab.AdaBelief(learning_rate=0.01, rectify=False, epsilon=1e-8), dtype=tf.float32),
        reference(X0, lr=0.01, rectify=False, eps=1e-8), rtol=1e-4, atol=1e-5,
    )


@pytest.mark.parametrize("kwargs, match", [({"beta_2": -0.1}, "beta_2"), ({"rectify": "yes"}, "rectify"), ({"epsilon": -1.0}, "epsilon")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimlab.AdaBelief(**kwargs)


def test_config_round_trip():
    opt = optimlab.AdaBelief(learning_rate=0.02, rectify=False, total_steps=50)
    clone = optimlab.AdaBelief.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config() and clone.rectify is False
