"""COCOB-Backprop: learning-rate-free optimization by coin betting."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_range
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "cocob",
    paper="Orabona & Tommasi, Training Deep Networks without Learning Rates Through Coin Betting",
    year=2017,
    url="https://arxiv.org/abs/1705.07795",
    quadratic=({"alpha": 100.0}, 1000, 5e-2),
    rosenbrock=({"alpha": 100.0}, 20000, 1e-1),
    space={"alpha": spaces.log(1.0, 1000.0, "Orabona & Tommasi 2017 use 100; [1, 1000]"),
           "learning_rate": spaces.log(0.1, 10.0, "a multiplier of COCOB's parameter-free step, 1 by default; [0.1, 10]")},
)
class COCOB(Optimizer):
    """COCOB-Backprop (Orabona & Tommasi, 2017): each weight bets on the sign of its gradient; no learning rate.

    Use it when you do not want to tune a learning rate: the step grows with
    the "wealth" won on consistent gradients and shrinks when bets are lost.

    Update rule (Algorithm 2 of the paper, ``w1`` the initial weights, ``L_0 = 1e-8``)::

        L <- max(L, |g|)
        G <- G + |g|
        reward <- max(reward - g * (x - w1), 0)
        theta <- theta + g
        x <- w1 - theta / (L * max(G + L, alpha * L)) * (L + reward)

    ``x - w1`` is kept in the slot ``tilde_w``, so ``w1`` is never stored.

    Args:
        alpha: >= 1, limits the first steps (default 100.0, the paper's).
        learning_rate: accepted for API compatibility and ignored (default 1.0).

    Conventions: TF Addons' ``COCOB`` (same slots and defaults); the paper's
    ``L`` starts at a small epsilon (1e-8 here, as TF Addons' initializer).
    Neither Keras nor torch.optim ships it. Optax's ``contrib.cocob`` is the
    same algorithm (``L_0 = eps = 1e-8``, ``alpha = 100``): at its
    ``learning_rate=1`` it equals this optimizer. Its ``learning_rate`` multiplies
    the gradients first, to which COCOB's step is invariant but for ``L_0``.

    Paper: https://arxiv.org/abs/1705.07795

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.COCOB()
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.99
    """

    def __init__(self, alpha=100.0, learning_rate=1.0, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("alpha", alpha, check=lambda n, v: check_range(n, v, 1.0))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "L", initializer=lambda shape, dtype=None: tf.fill(shape, tf.constant(1e-8, dtype)))
        for name in ("grad_norm_sum", "gradients_sum", "tilde_w", "reward"):
            for var in var_list:
                self.add_slot(var, name)

    def update_step(self, gradient, variable, learning_rate):
        alpha = self._get_hyper("alpha", variable.dtype)
        big_l = self.get_slot(variable, "L")
        big_g = self.get_slot(variable, "grad_norm_sum")
        theta = self.get_slot(variable, "gradients_sum")
        tilde_w = self.get_slot(variable, "tilde_w")
        reward = self.get_slot(variable, "reward")

        big_l.assign(tf.maximum(big_l, tf.abs(gradient)))
        big_g.assign_add(tf.abs(gradient))
        reward.assign(tf.maximum(reward - gradient * tilde_w, 0.0))
        theta.assign_add(gradient)
        new_tilde_w = -theta / (big_l * tf.maximum(big_g + big_l, alpha * big_l)) * (big_l + reward)
        variable.assign_add(new_tilde_w - tilde_w)
        tilde_w.assign(new_tilde_w)
