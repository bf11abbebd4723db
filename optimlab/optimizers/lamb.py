"""LAMB (layer-wise adaptive moments) with Keras's arguments."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, keras_ema, step_count
from optimlab.registry import register


def trust_ratio(weights, update):
    """``||weights|| / ||update||``, or 1 where either norm is zero (LAMB, LARS)."""
    w_norm = tf.norm(weights)
    u_norm = tf.norm(update)
    one = tf.ones_like(w_norm)
    safe = tf.where(u_norm > 0, w_norm / tf.where(u_norm > 0, u_norm, one), one)
    return tf.where(w_norm > 0, safe, one)


@register(
    "lamb",
    paper="You et al., Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
    year=2019,
    url="https://arxiv.org/abs/1904.00962",
    quadratic=({"learning_rate": 0.005}, 2000, 2e-2),
    rosenbrock=({"learning_rate": 0.005}, 10000, 5e-2),
    space=spaces.ADAM_LIKE,
)
class Lamb(Optimizer):
    """LAMB (You et al., 2019): Adam's step rescaled per variable by the trust ratio ``||x|| / ||step||``.

    Made for very large batches (BERT in 76 minutes): every layer moves by a
    step proportional to its weights' norm.

    Update rule (Algorithm 2 of the paper; ``t`` counts from 1)::

        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        r  = m / (1 - beta_1^t) / (sqrt(v / (1 - beta_2^t)) + epsilon)
        r  = r + weight_decay * x                  (decay_in_trust_ratio only)
        x <- x - lr * ||x|| / ||r|| * r            (ratio 1 where a norm is zero)

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added after the square root (default 1e-7).
        decay_in_trust_ratio: apply ``weight_decay`` inside ``r`` as the paper
            and Optax's ``lamb`` do, instead of the base class's decoupled
            ``x <- x - lr * weight_decay * x`` before the step (default False).

    Conventions: with the defaults equal up to rounding to ``keras.optimizers.Lamb``,
    whose weight decay is the generic decoupled one and so does not enter the
    trust ratio. The paper and Optax add it to ``r`` (``decay_in_trust_ratio=True``;
    Optax's epsilon default is 1e-6). The paper's optional scaling ``phi(||x||)``
    is the identity here.

    Reference: https://arxiv.org/abs/1904.00962

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([1.0, 2.0])
        >>> opt = optimlab.Lamb(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(x ** 2), [x])
        >>> [round(float(v), 4) for v in x.numpy()]
        [0.8419, 1.8419]
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        decay_in_trust_ratio=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.decay_in_trust_ratio = check_bool("decay_in_trust_ratio", decay_in_trust_ratio)

    def _apply_weight_decay(self, variables):
        if not self.decay_in_trust_ratio:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        t = step_count(self)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        m.assign(keras_ema(m, gradient, tf.cast(1.0 - beta_1, dtype)))
        v.assign(keras_ema(v, tf.square(gradient), tf.cast(1.0 - beta_2, dtype)))
        m_hat = m / tf.cast(bias_correction(beta_1, t), dtype)
        r = m_hat / (tf.sqrt(v / tf.cast(bias_correction(beta_2, t), dtype)) + epsilon)
        if self.decay_in_trust_ratio and self.weight_decay and self._use_weight_decay(variable):
            r = r + tf.cast(tf.constant(self.weight_decay, tf.float64), dtype) * variable
        variable.assign_sub(trust_ratio(variable, r) * lr * r)
