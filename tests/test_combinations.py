"""Every registered optimizer x each feature it can be combined with, against the uncombined reference.

Features: gradient accumulation (k micro-steps == one step on their mean, weight
decay applied once), EMA (the moving average of the plain run's trajectory),
clipping (== the plain optimizer on clipped gradients), a learning-rate schedule
(== setting the number before each step), decoupled weight decay (== decaying
by hand, then the plain step), ``tf.function`` (== eager), ``fit`` and
save/load (one model with a branch per optimizer, against a hand-written eager
loop; a saved and reloaded model continues exactly as the original), and
MirroredStrategy (two replicas == one device with the summed gradient).

The gradients are a fixed sequence (not a function of the iterate), so every
run sees the same inputs; float64 throughout where the path allows.
"""

import functools

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab.optimizer import Optimizer

ENTRIES = optimlab.entries()
IDS = [entry.name for entry in ENTRIES]
X0 = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
GRADS = [np.cos(X0 * (n + 1)) + 0.1 * n for n in range(4)]
TIGHT = dict(rtol=1e-11, atol=1e-13)


def make(entry, **extra):
    return entry.cls(**{**entry.quadratic.kwargs, **extra})


def run(opt, grads, before_step=None, compiled=False):
    x = tf.Variable(X0)
    step = tf.function(opt.apply_gradients) if compiled else opt.apply_gradients
    for n, g in enumerate(grads):
        if before_step is not None:
            before_step(n, opt, x)
        step([(tf.constant(g), x)])
    return x


@functools.cache
def plain_trajectory(name):
    """The iterates of the plain optimizer (recipe kwargs, eager) after each step."""
    trajectory = []
    x = run(make(optimlab.info(name)), GRADS, before_step=lambda n, o, v: trajectory.append(v.numpy().copy()))
    return trajectory[1:] + [x.numpy()]


def decays_itself(entry):
    return entry.cls._apply_weight_decay is not Optimizer._apply_weight_decay


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_accumulation_equals_one_step_on_the_averaged_gradient_with_decay_once(entry):
    accumulated = run(make(entry, gradient_accumulation_steps=2, weight_decay=0.05), GRADS)
    means = [np.mean(GRADS[i : i + 2], axis=0) for i in (0, 2)]
    reference = run(make(entry, weight_decay=0.05), means)
    np.testing.assert_allclose(accumulated.numpy(), reference.numpy(), **TIGHT)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_ema_is_the_moving_average_of_the_plain_trajectory(entry):
    opt = make(entry, use_ema=True, ema_momentum=0.75)
    x = run(opt, GRADS)
    trajectory = plain_trajectory(entry.name)
    plain = trajectory[-1]
    average = trajectory[0]  # Keras: the first step copies the weights
    for value in trajectory[1:]:
        average = 0.75 * average + 0.25 * value
    np.testing.assert_allclose(x.numpy(), plain, **TIGHT)
    np.testing.assert_allclose(opt._model_variables_moving_average[0].numpy(), average, **TIGHT)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_clipping_equals_the_plain_optimizer_on_clipped_gradients(entry):
    clipped = run(make(entry, clipnorm=0.5), GRADS)
    by_hand = [g * min(1.0, 0.5 / np.linalg.norm(g)) for g in GRADS]
    reference = run(make(entry), by_hand)
    np.testing.assert_allclose(clipped.numpy(), reference.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_schedule_equals_setting_the_learning_rate_before_each_step(entry):
    lr = entry.quadratic.kwargs.get("learning_rate", 0.05)
    schedule = keras.optimizers.schedules.PiecewiseConstantDecay([1, 2], [lr, lr / 2, lr / 4])
    scheduled = run(make(entry, learning_rate=schedule), GRADS)

    def set_rate(n, opt, _):
        opt.learning_rate = float(schedule(n).numpy())

    reference = run(make(entry), GRADS, before_step=set_rate)
    np.testing.assert_allclose(scheduled.numpy(), reference.numpy(), **TIGHT)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_decoupled_weight_decay_equals_decaying_by_hand_then_the_plain_step(entry):
    if decays_itself(entry):
        pytest.skip(f"{entry.name} applies weight decay inside its own rule (its reference test covers it)")
    decayed = run(make(entry, weight_decay=0.05), GRADS)

    def decay(n, opt, x):
        x.assign(x - x * (0.05 * float(opt.learning_rate)))

    reference = run(make(entry, weight_decay=0.0), GRADS, before_step=decay)
    np.testing.assert_allclose(decayed.numpy(), reference.numpy(), **TIGHT)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_tf_function_equals_eager(entry):
    compiled = run(make(entry), GRADS, compiled=True)
    np.testing.assert_allclose(compiled.numpy(), plain_trajectory(entry.name)[-1], **TIGHT)


# ----------------------------------------------- fit and save/load: all at once
def _branch_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    outputs = [keras.layers.Dense(2, name=f"b_{entry.name}")(inputs) for entry in ENTRIES]
    return keras.Model(inputs, keras.layers.Concatenate()(outputs))


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(12, 3)).astype("float32"), rng.normal(size=(12, 2 * len(ENTRIES))).astype("float32")


def _per_branch_optimizer():
    groups = [(f"b_{entry.name}/", make(entry)) for entry in ENTRIES]
    return optimlab.PerVariableOptimizer(optimlab.SGD(0.0), groups)


def test_fit_and_save_load_for_every_optimizer(tmp_path):
    inputs, targets = _data()
    model = _branch_model()
    model.compile(_per_branch_optimizer(), "mse")
    model.fit(inputs, targets, batch_size=4, shuffle=False, verbose=0)  # 3 steps, one trace

    # reference: a hand-written eager loop, each optimizer on its own branch
    reference = _branch_model()
    optimizers = {entry.name: make(entry) for entry in ENTRIES}
    for start in range(0, 12, 4):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(reference(inputs[start : start + 4]) - targets[start : start + 4]))
        grads = tape.gradient(loss, reference.trainable_variables)
        for entry in ENTRIES:
            pairs = [(g, v) for g, v in zip(grads, reference.trainable_variables) if v.path.startswith(f"b_{entry.name}/")]
            optimizers[entry.name].apply_gradients(pairs)
    failures = []
    for entry in ENTRIES:
        ours = model.get_layer(f"b_{entry.name}").get_weights()
        theirs = reference.get_layer(f"b_{entry.name}").get_weights()
        if not all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(ours, theirs)):
            failures.append(entry.name)
    assert not failures, f"fit differs from the eager reference for {failures}"

    # save/load: the reloaded model continues exactly as the original
    model.save(tmp_path / "all.keras")
    loaded = keras.saving.load_model(tmp_path / "all.keras")
    for a, b in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    for m in (model, loaded):  # two more steps, eagerly (no second trace of 31 optimizers)
        for start in (0, 4):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(m(inputs[start : start + 4]) - targets[start : start + 4]))
            m.optimizer.apply_gradients(zip(tape.gradient(loss, m.trainable_variables), m.trainable_variables))
    failures = []
    for entry in ENTRIES:
        pairs = zip(model.get_layer(f"b_{entry.name}").get_weights(), loaded.get_layer(f"b_{entry.name}").get_weights())
        if not all(np.array_equal(a, b) for a, b in pairs):
            failures.append(entry.name)
    assert not failures, f"a reloaded model continues differently for {failures}"


# ------------------------------------------------------ MirroredStrategy: all at once
def test_mirrored_strategy_equals_one_device_for_every_optimizer(mirrored):
    with mirrored.scope():
        variables = {entry.name: tf.Variable(X0) for entry in ENTRIES}
        optimizers = {entry.name: make(entry) for entry in ENTRIES}
        for name, opt in optimizers.items():
            opt.build([variables[name]])

    @tf.function
    def step(g):
        def replica_fn():
            # replica r holds a quarter or three quarters: the cross-replica sum is g
            share = tf.where(tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0), 0.25, 0.75)
            for name, opt in optimizers.items():
                opt.apply_gradients([(tf.cast(share, tf.float64) * g, variables[name])])

        mirrored.run(replica_fn)

    for g in GRADS:
        step(tf.constant(g))
    failures = []
    for entry in ENTRIES:
        reference = plain_trajectory(entry.name)[-1]
        replicas = [component.numpy() for component in variables[entry.name].values]
        if not (np.allclose(replicas[0], reference, rtol=1e-9, atol=1e-12) and np.array_equal(replicas[0], replicas[1])):
            failures.append(entry.name)
    assert not failures, f"MirroredStrategy differs from one device for {failures}"
