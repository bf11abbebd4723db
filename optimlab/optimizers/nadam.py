"""Nadam (Adam with Nesterov momentum) with Keras's arguments."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_nonnegative, check_positive, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, keras_ema, step_count
from optimlab.registry import register


def momentum_schedule(beta_1, t, momentum_decay):
    """Dozat's warming momentum ``mu_t = beta_1 * (1 - 0.5 * 0.96^(t * momentum_decay))`` (float64)."""
    return beta_1 * (1.0 - 0.5 * tf.pow(tf.constant(0.96, tf.float64), t * momentum_decay))


@register(
    "nadam",
    paper="Dozat, Incorporating Nesterov Momentum into Adam",
    year=2016,
    url="https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    space=spaces.ADAM_LIKE,
)
class Nadam(Optimizer):
    """Nadam (Dozat, 2016): Adam whose first moment looks one step ahead, as Nesterov momentum does.

    Often a little faster than Adam early in training, otherwise used like it.

    Update rule (``t`` counts from 1; ``m``, ``v`` start at zero, ``P_0 = 1``)::

        mu_t  = beta_1 * (1 - 0.5 * 0.96^(t * momentum_decay))
        P_t   = P_{t-1} * mu_t
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        m_hat = mu_{t+1} * m / (1 - P_t * mu_{t+1}) + (1 - mu_t) * g / (1 - P_t)
        v_hat = v / (1 - beta_2^t)
        x <- x - lr * m_hat / (sqrt(v_hat) + epsilon)

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added after the square root (default 1e-7).
        momentum_decay: speed of the momentum warm-up, > 0 (default 1.0, Keras's).

    Conventions: with the defaults identical to ``keras.optimizers.Nadam``,
    except that ``P_t`` is kept in float64 (Keras keeps it in the variables'
    dtype). Keras's schedule ``0.96^t`` warms the momentum up within a few dozen
    steps; the paper's ``0.96^(t/250)`` and ``torch.optim.NAdam`` (epsilon 1e-8)
    correspond to ``momentum_decay=0.004``. Optax's ``nadam`` uses a constant
    ``mu = beta_1`` instead of the schedule.

    Reference: https://openreview.net/forum?id=OM0jvwB8jIp57ZJjtNEZ

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Nadam(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.8937
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        momentum_decay=1.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self._set_hyper("momentum_decay", momentum_decay, check=check_positive)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._mu_product = self.add_variable(shape=(), initializer="ones", dtype="float64", name="mu_product")

    def _mu(self, t):
        return momentum_schedule(self._get_hyper("beta_1", tf.float64), t, self._get_hyper("momentum_decay", tf.float64))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # P_t is shared by all variables, so it advances once per step, before the updates.
        self._mu_product.assign(self._mu_product * self._mu(step_count(self)))
        super()._backend_update_step(grads, trainable_variables, learning_rate)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        t = step_count(self)
        mu_t, mu_next = self._mu(t), self._mu(t + 1.0)
        product = tf.convert_to_tensor(self._mu_product)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        m.assign(keras_ema(m, gradient, tf.cast(1.0 - beta_1, dtype)))
        v.assign(keras_ema(v, tf.square(gradient), tf.cast(1.0 - beta_2, dtype)))
        m_hat = tf.cast(mu_next / (1.0 - product * mu_next), dtype) * m + tf.cast(
            (1.0 - mu_t) / (1.0 - product), dtype
        ) * gradient
        v_hat = v / tf.cast(bias_correction(beta_2, t), dtype)
        variable.assign_sub(m_hat * lr / (tf.sqrt(v_hat) + epsilon))
