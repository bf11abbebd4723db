"""Momentum against a float64 NumPy transcription of the Core APIs guide's rule and keras.optimizers.SGD.

TensorFlow's guide "Optimizers with Core APIs" writes
``change = lr * g + momentum * change; x = x - change``; with a constant
learning rate Keras's SGD velocity is ``-change``.
"""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def guide_momentum(lr, p):
    def update(x, g, state, t):
        state["change"] = lr * g + p * state["change"]
        return x - state["change"]

    return update


@pytest.mark.parametrize("lr, p", [(0.01, 0.7), (0.003, 0.95)])
def test_matches_numpy_transcription(lr, p):
    """Reference: the guide's momentum in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=3)
    expected = run_numpy(guide_momentum(lr, p), x0, grads, lambda x: {"change": np.zeros_like(x)})
    actual = run_tf(optimlab.Momentum(learning_rate=lr, momentum=p), x0, grads, "float64")
    assert_matches(actual, expected, x0, FLOAT64_TOL)


def test_default_momentum_is_the_guides():
    assert optimlab.Momentum().momentum.numpy() == pytest.approx(0.7)


def test_matches_keras_sgd_with_momentum():
    """Reference: keras.optimizers.SGD(momentum=0.7), float32, 120 steps."""
    x0, grads = random_problem(seed=4)
    expected = run_tf(keras.optimizers.SGD(learning_rate=0.01, momentum=0.7), x0, grads)
    actual = run_tf(optimlab.Momentum(learning_rate=0.01, momentum=0.7), x0, grads)
    assert_matches(actual, expected, x0, FLOAT32_TOL)
