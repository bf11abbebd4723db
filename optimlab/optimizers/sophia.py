"""Sophia: clipped momentum preconditioned by a diagonal Hessian estimate."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_int, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import cast
from optimlab.registry import register


def hutchinson(loss, var_list, generator):
    """Hutchinson's estimate ``u * (H u)`` of the Hessian diagonal, ``u ~ N(0, I)``, one per variable.

    ``loss`` is a zero-argument callable; ``generator`` a ``tf.random.Generator``.
    Costs one Hessian-vector product (about two gradients).
    """
    probes = [generator.normal(v.shape, dtype=v.dtype) for v in var_list]
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            value = loss()
        grads = inner.gradient(value, var_list)
        projection = tf.add_n([tf.reduce_sum(g * u) for g, u in zip(grads, probes)])
    hvps = outer.gradient(projection, var_list)
    return [u * hv for u, hv in zip(probes, hvps)]


def gauss_newton_bartlett(logits_fn, var_list, generator):
    """The Gauss-Newton-Bartlett estimate ``B * g_hat * g_hat`` (Algorithm 2 of the paper).

    ``logits_fn()`` returns logits of shape (B, classes) for a batch; labels are
    sampled from the model's own softmax and ``g_hat`` is the gradient of the
    mean cross-entropy on them. For classification and language-model losses.
    """
    with tf.GradientTape() as tape:
        logits = logits_fn()
        seed = generator.uniform_full_int((2,), dtype=tf.int32)
        labels = tf.reshape(tf.random.stateless_categorical(tf.reshape(logits, (-1, logits.shape[-1])), 1, seed), tf.shape(logits)[:-1])
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
    grads = tape.gradient(loss, var_list)
    batch = tf.cast(tf.reduce_prod(tf.shape(logits)[:-1]), logits.dtype)
    return [tf.cast(batch, g.dtype) * tf.square(g) for g in grads]


@register(
    "sophia",
    paper="Liu et al., Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
    year=2023,
    url="https://arxiv.org/abs/2305.14342",
    quadratic=({"learning_rate": 0.02, "rho": 0.5, "seed": 0}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.01, "beta_1": 0.9, "rho": 0.01, "hessian_update_interval": 2, "seed": 0}, 8000, 5e-2),
    capabilities=("needs_loss",),
    space={"learning_rate": spaces.log(1e-6, 1e-1, "Liu et al. 2023 use 1e-4 to 6e-4; [1e-6, 0.1]"),
           "beta_1": spaces.BETA_1,
           "beta_2": spaces.log1m(0.9, 0.9999, "Liu et al. 2023 use 0.99; 1 - beta_2 in [1e-4, 0.1]"),
           "rho": spaces.log(1e-3, 1.0, "Liu et al. 2023 use 0.03 to 0.05; [1e-3, 1]"),
           "epsilon": spaces.log(1e-15, 1e-6, "Liu et al. 2023 use 1e-12; three decades either side")},
)
class Sophia(Optimizer):
    """Sophia (Liu et al., 2023): momentum divided by a diagonal Hessian estimate, then clipped.

    For language-model pre-training, where it reaches AdamW's loss in fewer
    steps: curvature sets the step per coordinate, and the clip bounds it by
    ``lr`` where the estimate is small, wrong or negative.

    Update rule (Algorithm 1 of the paper; ``t`` from 1, ``k`` the interval)::

        m <- beta_1 * m + (1 - beta_1) * g
        if t mod k == 1:  h <- beta_2 * h + (1 - beta_2) * h_hat       (h_hat: a Hessian-diagonal estimate)
        x <- x - lr * clip(m / max(rho * h, epsilon), -1, 1)

    Hessian estimate (the extra state and inputs): ``minimize(loss, var_list)``
    with a callable loss draws Hutchinson's ``u * (H u)`` (``u ~ N(0, I)``, the
    paper's Sophia-H) every ``k`` steps, one extra Hessian-vector product. With
    ``apply_gradients`` call ``update_hessian(estimates, var_list)`` yourself
    every ``k`` steps, with ``hutchinson(...)`` or the paper's Sophia-G estimate
    ``gauss_newton_bartlett(logits_fn, ...)`` (labels sampled from the model). Until
    a first estimate ``h = 0`` and the step is ``lr * sign(m)``: plain
    ``model.fit`` never refreshes ``h``; override ``train_step`` to call
    ``update_hessian`` (or use ``minimize``) every ``k`` steps.

    Memory: two slots per parameter (``m`` and ``h``, as Adam), plus, every
    ``k`` steps, the transient memory of one Hessian-vector product or one
    extra gradient.

    Args:
        learning_rate: ``lr`` (default 1e-4, the official code's).
        beta_1: momentum decay in [0, 1) (default 0.965).
        beta_2: decay of the Hessian average in [0, 1) (default 0.99).
        rho: ``rho``, the Hessian scale in the denominator (default 0.04).
        epsilon: floor of the denominator (default 1e-12, the paper's).
        hessian_update_interval: ``k`` (default 10).
        seed: seed of the probes and sampled labels (default None: random).

    Where libraries disagree: the official code divides by
    ``rho * batch_size * h + 1e-15`` (its GNB estimate leaves out the batch
    size, which it multiplies in here, as Algorithm 2 does);
    pytorch-optimizer's ``SophiaH`` divides by ``max(h, epsilon)`` with
    ``rho`` as an absolute clip. Optax's ``contrib.sophia`` folds ``rho`` into a
    clip threshold. Decoupled weight decay (the official default 0.1) is the
    base class's ``weight_decay``.

    Reference: https://arxiv.org/abs/2305.14342

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([1.0, -2.0])
        >>> opt = optimlab.Sophia(learning_rate=0.1, seed=0)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(x ** 2), [x])
        >>> [round(v, 4) for v in x.numpy().tolist()]
        [0.9, -1.9]
    """

    def __init__(
        self,
        learning_rate=1e-4,
        beta_1=0.965,
        beta_2=0.99,
        rho=0.04,
        epsilon=1e-12,
        hessian_update_interval=10,
        seed=None,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("rho", rho, check=check_nonnegative)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.hessian_update_interval = check_int("hessian_update_interval", hessian_update_interval, low=1)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an integer or None; got {seed!r}")
        self.seed = seed
        self.generator = tf.random.Generator.from_seed(seed) if seed is not None else tf.random.Generator.from_non_deterministic_state()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for slot in ("m", "h"):
            for var in var_list:
                self.add_slot(var, slot)

    def update_hessian(self, estimates, var_list):
        """``h <- beta_2 * h + (1 - beta_2) * estimate`` for each variable."""
        var_list = list(var_list)
        estimates = list(estimates)
        if len(estimates) != len(var_list):
            raise ValueError(f"estimates and var_list must have the same length; got {len(estimates)} and {len(var_list)}")
        self.build(var_list)
        b2 = self._get_hyper("beta_2", tf.float64)
        for estimate, var in zip(estimates, var_list):
            h = self.get_slot(var, "h")
            h.assign(cast(var.dtype, b2) * h + cast(var.dtype, 1 - b2) * tf.cast(estimate, var.dtype))

    def minimize(self, loss, var_list, grad_loss=None, name=None, tape=None):
        """As the base class, plus Hutchinson's Hessian update every ``k`` steps when ``loss`` is callable."""
        if callable(loss) and tape is None:
            variables = list(var_list() if callable(var_list) else var_list)
            self.build(variables)
            due = tf.equal(self.iterations % self.hessian_update_interval, 0)

            def refresh():
                self.update_hessian(hutchinson(loss, variables, self.generator), variables)
                return tf.constant(True)

            tf.cond(due, refresh, lambda: tf.constant(False))
        return super().minimize(loss, var_list, grad_loss=grad_loss, name=name, tape=tape)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        b1 = self._get_hyper("beta_1", tf.float64)
        lr = tf.cast(learning_rate, dtype)
        rho, epsilon = self._get_hyper("rho", dtype), self._get_hyper("epsilon", dtype)
        m, h = self.get_slot(variable, "m"), self.get_slot(variable, "h")
        m.assign(cast(dtype, b1) * m + cast(dtype, 1 - b1) * gradient)
        variable.assign_sub(lr * tf.clip_by_value(m / tf.maximum(rho * h, epsilon), -1.0, 1.0))
