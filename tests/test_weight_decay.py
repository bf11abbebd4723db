"""Decoupled weight decay from the base class: exact in float64, and under MirroredStrategy."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab


def _reference(x, grad, lr, wd, steps):
    """NumPy transcription of decoupled decay followed by a gradient step (Loshchilov & Hutter)."""
    for _ in range(steps):
        x = x - lr * wd * x
        x = x - lr * grad
    return x


def test_weight_decay_is_exact_in_float64():
    x0, grad = np.array([1.0, -2.0, 0.5]), np.array([0.5, 0.25, -1.0])
    x = tf.Variable(x0)
    opt = optimlab.SGD(0.1, weight_decay=0.004)  # 0.004 is not exact in float32
    for _ in range(150):
        opt.apply_gradients([(tf.constant(grad), x)])
    np.testing.assert_allclose(x.numpy(), _reference(x0, grad, 0.1, 0.004, 150), rtol=1e-14, atol=0)


def test_weight_decay_respects_exclusions():
    kept, excluded = tf.Variable([1.0], name="kernel"), tf.Variable([1.0], name="bias")
    opt = optimlab.SGD(0.5, weight_decay=0.1)
    opt.exclude_from_weight_decay(var_names=["bias"])
    opt.apply_gradients([(tf.constant([0.0]), kept), (tf.constant([0.0]), excluded)])
    assert kept.numpy()[0] == pytest.approx(1.0 - 0.05)
    assert excluded.numpy()[0] == 1.0


def test_weight_decay_under_mirrored_strategy(mirrored):
    strategy = mirrored
    x0, grad = np.array([1.0, -2.0]), np.array([0.5, 0.25])
    with strategy.scope():
        x = tf.Variable(x0)
        opt = optimlab.SGD(0.1, weight_decay=0.004)
        opt.build([x])

    @tf.function
    def step():
        def replica_fn():
            # each replica contributes half the gradient; the cross-replica sum is `grad`
            opt.apply_gradients([(tf.constant(grad / 2), x)])

        strategy.run(replica_fn)

    for _ in range(50):
        step()
    expected = _reference(x0, grad, 0.1, 0.004, 50)
    for component in strategy.experimental_local_results(x):
        np.testing.assert_allclose(component.numpy(), expected, rtol=1e-14)
