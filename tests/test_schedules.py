"""Schedules against NumPy formulas over >= 100 steps, serialization, and ReduceLROnPlateau against Keras'."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import schedules

STEPS = np.arange(0, 160)


def values(schedule, steps=STEPS):
    traced = tf.function(schedule)
    eager = np.array([float(schedule(int(t))) for t in steps])
    np.testing.assert_allclose([float(traced(tf.constant(t))) for t in steps[::17]], eager[::17], rtol=1e-5, atol=1e-8)
    return eager


def warmup_decay_ref(t, peak, warmup, decay_steps, decay, init, end, power):
    if t < warmup:
        return init + (peak - init) * t / warmup
    f = min(t - warmup, decay_steps) / decay_steps
    if decay == "cosine":
        return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * f))
    return end + (peak - end) * (1 - f) ** (1.0 if decay == "linear" else power)


@pytest.mark.parametrize(
    "args",
    [(0.1, 20, 100, "cosine", 0.0, 0.0, 1.0), (0.5, 10, 80, "linear", 0.05, 0.01, 1.0), (0.3, 0, 120, "polynomial", 0.0, 0.001, 2.0)],
)
def test_warmup_decay(args):
    expected = [warmup_decay_ref(t, *args) for t in STEPS]
    np.testing.assert_allclose(values(schedules.WarmupDecay(*args)), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("decay", ["linear", "cosine", "sqrt"])
def test_warmup_stable_decay(decay):
    def ref(t, peak=0.2, warmup=15, stable=60, length=50, init=0.0, end=0.002):
        if t < warmup:
            return init + (peak - init) * t / warmup
        f = min(max(t - warmup - stable, 0), length) / length
        shape = {"linear": 1 - f, "cosine": 0.5 * (1 + math.cos(math.pi * f)), "sqrt": 1 - math.sqrt(f)}[decay]
        return end + (peak - end) * shape

    s = schedules.WarmupStableDecay(0.2, 15, 60, 50, decay=decay, end_value=0.002)
    np.testing.assert_allclose(values(s), [ref(t) for t in STEPS], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("anneal", ["cos", "linear"])
def test_one_cycle_matches_torch_formula(anneal):
    """torch.optim.lr_scheduler.OneCycleLR (two phases), transcribed."""
    max_lr, total, pct, div, final_div = 0.4, 150, 0.25, 25.0, 1e3

    def interp(start, end, f):
        return end + (start - end) / 2 * (math.cos(math.pi * f) + 1) if anneal == "cos" else (end - start) * f + start

    def ref(t):
        initial, minimum = max_lr / div, max_lr / div / final_div
        peak = pct * total - 1
        if t <= peak:
            return interp(initial, max_lr, t / peak)
        return interp(max_lr, minimum, min((t - peak) / (total - 1 - peak), 1.0))

    s = schedules.OneCycle(max_lr, total, pct_start=pct, div_factor=div, final_div_factor=final_div, anneal=anneal)
    np.testing.assert_allclose(values(s), [ref(t) for t in STEPS], rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("mode, gamma", [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.99)])
def test_cyclical(mode, gamma):
    def ref(t, lo=0.01, hi=0.1, half=12.0):
        cycle = math.floor(1 + t / (2 * half))
        x = abs(t / half - 2 * cycle + 1)
        scale = {"triangular": 1.0, "triangular2": 1 / 2 ** (cycle - 1), "exp_range": gamma**t}[mode]
        return lo + (hi - lo) * max(0.0, 1 - x) * scale

    s = schedules.CyclicalLearningRate(0.01, 0.1, 12, mode=mode, gamma=gamma)
    np.testing.assert_allclose(values(s), [ref(t) for t in STEPS], rtol=1e-5, atol=1e-8)


SCHEDULES = [
    schedules.WarmupDecay(0.1, 5, 50, decay="polynomial", power=2.0),
    schedules.WarmupStableDecay(0.1, 5, 10, 20, decay="sqrt"),
    schedules.OneCycle(0.1, 100, anneal="linear"),
    schedules.CyclicalLearningRate(0.01, 0.1, 8, mode="exp_range", gamma=0.95),
    schedules.ScaledSchedule(schedules.OneCycle(0.1, 100), 0.5),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: type(s).__name__)
def test_serialization_round_trip(schedule):
    clone = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert type(clone) is type(schedule)
    assert clone.get_config() == schedule.get_config()
    np.testing.assert_allclose(values(clone, STEPS[:40]), values(schedule, STEPS[:40]))


def test_schedule_drives_an_optimizer_and_survives_get_config():
    opt = optimlab.SGD(learning_rate=schedules.WarmupDecay(0.5, 4, 10, decay="linear"))
    x = tf.Variable(1.0)
    for _ in range(3):
        opt.apply_gradients([(tf.constant(1.0), x)])
    # lr at steps 0, 1, 2: 0, 0.125, 0.25
    np.testing.assert_allclose(x.numpy(), 1.0 - 0.375, rtol=1e-6)
    clone = optimlab.SGD.from_config(opt.get_config())
    assert isinstance(clone._learning_rate, schedules.WarmupDecay)


@pytest.mark.parametrize(
    "make, kwargs, match",
    [
        (schedules.WarmupDecay, {"peak_value": 0.1, "warmup_steps": -1, "decay_steps": 10}, "warmup_steps"),
        (schedules.WarmupDecay, {"peak_value": 0.1, "warmup_steps": 1, "decay_steps": 10, "decay": "step"}, "decay"),
        (schedules.OneCycle, {"max_value": 0.1, "total_steps": 10, "pct_start": 1.0}, "pct_start"),
        (schedules.CyclicalLearningRate, {"initial_value": 0.1, "max_value": 1.0, "step_size": 0}, "step_size"),
        (schedules.CyclicalLearningRate, {"initial_value": 0.1, "max_value": 1.0, "step_size": 2, "mode": "sine"}, "mode"),
        (schedules.ReduceLROnPlateau, {"factor": 1.5}, "factor"),
    ],
)
def test_bad_arguments_are_named(make, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


class _Holder:
    """The part of a model a learning-rate callback touches."""

    def __init__(self, optimizer):
        self.optimizer = optimizer


def _drive(callback, optimizer, losses):
    callback.set_model(_Holder(optimizer))
    callback.on_train_begin()
    out = []
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        out.append(float(np.asarray(optimizer.learning_rate)))
    return np.array(out)


def _plateau_losses(n=120):
    rng = np.random.default_rng(0)
    return 1.0 / np.sqrt(1 + np.arange(n)) + 0.05 * rng.standard_normal(n)


@pytest.mark.parametrize("patience, cooldown, min_lr", [(3, 0, 0.0), (2, 2, 1e-4)])
def test_reduce_on_plateau_matches_keras(patience, cooldown, min_lr):
    losses = _plateau_losses()
    kwargs = {"factor": 0.5, "patience": patience, "cooldown": cooldown, "min_lr": min_lr, "min_delta": 1e-3}
    theirs = _drive(keras.callbacks.ReduceLROnPlateau(**kwargs), keras.optimizers.SGD(0.1), losses)
    ours = _drive(schedules.ReduceLROnPlateau(**kwargs), optimlab.Adam(learning_rate=0.1), losses)
    assert theirs[-1] < 0.1  # the sequence does plateau
    np.testing.assert_allclose(ours, theirs, rtol=1e-6)


def test_reduce_on_plateau_scales_a_schedule():
    schedule = schedules.WarmupDecay(0.1, 0, 1000, decay="linear")
    opt = optimlab.SGD(learning_rate=schedule)
    _drive(schedules.ReduceLROnPlateau(factor=0.5, patience=1), opt, [1.0, 1.0, 1.0, 1.0, 1.0])
    assert isinstance(opt._learning_rate, schedules.ScaledSchedule)
    np.testing.assert_allclose(float(opt.learning_rate), 0.1 * 0.5**4, rtol=1e-6)


def test_reduce_on_plateau_in_fit():
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimlab.Adam(learning_rate=0.1), loss="mse")
    x = np.zeros((8, 1), "float32")
    model.fit(x, np.ones((8, 1)), epochs=4, verbose=0, callbacks=[schedules.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=10.0)])
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 0.1 * 0.5**3, rtol=1e-6)
