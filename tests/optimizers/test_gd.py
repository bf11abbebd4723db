"""GradientDescent against a float64 NumPy transcription of ``x <- x - lr * g`` and keras.optimizers.SGD."""

import keras
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


@pytest.mark.parametrize("lr", [0.001, 0.05])
def test_matches_numpy_transcription(lr):
    """Reference: Cauchy's rule written in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=1)
    expected = run_numpy(lambda x, g, state, t: x - lr * g, x0, grads)
    actual = run_tf(optimlab.GradientDescent(learning_rate=lr), x0, grads, "float64")
    assert_matches(actual, expected, x0, FLOAT64_TOL)


def test_matches_keras_sgd_without_momentum():
    """Reference: keras.optimizers.SGD(momentum=0), float32, 120 steps."""
    x0, grads = random_problem(seed=2)
    expected = run_tf(keras.optimizers.SGD(learning_rate=0.02), x0, grads)
    actual = run_tf(optimlab.GradientDescent(learning_rate=0.02), x0, grads)
    assert_matches(actual, expected, x0, FLOAT32_TOL)
