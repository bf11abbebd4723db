"""Adam against a float64 NumPy transcription of Algorithm 1 of Kingma & Ba (2014) and keras.optimizers.Adam.

The default form is the paper's (and that of the guide "Optimizers with Core APIs"): epsilon added to
``sqrt(v_hat)``. ``epsilon_hat=True`` is the paper's "efficient" form that
Keras uses; it is compared with ``keras.optimizers.Adam``, with and without AMSGrad.
"""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def paper_adam(lr, beta_1, beta_2, epsilon, amsgrad=False):
    def update(x, g, s, t):
        s["m"] = beta_1 * s["m"] + (1 - beta_1) * g
        s["v"] = beta_2 * s["v"] + (1 - beta_2) * g**2
        s["v_max"] = np.maximum(s["v_max"], s["v"]) if amsgrad else s["v"]
        m_hat = s["m"] / (1 - beta_1**t)
        v_hat = s["v_max"] / (1 - beta_2**t)
        return x - lr * m_hat / (np.sqrt(v_hat) + epsilon)

    return update


def zeros(x):
    return {"m": np.zeros_like(x), "v": np.zeros_like(x), "v_max": np.zeros_like(x)}


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("lr, beta_1, beta_2, epsilon", [(0.01, 0.9, 0.999, 1e-7), (0.05, 0.5, 0.9, 1e-3)])
def test_default_form_matches_numpy_transcription(lr, beta_1, beta_2, epsilon, amsgrad):
    """Reference: Algorithm 1 (plus Reddi et al.'s running max) in NumPy, float64, 120 steps."""
    x0, grads = random_problem(seed=5)
    expected = run_numpy(paper_adam(lr, beta_1, beta_2, epsilon, amsgrad), x0, grads, zeros)
    opt = optimlab.Adam(learning_rate=lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("amsgrad", [False, True])
def test_epsilon_hat_matches_keras_adam(amsgrad):
    """Reference: keras.optimizers.Adam (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=6)
    kwargs = {"learning_rate": 0.01, "beta_1": 0.8, "beta_2": 0.99, "epsilon": 1e-6, "amsgrad": amsgrad}
    expected = run_tf(keras.optimizers.Adam(**kwargs), x0, grads)
    actual = run_tf(optimlab.Adam(epsilon_hat=True, **kwargs), x0, grads)
    assert_matches(actual, expected, x0, FLOAT32_TOL)


def test_default_form_differs_from_keras_form():
    """The two epsilon conventions are really different rules (a large epsilon shows it)."""
    x0, grads = random_problem(seed=7)
    paper = run_tf(optimlab.Adam(learning_rate=0.01, epsilon=0.1), x0, grads, "float64")
    keras_form = run_tf(optimlab.Adam(learning_rate=0.01, epsilon=0.1, epsilon_hat=True), x0, grads, "float64")
    assert max(np.max(np.abs(a - b)) for a, b in zip(paper, keras_form)) > 1e-3
