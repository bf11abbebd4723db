"""ConditionalGradient against a float64 NumPy transcription of Frank-Wolfe (TF Addons' form) over 150 steps."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 150
X0 = np.array([[1.5, -2.0, 0.3], [0.7, -0.1, 2.5]])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def reference(x, lr, lam, eps=1e-7, ord="fro"):
    """``x <- x + gamma (s - x)`` with ``gamma = 1 - lr`` and ``s`` the ball's extreme point against ``g``."""
    gamma = 1 - lr
    for _ in range(STEPS):
        g = grad(x)
        if ord == "fro":
            s = -lam * g / (np.linalg.norm(g) + eps)
        else:
            u, _, vt = np.linalg.svd(g.reshape(-1, g.shape[-1]) if g.ndim else g.reshape(1, 1))
            s = -lam * np.outer(u[:, 0], vt[0]).reshape(g.shape)
        x = x + gamma * (s - x)
    return x


def run(opt, x0=X0, dtype=tf.float64):
    x = tf.Variable(x0, dtype=dtype)
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(grad(x.numpy().astype(np.float64)), dtype=dtype), x)])
    return x.numpy()


@pytest.mark.parametrize("lr, lam", [(0.9, 0.5), (0.8, 0.3)])
def test_frobenius_matches_numpy_reference(lr, lam):
    np.testing.assert_allclose(run(optimlab.ConditionalGradient(learning_rate=lr, lambda_=lam)), reference(X0, lr, lam), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x0", [X0, X0[0], np.array(0.7)])
def test_nuclear_matches_numpy_reference(x0):
    # A singular vector's sign is arbitrary, but u1 v1^T is not.
    opt = optimlab.ConditionalGradient(learning_rate=0.9, lambda_=0.5, ord="nuclear")
    np.testing.assert_allclose(run(opt, x0), reference(x0, 0.9, 0.5, ord="nuclear"), rtol=1e-8, atol=1e-10)


def test_iterates_stay_in_the_ball():
    x = run(optimlab.ConditionalGradient(learning_rate=0.9, lambda_=0.5), x0=0.1 * X0)
    assert np.linalg.norm(x) <= 0.5 + 1e-9


@pytest.mark.parametrize(
    "kwargs, match",
    [({"learning_rate": 1.5}, "learning_rate"), ({"lambda_": -1.0}, "lambda_"), ({"ord": "l1"}, "ord")],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optimlab.ConditionalGradient(**kwargs)


def test_config_round_trip():
    opt = optimlab.ConditionalGradient(learning_rate=0.9, lambda_=2.0, ord="nuclear")
    assert optimlab.ConditionalGradient.from_config(opt.get_config()).get_config() == opt.get_config()
