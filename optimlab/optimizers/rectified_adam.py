"""Rectified Adam (RAdam), with TF Addons' warmup-and-decay learning rate."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_int, check_nonnegative, check_range, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, step_count
from optimlab.registry import register


def warmup_then_decay(lr, t, total_steps, warmup_proportion, min_lr):
    """TF Addons' built-in schedule: linear warmup to ``lr``, then linear decay to ``min_lr``.

    All arguments are float64 scalars; ``t`` counts from 1.
    """
    warmup_steps = total_steps * warmup_proportion
    decay_steps = tf.maximum(total_steps - warmup_steps, 1.0)
    decay_rate = (min_lr - lr) / decay_steps
    warm = lr * (t / warmup_steps)
    decayed = lr + decay_rate * tf.minimum(t - warmup_steps, decay_steps)
    return tf.where(t <= warmup_steps, warm, decayed)


def rectification(beta_2, t):
    """``(rho_t, r_t)`` of RAdam: the length of the approximated SMA and the variance rectifier."""
    rho_inf = 2.0 / (1.0 - beta_2) - 1.0
    beta_2_t = tf.pow(beta_2, t)
    rho_t = rho_inf - 2.0 * t * beta_2_t / (1.0 - beta_2_t)
    ratio = (rho_t - 4.0) / (rho_inf - 4.0) * (rho_t - 2.0) / (rho_inf - 2.0) * rho_inf / rho_t
    return rho_t, tf.sqrt(tf.maximum(ratio, 0.0))


class _RectifiedBase(Optimizer):
    """Arguments, slots and learning rate shared by RectifiedAdam and AdaBelief."""

    slots = ("m", "v")

    def _set_rectified_args(self, beta_1, beta_2, epsilon, amsgrad, sma_threshold, total_steps, warmup_proportion, min_lr):
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self._set_hyper("sma_threshold", sma_threshold, check=check_nonnegative)
        self._set_hyper("warmup_proportion", warmup_proportion, check=lambda n, v: check_range(n, v, 0.0, 1.0))
        self._set_hyper("min_lr", min_lr, check=check_nonnegative)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.total_steps = check_int("total_steps", total_steps, low=0)  # 0 switches the schedule off

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.amsgrad:
            for var in var_list:
                self.add_slot(var, "v_hat")

    def _scheduled_lr(self, learning_rate, t):
        lr = tf.cast(learning_rate, tf.float64)
        if self.total_steps == 0:
            return lr
        return warmup_then_decay(
            lr, t, float(self.total_steps), self._get_hyper("warmup_proportion", tf.float64), self._get_hyper("min_lr", tf.float64)
        )

    def _rectified_step(self, variable, m, v, learning_rate):
        """Shared tail: bias corrections, AMSGrad, rectification and the variable update."""
        dtype = variable.dtype
        t = step_count(self)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        if self.amsgrad:
            v_hat = self.get_slot(variable, "v_hat")
            v = v_hat.assign(tf.maximum(v_hat, v))
        m_hat = m / tf.cast(bias_correction(beta_1, t), dtype)
        v_corr = tf.sqrt(v / tf.cast(bias_correction(beta_2, t), dtype))
        update = m_hat / (v_corr + epsilon)
        if self.rectify:
            rho_t, r_t = rectification(beta_2, t)
            on = rho_t >= self._get_hyper("sma_threshold", tf.float64)
            update = tf.where(on, tf.cast(r_t, dtype) * update, m_hat)
        variable.assign_sub(tf.cast(self._scheduled_lr(learning_rate, t), dtype) * update)


@register(
    "rectified_adam",
    paper="Liu et al., On the Variance of the Adaptive Learning Rate and Beyond",
    year=2019,
    url="https://arxiv.org/abs/1908.03265",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.002}, 10000, 5e-2),
    aliases=("radam",),
    space=spaces.ADAM_LIKE,
)
class RectifiedAdam(_RectifiedBase):
    """RectifiedAdam (Liu et al., 2019): Adam whose adaptive step is switched on as its variance becomes tractable.

    Use it in place of Adam when training is unstable without a warmup: the
    rectifier ``r_t`` is a built-in warmup of the adaptive part.

    Update rule (TF Addons' form; ``t`` counts from 1)::

        m <- beta_1 * m + (1 - beta_1) * g;      m_hat <- m / (1 - beta_1^t)
        v <- beta_2 * v + (1 - beta_2) * g^2;    v_corr <- sqrt(v / (1 - beta_2^t))
        rho_inf <- 2 / (1 - beta_2) - 1;         rho_t <- rho_inf - 2 t beta_2^t / (1 - beta_2^t)
        r_t <- sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        x <- x - lr_t * r_t * m_hat / (v_corr + epsilon)   if rho_t >= sma_threshold
        x <- x - lr_t * m_hat                               otherwise

    ``lr_t`` is ``learning_rate``, or with ``total_steps > 0`` TF Addons' linear
    warmup over ``warmup_proportion * total_steps`` steps followed by linear decay
    to ``min_lr`` at ``total_steps``.

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added to ``v_corr`` (default 1e-7).
        amsgrad: use the running maximum of ``v`` (default False).
        sma_threshold: ``rho_t`` from which the adaptive step is used (default 5.0).
        total_steps: length of the built-in warmup-decay schedule; 0 = off (default 0).
        warmup_proportion: warmup fraction of ``total_steps`` in [0, 1] (default 0.1).
        min_lr: learning rate reached at ``total_steps`` (default 0.0).
        **kwargs: ``weight_decay`` etc. (Keras' decoupled decay ``x <- x - lr * wd * x``,
            which is what TF Addons' ``weight_decay`` of RAdam does).

    Conventions: the defaults are TF Addons'. The paper switches at ``rho_t > 4``
    and has no epsilon; TF Addons and this class use ``rho_t >= 5`` and epsilon
    (torch.optim.RAdam switches at ``rho_t > 5`` and uses epsilon 1e-8). Note that
    TF Addons' ``weight_decay`` is scaled by the warmup-decayed ``lr_t``, Keras'
    by the plain ``learning_rate``.

    Paper: https://arxiv.org/abs/1908.03265

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.RectifiedAdam(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.8
    """

    rectify = True

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        sma_threshold=5.0,
        total_steps=0,
        warmup_proportion=0.1,
        min_lr=0.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_rectified_args(beta_1, beta_2, epsilon, amsgrad, sma_threshold, total_steps, warmup_proportion, min_lr)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")
        m.assign(tf.cast(beta_1, dtype) * m + tf.cast(1.0 - beta_1, dtype) * gradient)
        v.assign(tf.cast(beta_2, dtype) * v + tf.cast(1.0 - beta_2, dtype) * tf.square(gradient))
        self._rectified_step(variable, m, v, learning_rate)
