"""ADOPT: Adam with the second moment taken before the current gradient."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import cast, step_count
from optimlab.registry import register


@register(
    "adopt",
    paper="Taniguchi et al., ADOPT: Modified Adam Can Converge with Any beta_2 with the Optimal Rate",
    year=2024,
    url="https://arxiv.org/abs/2411.02853",
    quadratic=({"learning_rate": 0.02, "beta_2": 0.99}, 800, 1e-2),
    rosenbrock=({"learning_rate": 0.005, "beta_2": 0.99}, 8000, 5e-2),
    space={**spaces.ADAM_LIKE, "beta_2": spaces.log1m(0.9, 0.99999, "Taniguchi et al. 2024 use 0.9999; "
                                                                  "1 - beta_2 in [1e-5, 0.1]")},
)
class ADOPT(Optimizer):
    """ADOPT (Taniguchi et al., 2024): Adam that normalizes by the previous second moment.

    A drop-in for Adam that converges for any ``beta_2`` (Adam may not), useful
    where Adam's loss spikes or diverges, e.g. with small batches or RL.

    Update rule (Algorithm 2 of the paper with the official code's clipping; ``t`` from 1)::

        t = 1:  v <- g^2                        (no step)
        t > 1:  m <- beta_1 * m + (1 - beta_1) * clip(g / max(sqrt(v), epsilon), (t - 1)^(1/4))
                x <- x - lr * m
                v <- beta_2 * v + (1 - beta_2) * g^2

    ``clip(a, c)`` limits every element to ``[-c, c]``; without clipping the
    first steps can be large when ``v`` starts tiny.

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: momentum decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.9999, the paper's).
        epsilon: floor of ``sqrt(v)`` (default 1e-6).
        use_clipping: clip the normalized gradient to ``(t - 1)^(1/4)`` (default True).

    Where libraries disagree: the paper's Algorithm 2 has no clipping (it came
    with the official code's v2); Optax's ``contrib.adopt`` clips as here. The
    official code's weight decay is coupled (``g + wd * x``) unless
    ``decoupled=True``; here ``weight_decay`` is Keras's decoupled decay.
    epsilon is a floor (``max``), not added as in Adam.

    Reference: https://arxiv.org/abs/2411.02853

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.ADOPT(learning_rate=0.1)
        >>> for _ in range(2): _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.99
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.9999,
        epsilon=1e-6,
        use_clipping=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.use_clipping = check_bool("use_clipping", use_clipping)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        t = step_count(self)
        first = tf.equal(t, 1.0)
        # At t = 1 only v is set: beta_1 -> 1 keeps m (and x), beta_2 -> 0 makes v = g^2.
        b1 = tf.where(first, tf.constant(1.0, tf.float64), self._get_hyper("beta_1", tf.float64))
        b2 = tf.where(first, tf.constant(0.0, tf.float64), self._get_hyper("beta_2", tf.float64))
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        m, v = self.get_slot(variable, "m"), self.get_slot(variable, "v")

        normed = gradient / tf.maximum(tf.sqrt(v), epsilon)
        if self.use_clipping:
            limit = cast(dtype, tf.pow(t - 1.0, 0.25))
            normed = tf.clip_by_value(normed, -limit, limit)
        m.assign(cast(dtype, b1) * m + cast(dtype, 1 - b1) * normed)
        variable.assign_sub(lr * m)
        v.assign(cast(dtype, b2) * v + cast(dtype, 1 - b2) * tf.square(gradient))
