"""Adafactor with factored second moments, with Keras's arguments."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_positive, check_range
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import step_count
from optimlab.registry import register


def rms(x):
    """Root mean square of all elements."""
    return tf.sqrt(tf.reduce_mean(tf.square(x)))


def factored_second_moment(row, col):
    """``V = R C / mean(R)`` rebuilt from row and column means over the last two axes."""
    return tf.expand_dims(row / tf.reduce_mean(row, axis=-1, keepdims=True), -1) * tf.expand_dims(col, -2)


def _check_decay(name, value):
    return check_range(name, value, None, 0.0, high_open=True)


@register(
    "adafactor",
    paper="Shazeer & Stern, Adafactor: Adaptive Learning Rates with Sublinear Memory Cost",
    year=2018,
    url="https://arxiv.org/abs/1804.04235",
    quadratic=({"learning_rate": 0.2}, 500, 2e-2),
    rosenbrock=({"learning_rate": 0.05}, 10000, 5e-2),
    space={"learning_rate": spaces.LEARNING_RATE,
           "beta_2_decay": spaces.linear(-1.0, -0.5, "Shazeer & Stern 2018 use -0.8 (decay 1 - t^-0.8); [-1, -0.5]"),
           "clip_threshold": spaces.log(0.5, 4.0, "Shazeer & Stern 2018 use 1; [0.5, 4]")},
)
class Adafactor(Optimizer):
    """Adafactor (Shazeer & Stern, 2018): Adam-like scaling with second moments stored as row and column means.

    For large matrices (transformer embeddings and projections) where Adam's
    per-element second moment would not fit in memory: an ``n x m`` matrix keeps
    ``n + m`` numbers.

    Update rule (Algorithms 4 and 5 of the paper without first moment; ``t``
    counts from 1; variables of rank >= 2 are factored over their last two axes)::

        beta_2_t = 1 - t^beta_2_decay
        G = g^2 + epsilon_1
        R <- beta_2_t * R + (1 - beta_2_t) * mean(G, axis=-1)     (rank >= 2)
        C <- beta_2_t * C + (1 - beta_2_t) * mean(G, axis=-2)
        V  = R C / mean(R)                                         (rank < 2: V <- beta_2_t V + (1 - beta_2_t) G)
        U  = g / sqrt(V)
        U  = U / max(1, rms(U) / clip_threshold)
        alpha_t = max(epsilon_2, rms(x)) * min(lr, 1 / sqrt(t))   (relative_step=False: alpha_t = lr)
        x <- x - alpha_t * U

    Args:
        learning_rate: ``lr``, the cap of the relative step (default 0.001;
            the paper's is 0.01).
        beta_2_decay: exponent of the second-moment decay, < 0 (default -0.8).
        epsilon_1: added to the squared gradient (default 1e-30).
        epsilon_2: smallest parameter scale (default 1e-3).
        clip_threshold: update clipping threshold ``d`` (default 1.0).
        relative_step: scale steps by the parameters' RMS and ``1/sqrt(t)``
            (default True).

    Conventions: with ``relative_step=True`` equal up to float32 rounding to
    ``keras.optimizers.Adafactor`` (for either value of Keras's ``relative_step``,
    which always applies the relative step). ``relative_step=False`` is the
    paper's plain step size ``alpha_t = lr``; Keras has no such mode. Keras also
    stores a full-size ``V`` for factored variables; here only ``R`` and ``C``.
    Optax's ``adafactor`` factors only dimensions >= 128 and uses
    ``decay_rate=0.8`` for ``-beta_2_decay``.

    Reference: https://arxiv.org/abs/1804.04235

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
        >>> opt = optimlab.Adafactor(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(x ** 2), [x])
        >>> [round(float(v), 4) for v in x.numpy().ravel()]
        [0.7879, 1.7, 2.7154, 3.7317]
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_2_decay=-0.8,
        epsilon_1=1e-30,
        epsilon_2=1e-3,
        clip_threshold=1.0,
        relative_step=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_2_decay", beta_2_decay, check=_check_decay)
        self._set_hyper("epsilon_1", epsilon_1, check=check_nonnegative)
        self._set_hyper("epsilon_2", epsilon_2, check=check_nonnegative)
        self._set_hyper("clip_threshold", clip_threshold, check=check_positive)
        self.relative_step = check_bool("relative_step", relative_step)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            shape = tuple(var.shape)
            if len(shape) >= 2:
                self.add_slot(var, "row", shape=shape[:-1])
                self.add_slot(var, "col", shape=shape[:-2] + shape[-1:])
            else:
                self.add_slot(var, "v")

    def _step_size(self, variable, lr, t):
        if not self.relative_step:
            return lr
        dtype = variable.dtype
        rho_t = tf.minimum(lr, tf.cast(tf.math.rsqrt(t), dtype))
        return tf.maximum(self._get_hyper("epsilon_2", dtype), rms(variable)) * rho_t

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        t = step_count(self)
        beta = 1.0 - tf.pow(t, self._get_hyper("beta_2_decay", tf.float64))
        beta_t, one_minus_beta = tf.cast(beta, dtype), tf.cast(1.0 - beta, dtype)
        alpha_t = self._step_size(variable, tf.cast(learning_rate, dtype), t)
        g2 = tf.square(gradient) + self._get_hyper("epsilon_1", dtype)

        if len(variable.shape) >= 2:
            row = self.get_slot(variable, "row")
            col = self.get_slot(variable, "col")
            row.assign(beta_t * row + one_minus_beta * tf.reduce_mean(g2, axis=-1))
            col.assign(beta_t * col + one_minus_beta * tf.reduce_mean(g2, axis=-2))
            v = factored_second_moment(row, col)
        else:
            v = self.get_slot(variable, "v")
            v.assign(beta_t * v + one_minus_beta * g2)
        u = gradient / tf.sqrt(v)
        u = u / tf.maximum(tf.ones([], dtype), rms(u) / self._get_hyper("clip_threshold", dtype))
        variable.assign_sub(alpha_t * u)
