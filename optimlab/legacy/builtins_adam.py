"""Keras 2's Adam, Adamax and Nadam (``tf.keras.optimizers.legacy``) on ``optimlab.legacy.Optimizer``.

The Adam family of :mod:`optimlab.legacy.builtins` (same conventions: Keras 2's
constructor, slots, ``apply_state`` keys, ``get_config`` and kernels), in a
module of its own to keep each file short. Exported by :mod:`optimlab.legacy`.
"""

import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from optimlab.legacy.builtins import _EPSILON, _Builtin, _coefficients, _register


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
