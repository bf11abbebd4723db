"""Adamax against a float64 NumPy transcription of Algorithm 2 of Kingma & Ba (2014) (with
Keras's epsilon added to u) and keras.optimizers.Adamax."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def paper_adamax(lr, beta_1, beta_2, epsilon):
    def update(x, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["u"] = np.maximum(beta_2 * s["u"], np.abs(g))
        return x - (lr / (1 - beta_1**t)) * s["m"] / (s["u"] + epsilon)

    return update


def zeros(x):
    return {"m": np.zeros_like(x), "u": np.zeros_like(x)}


@pytest.mark.parametrize("beta_1, beta_2, epsilon", [(0.9, 0.999, 1e-7), (0.5, 0.9, 0.0), (0.8, 0.95, 1e-2)])
def test_matches_numpy_transcription(beta_1, beta_2, epsilon):
    """Reference: Algorithm 2 in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=16)
    expected = run_numpy(paper_adamax(0.02, beta_1, beta_2, epsilon), x0, grads, zeros)
    opt = optimlab.Adamax(learning_rate=0.02, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_adamax():
    """Reference: keras.optimizers.Adamax (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=17)
    kwargs = {"learning_rate": 0.02, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}
    expected = run_tf(keras.optimizers.Adamax(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Adamax(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)


def test_optax_adamax_puts_epsilon_inside_the_maximum():
    """Reference: optax.adamax, float64, 120 steps: equal to optimlab's at epsilon 0; with an
    epsilon, equal to the torch form ``u <- max(beta_2 u, |g| + eps)``, ``x -= lr m_hat / u``."""
    optax = pytest.importorskip("optax")
    from reference_harness import run_optax

    x0, grads = random_problem(seed=18)
    ours = run_tf(optimlab.Adamax(learning_rate=0.02, beta_1=0.8, beta_2=0.95, epsilon=0.0), x0, grads, "float64")
    assert_matches(ours, run_optax(optax.adamax(0.02, b1=0.8, b2=0.95, eps=0.0), x0, grads), x0, FLOAT64_TOL)

    def inside_max(x, g, s, t):
        s["m"] = 0.8 * s["m"] + 0.2 * g
        s["u"] = np.maximum(0.95 * s["u"], np.abs(g) + 0.5)
        return x - (0.02 / (1 - 0.8**t)) * s["m"] / s["u"]

    theirs = run_optax(optax.adamax(0.02, b1=0.8, b2=0.95, eps=0.5), x0, grads)
    assert_matches(theirs, run_numpy(inside_max, x0, grads, zeros), x0, FLOAT64_TOL)
    ours = run_tf(optimlab.Adamax(learning_rate=0.02, beta_1=0.8, beta_2=0.95, epsilon=0.5), x0, grads, "float64")
    assert max(np.abs(a - b).max() for a, b in zip(ours, theirs)) > 1e-3
