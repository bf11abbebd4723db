"""FTRL-Proximal with Keras's arguments; sparse gradients lazily (TensorFlow's rule) or densely (Keras's)."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_nonnegative, check_range
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import constant
from optimlab.registry import register


def _power(n, exponent):
    """``n ** exponent``; the default exponent 0.5 (``learning_rate_power=-0.5``) as a square root,
    which costs a fraction of a general power."""
    return tf.cond(tf.equal(exponent, 0.5), lambda: tf.sqrt(n), lambda: tf.pow(n, exponent))


def ftrl_rows(g, x, n, z, lr, lr_power, l1, l2, l2_shrinkage, beta):
    """One FTRL-Proximal step on matching rows; returns the new ``(x, n, z)``."""
    g_shrunk = g + 2.0 * l2_shrinkage * x
    n_new = n + tf.square(g)
    root_new = _power(n_new, -lr_power)
    sigma = (root_new - _power(n, -lr_power)) / lr
    z_new = z + (g_shrunk - sigma * x)
    quadratic = root_new / lr + 2.0 * (l2 + beta / (2.0 * lr))
    x_new = (tf.clip_by_value(z_new, -l1, l1) - z_new) / quadratic
    return x_new, n_new, z_new


def _check_power(name, value):
    return check_range(name, value, None, 0.0)


@register(
    "ftrl",
    paper="McMahan et al., Ad Click Prediction: a View from the Trenches",
    year=2013,
    url="https://research.google.com/pubs/archive/41159.pdf",
    quadratic=({"learning_rate": 1.0}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.5}, 20000, 5e-2),
    capabilities=("sparse", "lazy_sparse"),
    space={"learning_rate": spaces.LEARNING_RATE,
           "learning_rate_power": spaces.linear(-1.0, -0.1, "McMahan et al. 2013 use -0.5; [-1, -0.1]"),
           "initial_accumulator_value": spaces.log(1e-4, 1.0, "Keras default 0.1; [1e-4, 1]")},
)
class Ftrl(Optimizer):
    """FTRL-Proximal (McMahan et al., 2013): follow the regularized leader, with L1 and L2 penalties.

    For wide, sparse linear models (click-through rate prediction): its L1
    penalty sets coordinates exactly to zero.

    Update rule (Algorithm 1 of the paper with ``alpha = lr`` and a general
    power ``p = -learning_rate_power``; ``n`` starts at
    ``initial_accumulator_value``, ``z`` at zero)::

        g'    = g + 2 * l2_shrinkage * x
        n'    = n + g^2
        sigma = (n'^p - n^p) / lr
        z    <- z + g' - sigma * x
        n    <- n'
        x    <- 0                                    if |z| <= l1
                (sign(z) * l1 - z) / (n^p / lr + 2 * (l2 + beta / (2 lr)))   otherwise

    With ``lazy_sparse=True`` (the default) a sparse gradient updates only its
    rows of ``x``, ``n`` and ``z`` (TensorFlow's classic sparse FTRL,
    ``ResourceSparseApplyFtrlV2``). A dense zero gradient row instead takes the
    step above (``z`` moves by ``2 * l2_shrinkage * x`` and ``x`` is recomputed
    from ``z``), so the two differ on the rows a sparse gradient leaves out.
    ``keras.optimizers.Ftrl`` densifies sparse gradients: ``lazy_sparse=False``
    gives its behaviour.

    Args:
        learning_rate: ``lr`` (the paper's alpha; default 0.001).
        learning_rate_power: ``-p``, <= 0 (default -0.5; 0 gives a fixed rate).
        initial_accumulator_value: starting ``n``, >= 0 (default 0.1).
        l1_regularization_strength: ``l1`` >= 0 (default 0.0).
        l2_regularization_strength: ``l2`` >= 0 (default 0.0).
        l2_shrinkage_regularization_strength: L2 penalty added to the gradient
            (a penalty on the loss, not the online one), >= 0 (default 0.0).
        beta: the paper's beta, >= 0 (default 0.0).
        lazy_sparse: a sparse gradient updates only its rows (default True);
            False applies the dense step to every row, as ``keras.optimizers.Ftrl``.

    Conventions: for dense gradients the arithmetic of ``keras.optimizers.Ftrl``
    (and of TensorFlow's ``ApplyFtrlV2``); for sparse gradients Keras's only with
    ``lazy_sparse=False``. The paper's ``lambda_2`` is ``2 * l2`` here, and its
    ``beta / alpha`` term enters as ``beta / (2 lr)`` inside ``l2``.

    Reference: https://research.google.com/pubs/archive/41159.pdf

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([1.0, 0.1])
        >>> opt = optimlab.Ftrl(learning_rate=0.1, l1_regularization_strength=0.5)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(x ** 2), [x])
        >>> [round(float(v), 4) for v in x.numpy()]
        [0.7204, 0.0]
    """

    def __init__(
        self,
        learning_rate=0.001,
        learning_rate_power=-0.5,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        l2_shrinkage_regularization_strength=0.0,
        beta=0.0,
        lazy_sparse=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = float(check_nonnegative("initial_accumulator_value", initial_accumulator_value))
        self._set_hyper("learning_rate_power", learning_rate_power, check=_check_power)
        self._set_hyper("l1_regularization_strength", l1_regularization_strength, check=check_nonnegative)
        self._set_hyper("l2_regularization_strength", l2_regularization_strength, check=check_nonnegative)
        self._set_hyper(
            "l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, check=check_nonnegative
        )
        self._set_hyper("beta", beta, check=check_nonnegative)
        self.lazy_sparse = check_bool("lazy_sparse", lazy_sparse)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "accumulator", initializer=constant(self.initial_accumulator_value))
        for var in var_list:
            self.add_slot(var, "linear")

    def _hypers_for(self, dtype):
        names = (
            "learning_rate_power",
            "l1_regularization_strength",
            "l2_regularization_strength",
            "l2_shrinkage_regularization_strength",
            "beta",
        )
        return [self._get_hyper(name, dtype) for name in names]

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        n = self.get_slot(variable, "accumulator")
        z = self.get_slot(variable, "linear")
        x_new, n_new, z_new = ftrl_rows(
            gradient, variable, n, z, tf.cast(learning_rate, dtype), *self._hypers_for(dtype)
        )
        z.assign(z_new)
        variable.assign(x_new)
        n.assign(n_new)

    def sparse_update_step(self, gradient, variable, learning_rate):
        if not self.lazy_sparse:
            return super().sparse_update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        rows = gradient.indices
        n = self.get_slot(variable, "accumulator")
        z = self.get_slot(variable, "linear")
        x_new, n_new, z_new = ftrl_rows(
            gradient.values,
            tf.gather(variable, rows),
            tf.gather(n, rows),
            tf.gather(z, rows),
            tf.cast(learning_rate, dtype),
            *self._hypers_for(dtype),
        )
        shape = gradient.dense_shape
        self.assign(z, tf.IndexedSlices(z_new, rows, shape))
        self.assign(n, tf.IndexedSlices(n_new, rows, shape))
        variable.scatter_update(tf.IndexedSlices(x_new, rows, shape))


# ------------------------------------------------------------------ fast paths
@fused.fast_path(Ftrl, sparse=True)
def _ftrl_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's ``Resource(Sparse)ApplyFtrlV2``."""
    dtype = variable.dtype
    lr = fused.lr(opt, learning_rate, dtype)
    lr_power, l1, l2, l2_shrinkage, beta = fused.once(opt, ("ftrl", dtype), lambda: opt._hypers_for(dtype))
    if isinstance(gradient, tf.IndexedSlices) and not opt.lazy_sparse:
        gradient = tf.convert_to_tensor(gradient)  # Keras's rule: every row takes the dense step
    return fused.resource_apply(
        "FtrlV2",
        gradient,
        var=variable.handle,
        accum=fused.handle(opt.get_slot(variable, "accumulator")),
        linear=fused.handle(opt.get_slot(variable, "linear")),
        lr=lr,
        l1=l1,
        l2=l2 + beta / (2.0 * lr),  # as Keras 2 passed beta to the kernel
        l2_shrinkage=l2_shrinkage,
        lr_power=lr_power,
    )
