"""Adan: adaptive Nesterov momentum from gradient differences."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, cast, own_weight_decay, step_count
from optimlab.registry import register


@register(
    "adan",
    paper="Xie et al., Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models",
    year=2022,
    url="https://arxiv.org/abs/2208.06677",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.01}, 5000, 5e-2),
    space={"learning_rate": spaces.LEARNING_RATE, "beta_1": spaces.BETA_1, "beta_2": spaces.BETA_1,
           "beta_3": spaces.log1m(0.9, 0.9999, "Xie et al. 2022 use 0.99; 1 - beta_3 in [1e-4, 0.1]"),
           "epsilon": spaces.EPSILON},
)
class Adan(Optimizer):
    """Adan (Xie et al., 2022): Adam-like steps with a Nesterov estimate from gradient differences.

    For vision transformers, CNNs and language models where it trains as well as
    AdamW with fewer steps and tolerates larger learning rates and batches.

    Update rule (Algorithm 1 of the paper in the official code's form, ``t`` from
    1, ``g_prev = g`` at ``t = 1``; the paper's betas are one minus these)::

        d <- g - g_prev
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * d
        n <- beta_3 * n + (1 - beta_3) * (g + beta_2 * d)^2
        u <- (m / (1 - beta_1^t) + beta_2 * v / (1 - beta_2^t)) / (sqrt(n / (1 - beta_3^t)) + epsilon)
        x <- x - lr * u                     (proximal: x <- (x - lr * u) / (1 + lr * wd))

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1, beta_2, beta_3: decays of the gradient, difference and squared
            moments, in [0, 1) (default 0.98, 0.92, 0.99: the paper's 0.02, 0.08, 0.01).
        epsilon: added after the square root (default 1e-8).
        proximal: apply ``weight_decay`` as the paper's proximal step (True) or
            as Keras's decoupled ``x <- x - lr * wd * x`` before the step, which is
            the official code's ``no_prox=True`` (default False).

    Where libraries disagree: the paper's Algorithm 1 has no bias correction;
    the official code and Optax add it, as here. Optax's ``adan(b2=...)``
    weights the difference terms by ``1 - b2`` where the paper and the official
    code use ``beta_2`` (with the default 0.92: 0.08 instead of 0.92); the two
    agree only at ``beta_2 = 0.5``. Optax also adds ``eps_root=1e-8`` inside the
    square root. The paper's weight decay is 0.02; here it is off unless given.

    Reference: https://arxiv.org/abs/2208.06677

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Adan(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    slots = ("m", "v", "n", "g_prev")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.98,
        beta_2=0.92,
        beta_3=0.99,
        epsilon=1e-8,
        proximal=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("beta_3", beta_3, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.proximal = check_bool("proximal", proximal)

    def _apply_weight_decay(self, variables):
        if not self.proximal:
            super()._apply_weight_decay(variables)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        b1, b2, b3 = (self._get_hyper(b, tf.float64) for b in ("beta_1", "beta_2", "beta_3"))
        t = step_count(self)
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        m, v, n, g_prev = (self.get_slot(variable, s) for s in ("m", "v", "n", "g_prev"))

        d = (gradient - g_prev) * tf.cast(t > 1, dtype)
        m.assign(cast(dtype, b1) * m + cast(dtype, 1 - b1) * gradient)
        v.assign(cast(dtype, b2) * v + cast(dtype, 1 - b2) * d)
        n.assign(cast(dtype, b3) * n + cast(dtype, 1 - b3) * tf.square(gradient + cast(dtype, b2) * d))
        g_prev.assign(gradient)
        bc1, bc2, bc3 = cast(dtype, bias_correction(b1, t), bias_correction(b2, t), bias_correction(b3, t))
        u = (m / bc1 + cast(dtype, b2) * v / bc2) / (tf.sqrt(n / bc3) + epsilon)
        if self.proximal:
            wd = tf.cast(own_weight_decay(self, variable), dtype)
            variable.assign((variable - lr * u) / (1 + lr * wd))
        else:
            variable.assign_sub(lr * u)
