"""AdamW against a float64 NumPy transcription of Algorithm 2 of Loshchilov & Hutter (2017) (decay
scaled by the learning rate, as Keras and torch do) and keras.optimizers.AdamW."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf, run_torch


def paper_adamw(lr, weight_decay, beta_1, beta_2, epsilon):
    def update(x, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g**2
        m_hat = s["m"] / (1 - beta_1**t)
        v_hat = s["v"] / (1 - beta_2**t)
        return x - lr * (m_hat / (np.sqrt(v_hat) + epsilon) + weight_decay * x)

    return update


def zeros(x):
    return {"m": np.zeros_like(x), "v": np.zeros_like(x)}


@pytest.mark.parametrize("weight_decay", [2.0**-8, 0.5])
def test_matches_numpy_transcription(weight_decay):
    """Reference: Algorithm 2 (schedule multiplier 1) in NumPy, float64, 120 steps.

    The decays are exact in float32: Keras 3's base casts the Python float
    ``weight_decay`` through float32 even for float64 variables.
    """
    x0, grads = random_problem(seed=20)
    expected = run_numpy(paper_adamw(0.01, weight_decay, 0.9, 0.99, 1e-7), x0, grads, zeros)
    opt = optimlab.AdamW(learning_rate=0.01, weight_decay=weight_decay, beta_2=0.99)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_epsilon_hat_matches_keras_adamw(amsgrad):
    """Reference: keras.optimizers.AdamW (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=21)
    kwargs = {"learning_rate": 0.01, "weight_decay": 0.3, "beta_2": 0.99, "amsgrad": amsgrad}
    expected = run_tf(keras.optimizers.AdamW(**kwargs), x0, grads)
    actual = run_tf(optimlab.AdamW(epsilon_hat=True, **kwargs), x0, grads)
    assert_matches(actual, expected, x0, FLOAT32_TOL)


def test_weight_decay_must_be_a_number():
    with pytest.raises(TypeError, match="weight_decay"):
        optimlab.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="weight_decay"):
        optimlab.AdamW(weight_decay=-1.0)


def test_default_form_matches_torch_adamw():
    """Reference: torch.optim.AdamW (epsilon added to sqrt(v_hat), decay scaled by lr), float64, 120 steps."""
    torch = pytest.importorskip("torch")
    x0, grads = random_problem(seed=34)
    kwargs = {"lr": 0.01, "betas": (0.9, 0.99), "eps": 1e-8, "weight_decay": 2.0**-4}
    expected = run_torch(lambda p: torch.optim.AdamW(p, **kwargs), x0, grads)
    opt = optimlab.AdamW(learning_rate=0.01, beta_2=0.99, epsilon=1e-8, weight_decay=2.0**-4)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)
