"""Prodigy: Adam whose step size ``d`` is estimated from the distance travelled."""

import math

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_positive, check_range, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, cast, constant, own_weight_decay, step_count
from optimlab.registry import register

_F64 = tf.float64


def _check_growth_rate(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or value < 1:
        raise ValueError(f"growth_rate must be a number >= 1 (inf for no limit); got {value!r}")
    return float(value)


def _check_beta_3(value):
    if value is not None:
        check_unit_interval("beta_3", value)
        return float(value)
    return None


def _dot(a, b):
    """Sum of ``a * b`` in float64."""
    return tf.reduce_sum(tf.cast(a, _F64) * tf.cast(b, _F64))


@register(
    "prodigy",
    paper="Mishchenko & Defazio, Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
    year=2023,
    url="https://arxiv.org/abs/2306.06101",
    quadratic=({"learning_rate": 1.0}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.5, "d_coef": 0.1}, 8000, 5e-2),
    # From d0 = 1e-6 the first steps vanish in bfloat16's 8-bit mantissa, so x never
    # leaves x0 and d (which grows with the distance travelled) never grows.
    capabilities=("no_bfloat16",),
    space={"learning_rate": spaces.log(0.1, 10.0, "Mishchenko & Defazio 2023: a multiplier of the estimated step, 1 by "
                                           "default; [0.1, 10]"),
           "beta_1": spaces.BETA_1, "beta_2": spaces.BETA_2,
           "d_coef": spaces.log(0.1, 10.0, "Mishchenko & Defazio 2023: scales the estimate D, 1 by default; [0.1, 10]"),
           "d0": spaces.log(1e-8, 1e-4, "Mishchenko & Defazio 2023 start D at 1e-6; [1e-8, 1e-4]")},
)
class Prodigy(Optimizer):
    """Prodigy (Mishchenko & Defazio, 2023): Adam with a learned global step size ``d``.

    For when the learning rate is unknown: keep ``learning_rate=1`` (a multiplier
    on the estimate, to be combined with a schedule such as cosine decay) and let
    ``d`` grow from ``d0`` to the scale of the distance to the solution.

    Update rule (the official code's Adam form; sums run over all variables;
    ``t`` from 1; ``x0`` the weights at the first step)::

        dlr   = d * lr * bc              (bc = sqrt(1 - beta_2^t) / (1 - beta_1^t) with bias correction, else 1)
        m    <- beta_1 * m + (1 - beta_1) * d * g
        v    <- beta_2 * v + (1 - beta_2) * d^2 * g^2
        s    <- beta_3 * s + (d / d0) * dlr * g
        r    <- beta_3 * r + (d / d0) * dlr * <g, x0 - x>
        d_max <- max(d_max, d_coef * r / sum |s|);   d <- min(d_max, d * growth_rate)
        x    <- x - wd * dlr * x - dlr * m / (sqrt(v) + d * epsilon)

    (``dlr`` is the step's value from before ``d`` changes; ``epsilon`` uses the
    new ``d``.) State: four slots per parameter (``m``, ``v``, ``s``, ``x0``) and
    three scalars (``d``, ``d_max``, ``r``). ``d`` is global: all variables of
    one ``apply`` share it, so this optimizer updates the whole list at once
    (under ``MirroredStrategy`` on the summed gradients, as one device would).

    Args:
        learning_rate: ``lr``, a multiplier of ``d`` (default 1.0).
        beta_1, beta_2: Adam's decays in [0, 1) (default 0.9, 0.999).
        beta_3: decay of ``s`` and ``r`` in [0, 1), or None for ``sqrt(beta_2)`` (default None).
        epsilon: scaled by ``d`` and added after the square root (default 1e-8).
        weight_decay: ``wd`` (default None); decoupled with the step ``dlr`` when
            ``decouple`` (default True), else added to the gradient.
        use_bias_correction: Adam's bias correction in ``dlr`` (default False).
        safeguard_warmup: use ``d * lr`` instead of ``dlr`` in ``s`` (default False).
        d0: initial ``d`` > 0 (default 1e-6).
        d_coef: multiplier of the estimate (default 1.0).
        growth_rate: largest factor by which ``d`` may grow per step (default inf).

    Where libraries disagree: Optax's ``contrib.prodigy`` always applies the
    bias correction and has no ``growth_rate``, ``d_coef``'s name is
    ``estim_lr_coef`` and ``decouple`` does not exist (its decay is
    decoupled). Keras has no Prodigy. Not for bfloat16 weights: the first
    steps (of size ``d0``) round away, so ``d`` never grows.

    Reference: https://arxiv.org/abs/2306.06101

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([1.0, 2.0])
        >>> opt = optimlab.Prodigy()
        >>> for _ in range(200): _ = opt.minimize(lambda: tf.reduce_sum((x - 3.0) ** 2), [x])
        >>> bool(float(opt.d) > 1e-3) and bool(abs(float(x[1]) - 3.0) < 0.1)
        True
    """

    slots = ("m", "v", "s", "x0")

    def __init__(
        self,
        learning_rate=1.0,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=None,
        epsilon=1e-8,
        decouple=True,
        use_bias_correction=False,
        safeguard_warmup=False,
        d0=1e-6,
        d_coef=1.0,
        growth_rate=float("inf"),
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self.beta_3 = _check_beta_3(beta_3)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self._set_hyper("d_coef", d_coef, check=check_positive)
        self.decouple = check_bool("decouple", decouple)
        self.use_bias_correction = check_bool("use_bias_correction", use_bias_correction)
        self.safeguard_warmup = check_bool("safeguard_warmup", safeguard_warmup)
        self.d0 = float(check_range("d0", d0, 0.0, low_open=True))
        self.growth_rate = _check_growth_rate(growth_rate)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._d = self.add_variable((), initializer=constant(self.d0), dtype="float64", name="d")
        self._d_max = self.add_variable((), initializer=constant(self.d0), dtype="float64", name="d_max")
        self._r = self.add_variable((), initializer=constant(0.0), dtype="float64", name="r")

    @property
    def d(self):
        """The current step-size estimate ``d`` (a float64 variable)."""
        return self._d

    def _apply_weight_decay(self, variables):
        """Off: Prodigy scales its decay by ``dlr`` (see the class docstring)."""

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        grads = [tf.convert_to_tensor(g) for g in grads]  # sparse gradients: dense semantics
        self._prodigy_step(grads, list(trainable_variables), tf.cast(learning_rate, _F64))

    def _prodigy_step(self, grads, variables, lr):
        b1, b2 = self._get_hyper("beta_1", _F64), self._get_hyper("beta_2", _F64)
        b3 = tf.sqrt(b2) if self.beta_3 is None else tf.constant(self.beta_3, _F64)
        t = step_count(self)
        d, d0 = tf.convert_to_tensor(self._d), tf.constant(self.d0, _F64)
        bc = tf.sqrt(bias_correction(b2, t)) / bias_correction(b1, t) if self.use_bias_correction else 1.0
        dlr = d * lr * bc
        s_rate = (d / d0) * (d * lr if self.safeguard_warmup else dlr)

        r, s_norm = b3 * tf.convert_to_tensor(self._r), tf.constant(0.0, _F64)
        for g, x in zip(grads, variables):
            dtype = x.dtype
            m, v, s, x0 = (self.get_slot(x, n) for n in ("m", "v", "s", "x0"))
            x0.assign(tf.where(tf.equal(t, 1.0), x, x0))
            if not self.decouple:
                g = g + cast(dtype, own_weight_decay(self, x)) * x
            r += (d / d0) * dlr * _dot(g, x0 - x)
            m.assign(cast(dtype, b1) * m + cast(dtype, (1 - b1) * d) * g)
            v.assign(cast(dtype, b2) * v + cast(dtype, (1 - b2) * d * d) * tf.square(g))
            s.assign(cast(dtype, b3) * s + cast(dtype, s_rate) * g)
            s_norm += tf.reduce_sum(tf.abs(tf.cast(s, _F64)))

        # No gradient so far (sum |s| = 0): no estimate and no step, as the official code.
        moved = s_norm > 0
        d_hat = self._get_hyper("d_coef", _F64) * tf.math.divide_no_nan(r, s_norm)
        d_first = tf.where(tf.equal(d, d0), tf.maximum(d, d_hat), d)
        d_max = tf.where(moved, tf.maximum(self._d_max, d_hat), self._d_max)
        new_d = tf.where(moved, tf.minimum(d_max, d_first * self.growth_rate), d)
        self._r.assign(tf.where(moved, r, self._r))
        self._d_max.assign(d_max)
        self._d.assign(new_d)
        step = tf.where(moved, dlr, 0.0)
        for x in variables:
            dtype = x.dtype
            m, v = self.get_slot(x, "m"), self.get_slot(x, "v")
            denom = tf.sqrt(v) + cast(dtype, new_d * self._get_hyper("epsilon", _F64))
            if self.decouple:
                x.assign_sub(cast(dtype, own_weight_decay(self, x) * step) * x)
            x.assign_sub(cast(dtype, step) * m / denom)
