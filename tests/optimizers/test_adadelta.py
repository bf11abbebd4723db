"""Adadelta against a float64 NumPy transcription of Algorithm 1 of Zeiler (2012) (with Keras's
learning rate in front of the step) and keras.optimizers.Adadelta."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf, run_torch


def zeiler_adadelta(lr, rho, epsilon):
    def update(x, g, s, t):
        s["eg"] = rho * s["eg"] + (1 - rho) * g**2
        dx = -np.sqrt(s["edx"] + epsilon) / np.sqrt(s["eg"] + epsilon) * g
        s["edx"] = rho * s["edx"] + (1 - rho) * dx**2
        return x + lr * dx

    return update


def zeros(x):
    return {"eg": np.zeros_like(x), "edx": np.zeros_like(x)}


@pytest.mark.parametrize("lr, rho, epsilon", [(1.0, 0.95, 1e-6), (1.0, 0.9, 1e-3), (0.5, 0.5, 1e-2)])
def test_matches_numpy_transcription(lr, rho, epsilon):
    """Reference: Algorithm 1 in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=14)
    expected = run_numpy(zeiler_adadelta(lr, rho, epsilon), x0, grads, zeros)
    opt = optimlab.Adadelta(learning_rate=lr, rho=rho, epsilon=epsilon)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_adadelta():
    """Reference: keras.optimizers.Adadelta (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=15)
    kwargs = {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-3}
    expected = run_tf(keras.optimizers.Adadelta(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Adadelta(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)


def test_matches_torch_adadelta_defaults():
    """Reference: torch.optim.Adadelta (lr 1, rho 0.9, epsilon 1e-6), float64, 120 steps."""
    torch = pytest.importorskip("torch")
    x0, grads = random_problem(seed=33)
    expected = run_torch(lambda p: torch.optim.Adadelta(p), x0, grads)
    opt = optimlab.Adadelta(learning_rate=1.0, rho=0.9, epsilon=1e-6)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)
