"""Yogi: Adam with an additive, sign-controlled second-moment update."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_choice, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, step_count
from optimlab.registry import register


def proximal_l1_l2(x, step, l1, l2):
    """``prox`` of ``step * (l1 |x| + l2/2 x^2)`` as TF Addons' Yogi applies it (l1 first, then l2)."""
    x = tf.sign(x) * tf.maximum(tf.abs(x) - step * l1, 0.0)
    return x / (1.0 + l2 * step)


@register(
    "yogi",
    paper="Zaheer et al., Adaptive Methods for Nonconvex Optimization",
    year=2018,
    url="https://papers.nips.cc/paper/8186-adaptive-methods-for-nonconvex-optimization",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    space={"learning_rate": spaces.LEARNING_RATE, "beta_1": spaces.BETA_1, "beta_2": spaces.BETA_2,
           "epsilon": spaces.log(1e-6, 1.0, "Zaheer et al. 2018 recommend 1e-3; [1e-6, 1]"),
           "initial_accumulator_value": spaces.log(1e-8, 1e-2, "Zaheer et al. 2018 use 1e-6; [1e-8, 1e-2]")},
)
class Yogi(Optimizer):
    """Yogi (Zaheer et al., 2018): Adam whose second moment changes additively, by ``sign(g^2 - v) g^2``.

    Use it where Adam's effective learning rate grows too fast after rare large
    gradients (sparse features, recommendation models, noisy objectives).

    Update rule (TF Addons' form; ``t`` counts from 1)::

        lr_t <- lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m <- beta_1 * m + (1 - beta_1) * g
        v <- v + (1 - beta_2) * sign(g^2 - v) * g^2        (activation="tanh": tanh(10 (g^2 - v)))
        eta <- lr_t / (sqrt(v) + epsilon)
        x <- x - eta * m
        x <- sign(x) max(|x| - eta * l1, 0);  x <- x / (1 + eta * l2)   (when l1, l2 > 0)

    Args:
        learning_rate: ``lr`` (default 0.01).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment rate in [0, 1) (default 0.999).
        epsilon: added to ``sqrt(v)`` (default 1e-3, the paper's).
        l1_regularization_strength: ``l1`` >= 0 (default 0.0).
        l2_regularization_strength: ``l2`` >= 0 (default 0.0).
        initial_accumulator_value: start value of ``v`` (default 1e-6).
        activation: "sign" (the paper) or "tanh" (TF Addons' smooth variant) (default "sign").

    Conventions: TF Addons' defaults and its bias-corrected learning rate
    (the paper's Algorithm 2 has no bias correction). Optax's ``yogi`` uses
    epsilon 1e-3 but initial ``v`` 1e-6 and bias-corrects ``m`` and ``v``.

    Paper: https://papers.nips.cc/paper/8186-adaptive-methods-for-nonconvex-optimization

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Yogi(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9016
    """

    def __init__(
        self,
        learning_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-3,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        initial_accumulator_value=1e-6,
        activation="sign",
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self._set_hyper("l1_regularization_strength", l1_regularization_strength, check=check_nonnegative)
        self._set_hyper("l2_regularization_strength", l2_regularization_strength, check=check_nonnegative)
        self.initial_accumulator_value = check_nonnegative("initial_accumulator_value", initial_accumulator_value)
        self.activation = check_choice("activation", activation, ("sign", "tanh"))

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "m")
        value = float(self.initial_accumulator_value)
        for var in var_list:
            self.add_slot(var, "v", initializer=lambda shape, dtype=None: tf.fill(shape, tf.constant(value, dtype)))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        t = step_count(self)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        l1 = self._get_hyper("l1_regularization_strength", dtype)
        l2 = self._get_hyper("l2_regularization_strength", dtype)
        lr_t = tf.cast(learning_rate, tf.float64) * tf.sqrt(bias_correction(beta_2, t)) / bias_correction(beta_1, t)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        g2 = tf.square(gradient)
        direction = tf.sign(g2 - v) if self.activation == "sign" else tf.tanh(10.0 * (g2 - v))
        m.assign(tf.cast(beta_1, dtype) * m + tf.cast(1.0 - beta_1, dtype) * gradient)
        v.assign(v + tf.cast(1.0 - beta_2, dtype) * direction * g2)
        eta = tf.cast(lr_t, dtype) / (tf.sqrt(v) + epsilon)
        variable.assign(proximal_l1_l2(variable - eta * m, eta, l1, l2))

