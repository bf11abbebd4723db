"""Nadam against a float64 NumPy transcription of Algorithm 2 of Dozat (2016) with the momentum
schedule ``mu_t = beta_1 * (1 - 0.5 * 0.96^(t * momentum_decay))``, and keras.optimizers.Nadam."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf, run_torch


def dozat_nadam(lr, beta_1, beta_2, epsilon, momentum_decay):
    def mu(t):
        return beta_1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))

    def update(x, g, s, t):
        s["product"] *= mu(t)
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g**2
        m_hat = mu(t + 1) * s["m"] / (1 - s["product"] * mu(t + 1)) + (1 - mu(t)) * g / (1 - s["product"])
        v_hat = s["v"] / (1 - beta_2**t)
        return x - lr * m_hat / (np.sqrt(v_hat) + epsilon)

    return update


def initial_state(x):
    return {"m": np.zeros_like(x), "v": np.zeros_like(x), "product": 1.0}


@pytest.mark.parametrize("momentum_decay", [1.0, 0.004])
@pytest.mark.parametrize("beta_1, beta_2, epsilon", [(0.9, 0.999, 1e-7), (0.7, 0.9, 1e-3)])
def test_matches_numpy_transcription(beta_1, beta_2, epsilon, momentum_decay):
    """Reference: Algorithm 2 in NumPy, float64, 120 steps (Keras's and the paper's schedules)."""
    x0, grads = random_problem(seed=18)
    expected = run_numpy(dozat_nadam(0.01, beta_1, beta_2, epsilon, momentum_decay), x0, grads, initial_state)
    opt = optimlab.Nadam(
        learning_rate=0.01, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, momentum_decay=momentum_decay
    )
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_nadam():
    """Reference: keras.optimizers.Nadam (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=19)
    kwargs = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6}
    expected = run_tf(keras.optimizers.Nadam(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Nadam(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)


def test_paper_schedule_matches_torch_nadam():
    """Reference: torch.optim.NAdam (momentum_decay=0.004, epsilon 1e-8), float64, 120 steps."""
    torch = pytest.importorskip("torch")
    x0, grads = random_problem(seed=31)
    expected = run_torch(lambda p: torch.optim.NAdam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8), x0, grads)
    opt = optimlab.Nadam(learning_rate=0.01, beta_2=0.99, epsilon=1e-8, momentum_decay=0.004)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)
