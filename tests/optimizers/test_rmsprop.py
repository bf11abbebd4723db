"""RMSprop against a float64 NumPy transcription (Hinton's lecture 6e; Graves 2013, eq. 38-41, for
the centered form) and keras.optimizers.RMSprop."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf, run_torch


def lecture_rmsprop(lr, rho, momentum, epsilon, centered, inside):
    def update(x, g, s, t):
        s["v"] = rho * s["v"] + (1 - rho) * g**2
        s["mg"] = rho * s["mg"] + (1 - rho) * g
        ms = s["v"] - s["mg"] ** 2 if centered else s["v"]
        denominator = np.sqrt(ms + epsilon) if inside else np.sqrt(ms) + epsilon
        s["u"] = momentum * s["u"] + lr * g / denominator
        return x - s["u"]

    return update


def zeros(x):
    return {"v": np.zeros_like(x), "mg": np.zeros_like(x), "u": np.zeros_like(x)}


CASES = [
    {"rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False},
    {"rho": 0.9, "momentum": 0.9, "epsilon": 1e-7, "centered": False},
    {"rho": 0.8, "momentum": 0.0, "epsilon": 1e-3, "centered": True},
    {"rho": 0.95, "momentum": 0.5, "epsilon": 1e-2, "centered": True},
]


@pytest.mark.parametrize("inside", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_matches_numpy_transcription(case, inside):
    """Reference: the lecture's rule with both epsilon placements, NumPy float64, 120 steps."""
    x0, grads = random_problem(seed=10)
    expected = run_numpy(lecture_rmsprop(0.01, inside=inside, **case), x0, grads, zeros)
    opt = optimlab.RMSprop(learning_rate=0.01, epsilon_inside_sqrt=inside, **case)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("case", CASES)
def test_matches_keras_rmsprop(case):
    """Reference: keras.optimizers.RMSprop (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=11)
    expected = run_tf(keras.optimizers.RMSprop(learning_rate=0.01, **case), x0, grads)
    assert_matches(run_tf(optimlab.RMSprop(learning_rate=0.01, **case), x0, grads), expected, x0, FLOAT32_TOL)


@pytest.mark.parametrize("momentum, centered", [(0.0, False), (0.9, True)])
def test_epsilon_outside_matches_torch(momentum, centered):
    """Reference: torch.optim.RMSprop (epsilon outside the root; lr outside its buffer, equal at
    a constant lr), float64, 120 steps."""
    torch = pytest.importorskip("torch")
    x0, grads = random_problem(seed=30)
    kwargs = {"momentum": momentum, "centered": centered}
    expected = run_torch(lambda p: torch.optim.RMSprop(p, lr=0.01, alpha=0.9, eps=1e-8, **kwargs), x0, grads)
    opt = optimlab.RMSprop(learning_rate=0.01, rho=0.9, epsilon=1e-8, epsilon_inside_sqrt=False, **kwargs)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)
