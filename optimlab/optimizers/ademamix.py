"""AdEMAMix: Adam with a mixture of a fast and a slow gradient average."""


import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_nonnegative, check_range, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, cast, step_count
from optimlab.registry import register


def alpha_schedule(t, alpha, warmup):
    """``alpha`` ramped linearly from 0 over ``warmup`` steps (constant when ``warmup`` is None)."""
    if warmup is None:
        return alpha
    return tf.minimum(t * alpha / warmup, alpha)


def beta_3_schedule(t, beta_start, beta_3, warmup):
    """The paper's beta_3 warm-up: from ``beta_start`` to ``beta_3``, linear in 1 / log(beta)."""
    if warmup is None:
        return beta_3
    log_start, log_end = tf.math.log(beta_start), tf.math.log(beta_3)
    frac = t / warmup
    return tf.minimum(tf.exp(log_start * log_end / ((1 - frac) * log_end + frac * log_start)), beta_3)


def _check_warmup(name, value):
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be None or an integer >= 1; got {value!r}")
    return value


@register(
    "ademamix",
    paper="Pagliardini, Ablin & Grangier, The AdEMAMix Optimizer: Better, Faster, Older",
    year=2024,
    url="https://arxiv.org/abs/2409.03137",
    quadratic=({"learning_rate": 0.02, "beta_3": 0.99, "alpha": 2.0}, 800, 1e-2),
    rosenbrock=({"learning_rate": 0.002, "beta_3": 0.99, "alpha": 2.0}, 8000, 5e-2),
    space={**spaces.ADAM_LIKE,
           "beta_3": spaces.log1m(0.99, 0.99999, "Pagliardini et al. 2024 use 0.999 to 0.9999; 1 - beta_3 in [1e-5, 1e-2]"),
           "alpha": spaces.linear(1.0, 10.0, "Pagliardini et al. 2024 use 5 to 8; [1, 10]")},
)
class AdEMAMix(Optimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, 2024): Adam plus a very slow gradient average.

    For long training runs (language models, large vision models) where very
    old gradients still help: a second, slow average (``beta_3`` near 1)
    weighted by ``alpha`` is added to Adam's numerator. Warm up ``alpha`` and
    ``beta_3`` (``alpha_warmup``, ``beta_3_warmup``) when training from scratch.

    Update rule (Algorithm 1 of the paper, ``t`` from 1)::

        m1 <- beta_1 * m1 + (1 - beta_1) * g
        m2 <- beta_3(t) * m2 + (1 - beta_3(t)) * g          (no bias correction)
        nu <- beta_2 * nu + (1 - beta_2) * g^2
        x  <- x - lr * (m1 / (1 - beta_1^t) + alpha(t) * m2) / (sqrt(nu / (1 - beta_2^t)) + epsilon)

    with ``alpha(t) = min(t * alpha / T_alpha, alpha)`` and ``beta_3(t) =
    min(exp(ln(beta_1) ln(beta_3) / ((1 - t/T) ln(beta_3) + (t/T) ln(beta_1))), beta_3)``.

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1, beta_2: Adam's decays in [0, 1) (default 0.9, 0.999).
        beta_3: decay of the slow average in [0, 1) (default 0.9999).
        alpha: weight of the slow average, >= 0 (default 5.0).
        epsilon: added after the square root (default 1e-8).
        alpha_warmup: ``T_alpha``, steps of the alpha warm-up, or None (default None).
        beta_3_warmup: ``T``, steps of the beta_3 warm-up, or None (default None).

    Where libraries disagree: the official torch code defaults to ``alpha=2.0``;
    Optax's ``contrib.ademamix`` to 5.0, as here (the paper uses 5 to 8). Optax
    takes the schedules as callables and adds ``eps_root`` inside the square
    root. The paper's decoupled weight decay ``x <- x - lr * wd * x`` is the base
    class's ``weight_decay``.

    Reference: https://arxiv.org/abs/2409.03137

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.AdEMAMix(learning_rate=0.1, alpha=0.0)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    slots = ("m1", "m2", "nu")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        beta_3=0.9999,
        alpha=5.0,
        epsilon=1e-8,
        alpha_warmup=None,
        beta_3_warmup=None,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("beta_3", beta_3, check=check_unit_interval)
        self._set_hyper("alpha", alpha, check=check_nonnegative)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.alpha_warmup = _check_warmup("alpha_warmup", alpha_warmup)
        self.beta_3_warmup = _check_warmup("beta_3_warmup", beta_3_warmup)
        if beta_3_warmup is not None:
            # The warm-up starts at beta_1 and needs logs of both ends.
            check_range("beta_1", beta_1, 0.0, 1.0, low_open=True, high_open=True)
            check_range("beta_3", beta_3, 0.0, 1.0, low_open=True, high_open=True)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        b1, b2, b3, alpha = (self._get_hyper(h, tf.float64) for h in ("beta_1", "beta_2", "beta_3", "alpha"))
        t = step_count(self)
        b3_t = beta_3_schedule(t, b1, b3, self.beta_3_warmup)
        alpha_t = alpha_schedule(t, alpha, self.alpha_warmup)
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        m1, m2, nu = (self.get_slot(variable, s) for s in ("m1", "m2", "nu"))

        m1.assign(cast(dtype, b1) * m1 + cast(dtype, 1 - b1) * gradient)
        m2.assign(cast(dtype, b3_t) * m2 + cast(dtype, 1 - b3_t) * gradient)
        nu.assign(cast(dtype, b2) * nu + cast(dtype, 1 - b2) * tf.square(gradient))
        bc1, bc2 = cast(dtype, bias_correction(b1, t), bias_correction(b2, t))
        numerator = m1 / bc1 + cast(dtype, alpha_t) * m2
        variable.assign_sub(lr * numerator / (tf.sqrt(nu / bc2) + epsilon))
