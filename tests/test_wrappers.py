"""Wrappers against NumPy transcriptions over >= 100 steps; EMA, SWA and accumulation also under MirroredStrategy."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import wrappers

STEPS = 120
X0 = np.array([1.5, -2.0, 0.3, 0.7])


def grad(x):
    return 0.8 * (x - 0.5) + 0.3 * np.cos(3 * x)


def run(opt, steps=STEPS, x0=X0):
    x = tf.Variable(x0)
    for _ in range(steps):
        opt.apply_gradients([(tf.constant(grad(x.numpy())), x)])
    return x


def sgd_momentum_step(x, u, lr=0.05, momentum=0.9):
    u = momentum * u - lr * grad(x)
    return x + u, u


def two_cpus():
    # The session's one strategy (conftest.py): several in one process can collide.
    from conftest import _mirrored_strategy

    if _mirrored_strategy() is None:
        pytest.skip("needs two logical CPUs (tests/conftest.py splits the CPU)")
    return _mirrored_strategy()


def test_lookahead_matches_numpy_reference():
    k, alpha = 5, 0.4
    x, u, slow = X0.copy(), np.zeros_like(X0), X0.copy()
    for n in range(1, STEPS + 1):
        x, u = sgd_momentum_step(x, u)
        if n % k == 0:
            slow = slow + alpha * (x - slow)
            x = slow.copy()
    opt = wrappers.Lookahead(optimlab.SGD(0.05, momentum=0.9), sync_period=k, slow_step_size=alpha)
    np.testing.assert_allclose(run(opt).numpy(), x, rtol=1e-10, atol=1e-12)


def test_swa_matches_numpy_reference_and_swaps():
    start, period = 30, 7
    x, u, avg, count = X0.copy(), np.zeros_like(X0), np.zeros_like(X0), 0
    for n in range(STEPS):
        x, u = sgd_momentum_step(x, u)
        if n >= start and (n - start) % period == 0:
            avg = (avg * count + x) / (count + 1)
            count += 1
    swa = wrappers.SWA(optimlab.SGD(0.05, momentum=0.9), start_averaging=start, average_period=period)
    var = run(swa)
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-10)
    with wrappers.swapped_weights(swa):
        np.testing.assert_allclose(var.numpy(), avg, rtol=1e-10)
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-10)
    swa.assign_average_vars()
    np.testing.assert_allclose(var.numpy(), avg, rtol=1e-10)


def ema_reference(momentum=0.9, steps=STEPS):
    """Keras' EMA: the average starts as a copy of the weights after the first step."""
    x, u, ema = X0.copy(), np.zeros_like(X0), None
    for _ in range(steps):
        x, u = sgd_momentum_step(x, u)
        ema = x.copy() if ema is None else momentum * ema + (1 - momentum) * x
    return x, ema


def test_ema_swap_matches_numpy_reference():
    opt = optimlab.SGD(0.05, momentum=0.9, use_ema=True, ema_momentum=0.9)
    var = run(opt)
    x, ema = ema_reference()
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-10)
    with wrappers.swapped_weights(opt):
        np.testing.assert_allclose(var.numpy(), ema, rtol=1e-6)  # Keras keeps ema_momentum in float32
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-10)


def _mirrored_run(strategy, make_opt, steps, per_replica_grads):
    """Apply ``per_replica_grads(step, replica, x)`` under ``strategy``; returns (variable, optimizer)."""
    with strategy.scope():
        x = tf.Variable(X0)
        opt = make_opt()
        opt.build([x])

    @tf.function
    def step(n):
        def replica_fn():
            ctx = tf.distribute.get_replica_context()
            g = tf.numpy_function(lambda n, r, xv: per_replica_grads(int(n), int(r), xv), [n, ctx.replica_id_in_sync_group, x.read_value()], tf.float64)
            opt.apply_gradients([(tf.reshape(g, X0.shape), x)])

        strategy.run(replica_fn)

    for n in range(steps):
        step(tf.constant(n))
    return x, opt


def replica_grad(n, r, x):
    """Half of the gradient on each replica, plus a replica-dependent part that cancels in the sum."""
    return 0.5 * grad(x) + (0.1 if r == 0 else -0.1) * np.sin(n + x)


def test_ema_and_swa_under_mirrored_strategy():
    strategy = two_cpus()
    steps = 100
    var, opt = _mirrored_run(strategy, lambda: optimlab.SGD(0.05, momentum=0.9, use_ema=True, ema_momentum=0.9), steps, replica_grad)
    x, ema = ema_reference(steps=steps)
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-9)
    with strategy.scope(), wrappers.swapped_weights(opt):
        for component in strategy.experimental_local_results(var):
            np.testing.assert_allclose(component.numpy(), ema, rtol=1e-6)

    var, swa = _mirrored_run(strategy, lambda: wrappers.SWA(optimlab.SGD(0.05, momentum=0.9), start_averaging=10, average_period=5), steps, replica_grad)
    x, u, avg, count = X0.copy(), np.zeros_like(X0), np.zeros_like(X0), 0
    for n in range(steps):
        x, u = sgd_momentum_step(x, u)
        if n >= 10 and (n - 10) % 5 == 0:
            avg, count = (avg * count + x) / (count + 1), count + 1
    np.testing.assert_allclose(var.numpy(), x, rtol=1e-9)
    for component in strategy.experimental_local_results(swa.get_slot(var, "average")):
        np.testing.assert_allclose(component.numpy(), avg, rtol=1e-9)


def test_gradient_accumulation_under_mirrored_strategy():
    """Keras' gradient_accumulation_steps with optimlab's cross-replica sum: the mean of k summed gradients."""
    strategy = two_cpus()
    k, micro_steps = 4, 120
    var, _ = _mirrored_run(strategy, lambda: optimlab.Adam(0.05, gradient_accumulation_steps=k), micro_steps, replica_grad)
    x, m, v = X0.copy(), np.zeros_like(X0), np.zeros_like(X0)
    acc = np.zeros_like(X0)
    t = 0
    for n in range(micro_steps):
        acc = acc + replica_grad(n, 0, x) + replica_grad(n, 1, x)
        if (n + 1) % k == 0:
            g, acc, t = acc / k, np.zeros_like(X0), t + 1
            m = 0.9 * m + 0.1 * g
            v = 0.999 * v + 0.001 * g * g
            x = x - 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-7)
    for component in strategy.experimental_local_results(var):
        np.testing.assert_allclose(component.numpy(), x, rtol=1e-9, atol=1e-12)


def _two_layer_model():
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="backbone"), keras.layers.Dense(1, name="head")])


def test_per_variable_optimizers_and_multipliers():
    a, b = tf.Variable(X0, name="backbone_kernel"), tf.Variable(X0, name="head_kernel")
    opt = wrappers.lr_multipliers(optimlab.SGD(0.1), {"backbone*": 0.1})
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(grad(v.numpy())), v) for v in (a, b)])
    xa, xb = X0.copy(), X0.copy()
    for _ in range(STEPS):
        xa, xb = xa - 0.01 * grad(xa), xb - 0.1 * grad(xb)
    np.testing.assert_allclose(a.numpy(), xa, rtol=1e-10)
    np.testing.assert_allclose(b.numpy(), xb, rtol=1e-10)
    opt.learning_rate = 0.5
    assert float(opt.learning_rate) == 0.5
    np.testing.assert_allclose(float(opt.groups[0][1].learning_rate), 0.05)


def test_per_variable_with_layers_in_fit_and_lr_callback():
    model = _two_layer_model()
    adam, sgd = optimlab.Adam(0.01), optimlab.SGD(0.1)
    model.compile(optimizer=wrappers.PerVariableOptimizer(adam, [(model.get_layer("head"), sgd)]), loss="mse")
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.01 / (epoch + 1))
    x, y = np.random.default_rng(0).normal(size=(16, 3)), np.ones((16, 1))
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[schedule])
    assert int(adam.iterations) == 6 and int(sgd.iterations) == 6
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.01 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(sgd.learning_rate), 0.1 / 3, rtol=1e-6)


def test_decoupled_weight_decay_with_exclusion():
    w, bias = tf.Variable(X0, name="kernel"), tf.Variable(X0, name="bias")
    opt = wrappers.decoupled_weight_decay(optimlab.SGD(0.05, momentum=0.9), 0.1, exclude=["bias"])
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(grad(v.numpy())), v) for v in (w, bias)])
    x, u, xb, ub = X0.copy(), np.zeros_like(X0), X0.copy(), np.zeros_like(X0)
    for _ in range(STEPS):
        g = grad(x)
        x = x - 0.05 * 0.1 * x
        u = 0.9 * u - 0.05 * g
        x = x + u
        xb, ub = sgd_momentum_step(xb, ub)
    np.testing.assert_allclose(w.numpy(), x, rtol=1e-7)  # Keras rounds weight_decay to float32
    np.testing.assert_allclose(bias.numpy(), xb, rtol=1e-10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: wrappers.Lookahead(optimlab.Adam(0.01), sync_period=3),
        lambda: wrappers.SWA(optimlab.SGD(0.1), start_averaging=2, average_period=3),
        lambda: wrappers.lr_multipliers(optimlab.Adam(0.01), {"bias": 2.0}),
    ],
)
def test_wrappers_serialize(make):
    opt = make()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(opt))
    assert type(clone) is type(opt) and clone.get_config() == opt.get_config()


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: wrappers.Lookahead(optimlab.SGD(), sync_period=0), "sync_period"),
        (lambda: wrappers.Lookahead(optimlab.SGD(), slow_step_size=2.0), "slow_step_size"),
        (lambda: wrappers.SWA("sgd"), "optimizer"),
        (lambda: wrappers.SWA(optimlab.SGD(), average_period=0), "average_period"),
        (lambda: wrappers.decoupled_weight_decay(optimlab.SGD(), -1.0), "weight_decay"),
        (lambda: wrappers.lr_multipliers(optimlab.SGD(), {"bias": -1.0}), "multiplier"),
        (lambda: wrappers.swapped_weights(optimlab.SGD()).__enter__(), "use_ema"),
    ],
)
def test_bad_arguments_are_named(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
