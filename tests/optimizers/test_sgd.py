"""SGD against a float64 NumPy transcription of Keras's momentum convention and keras.optimizers.SGD.

Keras's rule (Sutskever et al., 2013, in velocity form): ``u = momentum * u - lr * g``;
``x += u``, or ``x += momentum * u - lr * g`` with Nesterov momentum.
"""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def keras_convention_sgd(lr, momentum, nesterov):
    def update(x, g, s, t):
        s["u"] = momentum * s["u"] - lr * g
        return x + (momentum * s["u"] - lr * g if nesterov else s["u"])

    return update


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True), (0.5, True)])
def test_matches_numpy_transcription(momentum, nesterov):
    """Reference: the velocity rule in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=8)
    update = keras_convention_sgd(0.01, momentum, nesterov)
    expected = run_numpy(update, x0, grads, lambda x: {"u": np.zeros_like(x)})
    opt = optimlab.SGD(learning_rate=0.01, momentum=momentum, nesterov=nesterov)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("momentum, nesterov", [(0.0, False), (0.9, False), (0.9, True)])
def test_matches_keras_sgd(momentum, nesterov):
    """Reference: keras.optimizers.SGD (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=9)
    kwargs = {"learning_rate": 0.01, "momentum": momentum, "nesterov": nesterov}
    expected = run_tf(keras.optimizers.SGD(**kwargs), x0, grads)
    assert_matches(run_tf(optimlab.SGD(**kwargs), x0, grads), expected, x0, FLOAT32_TOL)
