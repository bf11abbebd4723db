"""Learning-rate schedules Keras lacks, and reduce-on-plateau for every optimlab optimizer.

Every schedule is a ``keras.optimizers.schedules.LearningRateSchedule``,
registered for Keras serialization (``get_config`` / ``from_config``), computed
in float32 from the (0-based) optimizer step, and usable wherever Keras takes
a learning rate::

    opt = optimlab.Adam(learning_rate=optimlab.schedules.WarmupDecay(1e-3, 100, 900))
"""

import math

import keras
import numpy as np
import tensorflow as tf

from optimlab._checks import check_choice, check_int, check_nonnegative, check_positive, check_range

_register = keras.saving.register_keras_serializable(package="optimlab")


def _fraction(step, start, length):
    """Progress through ``[start, start + length]`` clipped to [0, 1]."""
    return tf.clip_by_value((step - start) / max(length, 1), 0.0, 1.0)


def _anneal(kind, start, end, fraction, power=1.0):
    """From ``start`` (fraction 0) to ``end`` (fraction 1) along a cosine, a polynomial or 1 - sqrt."""
    if kind == "cosine":
        return end + (start - end) * 0.5 * (1.0 + tf.cos(math.pi * fraction))
    if kind == "sqrt":
        return end + (start - end) * (1.0 - tf.sqrt(fraction))
    return end + (start - end) * tf.pow(1.0 - fraction, power)


class _Schedule(keras.optimizers.schedules.LearningRateSchedule):
    """Config from the constructor's arguments, which each subclass keeps as attributes."""

    _args = ()

    def get_config(self):
        return {name: getattr(self, name) for name in self._args}

    def __call__(self, step):
        return self.value(tf.cast(step, tf.float32))


@_register
class WarmupDecay(_Schedule):
    """Linear warmup from ``init_value`` to ``peak_value``, then cosine, linear or polynomial decay to ``end_value``.

    ``lr(t) = init + (peak - init) t / warmup_steps`` for ``t < warmup_steps``; then with
    ``f = min(t - warmup_steps, decay_steps) / decay_steps``:
    cosine ``end + (peak - end)(1 + cos(pi f)) / 2``; polynomial ``end + (peak - end)(1 - f)^power``
    (``decay="linear"`` is power 1).

    Args: peak_value; warmup_steps (>= 0); decay_steps (> 0, the length of the
    decay phase after warmup); decay ("cosine", "linear", "polynomial", default
    "cosine"); init_value (default 0.0); end_value (default 0.0); power (default 1.0).

    Conventions: Optax's ``warmup_cosine_decay_schedule(init, peak, warmup, decay_steps, end)``
    counts ``decay_steps`` from step 0 (warmup included); here it is the decay
    phase alone, as Keras' ``CosineDecay(warmup_steps=...)``.

    Example:
        >>> s = WarmupDecay(1.0, warmup_steps=10, decay_steps=10, decay="linear")
        >>> [round(float(s(t)), 2) for t in (0, 5, 10, 15, 20, 30)]
        [0.0, 0.5, 1.0, 0.5, 0.0, 0.0]
    """

    _args = ("peak_value", "warmup_steps", "decay_steps", "decay", "init_value", "end_value", "power")

    def __init__(self, peak_value, warmup_steps, decay_steps, decay="cosine", init_value=0.0, end_value=0.0, power=1.0):
        self.peak_value = float(check_nonnegative("peak_value", peak_value))
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.decay_steps = check_int("decay_steps", decay_steps, 1)
        self.decay = check_choice("decay", decay, ("cosine", "linear", "polynomial"))
        self.init_value = float(check_nonnegative("init_value", init_value))
        self.end_value = float(check_nonnegative("end_value", end_value))
        self.power = float(check_positive("power", power))

    def value(self, step):
        warm = self.init_value + (self.peak_value - self.init_value) * _fraction(step, 0.0, self.warmup_steps)
        kind = "cosine" if self.decay == "cosine" else "polynomial"
        power = 1.0 if self.decay == "linear" else self.power
        decayed = _anneal(kind, self.peak_value, self.end_value, _fraction(step, self.warmup_steps, self.decay_steps), power)
        return tf.where(step < self.warmup_steps, warm, decayed)


@_register
class WarmupStableDecay(_Schedule):
    """Warmup-stable-decay (Hu et al., 2024, MiniCPM): linear warmup, a constant plateau, then a short decay.

    ``init -> peak`` linearly over ``warmup_steps``, ``peak`` for ``stable_steps``,
    then to ``end_value`` over ``decay_steps`` along ``decay`` ("linear",
    "cosine" or "sqrt": ``end + (peak - end)(1 - sqrt(f))``), then ``end_value``.

    Args: peak_value; warmup_steps; stable_steps; decay_steps (> 0); decay
    (default "linear"); init_value (default 0.0); end_value (default 0.0).

    Paper: https://arxiv.org/abs/2404.06395

    Example:
        >>> s = WarmupStableDecay(1.0, warmup_steps=2, stable_steps=4, decay_steps=4)
        >>> [round(float(s(t)), 2) for t in range(0, 12, 2)]
        [0.0, 1.0, 1.0, 1.0, 0.5, 0.0]
    """

    _args = ("peak_value", "warmup_steps", "stable_steps", "decay_steps", "decay", "init_value", "end_value")

    def __init__(self, peak_value, warmup_steps, stable_steps, decay_steps, decay="linear", init_value=0.0, end_value=0.0):
        self.peak_value = float(check_nonnegative("peak_value", peak_value))
        self.warmup_steps = check_int("warmup_steps", warmup_steps, 0)
        self.stable_steps = check_int("stable_steps", stable_steps, 0)
        self.decay_steps = check_int("decay_steps", decay_steps, 1)
        self.decay = check_choice("decay", decay, ("linear", "cosine", "sqrt"))
        self.init_value = float(check_nonnegative("init_value", init_value))
        self.end_value = float(check_nonnegative("end_value", end_value))

    def value(self, step):
        warm = self.init_value + (self.peak_value - self.init_value) * _fraction(step, 0.0, self.warmup_steps)
        start = self.warmup_steps + self.stable_steps
        kind = "polynomial" if self.decay == "linear" else self.decay
        decayed = _anneal(kind, self.peak_value, self.end_value, _fraction(step, start, self.decay_steps))
        return tf.where(step < self.warmup_steps, warm, decayed)


@_register
class OneCycle(_Schedule):
    """One-cycle policy (Smith & Topin, 2017), in torch's ``OneCycleLR`` form (two phases).

    From ``max_value / div_factor`` up to ``max_value`` over the first
    ``pct_start * total_steps - 1`` steps, then down to ``max_value / (div_factor *
    final_div_factor)`` at step ``total_steps - 1``, both along ``anneal``
    ("cos" or "linear"); constant afterwards.

    Args: max_value; total_steps (> 1); pct_start in (0, 1) (default 0.3);
    div_factor (default 25.0); final_div_factor (default 1e4); anneal (default "cos").

    Conventions: torch's defaults and step counting; Optax's ``cosine_onecycle_schedule``
    places the peak at ``pct_start * total_steps`` instead of one step earlier.

    Paper: https://arxiv.org/abs/1708.07120

    Example:
        >>> s = OneCycle(1.0, total_steps=11, pct_start=0.5, div_factor=10.0, final_div_factor=1.0, anneal="linear")
        >>> [round(float(s(t)), 3) for t in (0, 4.5, 10)]
        [0.1, 1.0, 0.1]
    """

    _args = ("max_value", "total_steps", "pct_start", "div_factor", "final_div_factor", "anneal")

    def __init__(self, max_value, total_steps, pct_start=0.3, div_factor=25.0, final_div_factor=1e4, anneal="cos"):
        self.max_value = float(check_nonnegative("max_value", max_value))
        self.total_steps = check_int("total_steps", total_steps, 2)
        self.pct_start = float(check_range("pct_start", pct_start, 0.0, 1.0, low_open=True, high_open=True))
        self.div_factor = float(check_positive("div_factor", div_factor))
        self.final_div_factor = float(check_positive("final_div_factor", final_div_factor))
        self.anneal = check_choice("anneal", anneal, ("cos", "linear"))

    def value(self, step):
        initial = self.max_value / self.div_factor
        final = initial / self.final_div_factor
        peak_step = self.pct_start * self.total_steps - 1.0
        kind = "cosine" if self.anneal == "cos" else "polynomial"
        up = _anneal(kind, initial, self.max_value, tf.clip_by_value(step / peak_step, 0.0, 1.0))
        down_length = self.total_steps - 1.0 - peak_step
        down = _anneal(kind, self.max_value, final, tf.clip_by_value((step - peak_step) / down_length, 0.0, 1.0))
        return tf.where(step <= peak_step, up, down)


@_register
class CyclicalLearningRate(_Schedule):
    """Cyclical learning rate (Smith, 2017): triangles between ``initial_value`` and ``max_value``.

    ``cycle = floor(1 + t / (2 step_size))``, ``x = |t / step_size - 2 cycle + 1|``,
    ``lr = initial + (max - initial) max(0, 1 - x) scale``, with ``scale`` 1
    ("triangular"), ``1 / 2^(cycle - 1)`` ("triangular2") or ``gamma^t`` ("exp_range").

    Args: initial_value; max_value; step_size (> 0, half a cycle); mode
    (default "triangular"); gamma (for "exp_range", default 1.0).

    Conventions: TF Addons' ``TriangularCyclicalLearningRate``,
    ``Triangular2CyclicalLearningRate`` and ``ExponentialCyclicalLearningRate``
    and torch's ``CyclicLR`` give the same values.

    Paper: https://arxiv.org/abs/1506.01186

    Example:
        >>> s = CyclicalLearningRate(0.1, 1.1, step_size=5, mode="triangular2")
        >>> [round(float(s(t)), 2) for t in (0, 5, 10, 15)]
        [0.1, 1.1, 0.1, 0.6]
    """

    _args = ("initial_value", "max_value", "step_size", "mode", "gamma")

    def __init__(self, initial_value, max_value, step_size, mode="triangular", gamma=1.0):
        self.initial_value = float(check_nonnegative("initial_value", initial_value))
        self.max_value = float(check_nonnegative("max_value", max_value))
        self.step_size = float(check_positive("step_size", step_size))
        self.mode = check_choice("mode", mode, ("triangular", "triangular2", "exp_range"))
        self.gamma = float(check_range("gamma", gamma, 0.0, 1.0, low_open=True))

    def value(self, step):
        cycle = tf.floor(1.0 + step / (2.0 * self.step_size))
        x = tf.abs(step / self.step_size - 2.0 * cycle + 1.0)
        scale = {"triangular": 1.0, "triangular2": 1.0 / tf.pow(2.0, cycle - 1.0), "exp_range": tf.pow(self.gamma, step)}[self.mode]
        return self.initial_value + (self.max_value - self.initial_value) * tf.maximum(0.0, 1.0 - x) * scale


@_register
class ScaledSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """``scale * schedule(step)``, with ``scale`` a variable that can change between traced steps.

    ``ReduceLROnPlateau`` installs it on optimizers whose learning rate is a schedule.
    """

    def __init__(self, schedule, scale=1.0):
        if not isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
            raise TypeError(f"schedule must be a LearningRateSchedule; got {schedule!r}")
        self.schedule = schedule
        self.scale = tf.Variable(float(check_nonnegative("scale", scale)), trainable=False, dtype=tf.float32)

    def __call__(self, step):
        return tf.cast(self.schedule(step), tf.float32) * self.scale

    def get_config(self):
        return {"schedule": keras.optimizers.schedules.serialize(self.schedule), "scale": float(self.scale.numpy())}

    @classmethod
    def from_config(cls, config):
        return cls(keras.optimizers.schedules.deserialize(config["schedule"]), config["scale"])


class ReduceLROnPlateau(keras.callbacks.Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has stopped improving.

    Keras' rule: after ``patience`` epochs without an improvement of more than
    ``min_delta``, ``lr <- max(lr * factor, min_lr)``, then wait ``cooldown``
    epochs before counting again. It works with every optimlab optimizer and
    wrapper: a float learning rate is assigned in place; a schedule is wrapped
    once in a ``ScaledSchedule`` whose scale is reduced (``min_lr`` then bounds the
    scale times the schedule's current value).

    Args: monitor (default "val_loss"); factor in (0, 1) (default 0.1); patience
    (default 10); mode "auto", "min" or "max" (default "auto": "max" for names
    containing "acc"); min_delta (default 1e-4); cooldown (default 0); min_lr
    (default 0.0); verbose (default 0).

    Example:
        >>> cb = ReduceLROnPlateau(monitor="loss", factor=0.5, patience=2)
    """

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, mode="auto", min_delta=1e-4, cooldown=0, min_lr=0.0, verbose=0):
        super().__init__()
        self.monitor = monitor
        self.factor = float(check_range("factor", factor, 0.0, 1.0, low_open=True, high_open=True))
        self.patience = check_int("patience", patience, 0)
        self.mode = check_choice("mode", mode, ("auto", "min", "max"))
        self.min_delta = abs(float(check_nonnegative("min_delta", min_delta)))
        self.cooldown = check_int("cooldown", cooldown, 0)
        self.min_lr = float(check_nonnegative("min_lr", min_lr))
        self.verbose = verbose
        self._maximize = mode == "max" or (mode == "auto" and "acc" in monitor)
        self._reset()

    def _reset(self):
        self.best = -np.inf if self._maximize else np.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improved(self, value):
        return value > self.best + self.min_delta if self._maximize else value < self.best - self.min_delta

    def on_train_begin(self, logs=None):
        self._reset()
        optimizer = self.model.optimizer
        if isinstance(optimizer._learning_rate, keras.optimizers.schedules.LearningRateSchedule) and not isinstance(
            optimizer._learning_rate, ScaledSchedule
        ):
            optimizer.learning_rate = ScaledSchedule(optimizer._learning_rate)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"ReduceLROnPlateau monitors {self.monitor!r}, which is not in the logs: {sorted(logs)}")
        value = float(logs[self.monitor])
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best = value
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            self._reduce(epoch)
            self.cooldown_counter = self.cooldown
            self.wait = 0

    def _reduce(self, epoch):
        optimizer = self.model.optimizer
        current = float(np.asarray(optimizer.learning_rate))
        new = max(current * self.factor, self.min_lr)
        if isinstance(optimizer._learning_rate, ScaledSchedule):
            scale = optimizer._learning_rate.scale
            scale.assign(scale * (new / current if current > 0 else 0.0))
        else:
            optimizer.learning_rate = new
        if self.verbose:
            print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new:.4g}.")
