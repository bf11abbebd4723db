"""Adafactor against a float64 NumPy transcription of Algorithms 4 and 5 of Shazeer & Stern (2018)
(no first moment; relative step capped by ``lr``) and keras.optimizers.Adafactor."""

import keras
import numpy as np
import pytest

import optimlab
from reference_harness import FLOAT32_TOL, FLOAT64_TOL, assert_matches, random_problem, run_numpy, run_tf


def rms(a):
    return np.sqrt(np.mean(a**2))


def paper_adafactor(lr, decay, eps_1, eps_2, d, relative_step):
    def update(x, g, s, t):
        beta = 1 - t**decay
        g2 = g**2 + eps_1
        if x.ndim >= 2:
            s["R"] = beta * s["R"] + (1 - beta) * g2.mean(axis=-1)
            s["C"] = beta * s["C"] + (1 - beta) * g2.mean(axis=-2)
            v = (s["R"] / s["R"].mean(axis=-1, keepdims=True))[..., :, None] * s["C"][..., None, :]
        else:
            s["V"] = beta * s["V"] + (1 - beta) * g2
            v = s["V"]
        u = g / np.sqrt(v)
        u = u / max(1.0, rms(u) / d)
        alpha = max(eps_2, rms(x)) * min(lr, 1 / np.sqrt(t)) if relative_step else lr
        return x - alpha * u

    return update


def zeros(x):
    return {"R": np.zeros(x.shape[:-1]), "C": np.zeros(x.shape[:-2] + x.shape[-1:]), "V": np.zeros_like(x)}


CASES = [
    {"beta_2_decay": -0.8, "epsilon_1": 1e-30, "epsilon_2": 1e-3, "clip_threshold": 1.0},
    {"beta_2_decay": -0.5, "epsilon_1": 1e-3, "epsilon_2": 0.5, "clip_threshold": 0.5},
]


@pytest.mark.parametrize("relative_step", [True, False])
@pytest.mark.parametrize("case", CASES)
def test_matches_numpy_transcription(case, relative_step):
    """Reference: the factored algorithm in NumPy, float64, 120 steps, ranks 1 to 3."""
    x0, grads = random_problem(seed=28)
    args = (0.05, case["beta_2_decay"], case["epsilon_1"], case["epsilon_2"], case["clip_threshold"], relative_step)
    expected = run_numpy(paper_adafactor(*args), x0, grads, zeros)
    opt = optimlab.Adafactor(learning_rate=0.05, relative_step=relative_step, **case)
    assert_matches(run_tf(opt, x0, grads, "float64"), expected, x0, FLOAT64_TOL)


@pytest.mark.parametrize("case", CASES)
def test_matches_keras_adafactor(case):
    """Reference: keras.optimizers.Adafactor (same arguments), float32, 120 steps."""
    x0, grads = random_problem(seed=29)
    expected = run_tf(keras.optimizers.Adafactor(learning_rate=0.05, **case), x0, grads)
    assert_matches(run_tf(optimlab.Adafactor(learning_rate=0.05, **case), x0, grads), expected, x0, FLOAT32_TOL)


def test_factored_state_is_sublinear():
    """A matrix keeps row and column statistics only, not a full second moment."""
    x = keras.Variable(np.ones((6, 7), np.float32))
    opt = optimlab.Adafactor()
    opt.build([x])
    shapes = sorted(tuple(opt.get_slot(x, name).shape) for name in ("row", "col"))
    assert shapes == [(6,), (7,)]
    with pytest.raises(KeyError):
        opt.get_slot(x, "v")
