"""Adamax, the infinity-norm variant of Adam, with Keras's arguments."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, keras_ema, step_count
from optimlab.registry import register


@register(
    "adamax",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization (section 7.1)",
    year=2014,
    url="https://arxiv.org/abs/1412.6980",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    space=spaces.ADAM_LIKE,
)
class Adamax(Optimizer):
    """Adamax (Kingma & Ba, 2014): Adam with the second moment replaced by a decaying infinity norm.

    Its step is bounded by ``lr`` and insensitive to rare huge gradients; used
    for embeddings and some speech and language models.

    Update rule (Algorithm 2 of the paper; ``t`` counts from 1, ``m`` and ``u`` start at zero)::

        m <- beta_1 * m + (1 - beta_1) * g
        u <- max(beta_2 * u, |g|)
        x <- x - lr / (1 - beta_1^t) * m / (u + epsilon)

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: infinity-norm decay in [0, 1) (default 0.999).
        epsilon: added to ``u`` (default 1e-7; the paper has none).

    Conventions: ``keras.optimizers.Adamax``'s (equal up to float32 rounding).
    ``torch.optim.Adamax`` and Optax's ``adamax`` both add epsilon (1e-8 by
    default) inside the maximum, ``u <- max(beta_2 * u, |g| + epsilon)``, and
    divide by ``u`` alone; with ``epsilon=0`` on both sides the three agree.

    Reference: https://arxiv.org/abs/1412.6980

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Adamax(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    slots = ("m", "u")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        correction = tf.cast(bias_correction(beta_1, step_count(self)), dtype)
        m = self.get_slot(variable, "m")
        u = self.get_slot(variable, "u")

        m.assign(keras_ema(m, gradient, tf.cast(1.0 - beta_1, dtype)))
        u.assign(tf.maximum(beta_2 * u, tf.abs(gradient)))
        variable.assign_sub(lr * m / (correction * (u + epsilon)))


# ------------------------------------------------------------------ fast paths
@fused.fast_path(Adamax)
def _adamax_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's ``ResourceApplyAdaMax``."""
    dtype = variable.dtype
    beta_1_power = fused.once(opt, ("beta_1_power", dtype), lambda: tf.cast(fused.powers(opt, "beta_1")[0], dtype))
    return tf.raw_ops.ResourceApplyAdaMax(
        var=variable.handle,
        m=fused.handle(opt.get_slot(variable, "m")),
        v=fused.handle(opt.get_slot(variable, "u")),
        beta1_power=beta_1_power,
        lr=fused.lr(opt, learning_rate, dtype),
        beta1=fused.hyper(opt, "beta_1", dtype),
        beta2=fused.hyper(opt, "beta_2", dtype),
        epsilon=fused.hyper(opt, "epsilon", dtype),
        grad=gradient,
    )
