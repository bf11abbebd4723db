"""Gradient accumulation: optimlab's cross-replica-safe path against Keras 3's own and NumPy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab


# Keras keeps hyperparameters in float32; values exact in float32 make the comparison exact.
ADAM = {"beta_1": 0.875, "beta_2": 0.9921875, "epsilon": 2.0**-20}


def _grads(step, x):
    return 0.7 * (x - 0.2) + 0.1 * np.sin(step + x)


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize(
    "ours,theirs",
    [
        (lambda: optimlab.SGD(0.125, momentum=0.875, gradient_accumulation_steps=3),
         lambda: keras.optimizers.SGD(0.125, momentum=0.875, gradient_accumulation_steps=3)),
        (lambda: optimlab.Adam(0.0625, **ADAM, epsilon_hat=True, weight_decay=0.015625, gradient_accumulation_steps=2),
         lambda: keras.optimizers.Adam(0.0625, **ADAM, weight_decay=0.015625, gradient_accumulation_steps=2)),
        (lambda: optimlab.SGD(0.125, clipnorm=0.5, gradient_accumulation_steps=4),
         lambda: keras.optimizers.SGD(0.125, clipnorm=0.5, gradient_accumulation_steps=4)),
    ],
    ids=["sgd-momentum", "adam-weight-decay", "sgd-clipnorm"],
)
def test_accumulation_matches_keras(ours, theirs, compiled):
    """Keras 3's accumulation (single device) is the reference: average k gradients, then step."""
    x0 = np.linspace(-1.0, 1.0, 5)
    results = []
    for make in (ours, theirs):
        opt, x = make(), tf.Variable(x0)
        step = tf.function(opt.apply_gradients) if compiled else opt.apply_gradients
        for n in range(36):
            step([(tf.constant(_grads(n, x.numpy())), x)])
        results.append(x.numpy())
    np.testing.assert_allclose(results[0], results[1], rtol=1e-12, atol=1e-14)


def test_accumulation_counts_updates_not_micro_steps():
    opt, x = optimlab.GradientDescent(0.5, gradient_accumulation_steps=3), tf.Variable([1.0])
    expected = 1.0
    for n in range(9):
        opt.apply_gradients([(tf.constant([float(n)]), x)])
        if (n + 1) % 3 == 0:
            expected -= 0.5 * (3 * n - 3) / 3  # mean of n-2, n-1, n
        assert x.numpy()[0] == pytest.approx(expected)
    assert int(opt.iterations) == 3
