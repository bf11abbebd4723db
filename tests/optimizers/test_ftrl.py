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


def _run_sparse(optimizer, x0, grads, rows):
    """Sparse gradients holding only ``rows`` of each dense gradient, inside one traced step."""
    import tensorflow as tf

    variables = [tf.Variable(x, dtype="float32") for x in x0]
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        sparse = [
            tf.IndexedSlices(tf.gather(g, rows), tf.constant(rows), tf.constant(list(g.shape))) for g in gradients
        ]
        optimizer.apply_gradients(zip(sparse, variables))

    for gradients in grads:
        step([tf.constant(g, "float32") for g in gradients])
    return [v.numpy().astype(np.float64) for v in variables]


@pytest.mark.parametrize("fused", [False, True], ids=["plain", "kernel"])
@pytest.mark.parametrize("case", CASES[:2])
def test_dense_sparse_rule_is_keras_sparse_ftrl(case, fused):
    """Reference: keras.optimizers.Ftrl with sparse gradients (rows 0 and 2 of 4), float32, 120 steps."""
    x0, grads = random_problem(seed=24, shapes=((4, 3), (4,)))
    expected = _run_sparse(keras.optimizers.Ftrl(learning_rate=0.5, **case), x0, grads, [0, 2])
    ours = _run_sparse(optimlab.Ftrl(learning_rate=0.5, lazy_sparse=False, fused=fused, **case), x0, grads, [0, 2])
    assert_matches(ours, expected, x0, FLOAT32_TOL)
    # Keras moves the rows the gradients leave out (x is recomputed from z); the lazy rule does not.
    lazy = _run_sparse(optimlab.Ftrl(learning_rate=0.5, fused=fused, **case), x0, grads, [0, 2])
    for x, lazy_x, keras_x in zip(x0, lazy, expected):
        np.testing.assert_array_equal(lazy_x[[1, 3]], np.float32(x[[1, 3]]))
        assert np.abs(keras_x[[1, 3]] - x[[1, 3]]).max() > 1e-3


def test_lazy_sparse_must_be_a_bool():
    with pytest.raises(TypeError, match="lazy_sparse"):
        optimlab.Ftrl(lazy_sparse="no")
