"""Keras 2's built-in optimizers (``tf.keras.optimizers.legacy.*``) on ``optimlab.legacy.Optimizer``.

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
from keras.optimizers.schedules import LearningRateSchedule

from optimlab import legacy as _legacy

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


class _Builtin(_legacy.Optimizer):
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


class _AdamFamily(_Builtin):
    """Constructor and config shared by Adam, Adamax and Nadam; coefficients and kernel arguments shared by Adam and Adamax."""

    _HYPERS = ("beta_1", "beta_2")
    _CONFIG = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate, beta_1, beta_2, epsilon, name, **kwargs):
        super().__init__(name, learning_rate, beta_1, beta_2, **kwargs)
        self.epsilon = epsilon or _EPSILON

    def _shared_coefficients(self, var_dtype):
        """``(local_step, entries)``: the step number and the ``apply_state`` entries Adam and Adamax share."""
        local_step = tf.cast(self.iterations + 1, var_dtype)
        beta_1_t = tf.identity(self._get_hyper("beta_1", var_dtype))
        beta_2_t = tf.identity(self._get_hyper("beta_2", var_dtype))
        return local_step, dict(
            epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
            beta_1_t=beta_1_t,
            beta_1_power=tf.pow(beta_1_t, local_step),
            one_minus_beta_1_t=1 - beta_1_t,
            beta_2_t=beta_2_t,
        )

    def _kernel_args(self, grad, var, c):
        """The arguments ``ResourceApplyAdam`` and ``ResourceApplyAdaMax`` share."""
        return dict(
            var=var.handle,
            m=self.get_slot(var, "m").handle,
            v=self.get_slot(var, "v").handle,
            beta1_power=c["beta_1_power"],
            lr=c["lr_t"],
            beta1=c["beta_1_t"],
            beta2=c["beta_2_t"],
            epsilon=c["epsilon"],
            grad=grad,
            use_locking=self._use_locking,
        )


@_register
class Adam(_AdamFamily):
    """Keras 2's Adam (epsilon outside the square root, on the bias-corrected step), optional AMSGrad.

    ``apply_state`` keys: ``lr_t``, ``lr`` (bias-corrected), ``epsilon``, ``beta_1_t``,
    ``beta_1_power``, ``one_minus_beta_1_t``, ``beta_2_t``, ``beta_2_power``,
    ``one_minus_beta_2_t``. Slots: ``m``, ``v`` (and ``vhat`` with ``amsgrad``).
    """

    _CONFIG = (*_AdamFamily._CONFIG, "amsgrad")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name="Adam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)
        self.amsgrad = amsgrad

    def _create_slots(self, var_list):
        names = ("m", "v", "vhat") if self.amsgrad else ("m", "v")
        for slot in names:
            for var in var_list:
                self.add_slot(var, slot)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        local_step, shared = self._shared_coefficients(var_dtype)
        beta_2_power = tf.pow(shared["beta_2_t"], local_step)
        state = apply_state[(var_device, var_dtype)]
        state.update(
            shared,
            lr=state["lr_t"] * (tf.sqrt(1 - beta_2_power) / (1 - shared["beta_1_power"])),
            beta_2_power=beta_2_power,
            one_minus_beta_2_t=1 - shared["beta_2_t"],
        )

    def set_weights(self, weights):
        # Keras 2 accepted weights saved with AMSGrad's vhat into a plain Adam.
        params = self.weights
        if len(weights) == 3 * ((len(params) - 1) // 2) + 1:
            weights = weights[: len(params)]
        super().set_weights(weights)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        args = dict(self._kernel_args(grad, var, c), beta2_power=c["beta_2_power"])
        if self.amsgrad:
            return tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=self.get_slot(var, "vhat").handle, **args)
        return tf.raw_ops.ResourceApplyAdam(**args)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m.assign(m * c["beta_1_t"])
        m_t = self._resource_scatter_add(m, indices, grad * c["one_minus_beta_1_t"])
        v.assign(v * c["beta_2_t"])
        v_t = self._resource_scatter_add(v, indices, (grad * grad) * c["one_minus_beta_2_t"])
        if self.amsgrad:
            vhat = self.get_slot(var, "vhat")
            v_t = vhat.assign(tf.maximum(vhat, v_t))
        var.assign_sub(c["lr"] * m_t / (tf.sqrt(v_t) + c["epsilon"]))
        return tf.group(var, m, v)


@_register
class Adamax(_AdamFamily):
    """Keras 2's Adamax: ``u <- max(beta_2 u, |g|)``, step ``lr / (1 - beta_1^t) * m / (u + eps)``.

    ``apply_state`` keys: ``lr_t``, ``neg_scaled_lr``, ``epsilon``, ``beta_1_t``,
    ``beta_1_power``, ``one_minus_beta_1_t``, ``beta_2_t``, ``zero``. Slots: ``m``, ``v``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="Adamax", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)

    def _create_slots(self, var_list):
        for slot in ("m", "v"):
            for var in var_list:
                self.add_slot(var, slot)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        _, shared = self._shared_coefficients(var_dtype)
        state = apply_state[(var_device, var_dtype)]
        state.update(
            shared,
            neg_scaled_lr=-state["lr_t"] / (1 - shared["beta_1_power"]),
            zero=tf.zeros((), dtype=tf.int64),
        )

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        return tf.raw_ops.ResourceApplyAdaMax(**self._kernel_args(grad, var, c))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        m_rows = tf.gather(m, indices, axis=c["zero"]) * c["beta_1_t"] + grad * c["one_minus_beta_1_t"]
        self._resource_scatter_update(m, indices, m_rows)
        v_rows = tf.maximum(tf.gather(v, indices, axis=c["zero"]) * c["beta_2_t"], tf.abs(grad))
        self._resource_scatter_update(v, indices, v_rows)
        self._resource_scatter_add(var, indices, c["neg_scaled_lr"] * (m_rows / (v_rows + c["epsilon"])))
        return tf.group(var, m, v)


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
class Nadam(_AdamFamily):
    """Keras 2's Nadam (Dozat 2016) with its momentum schedule ``beta_1 (1 - 0.5 * 0.96^(0.004 t))``.

    ``decay`` here is the schedule's decay (``schedule_decay``, default 0.004), not a
    learning-rate decay; learning-rate schedules are refused, as in Keras 2. The product of
    the momentum schedule lives in the ``momentum_cache`` weight (listed after the counter).
    ``apply_state`` keys: ``lr_t``, ``neg_lr_t``, ``epsilon``, ``beta_1_t``, ``beta_2_t``,
    ``m_t``, ``m_t_1``, ``one_minus_beta_1_t``, ``one_minus_beta_2_t``, ``one_minus_m_t``,
    ``one_minus_m_schedule_new``, ``one_minus_m_schedule_next``, ``v_t_prime_denominator``.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="Nadam", **kwargs):
        kwargs["decay"] = kwargs.pop("schedule_decay", 0.004)
        learning_rate = kwargs.get("lr", learning_rate)
        if isinstance(learning_rate, LearningRateSchedule):
            raise ValueError(f"The Nadam optimizer does not support LearningRateSchedules; got {learning_rate!r}")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, name, **kwargs)
        self._m_cache = None

    def _create_slots(self, var_list):
        if self._m_cache is None:
            dtype = var_list[0].dtype.base_dtype
            self._m_cache = self._add_state_variable("momentum_cache", (), dtype, "ones")
        for slot in ("m", "v"):
            for var in var_list:
                self.add_slot(var, slot)

    def _prepare(self, var_list):
        self._m_cache_read = tf.identity(self._m_cache)
        return super()._prepare(var_list)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        lr_t = tf.identity(self._get_hyper("learning_rate", var_dtype))
        beta_1_t = tf.identity(self._get_hyper("beta_1", var_dtype))
        beta_2_t = tf.identity(self._get_hyper("beta_2", var_dtype))
        local_step = tf.cast(self.iterations + 1, var_dtype)
        next_step = tf.cast(self.iterations + 2, var_dtype)
        decay_base = tf.cast(0.96, var_dtype)
        m_t = beta_1_t * (1.0 - 0.5 * tf.pow(decay_base, self._initial_decay * local_step))
        m_t_1 = beta_1_t * (1.0 - 0.5 * tf.pow(decay_base, self._initial_decay * next_step))
        m_schedule_new = tf.cast(self._m_cache_read, var_dtype) * m_t
        if var_dtype is self._m_cache.dtype:
            m_schedule_new = tf.identity(self._m_cache.assign(m_schedule_new))
        m_schedule_next = m_schedule_new * m_t_1
        apply_state[(var_device, var_dtype)] = dict(
            lr_t=lr_t,
            neg_lr_t=-lr_t,
            epsilon=tf.convert_to_tensor(self.epsilon, var_dtype),
            beta_1_t=beta_1_t,
            beta_2_t=beta_2_t,
            m_t=m_t,
            m_t_1=m_t_1,
            one_minus_beta_1_t=1 - beta_1_t,
            one_minus_beta_2_t=1 - beta_2_t,
            one_minus_m_t=1.0 - m_t,
            one_minus_m_schedule_new=1.0 - m_schedule_new,
            one_minus_m_schedule_next=1.0 - m_schedule_next,
            v_t_prime_denominator=1.0 - tf.pow(beta_2_t, local_step),
        )

    def _resource_apply_dense(self, grad, var, apply_state=None):
        c = _coefficients(self, var, apply_state)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        g_prime = grad / c["one_minus_m_schedule_new"]
        m_t = m.assign(c["beta_1_t"] * m + c["one_minus_beta_1_t"] * grad)
        m_t_prime = m_t / c["one_minus_m_schedule_next"]
        v_t = v.assign(c["beta_2_t"] * v + c["one_minus_beta_2_t"] * tf.square(grad))
        v_t_prime = v_t / c["v_t_prime_denominator"]
        m_t_bar = c["one_minus_m_t"] * g_prime + c["m_t_1"] * m_t_prime
        return var.assign(var - c["lr_t"] * m_t_bar / (tf.sqrt(v_t_prime) + c["epsilon"]))

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        c = _coefficients(self, var, apply_state)
        m, v = self.get_slot(var, "m"), self.get_slot(var, "v")
        g_prime = grad / c["one_minus_m_schedule_new"]
        m.assign(m * c["beta_1_t"])
        m_rows = tf.gather(self._resource_scatter_add(m, indices, grad * c["one_minus_beta_1_t"]), indices)
        m_t_bar = c["one_minus_m_t"] * g_prime + c["m_t_1"] * (m_rows / c["one_minus_m_schedule_next"])
        v.assign(v * c["beta_2_t"])
        v_rows = tf.gather(self._resource_scatter_add(v, indices, (grad * grad) * c["one_minus_beta_2_t"]), indices)
        denominator = tf.sqrt(v_rows / c["v_t_prime_denominator"]) + c["epsilon"]
        self._resource_scatter_add(var, indices, c["neg_lr_t"] * m_t_bar / denominator)
        return tf.group(var, m, v)


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
