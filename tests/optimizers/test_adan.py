"""Adan against a float64 NumPy transcription of Algorithm 1 of Xie et al. (2022), and Optax."""

import numpy as np
import pytest

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop

SHAPES = [(5, 3), (3,), (2, 2, 2), ()]
STEPS = 150


def _problem(seed=0):
    return closed_loop_problem(SHAPES, STEPS, seed, noise=0.3)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _run_numpy(params, grads, lr, b1, b2, b3, eps, wd, proximal):
    """Algorithm 1 (paper betas = 1 - these), with the official code's bias correction."""
    xs = [p.copy() for p in params]
    m, v, n, prev = ([np.zeros_like(p) for p in params] for _ in range(4))
    for step in range(STEPS):
        t = step + 1
        gs = grads(xs, step)
        for i, g in enumerate(gs):
            d = g - prev[i] if t > 1 else np.zeros_like(g)
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * d
            n[i] = b3 * n[i] + (1 - b3) * (g + b2 * d) ** 2
            prev[i] = g
            u = (m[i] / (1 - b1**t) + b2 * v[i] / (1 - b2**t)) / (np.sqrt(n[i] / (1 - b3**t)) + eps)
            if proximal:
                xs[i] = (xs[i] - lr * u) / (1 + lr * wd)
            else:
                xs[i] = xs[i] * (1 - lr * wd) - lr * u
    return xs


@pytest.mark.parametrize("proximal", [False, True])
def test_matches_numpy_transcription(proximal):
    params, grads = _problem()
    kw = {"learning_rate": 0.03, "beta_1": 0.9, "beta_2": 0.8, "beta_3": 0.95, "epsilon": 1e-6}
    got = _run_optimlab(optimlab.Adan(weight_decay=0.02, proximal=proximal, **kw), params, grads)
    want = _run_numpy(params, grads, 0.03, 0.9, 0.8, 0.95, 1e-6, 0.02, proximal)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 closed-loop steps


def test_defaults_match_numpy_transcription():
    params, grads = _problem(1)
    got = _run_optimlab(optimlab.Adan(learning_rate=0.01), params, grads)
    want = _run_numpy(params, grads, 0.01, 0.98, 0.92, 0.99, 1e-8, 0.0, False)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 closed-loop steps


def test_matches_optax_where_conventions_meet():
    optax = pytest.importorskip("optax")
    params, grads = _problem(2)
    # Optax weights differences by 1 - b2 where the paper uses b2: equal at b2 = 0.5.
    got = _run_optimlab(optimlab.Adan(learning_rate=0.02, beta_2=0.5), params, grads)
    tx = optax.adan(0.02, b1=0.98, b2=0.5, b3=0.99, eps=1e-8, eps_root=0.0)
    xs = [np.array(p) for p in params]
    state = tx.init(xs)
    for t in range(STEPS):
        updates, state = tx.update(grads(xs, t), state, xs)
        xs = [np.asarray(x + u, dtype=np.float64) for x, u in zip(xs, updates)]
    for g, w in zip(got, xs):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)  # Optax runs in float32


@pytest.mark.parametrize(
    "kwargs, error",
    [({"beta_1": 1.0}, ValueError), ({"beta_3": -0.1}, ValueError), ({"epsilon": -1.0}, ValueError), ({"proximal": 1}, TypeError)],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        optimlab.Adan(**kwargs)
