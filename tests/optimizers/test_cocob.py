"""COCOB-Backprop against a float64 NumPy transcription of Algorithm 2 of the paper over 200 steps."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 200
X0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def reference(w1, alpha=100.0, steps=STEPS):
    """The paper's form: explicit initial point ``w1``, wealth ``L + reward``."""
    big_l, big_g, reward, theta = np.full_like(w1, 1e-8), np.zeros_like(w1), np.zeros_like(w1), np.zeros_like(w1)
    w = w1.copy()
    for _ in range(steps):
        g = grad(w)
        big_l = np.maximum(big_l, np.abs(g))
        big_g = big_g + np.abs(g)
        reward = np.maximum(reward - (w - w1) * g, 0)
        theta = theta + g
        beta = -theta / (big_l * np.maximum(big_g + big_l, alpha * big_l))
        w = w1 + beta * (big_l + reward)
    return w


def run(opt, steps=STEPS, dtype=tf.float64):
    x = tf.Variable(X0, dtype=dtype)
    for _ in range(steps):
        opt.apply_gradients([(tf.constant(grad(x.numpy().astype(np.float64)), dtype=dtype), x)])
    return x.numpy()


@pytest.mark.parametrize("alpha", [100.0, 5.0])
def test_matches_numpy_reference(alpha):
    np.testing.assert_allclose(run(optimlab.COCOB(alpha=alpha)), reference(X0, alpha=alpha), rtol=1e-9, atol=1e-12)


def test_approaches_the_minimum_without_a_learning_rate():
    x = run(optimlab.COCOB(), steps=STEPS)
    assert np.max(np.abs(grad(x))) < 0.1 * np.max(np.abs(grad(X0)))


def test_float32_follows_float64_reference():
    np.testing.assert_allclose(run(optimlab.COCOB(), dtype=tf.float32), reference(X0), rtol=1e-3, atol=1e-4)


def test_bad_alpha_is_named():
    with pytest.raises(ValueError, match="alpha"):
        optimlab.COCOB(alpha=0.5)


def test_config_round_trip():
    opt = optimlab.COCOB(alpha=50.0)
    assert optimlab.COCOB.from_config(opt.get_config()).get_config()["alpha"] == 50.0


def test_equals_optax_cocob_at_learning_rate_one():
    """Reference: optax.contrib.cocob (learning_rate=1, alpha 100 and 5), float64, 120 random-gradient steps."""
    optax = pytest.importorskip("optax")
    from reference_harness import FLOAT64_TOL, assert_matches, random_problem, run_optax, run_tf

    x0, grads = random_problem(seed=40)
    for alpha in (100.0, 5.0):
        theirs = run_optax(optax.contrib.cocob(learning_rate=1.0, alpha=alpha), x0, grads)
        assert_matches(run_tf(optimlab.COCOB(alpha=alpha), x0, grads, "float64"), theirs, x0, FLOAT64_TOL)
