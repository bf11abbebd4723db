"""Adam, in the form of the paper's Algorithm 1 (and of seed 000)."""

import tensorflow as tf

from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, step_count
from optimlab.registry import register


@register(
    "adam",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization",
    year=2014,
    url="https://arxiv.org/abs/1412.6980",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    capabilities=("fused",),
)
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014): bias-corrected first and second moments.

    The default choice for most networks; robust to the scale of gradients.

    Update rule (Algorithm 1 of the paper; ``t`` counts from 1)::

        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        m_hat <- m / (1 - beta_1^t)
        v_hat <- v / (1 - beta_2^t)          (amsgrad: v_max <- max(v_max, v), used for v)
        x <- x - lr * m_hat / (sqrt(v_hat) + epsilon)

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added after the square root (default 1e-7, as seed 000 and Keras).
        amsgrad: keep the running maximum of ``v`` (Reddi et al., 2018) (default False).
        epsilon_hat: if True use the paper's "efficient" form that Keras, TF and
            Optax's ``eps_root=0`` path use, ``x <- x - lr_t * m / (sqrt(v) + epsilon)``
            with ``lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, computed operation
            for operation as ``keras.optimizers.Adam`` does (default False).

    Conventions: the default form is seed 000's and torch.optim's (epsilon added
    to ``sqrt(v_hat)``); Keras 3 adds epsilon to ``sqrt(v)`` (``epsilon_hat=True``),
    which acts like a smaller epsilon early in training. On seed 000's quartic at
    learning rate 0.1 the default form converges in 1156 iterations, the Keras
    form in 1093. torch and Optax default to epsilon 1e-8.

    Reference: https://arxiv.org/abs/1412.6980 (AMSGrad: https://openreview.net/forum?id=ryQu7f-RZ)

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(2.0)
        >>> opt = optimlab.Adam(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        1.9
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        epsilon_hat=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.epsilon_hat = check_bool("epsilon_hat", epsilon_hat)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.amsgrad:
            for var in var_list:
                self.add_slot(var, "v_max")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        t = step_count(self)
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        if self.epsilon_hat:
            self._keras_form(gradient, variable, lr, epsilon, m, v)
            return
        m.assign(tf.cast(beta_1, dtype) * m + tf.cast(1.0 - beta_1, dtype) * gradient)
        v.assign(tf.cast(beta_2, dtype) * v + tf.cast(1.0 - beta_2, dtype) * tf.square(gradient))
        v_used = v
        if self.amsgrad:
            v_max = self.get_slot(variable, "v_max")
            v_used = v_max.assign(tf.maximum(v_max, v))
        m_hat = m / tf.cast(bias_correction(beta_1, t), dtype)
        v_hat = v_used / tf.cast(bias_correction(beta_2, t), dtype)
        variable.assign_sub(lr * (m_hat / (tf.sqrt(v_hat) + epsilon)))

    def _keras_form(self, gradient, variable, lr, epsilon, m, v):
        """The arithmetic of ``keras.optimizers.Adam``, operation for operation."""
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        t = tf.cast(self.iterations + 1, dtype)
        alpha = lr * tf.sqrt(1 - tf.pow(tf.cast(beta_2, dtype), t)) / (1 - tf.pow(tf.cast(beta_1, dtype), t))
        m.assign_add((gradient - m) * tf.cast(1.0 - beta_1, dtype))
        v.assign_add((tf.square(gradient) - v) * tf.cast(1.0 - beta_2, dtype))
        if self.amsgrad:
            v_max = self.get_slot(variable, "v_max")
            v = v_max.assign(tf.maximum(v_max, v))
        variable.assign_sub(m * alpha / (tf.sqrt(v) + epsilon))
