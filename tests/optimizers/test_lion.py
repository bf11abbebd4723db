"""Lion against a float64 NumPy transcription of Algorithm 1 of Chen et al. (2023) (decoupled
weight decay included) and keras.optimizers.Lion."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def paper_lion(lr, beta_1, beta_2, weight_decay):
    def update(x, g, s, t):
        c = beta_1 * s["m"] + (1 - beta_1) * g
        x = x - lr * (np.sign(c) + weight_decay * x)
        s["m"] = beta_2 * s["m"] + (1 - beta_2) * g
        return x

    return update


@pytest.mark.parametrize("beta_1, beta_2, weight_decay", [(0.9, 0.99, 0.0), (0.5, 0.9, 0.125), (0.0, 0.99, 0.0)])
def test_matches_numpy_transcription(beta_1, beta_2, weight_decay):
    """Reference: Algorithm 1 in NumPy, float64, 120 steps (beta_1 = 0 is signSGD).

    The decay is exact in float32, as Keras 3's base casts ``weight_decay`` through float32.
    """
    x0, grads = random_problem(seed=24)
    expected = run_numpy(paper_lion(0.01, beta_1, beta_2, weight_decay), x0, grads, lambda x: {"m": np.zeros_like(x)})
    opt = optimlab.Lion(learning_rate=0.01, beta_1=beta_1, beta_2=beta_2, weight_decay=weight_decay or None)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


def test_matches_keras_lion():
    """Reference: keras.optimizers.Lion (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=25)
    kwargs = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.95, "weight_decay": 0.05}
    expected = run_tf(keras.optimizers.Lion(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.Lion(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)
