"""LARS against a float64 NumPy transcription of Algorithm 1 of You et al. (2017), and Optax."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop

SHAPES = [(6, 4), (4,), (3, 2, 2), ()]
STEPS = 150


def _problem(seed=0):
    return closed_loop_problem(SHAPES, STEPS, seed, noise=0.1, centred=True)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _run_numpy(params, grads, lr, momentum, wd, eta, eps, nesterov, adapted):
    """Algorithm 1 of the paper, with the usual exclusions (ratio 1, no decay)."""
    ws = [p.copy() for p in params]
    vs = [np.zeros_like(p) for p in params]
    for t in range(STEPS):
        gs = grads(ws, t)
        for i, (w, g) in enumerate(zip(ws, gs)):
            if adapted[i]:
                w_norm, g_norm = np.linalg.norm(w), np.linalg.norm(g)
                local = eta * w_norm / (g_norm + wd * w_norm + eps) if w_norm > 0 and g_norm > 0 else 1.0
                step = lr * local * (g + wd * w)
            else:
                step = lr * g
            vs[i] = momentum * vs[i] + step
            ws[i] = w - (momentum * vs[i] + step if nesterov else vs[i])
    return ws


@pytest.mark.parametrize("nesterov", [False, True])
def test_matches_numpy_transcription(nesterov):
    params, grads = _problem()
    kw = {"learning_rate": 2.0, "momentum": 0.9, "weight_decay": 1e-3, "trust_coefficient": 0.01, "epsilon": 1e-9}
    got = _run_optimlab(optimlab.LARS(nesterov=nesterov, **kw), params, grads)
    adapted = [len(s) >= 2 for s in SHAPES]  # default: rank <= 1 excluded
    want = _run_numpy(params, grads, 2.0, 0.9, 1e-3, 0.01, 1e-9, nesterov, adapted)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-7, atol=1e-9)  # float64 round-off, amplified over 150 closed-loop steps


def test_exclusions_by_name_and_none():
    params, grads = _problem(1)
    kw = {"learning_rate": 1.0, "momentum": 0.8, "weight_decay": 1e-2, "trust_coefficient": 0.02}
    opt = optimlab.LARS(exclude_vectors=False, exclude_from_adaptation=["kernel"], **kw)
    variables = [tf.Variable(p, dtype=tf.float64, name=n) for p, n in zip(params, ["kernel", "bias", "conv", "scalar"])]
    for t in range(STEPS):
        gs = grads([v.numpy() for v in variables], t)
        opt.apply_gradients(zip([tf.constant(g) for g in gs], variables))
    want = _run_numpy(params, grads, 1.0, 0.8, 1e-2, 0.02, 0.0, False, [False, True, True, True])
    for v, w in zip(variables, want):
        np.testing.assert_allclose(v.numpy(), w, rtol=1e-7, atol=1e-9)  # float64 round-off, amplified over 150 closed-loop steps


def test_excluded_variable_is_plain_momentum_sgd():
    # One step from zero momentum: an excluded bias moves by lr * g, an adapted one by lr * ratio * (g + wd w).
    opt = optimlab.LARS(learning_rate=0.5, weight_decay=0.1)
    bias, kernel = tf.Variable([1.0, 2.0]), tf.Variable([[3.0, 4.0]])
    opt.apply_gradients([(tf.constant([0.2, 0.4]), bias), (tf.constant([[6.0, 8.0]]), kernel)])
    np.testing.assert_allclose(bias.numpy(), [0.9, 1.8], rtol=1e-6)
    ratio = 0.001 * 5.0 / (10.0 + 0.1 * 5.0)
    np.testing.assert_allclose(kernel.numpy(), [[3 - 0.5 * ratio * 6.3, 4 - 0.5 * ratio * 8.4]], rtol=1e-6)


def test_matches_optax_lars():
    optax = pytest.importorskip("optax")
    params, grads = _problem(2)
    # Optax divides by ||g + wd w||, the paper by ||g|| + wd ||w||: they agree when wd = 0.
    got = _run_optimlab(optimlab.LARS(learning_rate=1.5, weight_decay=0.0, trust_coefficient=0.01, exclude_vectors=False), params, grads)
    tx = optax.lars(1.5, weight_decay=0.0, trust_coefficient=0.01, momentum=0.9)
    ws = [np.array(p) for p in params]
    state = tx.init(ws)
    for t in range(STEPS):
        updates, state = tx.update(grads(ws, t), state, ws)
        ws = [np.asarray(w + u, dtype=np.float64) for w, u in zip(ws, updates)]
    for g, w in zip(got, ws):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-7)  # Optax runs in float32 by default


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"momentum": 1.0}, ValueError, "momentum"),
        ({"trust_coefficient": -1.0}, ValueError, "trust_coefficient"),
        ({"weight_decay": -0.1}, ValueError, "weight_decay"),
        ({"nesterov": "yes"}, TypeError, "nesterov"),
        ({"exclude_from_adaptation": "bias"}, TypeError, "exclude_from_adaptation"),
        ({"exclude_from_adaptation": ["("]}, ValueError, "exclude_from_adaptation"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        optimlab.LARS(**kwargs)
