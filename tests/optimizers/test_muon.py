"""Muon against a float64 NumPy transcription of Keller Jordan's reference algorithm (Muon for
matrices, Adam for the rest), against Optax's ``contrib.muon`` (the shape scale on Keras's
(fan_in, fan_out) layout), against keras.optimizers.Muon with its conventions, and checks of
the Newton-Schulz orthogonalization.

The reference code (github.com/KellerJordan/Muon, ``muon_update``) scales the orthogonalized
update by ``sqrt(max(1, rows / cols))`` of torch's (out, in) weight, i.e. ``fan_out / fan_in``;
a Keras kernel is (fan_in, fan_out), so the NumPy transcription below scales by ``cols / rows``.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from reference_harness import closed_loop_problem, run_closed_loop
from optimlab.optimizers.muon import newton_schulz

SHAPES = [(6, 4), (3, 5), (2, 2, 3, 4), (2, 8), (4,), ()]  # tall, wide, conv kernel, 2 -> 8, bias, scalar
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
                fan_in, fan_out = mat.shape  # Keras's layout; the reference's (out, in) is its transpose
                update = _ns5(mat).reshape(g.shape) * max(1.0, fan_out / fan_in) ** 0.5
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


KERAS_FORM = dict(
    momentum_form="sum", rms_rate=0.2, flatten_higher_rank=False, adam_lr_ratio=1.0, adam_beta_2=0.999,
    adam_epsilon=1e-7, adam_epsilon_hat=True,
)


def _run_traced(opt, shapes, seed, dtype):
    """The closed-loop noisy quadratic of ``closed_loop_problem`` (``g = h * w + n_t``), all
    steps inside one ``tf.function``; returns the start and the final parameters."""
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in shapes]
    curvature = [tf.constant(rng.uniform(0.5, 2.0, size=s), dtype) for s in shapes]
    noise = [tf.constant(0.3 * rng.normal(size=(STEPS,) + s), dtype) for s in shapes]
    variables = [keras.Variable(p, dtype=dtype) for p in params]

    @tf.function
    def train():
        for t in tf.range(STEPS):
            opt.apply([h * v + n[t] for h, v, n in zip(curvature, variables, noise)], variables)

    train()
    return params, [np.asarray(v.numpy(), np.float64) for v in variables]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("decay", [None, (2.0**-4, 2.0**-6)], ids=["no-decay", "two-decays"])  # more in test_keras_parity
def test_keras_conventions_match_keras_muon(dtype, decay):
    """Reference: keras.optimizers.Muon, 120 closed-loop steps inside tf.function.

    Tall, wide and 64 -> 8 kernels take the rms_rate scale; a conv kernel, a bias and a
    scalar take Keras's Adam. Equal up to rounding: float32 round-off through 120 steps of
    five matrix iterations. In float64 the hyperparameters are float32-exact, because Keras
    casts Python floats through float32 (``tf.cast(0.9, "float64")``), and Keras's rms_rate
    scale fails for float64 variables (it multiplies by a float32 tensor), so both sides run
    without it (rms_rate=None: no scale in Keras, none here for fan_out <= fan_in).
    """
    rms_rate = 0.2 if dtype == "float32" else None
    shapes = [(6, 4), (3, 5), (64, 8), (2, 2, 3, 4), (4,), ()] if rms_rate else [(6, 4), (5, 5), (64, 8), (4,)]
    wd, adam_wd = decay or (None, None)
    common = dict(learning_rate=2.0**-6, weight_decay=wd, adam_weight_decay=adam_wd, rms_rate=rms_rate,
                  momentum=0.9375, adam_beta_1=0.875, adam_beta_2=1 - 2.0**-10)
    params, theirs = _run_traced(keras.optimizers.Muon(**common), shapes, 4, dtype)
    ours_opt = optimlab.Muon(**dict(KERAS_FORM, **common))
    _, ours = _run_traced(ours_opt, shapes, 4, dtype)
    tol = {"rtol": 2e-5, "atol": 2e-6} if dtype == "float32" else {"rtol": 1e-10, "atol": 1e-12}
    for p, o, k in zip(params, ours, theirs):
        assert np.abs(k - p).max() > 1e-2
        np.testing.assert_allclose(o, k, **tol)


def test_shape_scale_follows_fan_out_over_fan_in_as_optax():
    """Reference: optax.contrib.muon (float64, no Nesterov so that its bias correction is one
    scalar per step, eps 0 on both sides): 64 -> 8, 8 -> 64, 6 -> 4, 3 -> 5 and square kernels."""
    jax = pytest.importorskip("jax")
    optax = pytest.importorskip("optax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    shapes = [(64, 8), (8, 64), (6, 4), (3, 5), (4, 4)]
    params, grads = _problem(5, shapes=shapes)
    lr = 0.03
    ours = _run_optimlab(optimlab.Muon(learning_rate=lr, nesterov=False, epsilon=0.0), params, grads)
    tx = optax.contrib.muon(learning_rate=lr, nesterov=False, eps=0.0, beta=0.95)
    theirs = [jnp.asarray(p, jnp.float64) for p in params]
    state, update = tx.init(theirs), jax.jit(tx.update)
    for t in range(STEPS):
        gs = [jnp.asarray(g, jnp.float64) for g in grads([np.asarray(w) for w in theirs], t)]
        updates, state = update(gs, state, theirs)
        theirs = optax.apply_updates(theirs, updates)
    for p, o, k in zip(params, ours, theirs):
        assert np.abs(np.asarray(k) - p).max() > 0.1
        np.testing.assert_allclose(o, np.asarray(k), rtol=1e-7, atol=1e-9)
    # One step on a 64 -> 8 kernel: Optax's size equals ours, sqrt(8) times less than the former fan_in / fan_out.
    g = np.random.default_rng(0).normal(size=(64, 8))
    w = tf.Variable(np.zeros((64, 8)))
    optimlab.Muon(learning_rate=1.0, nesterov=False, epsilon=0.0).apply_gradients([(tf.constant(g), w)])
    update, _ = tx.update([jnp.asarray(g)], tx.init([jnp.zeros((64, 8))]), [jnp.zeros((64, 8))])
    np.testing.assert_allclose(w.numpy() * lr, np.asarray(update[0]), rtol=1e-9, atol=1e-13)


def test_rms_rate_scale_and_adam_weight_decay_apply():
    """One step from zero momentum: the update's size follows rms_rate * sqrt(max(fan_in, fan_out));
    the bias alone decays with adam_weight_decay."""
    rng = np.random.default_rng(1)
    kernel, bias = tf.Variable(rng.normal(size=(64, 8))), tf.Variable(np.ones(3))
    opt = optimlab.Muon(learning_rate=0.5, rms_rate=0.2, weight_decay=0.125, adam_weight_decay=0.25, adam_lr_ratio=1.0, epsilon=0.0)
    k0 = kernel.numpy().copy()
    g = rng.normal(size=(64, 8))
    opt.apply_gradients([(tf.constant(g), kernel), (tf.zeros(3, tf.float64), bias)])
    direction = (k0 * (1 - 0.5 * 0.125) - kernel.numpy()) / 0.5
    expected = _ns5((1 - 0.95) * g + 0.95 * (1 - 0.95) * g, eps=0.0) * 0.2 * np.sqrt(64)
    np.testing.assert_allclose(direction, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(bias.numpy(), np.ones(3) * (1 - 0.5 * 0.25))


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
        ({"exclude_layers": ["("]}, ValueError, "exclude_layers"),  # compiled up front, as LARS's patterns
        ({"rms_rate": 0.0}, ValueError, "rms_rate"),
        ({"momentum_form": "ema"}, ValueError, "momentum_form"),
        ({"adam_epsilon_hat": 1}, TypeError, "adam_epsilon_hat"),
        ({"adam_weight_decay": -1.0}, ValueError, "adam_weight_decay"),
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


# Keras 3's Muon API (issue 24): its method and argument names, compared with keras.optimizers.Muon.
def test_newton_schulz_method_matches_keras_for_matrices_and_batches():
    rng = np.random.default_rng(7)
    ours, theirs = optimlab.Muon(), keras.optimizers.Muon()
    for shape in [(2, 2), (6, 4), (3, 5), (2, 6, 4), (3, 2, 5)]:
        x = tf.constant(rng.normal(size=shape), tf.float32)
        got = ours.zeropower_via_newtonschulz5(x, 5).numpy()
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(theirs.zeropower_via_newtonschulz5(x, 5)), rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(ours.transpose_last_axis(x).numpy(), keras.ops.convert_to_numpy(theirs.transpose_last_axis(x)))
    x = tf.constant(rng.normal(size=(3, 6, 4)))  # each matrix of the batch on its own
    for i in range(3):
        np.testing.assert_allclose(ours.zeropower_via_newtonschulz5(x, 5)[i].numpy(), _ns5(x[i].numpy()), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 2), (3, 7), (8, 8)])
def test_lr_adjust_matches_keras_with_rms_rate(shape):
    x = tf.constant(np.random.default_rng(1).normal(size=shape), tf.float32)
    ours = optimlab.Muon(rms_rate=0.2).lr_adjust(x).numpy()
    np.testing.assert_allclose(ours, keras.ops.convert_to_numpy(keras.optimizers.Muon(rms_rate=0.2).lr_adjust(x)), rtol=1e-6)
    np.testing.assert_allclose(ours, x.numpy() * 0.2 * max(shape) ** 0.5, rtol=1e-6)


def test_lr_adjust_without_rms_rate_is_the_reference_scale():
    """Keras returns x unchanged; optimlab keeps the reference's sqrt(max(1, fan_out / fan_in)): equal for 6 -> 4."""
    tall, wide = tf.ones((6, 4)), tf.ones((3, 12))
    keras_muon = keras.optimizers.Muon(rms_rate=None)
    np.testing.assert_array_equal(optimlab.Muon().lr_adjust(tall).numpy(), keras.ops.convert_to_numpy(keras_muon.lr_adjust(tall)))
    np.testing.assert_allclose(optimlab.Muon().lr_adjust(wide).numpy(), np.full((3, 12), 2.0))


def test_should_use_adamw_matches_keras():
    model = keras.Sequential([keras.Input((3,), dtype="int32"), keras.layers.Embedding(10, 4), keras.layers.Dense(5, name="hidden"),
                              keras.layers.Dense(2, name="last")])
    conv = keras.Variable(np.ones((3, 3, 2, 4)), name="conv")
    for kwargs in ({}, {"exclude_layers": ["last"]}, {"exclude_embeddings": False}):
        ours, theirs = optimlab.Muon(flatten_higher_rank=False, **kwargs), keras.optimizers.Muon(**kwargs)
        for v in model.trainable_variables + [conv]:
            assert ours._should_use_adamw(v) == theirs._should_use_adamw(v), (kwargs, v.path)
    assert not optimlab.Muon()._should_use_adamw(conv)  # flattened by default, as the reference does


def test_keras_coefficient_names_are_ns_coefficients():
    x = tf.constant(np.random.default_rng(2).normal(size=(5, 3)), tf.float32)
    ours = optimlab.Muon(muon_a=3.0, muon_b=-3.5)
    assert ours.ns_coefficients == (3.0, -3.5, 2.0315) and (ours.muon_a, ours.muon_b, ours.muon_c) == ours.ns_coefficients
    theirs = keras.optimizers.Muon(muon_a=3.0, muon_b=-3.5)
    np.testing.assert_allclose(ours.zeropower_via_newtonschulz5(x, 5).numpy(),
                               keras.ops.convert_to_numpy(theirs.zeropower_via_newtonschulz5(x, 5)), rtol=1e-4, atol=1e-5)
    ours.muon_c = 1.5
    assert ours.ns_coefficients == (3.0, -3.5, 1.5)
    assert optimlab.Muon.from_config(ours.get_config()).ns_coefficients == (3.0, -3.5, 1.5)
    assert {k: ours.get_config()[k] for k in ("muon_a", "muon_b", "muon_c")} == {"muon_a": 3.0, "muon_b": -3.5, "muon_c": 1.5}
    assert optimlab.Muon(ns_coefficients=(2.0, -1.0, 0.5), muon_b=-1.0).ns_coefficients == (2.0, -1.0, 0.5)
    assert optimlab.Muon(ns_coefficients=(1.5, -0.5, 0.0)).ns_coefficients == (1.5, -0.5, 0.0)  # the cubic iteration
    with pytest.raises(ValueError, match="muon_a must"):
        ours.muon_a = -1.0
    assert ours.muon_a == 3.0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: optimlab.Muon(muon_a="x"), TypeError, "muon_a"),
        (lambda: optimlab.Muon(muon_a=0.0), ValueError, r"muon_a must be .*\(0, inf\)"),
        (lambda: optimlab.Muon(muon_c=float("nan")), ValueError, "muon_c"),
        (lambda: optimlab.Muon(ns_coefficients=(3.0, -4.0, -1.0)), ValueError, r"ns_coefficients\[2\] must be .*\[0, inf\)"),
        (lambda: optimlab.Muon(ns_coefficients=(2.0, -1.0, 0.5), muon_b=-4.0), ValueError, "muon_b.*ns_coefficients"),
        (lambda: optimlab.Muon().zeropower_via_newtonschulz5(tf.ones(3), 5), ValueError, "rank >= 2.*\\(3,\\)"),
        (lambda: optimlab.Muon().zeropower_via_newtonschulz5(tf.ones((2, 2)), 0), ValueError, "steps"),
        (lambda: optimlab.Muon().lr_adjust(tf.ones(3)), ValueError, "rank >= 2"),
        (lambda: optimlab.Muon().transpose_last_axis(tf.ones(3)), ValueError, "rank >= 2"),
    ],
)
def test_keras_api_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_weight_decay_runs_in_apply_weight_decay_as_keras():
    """Keras's tests call ``_apply_weight_decay`` alone: matrices decay with weight_decay, the rest with adam_weight_decay."""
    def decayed(opt):
        matrix, scalar = keras.Variable(np.ones((2, 2)), dtype="float32"), keras.Variable(2.0)
        opt._apply_weight_decay([matrix, scalar])
        return keras.ops.convert_to_numpy(matrix), keras.ops.convert_to_numpy(scalar)

    kwargs = dict(learning_rate=0.5, weight_decay=0.25, adam_weight_decay=0.125)
    for o, k in zip(decayed(optimlab.Muon(adam_lr_ratio=1.0, **kwargs)), decayed(keras.optimizers.Muon(**kwargs))):
        np.testing.assert_allclose(o, k, rtol=1e-7)
    matrix, scalar = decayed(optimlab.Muon(learning_rate=0.5, adam_weight_decay=0.125, adam_lr_ratio=0.5))
    np.testing.assert_array_equal(matrix, np.ones((2, 2)))  # no weight_decay: the matrix stays
    assert float(scalar) == 2.0 * (1 - 0.25 * 0.125)  # the fallback decays with lr_a = lr * adam_lr_ratio
