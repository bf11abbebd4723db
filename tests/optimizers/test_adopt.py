"""ADOPT against a float64 NumPy transcription of Taniguchi et al. (2024), and Optax."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop

SHAPES = [(4, 3), (3,), (2, 3, 2), ()]
STEPS = 150


def _problem(seed=0):
    return closed_loop_problem(SHAPES, STEPS, seed, noise=0.3)


def _run_optimlab(opt, params, grads):
    return run_closed_loop(opt, params, grads, STEPS)


def _run_numpy(params, grads, lr, b1, b2, eps, clip, wd=0.0):
    """Algorithm 2 of the paper plus the official code's clip at (t - 1)^(1/4)."""
    xs = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(STEPS):
        t = step + 1
        gs = grads(xs, step)
        for i, g in enumerate(gs):
            xs[i] = xs[i] * (1 - lr * wd)
            if t == 1:
                v[i] = g * g
                continue
            normed = g / np.maximum(np.sqrt(v[i]), eps)
            if clip:
                normed = np.clip(normed, -((t - 1) ** 0.25), (t - 1) ** 0.25)
            m[i] = b1 * m[i] + (1 - b1) * normed
            xs[i] = xs[i] - lr * m[i]
            v[i] = b2 * v[i] + (1 - b2) * g * g
    return xs


@pytest.mark.parametrize("clip", [True, False])
def test_matches_numpy_transcription(clip):
    params, grads = _problem()
    opt = optimlab.ADOPT(learning_rate=0.02, beta_1=0.8, beta_2=0.99, epsilon=1e-4, use_clipping=clip, weight_decay=0.01)
    got = _run_optimlab(opt, params, grads)
    want = _run_numpy(params, grads, 0.02, 0.8, 0.99, 1e-4, clip, wd=0.01)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-8, atol=1e-9)  # float64 round-off over 150 closed-loop steps


def test_first_step_only_sets_second_moment():
    x = tf.Variable([1.0, -2.0])
    opt = optimlab.ADOPT(learning_rate=0.1)
    opt.apply_gradients([(tf.constant([3.0, 4.0]), x)])
    np.testing.assert_array_equal(x.numpy(), [1.0, -2.0])
    np.testing.assert_array_equal(opt.get_slot(x, "v").numpy(), [9.0, 16.0])


def test_matches_optax():
    optax = pytest.importorskip("optax")
    params, grads = _problem(1)
    got = _run_optimlab(optimlab.ADOPT(learning_rate=0.02, beta_2=0.999), params, grads)
    tx = optax.contrib.adopt(0.02, b1=0.9, b2=0.999, eps=1e-6)
    xs = [np.array(p) for p in params]
    state = tx.init(xs)
    for t in range(STEPS):
        updates, state = tx.update(grads(xs, t), state, xs)
        xs = [np.asarray(x + u, dtype=np.float64) for x, u in zip(xs, updates)]
    for g, w in zip(got, xs):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)  # Optax runs in float32


@pytest.mark.parametrize("kwargs, error", [({"beta_2": 1.0}, ValueError), ({"epsilon": -1.0}, ValueError), ({"use_clipping": None}, TypeError)])
def test_bad_arguments(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        optimlab.ADOPT(**kwargs)
