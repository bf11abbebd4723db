"""Adagrad against a float64 NumPy transcription of Duchi, Hazan & Singer (2011), diagonal form,
and keras.optimizers.Adagrad."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf, run_torch


def diagonal_adagrad(lr, epsilon, inside):
    def update(x, g, s, t):
        s["a"] = s["a"] + g**2
        denominator = np.sqrt(s["a"] + epsilon) if inside else np.sqrt(s["a"]) + epsilon
        return x - lr * g / denominator

    return update


@pytest.mark.parametrize("initial, epsilon, inside", [(0.1, 1e-7, True), (0.0, 1e-10, False), (1.0, 1e-2, True)])
def test_matches_numpy_transcription(initial, epsilon, inside):
    """Reference: the diagonal Adagrad update in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=12)
    expected = run_numpy(diagonal_adagrad(0.1, epsilon, inside), x0, grads, lambda x: {"a": np.full_like(x, initial)})
    opt = optimlab.Adagrad(
        learning_rate=0.1, initial_accumulator_value=initial, epsilon=epsilon, epsilon_inside_sqrt=inside
    )
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_adagrad():
    """Reference: keras.optimizers.Adagrad (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=13)
    kwargs = {"learning_rate": 0.1, "initial_accumulator_value": 0.5, "epsilon": 1e-6}
    expected = run_tf(keras.optimizers.Adagrad(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Adagrad(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)


def test_negative_initial_accumulator_is_refused():
    with pytest.raises(ValueError, match="initial_accumulator_value"):
        optimlab.Adagrad(initial_accumulator_value=-0.1)


def test_torch_convention_matches_torch_adagrad():
    """Reference: torch.optim.Adagrad (accumulator from 0, epsilon 1e-10 outside the root), float64, 120 steps."""
    torch = pytest.importorskip("torch")
    x0, grads = random_problem(seed=32)
    expected = run_torch(lambda p: torch.optim.Adagrad(p, lr=0.1), x0, grads)
    opt = optimlab.Adagrad(learning_rate=0.1, initial_accumulator_value=0.0, epsilon=1e-10, epsilon_inside_sqrt=False)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)
