"""Muon against a float64 NumPy transcription of Keller Jordan's reference algorithm (Muon for
matrices, Adam for the rest), against keras.optimizers.Muon where conventions meet, and checks
of the Newton-Schulz orthogonalization."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop
from optimlab.optimizers.muon import newton_schulz

SHAPES = [(6, 4), (3, 5), (2, 2, 3, 4), (4,), ()]  # tall, wide, conv kernel, bias, scalar
STEPS = 120
ABC = (3.4445, -4.7750, 2.0315)


def _problem(seed=0, shapes=SHAPES):
    return closed_loop_problem(shapes, STEPS, seed, noise=0.3)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _ns5(g, steps=5, eps=1e-7):
    a, b, c = ABC
    x = g.T if g.shape[0] > g.shape[1] else g
    x = x / (np.linalg.norm(x) + eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if g.shape[0] > g.shape[1] else x


def _run_numpy(params, grads, lr, beta, nesterov, wd, ratio, b1, b2, eps_a):
    ws = [p.copy() for p in params]
    buf = [np.zeros_like(p) for p in params]
    vel = [np.zeros_like(p) for p in params]
    for step in range(STEPS):
        t = step + 1
        for i, g in enumerate(grads(ws, step)):
            if g.ndim >= 2:
                buf[i] = beta * buf[i] + (1 - beta) * g
                u = (1 - beta) * g + beta * buf[i] if nesterov else buf[i]
                mat = u.reshape(-1, u.shape[-1])
                update = _ns5(mat).reshape(g.shape) * max(1.0, mat.shape[0] / mat.shape[1]) ** 0.5
                ws[i] = ws[i] * (1 - lr * wd) - lr * update
            else:
                lr_a = lr * ratio
                buf[i] = b1 * buf[i] + (1 - b1) * g
                vel[i] = b2 * vel[i] + (1 - b2) * g * g
                m_hat, v_hat = buf[i] / (1 - b1**t), vel[i] / (1 - b2**t)
                ws[i] = ws[i] * (1 - lr_a * wd) - lr_a * m_hat / (np.sqrt(v_hat) + eps_a)
    return ws


@pytest.mark.parametrize("nesterov, wd", [(True, 0.0), (False, 0.1)])
def test_matches_numpy_transcription(nesterov, wd):
    params, grads = _problem()
    opt = optimlab.Muon(learning_rate=0.03, nesterov=nesterov, weight_decay=wd or None, adam_lr_ratio=0.5, adam_epsilon=1e-8)
    got = _run_optimlab(opt, params, grads)
    want = _run_numpy(params, grads, 0.03, 0.95, nesterov, wd, 0.5, 0.9, 0.95, 1e-8)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-8)  # float64 round-off through 5 matrix iterations a step


def test_matches_keras_muon_on_wide_and_square_matrices():
    # Keras: B <- mu B + G, a buffer 1 / (1 - mu) times ours, so its fixed epsilon 1e-7 is ours
    # times (1 - mu); no shape scale with rms_rate=None (and none here for rows <= cols).
    params, grads = _problem(1, shapes=[(4, 4), (3, 6)])
    lr = float(np.float32(0.02))  # Keras keeps its learning rate in float32
    got = _run_optimlab(optimlab.Muon(learning_rate=lr, epsilon=1e-7 * (1 - 0.95)), params, grads)
    ref = keras.optimizers.Muon(learning_rate=0.02, weight_decay=None, adam_weight_decay=None, rms_rate=None)
    theirs = [keras.Variable(p, dtype="float64") for p in params]
    for t in range(STEPS):
        gs = grads([np.asarray(v.numpy()) for v in theirs], t)
        ref.apply([tf.constant(g) for g in gs], theirs)
    for g, w in zip(got, theirs):
        np.testing.assert_allclose(g, np.asarray(w.numpy()), rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("shape", [(8, 8), (16, 4), (3, 12)])
def test_newton_schulz_nearly_orthogonalizes(shape):
    g = np.random.default_rng(0).normal(size=shape)
    out = newton_schulz(tf.constant(g), 5, ABC, 1e-7).numpy()
    singular = np.linalg.svd(out, compute_uv=False)
    assert singular.min() > 0.6 and singular.max() < 1.25  # the quintic's band around 1
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    assert np.sum(out * (u @ vt)) / np.linalg.norm(out) / np.linalg.norm(u @ vt) > 0.98  # aligned with U V^T
    np.testing.assert_allclose(out, _ns5(g), rtol=1e-10, atol=1e-12)


def test_routing_of_variables():
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 4, name="embedding"), keras.layers.Dense(5, name="hidden"),
                              keras.layers.Dense(2, name="head")])
    opt = optimlab.Muon(exclude_layers=["head"])
    routes = {v.path.split("/", 1)[1]: opt.uses_muon(v) for v in model.trainable_variables}
    assert routes == {
        "embedding/embeddings": False, "hidden/kernel": True, "hidden/bias": False, "head/kernel": False, "head/bias": False,
    }
    opt.build(model.trainable_variables)
    with pytest.raises(KeyError):
        opt.get_slot(model.layers[1].kernel, "velocity")  # Muon matrices keep one slot
    assert opt.get_slot(model.layers[1].bias, "velocity").shape == (5,)


def test_higher_rank_kernels_flatten_or_fall_back():
    conv, dense = tf.Variable(tf.ones((3, 3, 4, 8))), tf.Variable(tf.ones((4, 8)))
    assert optimlab.Muon().uses_muon(conv) and optimlab.Muon().uses_muon(dense)
    opt = optimlab.Muon(flatten_higher_rank=False)
    assert not opt.uses_muon(conv) and opt.uses_muon(dense)
    assert optimlab.Muon.from_config(opt.get_config()).flatten_higher_rank is False
    opt.build([conv, dense])
    assert opt.get_slot(conv, "velocity").shape == conv.shape  # the Adam fallback's second moment


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"flatten_higher_rank": "no"}, TypeError, "flatten_higher_rank"),
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"ns_steps": 0}, ValueError, "ns_steps"),
        ({"ns_coefficients": (1.0, 2.0)}, TypeError, "ns_coefficients"),
        ({"adam_lr_ratio": 0.0}, ValueError, "adam_lr_ratio"),
        ({"exclude_layers": "head"}, TypeError, "exclude_layers"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimlab.Muon(**kwargs)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_low_precision_matrix_keeps_dtype_and_descends(dtype):
    rng = np.random.default_rng(3)
    w = tf.Variable(rng.normal(size=(8, 5)), dtype=dtype)
    opt = optimlab.Muon(learning_rate=0.1)
    loss = lambda: tf.reduce_sum(tf.square(tf.cast(w, tf.float32) - 1.0))
    start = float(loss())
    for _ in range(40):
        opt.minimize(loss, [w])
    assert w.dtype == tf.as_dtype(dtype) and opt.get_slot(w, "momentum").dtype == tf.as_dtype(dtype)
    assert float(loss()) < 0.5 * start
