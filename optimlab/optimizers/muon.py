"""Muon: momentum orthogonalized by Newton-Schulz for matrices, Adam for the rest."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import (
    check_bool,
    check_choice,
    check_int,
    check_nonnegative,
    check_positive,
    check_range,
    check_unit_interval,
)
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import (
    bias_correction,
    cast,
    check_patterns,
    keras_adam_step_size,
    matches_any,
    own_weight_decay,
    step_count,
)
from optimlab.registry import register


def transpose_last_axes(x):
    """``x`` with its last two axes swapped: each matrix of a batch of matrices transposed."""
    if len(x.shape) < 2:
        raise ValueError(f"expected a matrix or a batch of matrices (rank >= 2); got shape {tuple(x.shape)}")
    return tf.linalg.matrix_transpose(x)


def newton_schulz(g, steps, coefficients, epsilon):
    """Approximate ``U V^T`` of the matrix ``g = U S V^T`` by the quintic Newton-Schulz iteration.

    ``X <- a X + (b A + c A^2) X`` with ``A = X X^T``, from ``X = g / (||g||_F + epsilon)``,
    on the wide orientation of ``g``. The coefficients push singular values
    towards [0.7, 1.2] quickly rather than exactly to 1. A ``g`` of rank > 2 is a
    batch of matrices on its last two axes.
    """
    a, b, c = coefficients
    tall = g.shape[-2] > g.shape[-1]
    x = transpose_last_axes(g) if tall else g
    x = x / (tf.norm(x, axis=(-2, -1), keepdims=True) + epsilon)
    for _ in range(steps):
        gram = tf.matmul(x, x, transpose_b=True)
        x = a * x + tf.matmul(b * gram + c * tf.matmul(gram, gram), x)
    return transpose_last_axes(x) if tall else x


def as_matrix_shape(shape):
    """The 2-D shape ``(fan_in, fan_out)`` Muon orthogonalizes: the last axis against all the others.

    Keras keeps kernels as (fan_in, fan_out) (convolutions as (..., in, out)),
    the transpose of torch's (out, in).
    """
    rows = 1
    for size in shape[:-1]:
        rows *= size
    return rows, shape[-1]


def shape_scale(fan_in, fan_out, rms_rate=None):
    """The factor on the orthogonalized update of a (fan_in, fan_out) matrix.

    ``sqrt(max(1, fan_out / fan_in))`` (the reference's ``max(1, rows / cols)``
    on torch's (out, in) layout, and Optax's width scaling); with ``rms_rate``,
    ``rms_rate * sqrt(max(fan_in, fan_out))`` (Moonlight's rule, used by Keras
    and by Optax's ``consistent_rms``), which gives updates of RMS about ``rms_rate``.
    """
    if rms_rate is None:
        return max(1.0, fan_out / fan_in) ** 0.5
    return rms_rate * max(fan_in, fan_out) ** 0.5


def _check_rms_rate(value):
    if value is None:
        return None
    return float(check_positive("rms_rate", value))


DEFAULT_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
KERAS_COEFFICIENT_NAMES = ("muon_a", "muon_b", "muon_c")
# a is the iteration's slope at zero (it must grow small singular values): > 0;
# c >= 0 as in every published set (Jordan's, You's, Polar Express, the cubic (1.5, -0.5, 0)).
COEFFICIENT_RANGES = ({"low": 0.0, "low_open": True}, {}, {"low": 0.0})


def _check_coefficient(name, value, index):
    return float(check_range(name, value, dynamic=False, **COEFFICIENT_RANGES[index]))


def _check_coefficients(value):
    if not isinstance(value, (tuple, list)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise TypeError(f"ns_coefficients must be three numbers (a, b, c); got {value!r}")
    return tuple(_check_coefficient(f"ns_coefficients[{i}]", v, i) for i, v in enumerate(value))


def _coefficients(ns_coefficients, muon_abc):
    """``ns_coefficients`` with Keras's ``muon_a``, ``muon_b``, ``muon_c`` in their places where they differ from the default.

    Both spellings of one coefficient set to different non-default values is a ValueError.
    """
    coefficients = list(_check_coefficients(ns_coefficients))
    for i, (name, value) in enumerate(zip(KERAS_COEFFICIENT_NAMES, muon_abc)):
        value = _check_coefficient(name, value, i)
        if value == DEFAULT_COEFFICIENTS[i]:
            continue
        if coefficients[i] not in (value, DEFAULT_COEFFICIENTS[i]):
            raise ValueError(
                f"{name}={value} conflicts with ns_coefficients[{i}]={coefficients[i]}; "
                f"give the coefficient once (ns_coefficients=(a, b, c) or muon_a/muon_b/muon_c)"
            )
        coefficients[i] = value
    return tuple(coefficients)


def _keras_coefficient(index):
    """Keras's ``muon_a``/``muon_b``/``muon_c``: one entry of ``ns_coefficients``, readable and settable."""

    def set_coefficient(self, value):
        coefficients = list(self.ns_coefficients)
        coefficients[index] = _check_coefficient(KERAS_COEFFICIENT_NAMES[index], value, index)
        self.ns_coefficients = tuple(coefficients)

    return property(lambda self: self.ns_coefficients[index], set_coefficient)


@register(
    "muon",
    paper="Jordan et al., Muon: An optimizer for hidden layers in neural networks",
    year=2024,
    url="https://kellerjordan.github.io/posts/muon/",
    quadratic=({"learning_rate": 0.05, "adam_lr_ratio": 1.0, "adam_beta_2": 0.999}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.01, "adam_lr_ratio": 1.0, "adam_beta_2": 0.999}, 5000, 5e-2),
    space={"learning_rate": spaces.log(1e-4, 1.0, "Jordan et al. 2024 use 0.02; [1e-4, 1]"),
           "momentum": spaces.log1m(0.5, 0.999, "Jordan et al. 2024 use 0.95; 1 - momentum in [1e-3, 0.5]"),
           "nesterov": spaces.BOOLEAN,
           "ns_steps": spaces.integer(1, 10, "Jordan et al. 2024 use 5 Newton-Schulz steps; 1 to 10")},
)
class Muon(Optimizer):
    """Muon (Jordan et al., 2024): momentum whose matrix update is orthogonalized by Newton-Schulz.

    For the hidden weight matrices of transformers and CNNs, where it trains
    faster than AdamW at the same cost; embeddings, output layers and
    vectors (biases, norms, scalars) go to the built-in Adam fallback.

    Update rule for a Keras kernel ``W`` of shape (fan_in, fan_out) (rank > 2:
    flattened to (prod(shape[:-1]), shape[-1])), Keller Jordan's reference code::

        B <- momentum * B + (1 - momentum) * G        (momentum_form="sum": B <- momentum * B + G)
        U  = (1 - momentum) * G + momentum * B        (nesterov, "sum": U = G + momentum * B; else U = B)
        W <- W - lr * wd * W - lr * s * NewtonSchulz5(U)
        s  = sqrt(max(1, fan_out / fan_in))           (rms_rate: rms_rate * sqrt(max(fan_in, fan_out)))

    The reference scales by ``max(1, rows / cols)`` on torch's (out, in)
    layout, which is ``fan_out / fan_in``: a 64 -> 8 Dense kernel gets ``s = 1``
    and an 8 -> 64 one ``s = sqrt(8)``.

    Fallback for other variables (Adam, Algorithm 1; ``lr_a = lr * adam_lr_ratio``,
    ``wd_a = adam_weight_decay``, which defaults to ``wd``)::

        m <- b1 * m + (1 - b1) * g;  v <- b2 * v + (1 - b2) * g^2
        x <- x - lr_a * wd_a * x - lr_a * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + adam_epsilon)

    (``adam_epsilon_hat=True``: Keras's form, ``x <- x - lr_a * sqrt(1 - b2^t) /
    (1 - b1^t) * m / (sqrt(v) + adam_epsilon)``, as :class:`optimlab.Adam`'s ``epsilon_hat``.)

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
        ns_coefficients: ``(a, b, c)`` with ``a > 0``, ``c >= 0`` (default (3.4445, -4.7750, 2.0315)).
        muon_a, muon_b, muon_c: Keras's names for the entries of ``ns_coefficients``
            (defaults as there; a value other than the default replaces that entry);
            also readable and settable attributes.
        epsilon: added to the Frobenius norm before the iteration (default 1e-7).
        rms_rate: None (default) for the reference's shape scale; a positive
            number for Moonlight's ``rms_rate * sqrt(max(fan_in, fan_out))`` (Keras's 0.2).
        momentum_form: "average" (default, the reference's) or "sum" (Keras's
            buffer, ``1 / (1 - momentum)`` times larger: the same direction up to
            ``epsilon`` and rounding).
        adam_lr_ratio: fallback learning rate over ``lr`` (default 0.015: 3e-4 at lr 0.02).
        adam_beta_1, adam_beta_2, adam_epsilon: the fallback's (default 0.9, 0.95, 1e-10).
        adam_epsilon_hat: Keras's form of Adam in the fallback (default False).
        adam_weight_decay: decoupled decay of the fallback's variables, scaled by
            ``lr_a``; None (default) uses ``weight_decay``.
        exclude_embeddings: embeddings use the fallback (default True).
        exclude_layers: regular expressions on variable paths for the fallback (default None).
        flatten_higher_rank: variables of rank > 2 (convolution kernels) are
            flattened to matrices, as the reference does (default True); False
            sends them to the fallback, as Keras and Optax do.
        weight_decay: decoupled, scaled by each rule's learning rate (default None).

    Where libraries disagree: ``keras.optimizers.Muon`` is this class with
    ``momentum_form="sum", rms_rate=0.2, flatten_higher_rank=False,
    adam_lr_ratio=1, adam_beta_2=0.999, adam_epsilon=1e-7, adam_epsilon_hat=True,
    weight_decay=0.004, adam_weight_decay=0.004`` and its default learning rate
    0.001 (equal up to float32 rounding; Keras decays the fallback's variables
    with ``lr``, not ``lr_a``, which differs only when ``adam_lr_ratio != 1``).
    Keras's methods ``zeropower_via_newtonschulz5``, ``transpose_last_axis``,
    ``lr_adjust`` and ``_should_use_adamw`` exist here with Keras's meaning, and
    the decay runs in ``_apply_weight_decay`` as in Keras. One name differs:
    Keras's ``epsilon`` is the fallback's (its Newton-Schulz epsilon is a fixed
    1e-7), optimlab's ``epsilon`` is the Newton-Schulz one and ``adam_epsilon``
    the fallback's; pass ``adam_epsilon`` where Keras code passes ``epsilon``.
    Optax's ``contrib.muon`` scales by ``sqrt(max(1, fan_out / fan_in))`` as here
    (``consistent_rms`` gives the ``rms_rate`` rule), but bias-corrects its
    momentum, which changes the Nesterov direction in early steps, and
    defaults to ``eps=1e-8`` and ``adam_lr = lr``.

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
        ns_coefficients=DEFAULT_COEFFICIENTS,
        epsilon=1e-7,
        adam_lr_ratio=0.015,
        adam_beta_1=0.9,
        adam_beta_2=0.95,
        adam_epsilon=1e-10,
        exclude_embeddings=True,
        exclude_layers=None,
        flatten_higher_rank=True,
        rms_rate=None,
        momentum_form="average",
        adam_epsilon_hat=False,
        adam_weight_decay=None,
        muon_a=DEFAULT_COEFFICIENTS[0],
        muon_b=DEFAULT_COEFFICIENTS[1],
        muon_c=DEFAULT_COEFFICIENTS[2],
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
        self.ns_steps = check_int("ns_steps", ns_steps, low=1)
        self.ns_coefficients = _coefficients(ns_coefficients, (muon_a, muon_b, muon_c))
        self.exclude_embeddings = check_bool("exclude_embeddings", exclude_embeddings)
        self.exclude_layers = check_patterns("exclude_layers", exclude_layers)
        self.flatten_higher_rank = check_bool("flatten_higher_rank", flatten_higher_rank)
        self.rms_rate = _check_rms_rate(rms_rate)
        self.momentum_form = check_choice("momentum_form", momentum_form, ("average", "sum"))
        self.adam_epsilon_hat = check_bool("adam_epsilon_hat", adam_epsilon_hat)
        if adam_weight_decay is not None:
            adam_weight_decay = float(check_nonnegative("adam_weight_decay", adam_weight_decay))
        self.adam_weight_decay = adam_weight_decay

    muon_a, muon_b, muon_c = (_keras_coefficient(i) for i in range(3))

    def uses_muon(self, variable):
        """Whether ``variable`` gets the orthogonalized update (else the Adam fallback)."""
        if len(variable.shape) < 2 or (len(variable.shape) > 2 and not self.flatten_higher_rank):
            return False
        path = getattr(variable, "path", None) or variable.name
        if self.exclude_embeddings and "embedding" in path.lower():
            return False
        return not matches_any(self.exclude_layers, variable)

    def get_config(self):
        """The base's config plus Keras's ``muon_a``/``muon_b``/``muon_c`` (the entries of ``ns_coefficients``)."""
        return {**super().get_config(), **dict(zip(KERAS_COEFFICIENT_NAMES, self.ns_coefficients))}

    def _should_use_adamw(self, variable):
        """Keras's name for ``not uses_muon(variable)``: the variable takes the Adam fallback."""
        return not self.uses_muon(variable)

    def zeropower_via_newtonschulz5(self, x, steps):
        """Keras's name for :func:`newton_schulz` with this optimizer's ``ns_coefficients`` and ``epsilon``.

        ``x``: a matrix, or a batch of matrices on its last two axes; ``steps``: iterations.
        """
        x = tf.convert_to_tensor(x)
        if len(x.shape) < 2:
            raise ValueError(f"zeropower_via_newtonschulz5 needs x of rank >= 2 (a matrix); got shape {tuple(x.shape)}")
        steps = check_int("steps", steps, low=1)
        return newton_schulz(x, steps, self.ns_coefficients, self._get_hyper("epsilon", x.dtype))

    def transpose_last_axis(self, x):
        """Keras's name for :func:`transpose_last_axes`: ``x`` with its last two axes swapped."""
        return transpose_last_axes(tf.convert_to_tensor(x))

    def lr_adjust(self, x):
        """``x`` times the shape scale of an orthogonalized update of ``x``'s shape (Keras's name).

        ``rms_rate * sqrt(max(fan_in, fan_out))`` with ``rms_rate`` as Keras; with
        ``rms_rate=None`` the reference's ``sqrt(max(1, fan_out / fan_in))``, where
        Keras returns ``x`` unchanged (the two agree for fan_out <= fan_in).
        """
        x = tf.convert_to_tensor(x)
        if len(x.shape) < 2:
            raise ValueError(f"lr_adjust needs x of rank >= 2 (a matrix); got shape {tuple(x.shape)}")
        return x * tf.cast(shape_scale(*as_matrix_shape(x.shape), self.rms_rate), x.dtype)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "momentum")
        for var in var_list:
            if not self.uses_muon(var):
                self.add_slot(var, "velocity")

    def _decays_weights(self):
        return self.weight_decay is not None or self.adam_weight_decay is not None

    def _decay_one(self, variable, learning_rate):
        """Decoupled decay before the update, each rule at its own rate.

        ``lr * weight_decay`` for the orthogonalized matrices, ``lr_a *
        adam_weight_decay`` (``weight_decay`` when None) for the fallback's variables.
        """
        lr = tf.cast(learning_rate, tf.float64)
        wd = own_weight_decay(self, variable)
        if not self.uses_muon(variable):
            lr = lr * self._get_hyper("adam_lr_ratio", tf.float64)
            if self.adam_weight_decay is not None:
                wd = tf.constant(self.adam_weight_decay if self._use_weight_decay(variable) else 0.0, tf.float64)
        variable.assign_sub(cast(variable.dtype, lr * wd) * variable)

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, tf.float64)
        if self.uses_muon(variable):
            self._muon_step(gradient, variable, lr)
            return
        self._adam_step(gradient, variable, lr * self._get_hyper("adam_lr_ratio", tf.float64))

    def _muon_step(self, gradient, variable, lr):
        dtype = variable.dtype
        beta = self._get_hyper("momentum", dtype)
        b = self.get_slot(variable, "momentum")
        if self.momentum_form == "sum":
            b.assign(beta * b + gradient)
            u = gradient + beta * b if self.nesterov else b
        else:
            b.assign(beta * b + (1 - beta) * gradient)
            u = (1 - beta) * gradient + beta * b if self.nesterov else b
        fan_in, fan_out = as_matrix_shape(variable.shape)
        direction = self.zeropower_via_newtonschulz5(tf.reshape(u, (fan_in, fan_out)), self.ns_steps)
        scale = shape_scale(fan_in, fan_out, self.rms_rate)
        variable.assign_sub(cast(dtype, lr * scale) * tf.reshape(direction, variable.shape))

    def _adam_step(self, gradient, variable, lr):
        dtype = variable.dtype
        b1, b2 = self._get_hyper("adam_beta_1", tf.float64), self._get_hyper("adam_beta_2", tf.float64)
        t = step_count(self)
        m, v = self.get_slot(variable, "momentum"), self.get_slot(variable, "velocity")
        if self.adam_epsilon_hat:
            alpha = keras_adam_step_size(lr, b1, b2, self.iterations + 1, dtype)
            m.assign_add((gradient - m) * cast(dtype, 1 - b1))
            v.assign_add((tf.square(gradient) - v) * cast(dtype, 1 - b2))
            variable.assign_sub(m * alpha / (tf.sqrt(v) + self._get_hyper("adam_epsilon", dtype)))
            return
        m.assign(cast(dtype, b1) * m + cast(dtype, 1 - b1) * gradient)
        v.assign(cast(dtype, b2) * v + cast(dtype, 1 - b2) * tf.square(gradient))
        m_hat = m / cast(dtype, bias_correction(b1, t))
        v_hat = v / cast(dtype, bias_correction(b2, t))
        variable.assign_sub(cast(dtype, lr) * m_hat / (tf.sqrt(v_hat) + self._get_hyper("adam_epsilon", dtype)))
