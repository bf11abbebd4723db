"""Lion (EvoLved Sign Momentum) with Keras's arguments."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_range, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "lion",
    paper="Chen et al., Symbolic Discovery of Optimization Algorithms",
    year=2023,
    url="https://arxiv.org/abs/2302.06675",
    quadratic=({"learning_rate": 0.01, "beta_1": 0.5}, 500, 2e-2),
    rosenbrock=({"learning_rate": 3e-4}, 20000, 5e-2),
    space={"learning_rate": spaces.log(1e-6, 1e-1, "Chen et al. 2023: 3-10 times smaller than AdamW's; [1e-6, 0.1]"),
           "beta_1": spaces.BETA_1,
           "beta_2": spaces.log1m(0.9, 0.9999, "Chen et al. 2023 use 0.99 (0.98 for stability); 1 - beta_2 in [1e-4, 0.1]")},
)
class Lion(Optimizer):
    """Lion (Chen et al., 2023): the sign of an interpolated momentum, found by program search.

    Uses half of Adam's memory (one slot); take a learning rate 3-10x smaller
    and a weight decay 3-10x larger than for AdamW.

    Update rule (Algorithm 1 of the paper, ``m`` starts at zero)::

        c <- beta_1 * m + (1 - beta_1) * g
        x <- x - lr * sign(c)
        m <- beta_2 * m + (1 - beta_2) * g

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: interpolation for the step, in [0, 1] (default 0.9; 0 gives signSGD).
        beta_2: momentum decay in [0, 1) (default 0.99).

    Conventions: the update of ``keras.optimizers.Lion`` and Optax's ``lion``.
    Keras refuses ``beta_1=0``, which here gives signSGD (the paper's limit);
    a ``beta_1`` outside [0, 1] is a ValueError in both, and ``beta_2`` outside
    [0, 1) is one here (Keras does not check it). The paper's decoupled weight
    decay ``x <- x - lr * wd * x`` is the base class's ``weight_decay`` argument.

    Reference: https://arxiv.org/abs/2302.06675

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Lion(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    slots = ("m",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=lambda name, value: check_range(name, value, 0.0, 1.0))
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        m = self.get_slot(variable, "m")

        c = m * tf.cast(beta_1, dtype) + gradient * tf.cast(1.0 - beta_1, dtype)
        variable.assign_sub(lr * tf.sign(c))
        m.assign(m * tf.cast(beta_2, dtype) + gradient * tf.cast(1.0 - beta_2, dtype))
