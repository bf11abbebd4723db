"""Keras 2's built-in optimizers (``tf.keras.optimizers.legacy.*``) on ``optimlab.legacy.Optimizer``.

This module holds their shared constructor (``_Builtin``) and ``SGD``, ``Adagrad``,
``Adadelta``, ``Ftrl`` and ``RMSprop``; ``Adam``, ``Adamax`` and ``Nadam`` are in
:mod:`optimlab.legacy.builtins_adam`. All are exported by :mod:`optimlab.legacy`
and registered with Keras as ``"optimlab_legacy>NAME"``.

Real Keras 2 code subclasses these (TensorFlow Addons' ``LazyAdam(Adam)``,
``AdamW``/``SGDW``, countless tutorials) and overrides ``_resource_apply_*`` or
``_prepare_local``, reading ``apply_state[(device, dtype)]["lr_t"]``,
``"beta_1_t"``, ``"epsilon"``, ... So each class keeps Keras 2's constructor,
slot names and creation order, ``apply_state`` keys, ``get_config`` and update
kernels (the same ``tf.raw_ops.ResourceApply*`` ops where Keras 2 used them),
and follows ``tf_keras``' trajectories bit for bit in float32 (tested in
``tests/test_legacy_tfa.py``).

Example::

    from optimlab.legacy import Adam

    class ClippedAdam(Adam):               # a Keras 2 style subclass
        def _resource_apply_dense(self, grad, var, apply_state=None):
            return super()._resource_apply_dense(tf.clip_by_value(grad, -1.0, 1.0), var, apply_state)
"""

import keras
import numpy as np
import tensorflow as tf

from optimlab.legacy.base import Optimizer as LegacyOptimizer

_EPSILON = 1e-7  # Keras' backend epsilon, Keras 2's default for a falsy epsilon


def _coefficients(opt, var, apply_state):
    key = (var.device, var.dtype.base_dtype)
    return (apply_state or {}).get(key) or opt._fallback_apply_state(*key)


def _check_momentum(momentum):
    if isinstance(momentum, (int, float)) and not 0 <= momentum <= 1:
        raise ValueError(f"`momentum` must be between [0, 1]. Received: momentum={momentum}")
    return isinstance(momentum, tf.Tensor) or callable(momentum) or momentum > 0


def _register(cls):
    return keras.saving.register_keras_serializable("optimlab_legacy")(cls)


class _Builtin(LegacyOptimizer):
    """Keras 2's constructor, ``get_config`` and ``set_weights``, shared by the built-ins and declared per class.

    ``_HYPERS`` names the hyperparameters a class has besides ``learning_rate`` and
    ``decay``; ``__init__`` takes their values positionally, in that order, and sets
    them with ``_set_hyper``. ``_CONFIG`` lists what ``get_config`` adds after
    ``learning_rate`` and ``decay``, in Keras 2's key order: a name in ``_HYPERS`` is
    serialized; any other names an attribute, whose key drops a leading underscore
    (``_initial_accumulator_value`` gives ``initial_accumulator_value``).
    ``_WEIGHTS_WITHOUT_COUNTER``: ``set_weights`` also takes weights saved without the
    iteration counter (Keras 2's Adagrad, Adadelta and RMSprop). Example::

        class Adadelta(_Builtin):
            _HYPERS = ("rho",)
            _CONFIG = ("rho", "epsilon")
    """

    _HAS_AGGREGATE_GRAD = True
    _LR_ALIAS = True  # the deprecated ``lr`` keyword overrides ``learning_rate`` (Keras 2's Ftrl ignores it)
    _WEIGHTS_WITHOUT_COUNTER = False  # set_weights takes weights saved before the counter was listed
    _HYPERS = ()
    _CONFIG = ()

    def __init__(self, name, learning_rate, *hypers, **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate) if self._LR_ALIAS else learning_rate)
        self._set_hyper("decay", self._initial_decay)
        for hyper, value in zip(self._HYPERS, hypers, strict=True):
            self._set_hyper(hyper, value)

    def get_config(self):
        config = super().get_config()
        config.update(learning_rate=self._serialize_hyperparameter("learning_rate"), decay=self._initial_decay)
        for attribute in self._CONFIG:
            value = self._serialize_hyperparameter(attribute) if attribute in self._HYPERS else getattr(self, attribute)
            config[attribute.lstrip("_")] = value
        return config

    def set_weights(self, weights):
        if self._WEIGHTS_WITHOUT_COUNTER and len(self.weights) == len(weights) + 1:
            weights = [np.array(0)] + list(weights)  # the counter restarts at 0, as in Keras 2
        super().set_weights(weights)


@_register
class SGD(_Builtin):
    """Keras 2's SGD: plain, momentum (``v <- m v - lr g; x <- x + v``) or Nesterov.

    ``apply_state`` keys: ``lr_t``, ``momentum``. Slot: ``momentum`` (only when momentum > 0).
    """

    _HYPERS = ("momentum",)
    _CONFIG = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(name, learning_rate, momentum, **kwargs)
        self._momentum = _check_momentum(momentum)
        self.nesterov = nesterov

    def _create_slots(self, var_list):
        if self._momentum:
            for var in var_list:
                self.add_slot(var, "momentum")

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        apply_state[(var_device, var_dtype)]["momentum"] = tf.identity(self._get_hyper("momentum", var_dtype))

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        if not self._momentum:
            return tf.raw_ops.ResourceApplyGradientDescent(
                var=var.handle, alpha=c["lr_t"], delta=grad, use_locking=self._use_locking
            )
        return tf.raw_ops.ResourceApplyKerasMomentum(
            var=var.handle,
            accum=self.get_slot(var, "momentum").handle,
            lr=c["lr_t"],
            grad=grad,
            momentum=c["momentum"],
            use_locking=self._use_locking,
            use_nesterov=self.nesterov,
        )

    def _resource_apply_sparse_duplicate_indices(self, grad, var, indices, **kwargs):
        if self._momentum:
            return super()._resource_apply_sparse_duplicate_indices(grad, var, indices, **kwargs)
        c = _coefficients(self, var, kwargs.get("apply_state"))
        return tf.raw_ops.ResourceScatterAdd(resource=var.handle, indices=indices, updates=-grad * c["lr_t"])

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        return tf.raw_ops.ResourceSparseApplyKerasMomentum(
            var=var.handle,
            accum=self.get_slot(var, "momentum").handle,
            lr=c["lr_t"],
            grad=grad,
            indices=indices,
            momentum=c["momentum"],
            use_locking=self._use_locking,
            use_nesterov=self.nesterov,
        )


@_register
class Adagrad(_Builtin):
    """Keras 2's Adagrad: ``a <- a + g^2; x <- x - lr g / (sqrt(a) + eps)``.

    ``apply_state`` keys: ``lr_t``, ``epsilon``, ``neg_lr_t``, ``zero``. Slot: ``accumulator``.
    """

    _WEIGHTS_WITHOUT_COUNTER = True
    _CONFIG = ("_initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="Adagrad", **kwargs):
        if initial_accumulator_value < 0.0:
            raise ValueError(f"initial_accumulator_value must be non-negative: {initial_accumulator_value}")
        super().__init__(name, learning_rate, **kwargs)
        self._initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon or _EPSILON

    def _create_slots(self, var_list):
        for var in var_list:
            init = tf.constant_initializer(self._initial_accumulator_value)
            self.add_slot(var, "accumulator", init)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        state = apply_state[(var_device, var_dtype)]
        state.update(
            epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
            neg_lr_t=-state["lr_t"],
            zero=tf.zeros((), dtype=tf.int64),
        )

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.setdefault("initial_accumulator_value", 0.1)
        return super().from_config(config, custom_objects=custom_objects)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        return tf.raw_ops.ResourceApplyAdagradV2(
            var=var.handle,
            accum=self.get_slot(var, "accumulator").handle,
            lr=c["lr_t"],
            epsilon=c["epsilon"],
            grad=grad,
            use_locking=self._use_locking,
        )

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        return tf.raw_ops.ResourceSparseApplyAdagradV2(
            var=var.handle,
            accum=self.get_slot(var, "accumulator").handle,
            lr=c["lr_t"],
            epsilon=c["epsilon"],
            grad=grad,
            indices=indices,
            use_locking=self._use_locking,
        )


@_register
class Adadelta(_Builtin):
    """Keras 2's Adadelta (TensorFlow's ``ResourceApplyAdadelta``; note the default ``learning_rate=0.001``).

    ``apply_state`` keys: ``lr_t``, ``epsilon``, ``rho``. Slots: ``accum_grad``, ``accum_var``.
    """

    _WEIGHTS_WITHOUT_COUNTER = True
    _HYPERS = ("rho",)
    _CONFIG = ("rho", "epsilon")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="Adadelta", **kwargs):
        super().__init__(name, learning_rate, rho, **kwargs)
        self.epsilon = epsilon or _EPSILON

    def _create_slots(self, var_list):
        for slot in ("accum_grad", "accum_var"):
            for var in var_list:
                self.add_slot(var, slot)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        apply_state[(var_device, var_dtype)].update(
            epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
            rho=tf.identity(self._get_hyper("rho", var_dtype)),
        )

    def _slots_and_coefficients(self, var, apply_state):
        c = _coefficients(self, var, apply_state)
        return dict(
            var=var.handle,
            accum=self.get_slot(var, "accum_grad").handle,
            accum_update=self.get_slot(var, "accum_var").handle,
            lr=c["lr_t"],
            rho=c["rho"],
            epsilon=c["epsilon"],
            use_locking=self._use_locking,
        )

    def _resource_apply_dense(self, grad, var, apply_state=None):
        return tf.raw_ops.ResourceApplyAdadelta(grad=grad, **self._slots_and_coefficients(var, apply_state))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        return tf.raw_ops.ResourceSparseApplyAdadelta(
            grad=grad, indices=indices, **self._slots_and_coefficients(var, apply_state)
        )


@_register
class Ftrl(_Builtin):
    """Keras 2's FTRL-Proximal (``ResourceApplyFtrl``, ``...FtrlV2`` with L2 shrinkage).

    ``beta`` enters as ``l2 + beta / (2 lr)``. ``apply_state`` keys: ``lr_t``,
    ``learning_rate_power``, ``l1_regularization_strength``, ``l2_regularization_strength``,
    ``beta``, ``l2_shrinkage_regularization_strength``. Slots: ``accumulator``, ``linear``.
    """

    _HAS_AGGREGATE_GRAD = False  # as in Keras 2
    _LR_ALIAS = False
    _HYPERS = ("learning_rate_power", "l1_regularization_strength", "l2_regularization_strength", "beta")
    _CONFIG = ("_initial_accumulator_value", *_HYPERS, "_l2_shrinkage_regularization_strength")

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        name="Ftrl",
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        **kwargs,
    ):
        checks = {
            "initial_accumulator_value": (initial_accumulator_value, "positive or zero"),
            "l1_regularization_strength": (l1_regularization_strength, "positive or zero"),
            "l2_regularization_strength": (l2_regularization_strength, "positive or zero"),
            "l2_shrinkage_regularization_strength": (l2_shrinkage_regularization_strength, "positive or zero"),
        }
        for arg, (value, allowed) in checks.items():
            if value < 0.0:
                raise ValueError(f"`{arg}` needs to be {allowed}. Received: {arg}={value}.")
        if learning_rate_power > 0.0:
            raise ValueError(f"`learning_rate_power` needs to be negative or zero. Received: {learning_rate_power}.")
        super().__init__(
            name, learning_rate, learning_rate_power, l1_regularization_strength, l2_regularization_strength, beta, **kwargs
        )
        self._initial_accumulator_value = initial_accumulator_value
        self._l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "accumulator", tf.constant_initializer(self._initial_accumulator_value))
            self.add_slot(var, "linear")

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        state = apply_state[(var_device, var_dtype)]
        state.update({n: tf.identity(self._get_hyper(n, var_dtype)) for n in self._HYPERS})
        state["l2_shrinkage_regularization_strength"] = tf.cast(self._l2_shrinkage_regularization_strength, var_dtype)

    def _ftrl_args(self, var, apply_state):
        c = _coefficients(self, var, apply_state)
        args = dict(
            var=var.handle,
            accum=self.get_slot(var, "accumulator").handle,
            linear=self.get_slot(var, "linear").handle,
            lr=c["lr_t"],
            l1=c["l1_regularization_strength"],
            l2=c["l2_regularization_strength"] + c["beta"] / (2.0 * c["lr_t"]),
            lr_power=c["learning_rate_power"],
            use_locking=self._use_locking,
        )
        if self._l2_shrinkage_regularization_strength > 0.0:
            args["l2_shrinkage"] = c["l2_shrinkage_regularization_strength"]
        return args

    def _resource_apply_dense(self, grad, var, apply_state=None):
        args = self._ftrl_args(var, apply_state)
        op = tf.raw_ops.ResourceApplyFtrlV2 if "l2_shrinkage" in args else tf.raw_ops.ResourceApplyFtrl
        return op(grad=grad, **args)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        args = self._ftrl_args(var, apply_state)
        op = tf.raw_ops.ResourceSparseApplyFtrlV2 if "l2_shrinkage" in args else tf.raw_ops.ResourceSparseApplyFtrl
        return op(grad=grad, indices=indices, **args)


@_register
class RMSprop(_Builtin):
    """Keras 2's RMSprop: ``ms <- rho ms + (1 - rho) g^2``, epsilon outside the square root;
    ``momentum`` and ``centered`` use TensorFlow's fused kernels as Keras 2 did.

    ``apply_state`` keys: ``lr_t``, ``neg_lr_t``, ``epsilon``, ``rho``, ``momentum``,
    ``one_minus_rho``. Slots: ``rms``, then ``momentum`` and ``mg`` when used.
    """

    _WEIGHTS_WITHOUT_COUNTER = True
    _HYPERS = ("rho", "momentum")
    _CONFIG = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name="RMSprop", **kwargs
    ):
        super().__init__(name, learning_rate, rho, momentum, **kwargs)
        self._momentum = _check_momentum(momentum)
        self.epsilon = epsilon or _EPSILON
        self.centered = centered

    def _create_slots(self, var_list):
        slots = ["rms"] + (["momentum"] if self._momentum else []) + (["mg"] if self.centered else [])
        for slot in slots:
            for var in var_list:
                self.add_slot(var, slot)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        rho = tf.identity(self._get_hyper("rho", var_dtype))
        state = apply_state[(var_device, var_dtype)]
        state.update(
            neg_lr_t=-state["lr_t"],
            epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
            rho=rho,
            momentum=tf.identity(self._get_hyper("momentum", var_dtype)),
            one_minus_rho=1.0 - rho,
        )

    def _fused_args(self, var, c):
        args = dict(
            var=var.handle,
            ms=self.get_slot(var, "rms").handle,
            mom=self.get_slot(var, "momentum").handle,
            lr=c["lr_t"],
            rho=c["rho"],
            momentum=c["momentum"],
            epsilon=c["epsilon"],
            use_locking=self._use_locking,
        )
        if self.centered:
            args["mg"] = self.get_slot(var, "mg").handle
        return args

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        if self._momentum:
            op = tf.raw_ops.ResourceApplyCenteredRMSProp if self.centered else tf.raw_ops.ResourceApplyRMSProp
            return op(grad=grad, **self._fused_args(var, c))
        rms = self.get_slot(var, "rms")
        rms_t = rms.assign(c["rho"] * rms + c["one_minus_rho"] * tf.square(grad))
        denominator = rms_t
        if self.centered:
            mg = self.get_slot(var, "mg")
            mg_t = mg.assign(c["rho"] * mg + c["one_minus_rho"] * grad)
            denominator = rms_t - tf.square(mg_t)
        return var.assign(var - c["lr_t"] * grad / (tf.sqrt(denominator) + c["epsilon"]))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        if self._momentum:
            op = tf.raw_ops.ResourceSparseApplyCenteredRMSProp if self.centered else tf.raw_ops.ResourceSparseApplyRMSProp
            return op(grad=grad, indices=indices, **self._fused_args(var, c))
        rms = self.get_slot(var, "rms")
        rms.assign(rms * c["rho"])
        denominator = tf.gather(self._resource_scatter_add(rms, indices, (grad * grad) * c["one_minus_rho"]), indices)
        if self.centered:
            mg = self.get_slot(var, "mg")
            mg.assign(mg * c["rho"])
            mg_rows = tf.gather(self._resource_scatter_add(mg, indices, grad * c["one_minus_rho"]), indices)
            denominator = denominator - tf.square(mg_rows)
        self._resource_scatter_add(var, indices, c["neg_lr_t"] * grad / (tf.sqrt(denominator) + c["epsilon"]))
        return tf.group(var, rms)
