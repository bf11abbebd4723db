"""RectifiedAdam against a float64 NumPy transcription of TF Addons' RAdam over 150 steps."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 150
X0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def run(opt, x0=X0, steps=STEPS, dtype=tf.float64):
    x = tf.Variable(x0, dtype=dtype)
    for _ in range(steps):
        opt.apply_gradients([(tf.constant(grad(x.numpy().astype(np.float64)), dtype=dtype), x)])
    return x.numpy()


def reference(x, lr=1e-3, b1=0.9, b2=0.999, eps=1e-7, amsgrad=False, threshold=5.0, total_steps=0, warmup=0.1, min_lr=0.0, wd=0.0, steps=STEPS):
    m, v, v_hat = np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)
    rho_inf = 2 / (1 - b2) - 1
    for t in range(1, steps + 1):
        g = grad(x)  # the gradient is taken before Keras' decoupled decay is applied
        lr_t = lr
        if total_steps:
            warmup_steps = total_steps * warmup
            decay_steps = max(total_steps - warmup_steps, 1)
            if t <= warmup_steps:
                lr_t = lr * t / warmup_steps
            else:
                lr_t = lr + (min_lr - lr) / decay_steps * min(t - warmup_steps, decay_steps)
        x = x - lr * wd * x
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_hat = np.maximum(v_hat, v)
        m_hat = m / (1 - b1**t)
        v_corr = np.sqrt((v_hat if amsgrad else v) / (1 - b2**t))
        rho_t = rho_inf - 2 * t * b2**t / (1 - b2**t)
        if rho_t >= threshold:
            r_t = np.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
            x = x - lr_t * r_t * m_hat / (v_corr + eps)
        else:
            x = x - lr_t * m_hat
    return x


@pytest.mark.parametrize(
    "kwargs",
    [
        {"learning_rate": 0.01},
        {"learning_rate": 0.02, "beta_2": 0.99, "amsgrad": True},
        {"learning_rate": 0.05, "total_steps": 120, "warmup_proportion": 0.2, "min_lr": 1e-3},
        {"learning_rate": 0.01, "sma_threshold": 20.0, "beta_2": 0.95},
    ],
)
def test_matches_numpy_reference(kwargs):
    names = {"learning_rate": "lr", "beta_2": "b2", "amsgrad": "amsgrad", "total_steps": "total_steps",
             "warmup_proportion": "warmup", "min_lr": "min_lr", "sma_threshold": "threshold"}
    expected = reference(X0, **{names[k]: v for k, v in kwargs.items()})
    np.testing.assert_allclose(run(optimlab.RectifiedAdam(**kwargs)), expected, rtol=1e-10, atol=1e-12)


def test_weight_decay_is_keras_decoupled_decay():
    opt = optimlab.RectifiedAdam(learning_rate=0.01, weight_decay=0.1)
    # Keras rounds weight_decay to float32 (relative 1.5e-8), hence the looser tolerance.
    np.testing.assert_allclose(run(opt), reference(X0, lr=0.01, wd=0.1), rtol=1e-7)
    assert not np.allclose(run(optimlab.RectifiedAdam(learning_rate=0.01)), reference(X0, lr=0.01, wd=0.1), rtol=1e-4)


def test_float32_follows_float64_reference():
    np.testing.assert_allclose(run(optimlab.RectifiedAdam(learning_rate=0.01), dtype=tf.float32), reference(X0, lr=0.01), rtol=1e-4, atol=1e-5)


def test_first_steps_are_sgd_with_momentum():
    # rho_t < 5 for the first steps: the update is lr * m_hat, which is lr * g at step 1.
    x = run(optimlab.RectifiedAdam(learning_rate=0.1), steps=1)
    np.testing.assert_allclose(x, X0 - 0.1 * grad(X0), rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"beta_1": 1.0}, "beta_1"),
        ({"total_steps": -1}, "total_steps"),
        ({"total_steps": 1.5}, "total_steps"),
        ({"warmup_proportion": 1.5}, "warmup_proportion"),
        ({"min_lr": -1.0}, "min_lr"),
        ({"amsgrad": 1}, "amsgrad"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        optimlab.RectifiedAdam(**kwargs)


def test_config_round_trip():
    opt = optimlab.RectifiedAdam(learning_rate=0.02, total_steps=100, min_lr=1e-4, amsgrad=True)
    clone = optimlab.RectifiedAdam.from_config(opt.get_config())
    assert clone.get_config() == opt.get_config()
    np.testing.assert_allclose(run(clone, steps=20), run(opt, steps=20))
    assert optimlab.get("radam").__class__ is optimlab.RectifiedAdam
