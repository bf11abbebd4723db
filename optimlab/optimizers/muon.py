"""Muon: momentum orthogonalized by Newton-Schulz for matrices, Adam for the rest."""

import re

import tensorflow as tf

from optimlab._checks import check_bool, check_nonnegative, check_positive, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, cast, own_weight_decay, step_count
from optimlab.registry import register


def newton_schulz(g, steps, coefficients, epsilon):
    """Approximate ``U V^T`` of the matrix ``g = U S V^T`` by the quintic Newton-Schulz iteration.

    ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, from ``X = g / (||g||_F + epsilon)``,
    on the wide orientation of ``g``. The coefficients push singular values
    towards [0.7, 1.2] quickly rather than exactly to 1.
    """
    a, b, c = coefficients
    tall = g.shape[0] > g.shape[1]
    x = tf.transpose(g) if tall else g
    x = x / (tf.norm(x) + epsilon)
    for _ in range(steps):
        gram = tf.matmul(x, x, transpose_b=True)
        x = a * x + tf.matmul(b * gram + c * tf.matmul(gram, gram), x)
    return tf.transpose(x) if tall else x


def as_matrix_shape(shape):
    """The 2-D shape Muon orthogonalizes: the last axis against all the others (conv kernels)."""
    rows = 1
    for size in shape[:-1]:
        rows *= size
    return rows, shape[-1]


def _check_coefficients(value):
    if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise TypeError(f"ns_coefficients must be three numbers (a, b, c); got {value!r}")
    return tuple(float(v) for v in value)


def _check_steps(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"ns_steps must be an integer >= 1; got {value!r}")
    return value


def _check_patterns(value):
    if value is None:
        return ()
    if isinstance(value, str) or not all(isinstance(p, str) for p in value):
        raise TypeError(f"exclude_layers must be a list of regular-expression strings or None; got {value!r}")
    return tuple(value)


@register(
    "muon",
    paper="Jordan et al., Muon: An optimizer for hidden layers in neural networks",
    year=2024,
    url="https://kellerjordan.github.io/posts/muon/",
    quadratic=({"learning_rate": 0.05, "adam_lr_ratio": 1.0, "adam_beta_2": 0.999}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.01, "adam_lr_ratio": 1.0, "adam_beta_2": 0.999}, 5000, 5e-2),
)
class Muon(Optimizer):
    """Muon (Jordan et al., 2024): momentum whose matrix update is orthogonalized by Newton-Schulz.

    For the hidden weight matrices of transformers and CNNs, where it trains
    faster than AdamW at the same cost; embeddings, output layers and
    vectors (biases, norms, scalars) go to the built-in Adam fallback.

    Update rule for a matrix ``W`` of shape (rows, cols) (rank > 2: flattened to
    (prod(shape[:-1]), shape[-1])), Keller Jordan's reference code::

        B <- momentum * B + (1 - momentum) * G
        U  = (1 - momentum) * G + momentum * B        (nesterov; else U = B)
        W <- W - lr * wd * W - lr * sqrt(max(1, rows / cols)) * NewtonSchulz5(U)

    Fallback for other variables (Adam, Algorithm 1; ``lr_a = lr * adam_lr_ratio``)::

        m <- b1 * m + (1 - b1) * g;  v <- b2 * v + (1 - b2) * g^2
        x <- x - lr_a * wd * x - lr_a * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + adam_epsilon)

    A variable uses the fallback when its rank is below 2 (or above 2 with
    ``flatten_higher_rank=False``), when
    ``exclude_embeddings`` and its path contains "embedding", or when its path
    matches a pattern of ``exclude_layers`` (name your output layer there).
    Memory: one slot per matrix parameter, two per fallback parameter.

    Args:
        learning_rate: ``lr`` (default 0.02, the reference's).
        momentum: in [0, 1) (default 0.95).
        nesterov: Nesterov momentum (default True).
        ns_steps: Newton-Schulz iterations (default 5).
        ns_coefficients: ``(a, b, c)`` (default (3.4445, -4.7750, 2.0315)).
        epsilon: added to the Frobenius norm before the iteration (default 1e-7).
        adam_lr_ratio: fallback learning rate over ``lr`` (default 0.015: 3e-4 at lr 0.02).
        adam_beta_1, adam_beta_2, adam_epsilon: the fallback's (default 0.9, 0.95, 1e-10).
        exclude_embeddings: embeddings use the fallback (default True).
        exclude_layers: regular expressions on variable paths for the fallback (default None).
        flatten_higher_rank: variables of rank > 2 (convolution kernels) are
            flattened to matrices, as the reference does (default True); False
            sends them to the fallback, as Keras and Optax do.
        weight_decay: decoupled, scaled by each rule's learning rate (default None).

    Where libraries disagree: ``keras.optimizers.Muon`` keeps ``B <- momentum * B + G``
    (the same direction after normalization), scales by
    ``rms_rate * sqrt(max(rows, cols))`` (Moonlight's rule, 0.2 by default)
    instead of ``sqrt(max(1, rows / cols))``, uses only 2-D variables, Keras-form Adam
    with ``adam_lr_ratio=1`` and decays every variable with ``lr``. Optax's
    ``contrib.muon`` has no shape scaling by default and ``beta=0.95``.

    Reference: https://kellerjordan.github.io/posts/muon/ (and https://github.com/KellerJordan/Muon)

    Example:
        >>> import tensorflow as tf, optimlab
        >>> w = tf.Variable(tf.eye(3) * 2.0)
        >>> opt = optimlab.Muon(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(w ** 2), [w])
        >>> round(float(w[0, 0]), 2)
        1.93
    """

    def __init__(
        self,
        learning_rate=0.02,
        momentum=0.95,
        nesterov=True,
        ns_steps=5,
        ns_coefficients=(3.4445, -4.7750, 2.0315),
        epsilon=1e-7,
        adam_lr_ratio=0.015,
        adam_beta_1=0.9,
        adam_beta_2=0.95,
        adam_epsilon=1e-10,
        exclude_embeddings=True,
        exclude_layers=None,
        flatten_higher_rank=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("momentum", momentum, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self._set_hyper("adam_lr_ratio", adam_lr_ratio, check=check_positive)
        self._set_hyper("adam_beta_1", adam_beta_1, check=check_unit_interval)
        self._set_hyper("adam_beta_2", adam_beta_2, check=check_unit_interval)
        self._set_hyper("adam_epsilon", adam_epsilon, check=check_nonnegative)
        self.nesterov = check_bool("nesterov", nesterov)
        self.ns_steps = _check_steps(ns_steps)
        self.ns_coefficients = _check_coefficients(ns_coefficients)
        self.exclude_embeddings = check_bool("exclude_embeddings", exclude_embeddings)
        self.exclude_layers = _check_patterns(exclude_layers)
        self.flatten_higher_rank = check_bool("flatten_higher_rank", flatten_higher_rank)

    def uses_muon(self, variable):
        """Whether ``variable`` gets the orthogonalized update (else the Adam fallback)."""
        if len(variable.shape) < 2 or (len(variable.shape) > 2 and not self.flatten_higher_rank):
            return False
        path = getattr(variable, "path", None) or variable.name
        if self.exclude_embeddings and "embedding" in path.lower():
            return False
        return not any(re.search(p, path) for p in self.exclude_layers)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "momentum")
        for var in var_list:
            if not self.uses_muon(var):
                self.add_slot(var, "velocity")

    def _apply_weight_decay(self, variables):
        """Off: each rule decays with its own learning rate (see ``update_step``)."""

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, tf.float64)
        wd = own_weight_decay(self, variable)
        if self.uses_muon(variable):
            self._muon_step(gradient, variable, lr, wd)
        else:
            self._adam_step(gradient, variable, lr * self._get_hyper("adam_lr_ratio", tf.float64), wd)

    def _muon_step(self, gradient, variable, lr, wd):
        dtype = variable.dtype
        beta = self._get_hyper("momentum", dtype)
        b = self.get_slot(variable, "momentum")
        b.assign(beta * b + (1 - beta) * gradient)
        u = (1 - beta) * gradient + beta * b if self.nesterov else b
        rows, cols = as_matrix_shape(variable.shape)
        epsilon = self._get_hyper("epsilon", dtype)
        direction = newton_schulz(tf.reshape(u, (rows, cols)), self.ns_steps, self.ns_coefficients, epsilon)
        scale = max(1.0, rows / cols) ** 0.5
        variable.assign_sub(cast(dtype, lr * wd) * variable)
        variable.assign_sub(cast(dtype, lr * scale) * tf.reshape(direction, variable.shape))

    def _adam_step(self, gradient, variable, lr, wd):
        dtype = variable.dtype
        b1, b2 = self._get_hyper("adam_beta_1", tf.float64), self._get_hyper("adam_beta_2", tf.float64)
        t = step_count(self)
        m, v = self.get_slot(variable, "momentum"), self.get_slot(variable, "velocity")
        m.assign(cast(dtype, b1) * m + cast(dtype, 1 - b1) * gradient)
        v.assign(cast(dtype, b2) * v + cast(dtype, 1 - b2) * tf.square(gradient))
        m_hat = m / cast(dtype, bias_correction(b1, t))
        v_hat = v / cast(dtype, bias_correction(b2, t))
        variable.assign_sub(cast(dtype, lr * wd) * variable)
        variable.assign_sub(cast(dtype, lr) * m_hat / (tf.sqrt(v_hat) + self._get_hyper("adam_epsilon", dtype)))
