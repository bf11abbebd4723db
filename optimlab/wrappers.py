"""Optimizer wrappers: Lookahead, SWA, per-variable optimizers and learning-rate
multipliers, decoupled weight decay, and averaged weights swapped in for evaluation.

What Keras 3 already does right is used, not rewritten (every optimlab optimizer
passes these through):

* exponential moving average of the weights: ``use_ema=True, ema_momentum=0.99``;
  swap it in for evaluation with ``keras.callbacks.SwapEMAWeights`` (in ``fit``)
  or ``swapped_weights(optimizer)`` (custom loops);
* gradient accumulation: ``gradient_accumulation_steps=k`` averages ``k``
  gradients and applies them once; optimlab's base class does it with a single
  merge call, so it also works under ``MirroredStrategy`` (Keras 3's own
  accumulation calls ``merge_call`` inside ``ops.cond`` there and fails);
* decoupled weight decay with exclusions: ``decoupled_weight_decay`` below.

A wrapper is itself an ``optimlab.Optimizer``: it goes to ``model.compile``, its
``learning_rate`` reads and sets the wrapped optimizer's (so Keras' learning-rate
callbacks work), and it serializes with the wrapped optimizer inside.
"""

import contextlib
import fnmatch

import keras
import tensorflow as tf

from optimlab import _validation as checks
from optimlab._checks import check_int, check_nonnegative, check_range
from optimlab.optimizer import Optimizer

_register = keras.saving.register_keras_serializable(package="optimlab")


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def _check_optimizer(name, value):
    if not isinstance(value, keras.optimizers.Optimizer):
        raise TypeError(f"{name} must be a keras.optimizers.Optimizer (e.g. an optimlab optimizer); got {value!r}")
    return value


def update_in_place(strategy, variables, slots, fn):
    """``var, slot <- fn(var, slot)`` for each pair, on every replica (merge_call under tf.distribute)."""

    def update(var, slot):
        new_var, new_slot = fn(var, slot)
        slot.assign(new_slot)
        var.assign(new_var)

    def merged(distribution, variables, slots):
        for var, slot in zip(variables, slots):
            distribution.extended.update(var, update, args=(slot,), group=False)

    tf.__internal__.distribute.interim.maybe_merge_call(
        merged, strategy, [_tf_variable(v) for v in variables], [_tf_variable(s) for s in slots]
    )


@contextlib.contextmanager
def swapped_weights(optimizer, variables=None):
    """Swap averaged weights into the model for the ``with`` block, then swap back.

    Works for Keras' EMA (``use_ema=True``) and for ``SWA``. Call it outside
    ``strategy.run`` (in cross-replica context) under ``tf.distribute``.

    Example:
        >>> import keras, optimlab
        >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        >>> opt = optimlab.Adam(use_ema=True)
        >>> opt.build(model.trainable_variables)
        >>> with optimlab.wrappers.swapped_weights(opt):
        ...     pass  # evaluate here
    """
    if isinstance(optimizer, SWA):
        variables, averages = optimizer._averaged()
    elif getattr(optimizer, "use_ema", False) and optimizer.built:
        variables, averages = optimizer._trainable_variables, optimizer._model_variables_moving_average
    else:
        raise ValueError(f"optimizer must be an SWA wrapper or a built optimizer with use_ema=True; got {optimizer!r}")
    saved = [tf.identity(_tf_variable(v)) for v in variables]
    for var, avg in zip(variables, averages):
        _tf_variable(var).assign(_tf_variable(avg))
    try:
        yield
    finally:
        for var, value in zip(variables, saved):
            _tf_variable(var).assign(value)


def decoupled_weight_decay(optimizer, weight_decay, exclude=("bias", "norm")):
    """Give any optimizer decoupled weight decay ``x <- x - lr * weight_decay * x``, skipping names in ``exclude``.

    The decay is Keras 3's own (applied before the optimizer's step, scaled by
    the learning rate as in AdamW / Loshchilov & Hutter, 2019); ``exclude`` holds
    substrings of variable names (``exclude_from_weight_decay(var_names=...)``).
    Call it before the optimizer is built. Returns ``optimizer``.

    Conventions: TF Addons' ``SGDW`` / ``AdamW`` decay by ``weight_decay`` alone
    (not times the learning rate); with a constant ``lr`` pass ``weight_decay / lr``
    to get the same update. torch's ``AdamW`` and Optax's ``adamw`` scale by ``lr``
    as here.

    Paper: https://arxiv.org/abs/1711.05101

    Example:
        >>> import optimlab
        >>> opt = decoupled_weight_decay(optimlab.SGD(0.1, momentum=0.9), 1e-4, exclude=["bias"])
        >>> opt.weight_decay
        0.0001
    """
    _check_optimizer("optimizer", optimizer)
    check_nonnegative("weight_decay", weight_decay)
    if isinstance(exclude, str) or not all(isinstance(e, str) for e in exclude):
        raise TypeError(f"exclude must be a list of name substrings; got {exclude!r}")
    if optimizer.built:
        raise ValueError(f"decoupled_weight_decay must be called before {optimizer.name!r} is built (before its first step)")
    optimizer.weight_decay = float(weight_decay)
    optimizer.exclude_from_weight_decay(var_names=list(exclude))
    return optimizer


class _Wrapper(Optimizer):
    """Holds ``optimizer``, applies it, then runs ``_after_apply``; the learning rate is the wrapped one's."""

    def __init__(self, optimizer, name):
        super().__init__(learning_rate=0.0, name=name)
        self.optimizer = _check_optimizer("optimizer", optimizer)

    @property
    def learning_rate(self):
        return self.optimizer.learning_rate

    def __setattr__(self, name, value):
        # Keras' base intercepts ``learning_rate`` assignments; route them to the wrapped optimizer(s).
        if name == "learning_rate" and "optimizer" in self.__dict__:
            self._set_learning_rate(value)
        else:
            super().__setattr__(name, value)

    def _set_learning_rate(self, value):
        self.optimizer.learning_rate = value

    @property
    def _learning_rate(self):
        return self.optimizer._learning_rate if "optimizer" in self.__dict__ else None

    @_learning_rate.setter
    def _learning_rate(self, value):
        if "optimizer" in self.__dict__:
            self.optimizer._learning_rate = value

    @property
    def variables(self):
        return self._variables + list(self.optimizer.variables)

    def build(self, var_list):
        if self.built:
            return
        self.optimizer.build(var_list)
        super().build(var_list)

    def _hyper_sources(self):
        # The learning rate is the wrapped optimizer's, saved there; the wrapper's
        # own store stays as created (saving must not change any variable).
        sources, stores = super()._hyper_sources()
        del sources["learning_rate"], stores["learning_rate"]
        return sources, stores

    def _checked(self, grads, trainable_variables):
        """Validate like ``Optimizer.apply`` (before anything changes); build if need be."""
        grads = list(grads)
        variables = self._trainable_variables if trainable_variables is None else list(trainable_variables)
        checks.check_apply_inputs(grads, variables)
        checks.check_indices(grads, variables)
        if not self.built:
            self.build(variables)
        return grads, variables

    def apply(self, grads, trainable_variables=None):
        grads, variables = self._checked(grads, trainable_variables)
        before = tf.identity(self.optimizer.iterations)
        self.optimizer.apply(grads, variables)
        # False for an accumulation micro-step or a skipped non-finite step: the
        # wrapper then changes nothing either.
        applied = tf.not_equal(tf.identity(self.optimizer.iterations), before)
        self._after_apply(variables, applied)
        self._iterations.assign_add(tf.cast(applied, self._iterations.dtype))

    def _after_apply(self, variables, applied):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "optimizer": keras.saving.serialize_keras_object(self.optimizer)}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["optimizer"] = keras.saving.deserialize_keras_object(config["optimizer"], custom_objects=custom_objects)
        return cls(**config)


@_register
class Lookahead(_Wrapper):
    """Lookahead (Zhang et al., 2019): every ``sync_period`` steps, pull slow weights towards the fast ones.

    Use it around Adam or SGD for steadier training with little tuning.

    Update rule (after the wrapped optimizer's step ``n``, ``phi`` the slow weights, starting at ``x``)::

        if n % sync_period == 0:  phi <- phi + slow_step_size * (x - phi);  x <- phi

    Args:
        optimizer: the inner ("fast") optimizer.
        sync_period: ``k`` >= 1 (default 6, TF Addons').
        slow_step_size: ``alpha`` in [0, 1] (default 0.5).

    Conventions: TF Addons' defaults and counting (the inner optimizer's steps).

    Paper: https://arxiv.org/abs/1907.08610

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.wrappers.Lookahead(optimlab.SGD(0.1), sync_period=2, slow_step_size=0.5)
        >>> for _ in range(2): _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.82
    """

    def __init__(self, optimizer, sync_period=6, slow_step_size=0.5, name="lookahead"):
        super().__init__(optimizer, name)
        self.sync_period = check_int("sync_period", sync_period, 1)
        self.slow_step_size = float(check_range("slow_step_size", slow_step_size, 0.0, 1.0))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "slow", initializer=lambda shape, dtype=None, v=var: tf.cast(_tf_variable(v), dtype))

    def _after_apply(self, variables, applied):
        sync = tf.logical_and(applied, tf.equal(self.optimizer.iterations % self.sync_period, 0))

        def pull(fast, slow):
            alpha = tf.constant(self.slow_step_size, fast.dtype)
            new_slow = tf.where(sync, slow + alpha * (fast - slow), slow)
            return tf.where(sync, new_slow, fast), new_slow

        update_in_place(self._distribution_strategy, variables, [self.get_slot(v, "slow") for v in variables], pull)

    def get_config(self):
        return {**super().get_config(), "sync_period": self.sync_period, "slow_step_size": self.slow_step_size}


@_register
class SWA(_Wrapper):
    """Stochastic Weight Averaging (Izmailov et al., 2018): the running mean of snapshots of the weights.

    Use it for the last part of training (often with a constant or cyclical
    learning rate): the averaged weights generalize better. Swap them in with
    ``swapped_weights(swa)`` or keep them with ``swa.assign_average_vars()``;
    recompute batch-norm statistics afterwards.

    Update rule (after the inner optimizer's step, ``n`` = steps made before it)::

        if n >= start_averaging and (n - start_averaging) % average_period == 0:
            k <- (n - start_averaging) // average_period
            average <- (average * k + x) / (k + 1)

    Args:
        optimizer: the inner optimizer.
        start_averaging: first step (0-based) that is averaged (default 0).
        average_period: steps between snapshots, >= 1 (default 10).

    Conventions: TF Addons' ``SWA`` (same counting); torch's ``AveragedModel``
    leaves the snapshot timing to the training loop.

    Paper: https://arxiv.org/abs/1803.05407

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> swa = optimlab.wrappers.SWA(optimlab.SGD(0.5), average_period=1)
        >>> for _ in range(2): _ = swa.minimize(lambda: x, [x])
        >>> round(float(swa.get_slot(x, "average").numpy()), 4)
        0.25
    """

    def __init__(self, optimizer, start_averaging=0, average_period=10, name="swa"):
        super().__init__(optimizer, name)
        self.start_averaging = check_int("start_averaging", start_averaging, 0)
        self.average_period = check_int("average_period", average_period, 1)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "average")

    def _after_apply(self, variables, applied):
        n = self.optimizer.iterations - 1 - self.start_averaging
        take = tf.logical_and(applied, tf.logical_and(n >= 0, tf.equal(n % self.average_period, 0)))
        k = n // self.average_period

        def average(var, avg):
            kk = tf.cast(k, var.dtype)
            return var, tf.where(take, (avg * kk + var) / (kk + 1.0), avg)

        update_in_place(self._distribution_strategy, variables, [self.get_slot(v, "average") for v in variables], average)

    def _averaged(self):
        return self._trainable_variables, [self.get_slot(v, "average") for v in self._trainable_variables]

    def assign_average_vars(self, var_list=None):
        """Overwrite the variables with their averages (for good: call at the end of training)."""
        variables = self._trainable_variables if var_list is None else list(var_list)
        for var in variables:
            _tf_variable(var).assign(_tf_variable(self.get_slot(var, "average")))

    def get_config(self):
        return {**super().get_config(), "start_averaging": self.start_averaging, "average_period": self.average_period}


def _matches(variable, rule):
    """Whether ``variable`` belongs to ``rule``: a keras Layer (its variables) or shell patterns on the path/name."""
    if isinstance(rule, keras.layers.Layer):
        return any(variable is v for v in rule.trainable_variables)
    label = getattr(variable, "path", None) or variable.name
    patterns = [rule] if isinstance(rule, str) else rule
    return any(fnmatch.fnmatch(label, p) or p in label for p in patterns)


@_register
class PerVariableOptimizer(_Wrapper):
    """Different optimizers for different variables, chosen by layer or by name pattern.

    ``groups`` is a list of ``(rule, optimizer)``; a rule is a Keras layer, a
    shell pattern / substring of the variable path (``"dense_1/*"``, ``"bias"``)
    or a list of them. Each variable goes to the first group whose rule matches,
    the others to ``default``.

    ``learning_rate`` reads the default optimizer's; setting it (directly or
    through ``LearningRateScheduler`` / ``ReduceLROnPlateau``) scales every group
    by the same factor, so the ratios of their learning rates stay as created.

    Args:
        default: optimizer of the variables no rule matches.
        groups: list of ``(rule, optimizer)`` pairs.

    Conventions: TF Addons' ``MultiOptimizer`` takes ``(optimizer, layers)``
    pairs and has no settable learning rate.

    Example:
        >>> import optimlab
        >>> opt = optimlab.wrappers.PerVariableOptimizer(optimlab.Adam(1e-3), [("embedding", optimlab.LazyAdam(1e-2))])
    """

    def __init__(self, default, groups=(), name="per_variable"):
        super().__init__(default, name)
        groups = list(groups)
        for pair in groups:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise TypeError(f"groups must hold (rule, optimizer) pairs; got {pair!r}")
            _check_optimizer("optimizer of group " + repr(pair[0]), pair[1])
        self.groups = groups
        self._ratios = [float(opt.learning_rate) / float(default.learning_rate) if float(default.learning_rate) else 1.0 for _, opt in groups]

    def _set_learning_rate(self, value):
        self.optimizer.learning_rate = value
        for (_, opt), ratio in zip(self.groups, self._ratios):
            opt.learning_rate = float(value) * ratio

    @property
    def variables(self):
        return super().variables + [v for _, opt in self.groups for v in opt.variables]

    def _split(self, variables, grads=None):
        """``[(optimizer, grads, variables)]`` with the default optimizer first."""
        grads = [None] * len(variables) if grads is None else list(grads)
        owners = [self.optimizer] + [opt for _, opt in self.groups]
        parts = {id(o): ([], []) for o in owners}
        for g, v in zip(grads, variables):
            owner = next((opt for rule, opt in self.groups if _matches(v, rule)), self.optimizer)
            parts[id(owner)][0].append(g)
            parts[id(owner)][1].append(v)
        return [(o, *parts[id(o)]) for o in owners if parts[id(o)][1]]

    def build(self, var_list):
        if self.built:
            return
        for opt, _, variables in self._split(var_list):
            opt.build(variables)
        Optimizer.build(self, var_list)

    def apply(self, grads, trainable_variables=None):
        grads, variables = self._checked(grads, trainable_variables)
        for opt, part_grads, part_vars in self._split(variables, grads):
            if any(g is not None for g in part_grads):
                opt.apply(part_grads, part_vars)
        self._iterations.assign_add(1)

    def get_config(self):
        rules = [rule for rule, _ in self.groups]
        if any(isinstance(r, keras.layers.Layer) for r in rules):
            raise TypeError("PerVariableOptimizer with layer rules cannot be serialized; use name patterns instead")
        groups = [[rule, keras.saving.serialize_keras_object(opt)] for rule, opt in self.groups]
        return {"name": self.name, "default": keras.saving.serialize_keras_object(self.optimizer), "groups": groups}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        load = lambda c: keras.saving.deserialize_keras_object(c, custom_objects=custom_objects)  # noqa: E731
        return cls(load(config["default"]), [(rule, load(opt)) for rule, opt in config["groups"]], name=config["name"])


def lr_multipliers(optimizer, multipliers):
    """Per-variable learning-rate multipliers: ``{rule: factor}`` over clones of ``optimizer``.

    Returns a ``PerVariableOptimizer`` whose groups are copies of ``optimizer``
    with ``learning_rate * factor``; its ``learning_rate`` stays readable and
    settable (the factors are kept). Rules are as in ``PerVariableOptimizer``.

    Example:
        >>> import optimlab
        >>> opt = lr_multipliers(optimlab.SGD(0.1), {"backbone/*": 0.1})
        >>> round(float(opt.groups[0][1].learning_rate), 4)
        0.01
    """
    _check_optimizer("optimizer", optimizer)
    base = float(optimizer.learning_rate)
    groups = []
    for rule, factor in dict(multipliers).items():
        check_nonnegative(f"multiplier of {rule!r}", factor)
        config = {**optimizer.get_config(), "learning_rate": base * float(factor), "name": f"{optimizer.name}_x{factor:g}"}
        groups.append((rule, type(optimizer).from_config(config)))
    return PerVariableOptimizer(optimizer, groups)
