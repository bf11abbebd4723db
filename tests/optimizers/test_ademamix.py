"""AdEMAMix against a float64 NumPy transcription of Algorithm 1 of Pagliardini et al. (2024), and Optax."""

import math

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop

SHAPES = [(4, 5), (5,), (3, 1, 2), ()]
STEPS = 150


def _problem(seed=0):
    return closed_loop_problem(SHAPES, STEPS, seed, noise=0.3)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _alpha(t, alpha, warmup):
    return alpha if warmup is None else min(t * alpha / warmup, alpha)


def _beta_3(t, beta_start, beta_end, warmup):
    if warmup is None:
        return beta_end
    ls, le = math.log(beta_start), math.log(beta_end)
    return min(math.exp(ls * le / ((1 - t / warmup) * le + (t / warmup) * ls)), beta_end)


def _run_numpy(params, grads, lr, b1, b2, b3, alpha, eps, wd, t_alpha, t_beta):
    """Algorithm 1 of the paper with its alpha and beta_3 schedulers."""
    xs = [p.copy() for p in params]
    m1, m2, nu = ([np.zeros_like(p) for p in params] for _ in range(3))
    for step in range(STEPS):
        t = step + 1
        b3_t, alpha_t = _beta_3(t, b1, b3, t_beta), _alpha(t, alpha, t_alpha)
        for i, g in enumerate(grads(xs, step)):
            m1[i] = b1 * m1[i] + (1 - b1) * g
            m2[i] = b3_t * m2[i] + (1 - b3_t) * g
            nu[i] = b2 * nu[i] + (1 - b2) * g * g
            direction = (m1[i] / (1 - b1**t) + alpha_t * m2[i]) / (np.sqrt(nu[i] / (1 - b2**t)) + eps)
            xs[i] = xs[i] - lr * (direction + wd * xs[i])
    return xs


@pytest.mark.parametrize("t_alpha, t_beta", [(None, None), (100, 120), (200, 50)])
def test_matches_numpy_transcription(t_alpha, t_beta):
    params, grads = _problem()
    opt = optimlab.AdEMAMix(
        learning_rate=0.01, beta_3=0.999, alpha=4.0, epsilon=1e-7, alpha_warmup=t_alpha, beta_3_warmup=t_beta, weight_decay=0.05
    )
    got = _run_optimlab(opt, params, grads)
    want = _run_numpy(params, grads, 0.01, 0.9, 0.999, 0.999, 4.0, 1e-7, 0.05, t_alpha, t_beta)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 closed-loop steps


def test_beta_3_schedule_ends():
    from optimlab.optimizers.ademamix import beta_3_schedule

    b1, b3 = tf.constant(0.9, tf.float64), tf.constant(0.9999, tf.float64)
    assert abs(float(beta_3_schedule(tf.constant(0.0, tf.float64), b1, b3, 100)) - 0.9) < 1e-12
    assert abs(float(beta_3_schedule(tf.constant(100.0, tf.float64), b1, b3, 100)) - 0.9999) < 1e-12


def test_matches_optax():
    optax = pytest.importorskip("optax")
    params, grads = _problem(1)
    got = _run_optimlab(optimlab.AdEMAMix(learning_rate=0.01, beta_3=0.999, alpha_warmup=80, beta_3_warmup=60), params, grads)
    # Optax evaluates its schedules at the 0-based count; the paper's t is 1-based.
    tx = optax.contrib.ademamix(
        0.01, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0,
        b3=lambda c: _beta_3(c + 1, 0.9, 0.999, 60), alpha=lambda c: _alpha(c + 1, 5.0, 80),
    )
    xs = [np.array(p) for p in params]
    state = tx.init(xs)
    for t in range(STEPS):
        updates, state = tx.update(grads(xs, t), state, xs)
        xs = [np.asarray(x + u, dtype=np.float64) for x, u in zip(xs, updates)]
    for g, w in zip(got, xs):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)  # Optax runs in float32


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"alpha": -1.0}, ValueError, "alpha"),
        ({"beta_3": 1.0}, ValueError, "beta_3"),
        ({"alpha_warmup": 0}, ValueError, "alpha_warmup"),
        ({"beta_3_warmup": 2.5}, ValueError, "beta_3_warmup"),
        ({"beta_3_warmup": 10, "beta_1": 0.0}, ValueError, "beta_1"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimlab.AdEMAMix(**kwargs)
