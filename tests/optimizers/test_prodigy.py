"""Prodigy against a float64 NumPy transcription of the official algorithm of
Mishchenko & Defazio (2023) (the paper's Algorithm with Adam, as its code runs it), and Optax."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop

SHAPES = [(4, 3), (3,), (2, 1, 3), ()]
STEPS = 150


def _problem(seed=0):
    return closed_loop_problem(SHAPES, STEPS, seed, noise=0.1, centred=True)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _run_numpy(params, grads, lr=1.0, b1=0.9, b2=0.999, b3=None, eps=1e-8, wd=0.0, decouple=True,
               bias_correction=False, safeguard=False, d0=1e-6, d_coef=1.0, growth=np.inf):
    b3 = np.sqrt(b2) if b3 is None else b3
    xs = [p.copy() for p in params]
    x0 = [p.copy() for p in params]
    m, v, s = ([np.zeros_like(p) for p in params] for _ in range(3))
    d, d_max, r = d0, d0, 0.0
    for step in range(STEPS):
        t = step + 1
        bc = np.sqrt(1 - b2**t) / (1 - b1**t) if bias_correction else 1.0
        dlr = d * lr * bc
        gs = grads(xs, step)
        r *= b3
        s_norm = 0.0
        for i, g in enumerate(gs):
            if wd and not decouple:
                g = g + wd * xs[i]
                gs[i] = g
            r += (d / d0) * dlr * np.sum(g * (x0[i] - xs[i]))
            m[i] = b1 * m[i] + d * (1 - b1) * g
            v[i] = b2 * v[i] + d * d * (1 - b2) * g * g
            s[i] = b3 * s[i] + (d / d0) * (d * lr if safeguard else dlr) * g
            s_norm += np.sum(np.abs(s[i]))
        d_hat = d_coef * r / s_norm
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * growth)
        for i in range(len(xs)):
            denom = np.sqrt(v[i]) + d * eps
            if wd and decouple:
                xs[i] = xs[i] - wd * dlr * xs[i]
            xs[i] = xs[i] - dlr * m[i] / denom
    return xs, d


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"weight_decay": 0.01, "use_bias_correction": True, "beta_3": 0.99},
        {"weight_decay": 0.01, "decouple": False, "safeguard_warmup": True, "d_coef": 0.5, "growth_rate": 1.05},
    ],
)
def test_matches_numpy_transcription(kwargs):
    params, grads = _problem()
    opt = optimlab.Prodigy(**kwargs)
    got = _run_optimlab(opt, params, grads)
    ref_kw = {
        "wd": kwargs.get("weight_decay", 0.0), "bias_correction": kwargs.get("use_bias_correction", False),
        "b3": kwargs.get("beta_3"), "decouple": kwargs.get("decouple", True),
        "safeguard": kwargs.get("safeguard_warmup", False), "d_coef": kwargs.get("d_coef", 1.0),
        "growth": kwargs.get("growth_rate", np.inf),
    }
    want, d = _run_numpy(params, grads, **ref_kw)
    assert d > 1e-3  # the estimate grew from d0 = 1e-6: the test exercises the adaptation
    np.testing.assert_allclose(float(opt.d.numpy()), d, rtol=1e-8)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 steps


def test_no_step_while_all_gradients_are_zero():
    x = tf.Variable([1.0, 2.0])
    opt = optimlab.Prodigy()
    for _ in range(3):
        opt.apply_gradients([(tf.zeros(2), x)])
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
    assert float(opt.d.numpy()) == pytest.approx(1e-6)


@pytest.fixture
def jax_float64():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", False)


def test_matches_optax(jax_float64):
    optax = pytest.importorskip("optax")
    params, grads = _problem(1)
    got = _run_optimlab(optimlab.Prodigy(use_bias_correction=True, weight_decay=0.01), params, grads)
    tx = optax.contrib.prodigy(1.0, weight_decay=0.01)
    xs = [np.array(p) for p in params]
    state = tx.init(xs)
    for t in range(STEPS):
        updates, state = tx.update(grads(xs, t), state, xs)
        xs = [np.asarray(x + u, dtype=np.float64) for x, u in zip(xs, updates)]
    for g, w in zip(got, xs):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # both in float64


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"d0": 0.0}, ValueError, "d0"),
        ({"growth_rate": 0.5}, ValueError, "growth_rate"),
        ({"beta_3": 1.0}, ValueError, "beta_3"),
        ({"d_coef": 0.0}, ValueError, "d_coef"),
        ({"decouple": "no"}, TypeError, "decouple"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimlab.Prodigy(**kwargs)


def test_global_estimate_under_mirrored_strategy_matches_one_device(mirrored):
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 3)).astype("float32")
    targets = (inputs @ np.array([[1.0], [-1.0], [2.0]])).astype("float32")

    def train(scope):
        with scope:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(1)])
            model.compile(optimizer=optimlab.Prodigy(), loss="mse")
        model.fit(inputs, targets, batch_size=8, epochs=3, shuffle=False, verbose=0)
        return model.get_weights(), float(model.optimizer.d.numpy())

    (weights, d), (single_weights, single_d) = train(mirrored.scope()), train(tf.distribute.get_strategy().scope())
    assert d > 1e-5 and d == pytest.approx(single_d, rel=1e-5)
    for a, b in zip(weights, single_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
