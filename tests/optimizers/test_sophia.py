"""Sophia against a float64 NumPy transcription of Algorithm 1 of Liu et al. (2023), and checks
that its Hessian estimators (Hutchinson, Gauss-Newton-Bartlett) are unbiased."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab.optimizers.sophia import gauss_newton_bartlett, hutchinson

SHAPES = [(4, 3), (3,), (2, 2, 2), ()]
STEPS = 150


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in SHAPES]
    curv = [rng.uniform(0.5, 2.0, size=s) for s in SHAPES]
    noise = [[0.3 * rng.normal(size=s) for s in SHAPES] for _ in range(STEPS)]
    # Noisy, sometimes negative, curvature estimates, as a stochastic estimator gives.
    hess = [[h * rng.uniform(-0.5, 2.5, size=h.shape) for h in curv] for _ in range(STEPS)]
    return params, lambda ws, t: [h * w + n for h, w, n in zip(curv, ws, noise[t])], hess


def _run_numpy(params, grads, hess, lr, b1, b2, rho, eps, k, wd):
    """Algorithm 1: h refreshed at t mod k == 1, decoupled decay, clipped preconditioned momentum."""
    xs = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    h = [np.zeros_like(p) for p in params]
    for step in range(STEPS):
        t = step + 1
        gs = grads(xs, step)
        if t % k == 1 % k:
            h = [b2 * hi + (1 - b2) * e for hi, e in zip(h, hess[step])]
        for i, g in enumerate(gs):
            m[i] = b1 * m[i] + (1 - b1) * g
            xs[i] = xs[i] * (1 - lr * wd) - lr * np.clip(m[i] / np.maximum(rho * h[i], eps), -1, 1)
    return xs


@pytest.mark.parametrize("k", [1, 3])
def test_matches_numpy_transcription(k):
    params, grads, hess = _problem()
    opt = optimlab.Sophia(learning_rate=0.01, beta_1=0.9, beta_2=0.95, rho=0.5, hessian_update_interval=k, weight_decay=0.1)
    variables = [tf.Variable(p, dtype=tf.float64) for p in params]
    for t in range(STEPS):
        if t % k == 0:  # the caller's side of the contract when it applies gradients itself
            opt.update_hessian([tf.constant(e) for e in hess[t]], variables)
        gs = grads([v.numpy() for v in variables], t)
        opt.apply_gradients(zip([tf.constant(g) for g in gs], variables))
    want = _run_numpy(params, grads, hess, 0.01, 0.9, 0.95, 0.5, 1e-12, k, 0.1)
    for v, w in zip(variables, want):
        np.testing.assert_allclose(v.numpy(), w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 steps


def test_minimize_refreshes_hessian_every_k_steps_with_an_unbiased_estimate():
    a = np.linspace(0.5, 3.0, 60)
    x = tf.Variable(np.ones(60))
    opt = optimlab.Sophia(learning_rate=1e-3, beta_2=0.99, hessian_update_interval=3, seed=1)
    loss = lambda: 0.5 * tf.reduce_sum(a * x**2)
    history = []
    for _ in range(600):
        opt.minimize(loss, [x])
        history.append(opt.get_slot(x, "h").numpy().copy())
    changed = [i for i in range(1, 600) if not np.array_equal(history[i], history[i - 1])]
    assert changed == list(range(3, 600, 3))  # t = 1, 4, 7, ... (0-based 0, 3, 6, ...)
    # 200 refreshes with beta_2 = 0.99: the average is debiased by 1 - 0.99^200.
    ratio = history[-1] / a / (1 - 0.99**200)
    assert abs(ratio.mean() - 1) < 0.1


def test_hutchinson_is_unbiased_for_a_dense_hessian():
    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 5))
    hessian = q @ q.T + np.eye(5)
    x = tf.Variable(rng.normal(size=5))
    loss = lambda: 0.5 * tf.tensordot(x, tf.linalg.matvec(tf.constant(hessian), x), 1)
    gen = tf.random.Generator.from_seed(0)
    draw = tf.function(lambda: hutchinson(loss, [x], gen)[0])
    mean = np.mean([draw().numpy() for _ in range(3000)], axis=0)
    np.testing.assert_allclose(mean, np.diag(hessian), rtol=0.15)


def test_gauss_newton_bartlett_is_unbiased_for_softmax_regression():
    rng = np.random.default_rng(1)
    data = rng.normal(size=(8, 3))
    w = tf.Variable(rng.normal(size=(3, 4)))
    gen = tf.random.Generator.from_seed(0)
    draw = tf.function(lambda: gauss_newton_bartlett(lambda: tf.constant(data) @ w, [w], gen)[0])
    mean = np.mean([draw().numpy() for _ in range(3000)], axis=0)
    p = tf.nn.softmax(data @ w.numpy()).numpy()
    exact = (data**2).T @ (p * (1 - p)) / len(data)  # diagonal of the Gauss-Newton matrix of the mean loss
    np.testing.assert_allclose(mean, exact, rtol=0.15)


def test_update_hessian_checks_lengths():
    x = tf.Variable([1.0])
    with pytest.raises(ValueError, match="same length"):
        optimlab.Sophia().update_hessian([tf.ones(1), tf.ones(1)], [x])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"beta_2": 1.0}, ValueError, "beta_2"),
        ({"rho": -1.0}, ValueError, "rho"),
        ({"hessian_update_interval": 0}, ValueError, "hessian_update_interval"),
        ({"seed": "a"}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimlab.Sophia(**kwargs)
