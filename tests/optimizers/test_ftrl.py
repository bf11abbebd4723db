"""Ftrl against a float64 NumPy transcription of Algorithm 1 of McMahan et al. (2013), per
coordinate, generalised to any learning-rate power and to L2 shrinkage as TensorFlow's
ApplyFtrlV2 documents it, and keras.optimizers.Ftrl."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def mcmahan_ftrl(lr, lr_power, l1, l2, shrinkage, beta):
    p = -lr_power

    def update(x, g, s, t):
        g_shrunk = g + 2 * shrinkage * x
        n_new = s["n"] + g**2
        sigma = (n_new**p - s["n"] ** p) / lr
        s["z"] = s["z"] + g_shrunk - sigma * x
        s["n"] = n_new
        z = s["z"]
        solved = (np.sign(z) * l1 - z) / (s["n"] ** p / lr + 2 * l2 + beta / lr)
        return np.where(np.abs(z) <= l1, 0.0, solved)

    return update


CASES = [
    {"learning_rate_power": -0.5, "initial_accumulator_value": 0.1, "l1_regularization_strength": 0.01,
     "l2_regularization_strength": 0.01, "l2_shrinkage_regularization_strength": 0.0, "beta": 0.0},
    {"learning_rate_power": -0.3, "initial_accumulator_value": 0.5, "l1_regularization_strength": 0.0,
     "l2_regularization_strength": 0.1, "l2_shrinkage_regularization_strength": 0.05, "beta": 0.5},
    {"learning_rate_power": 0.0, "initial_accumulator_value": 0.0, "l1_regularization_strength": 0.2,
     "l2_regularization_strength": 0.0, "l2_shrinkage_regularization_strength": 0.0, "beta": 1.0},
]


def reference_for(lr, case):
    return mcmahan_ftrl(
        lr,
        case["learning_rate_power"],
        case["l1_regularization_strength"],
        case["l2_regularization_strength"],
        case["l2_shrinkage_regularization_strength"],
        case["beta"],
    )


@pytest.mark.parametrize("case", CASES)
def test_matches_numpy_transcription(case):
    """Reference: the per-coordinate algorithm in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=22)
    initial = case["initial_accumulator_value"]
    expected = run_numpy(
        reference_for(0.5, case), x0, grads, lambda x: {"n": np.full_like(x, initial), "z": np.zeros_like(x)}
    )
    assert_matches(run_tf(optimlab.Ftrl(learning_rate=0.5, **case), x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("case", CASES[:2])
def test_matches_keras_ftrl(case):
    """Reference: keras.optimizers.Ftrl (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=23)
    expected = run_tf(keras.optimizers.Ftrl(learning_rate=0.5, **case), x0, grads)
    assert_matches(run_tf(optimlab.Ftrl(learning_rate=0.5, **case), x0, grads), expected, x0, FLOAT32_TOL)


def test_positive_learning_rate_power_is_refused():
    with pytest.raises(ValueError, match="learning_rate_power"):
        optimlab.Ftrl(learning_rate_power=0.5)
