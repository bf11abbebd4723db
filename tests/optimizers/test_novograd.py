"""NovoGrad against a float64 NumPy transcription of TF Addons' NovoGrad over 150 steps (two layers)."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 150
W0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])
B0 = np.array([0.4, -0.6, 1.0])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def run(opt, dtype=tf.float64, exclude=None):
    w, b = tf.Variable(W0, dtype=dtype, name="kernel"), tf.Variable(B0, dtype=dtype, name="bias")
    if exclude:
        opt.exclude_from_weight_decay(var_names=exclude)
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(grad(v.numpy().astype(np.float64)), dtype=dtype), v) for v in (w, b)])
    return w.numpy(), b.numpy()


def reference(x, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, wd=0.0, averaging=False, amsgrad=False):
    m, v, v_hat = np.zeros_like(x), 0.0, 0.0
    for _ in range(STEPS):
        g = grad(x)
        norm2 = np.sum(g * g)
        v = norm2 if v == 0 else b2 * v + (1 - b2) * norm2
        v_hat = max(v_hat, v)
        d = g / (np.sqrt(v_hat if amsgrad else v) + eps) + wd * x
        if averaging:
            d = (1 - b1) * d
        m = b1 * m + d
        x = x - lr * m
    return x


@pytest.mark.parametrize(
    "kwargs, ref",
    [
        ({"learning_rate": 0.01}, {"lr": 0.01}),
        ({"learning_rate": 0.05, "grad_averaging": True, "beta_2": 0.9}, {"lr": 0.05, "averaging": True, "b2": 0.9}),
        ({"learning_rate": 0.01, "weight_decay": 0.1, "amsgrad": True}, {"lr": 0.01, "wd": 0.1, "amsgrad": True}),
    ],
)
def test_matches_numpy_reference(kwargs, ref):
    w, b = run(optimlab.NovoGrad(**kwargs))
    rtol = 1e-7 if "wd" in ref else 1e-10  # Keras rounds weight_decay to float32
    np.testing.assert_allclose(w, reference(W0, **ref), rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(b, reference(B0, **ref), rtol=rtol, atol=1e-12)


def test_weight_decay_exclusion_by_name():
    w, b = run(optimlab.NovoGrad(learning_rate=0.01, weight_decay=0.1), exclude=["bias"])
    np.testing.assert_allclose(w, reference(W0, lr=0.01, wd=0.1), rtol=1e-7)
    np.testing.assert_allclose(b, reference(B0, lr=0.01), rtol=1e-10)


def test_float32_follows_float64_reference():
    w, _ = run(optimlab.NovoGrad(learning_rate=0.01), dtype=tf.float32)
    np.testing.assert_allclose(w, reference(W0, lr=0.01), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs, match", [({"weight_decay": -1.0}, "weight_decay"), ({"grad_averaging": 0}, "grad_averaging"), ({"beta_2": 2.0}, "beta_2")])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimlab.NovoGrad(**kwargs)


def test_config_round_trip():
    opt = optimlab.NovoGrad(learning_rate=0.02, weight_decay=0.01, grad_averaging=True)
    config = opt.get_config()
    assert config["weight_decay"] == 0.01
    assert optimlab.NovoGrad.from_config(config).get_config() == config
