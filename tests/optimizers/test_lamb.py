"""Lamb against a float64 NumPy transcription of Algorithm 2 of You et al. (2019) (phi the
identity) and keras.optimizers.Lamb."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def paper_lamb(lr, beta_1, beta_2, epsilon, weight_decay, decay_in_trust_ratio):
    def update(x, g, s, t):
        if not decay_in_trust_ratio:
            x = x - lr * weight_decay * x
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g**2
        r = (s["m"] / (1 - beta_1**t)) / (np.sqrt(s["v"] / (1 - beta_2**t)) + epsilon)
        if decay_in_trust_ratio:
            r = r + weight_decay * x
        x_norm, r_norm = np.linalg.norm(x), np.linalg.norm(r)
        ratio = x_norm / r_norm if x_norm > 0 and r_norm > 0 else 1.0
        return x - lr * ratio * r

    return update


def zeros(x):
    return {"m": np.zeros_like(x), "v": np.zeros_like(x)}


@pytest.mark.parametrize("decay_in_trust_ratio", [False, True])
@pytest.mark.parametrize("beta_1, beta_2, epsilon, weight_decay", [(0.9, 0.999, 1e-7, 0.0), (0.8, 0.9, 1e-3, 0.125)])
def test_matches_numpy_transcription(beta_1, beta_2, epsilon, weight_decay, decay_in_trust_ratio):
    """Reference: Algorithm 2 in NumPy, float64, 120 steps, with both weight-decay placements."""
    x0, grads = random_problem(seed=26)
    update = paper_lamb(0.01, beta_1, beta_2, epsilon, weight_decay, decay_in_trust_ratio)
    expected = run_numpy(update, x0, grads, zeros)
    opt = optimlab.Lamb(
        learning_rate=0.01,
        beta_1=beta_1,
        beta_2=beta_2,
        epsilon=epsilon,
        weight_decay=weight_decay or None,
        decay_in_trust_ratio=decay_in_trust_ratio,
    )
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_zero_weights_use_a_ratio_of_one():
    """Where ||x|| = 0 the step is Adam's (the trust ratio falls back to 1), as the paper's convention."""
    x0, grads = [np.zeros(4)], [[np.arange(1.0, 5.0)]]
    expected = run_numpy(paper_lamb(0.1, 0.9, 0.999, 1e-7, 0.0, False), x0, grads, zeros)
    assert_matches(run_tf(optimlab.Lamb(learning_rate=0.1), x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_lamb():
    """Reference: keras.optimizers.Lamb (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=27)
    kwargs = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "weight_decay": 0.05}
    expected = run_tf(keras.optimizers.Lamb(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Lamb(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)
