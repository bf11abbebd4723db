"""LazyAdam: Adam whose sparse updates touch only the rows that have a gradient."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, step_count
from optimlab.registry import register


@register(
    "lazy_adam",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization (lazy sparse variant of TF Addons)",
    year=2014,
    url="https://arxiv.org/abs/1412.6980",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    capabilities=("sparse", "lazy_sparse"),
    aliases=("lazyadam",),
    space=spaces.ADAM_LIKE,
)
class LazyAdam(Optimizer):
    """LazyAdam (TF Addons, after Kingma & Ba, 2014): Adam that updates embeddings lazily, row by row.

    Use it for large embedding tables with sparse gradients (``tf.gather``,
    ``keras.layers.Embedding``): a step costs the rows looked up, not the table,
    and rows that were not looked up keep their moments and values.

    Update rule (dense gradients: exactly ``keras.optimizers.Adam``; ``t`` counts from 1)::

        lr_t <- lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        x <- x - lr_t * m / (sqrt(v) + epsilon)

    For a ``tf.IndexedSlices`` gradient the same three lines run on the indexed
    rows only (duplicate indices summed first); other rows are left untouched,
    so their moments do not decay. That differs from dense Adam, on purpose.

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added to ``sqrt(v)`` (default 1e-7).

    Conventions: TF Addons' ``LazyAdam`` and ``torch.optim.SparseAdam`` do the
    same; Keras 3's ``Adam`` and Optax apply sparse gradients densely.

    Paper: https://arxiv.org/abs/1412.6980

    Example:
        >>> import tensorflow as tf, optimlab
        >>> table = tf.Variable(tf.ones((4, 2)))
        >>> opt = optimlab.LazyAdam(learning_rate=0.1)
        >>> grad = tf.IndexedSlices(tf.ones((1, 2)), tf.constant([1]), tf.constant([4, 2]))
        >>> _ = opt.apply_gradients([(grad, table)])
        >>> table.numpy()[:2].astype(float).round(4).tolist()
        [[1.0, 1.0], [0.9, 0.9]]
    """

    slots = ("m", "v")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)

    def _coefficients(self, dtype, learning_rate):
        """``beta_1, 1 - beta_1, beta_2, 1 - beta_2, lr_t`` computed in float64, then cast (bfloat16-safe)."""
        t = step_count(self)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        lr_t = tf.cast(learning_rate, tf.float64) * tf.sqrt(bias_correction(beta_2, t)) / bias_correction(beta_1, t)
        return (
            *(tf.cast(c, dtype) for c in (beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2, lr_t)),
            self._get_hyper("epsilon", dtype),
        )

    def update_step(self, gradient, variable, learning_rate):
        beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, lr_t, epsilon = self._coefficients(variable.dtype, learning_rate)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")
        m.assign(beta_1 * m + one_minus_beta_1 * gradient)
        v.assign(beta_2 * v + one_minus_beta_2 * tf.square(gradient))
        variable.assign_sub(lr_t * m / (tf.sqrt(v) + epsilon))

    def sparse_update_step(self, gradient, variable, learning_rate):
        beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, lr_t, epsilon = self._coefficients(variable.dtype, learning_rate)
        rows, g = gradient.indices, gradient.values
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")
        m_rows = beta_1 * tf.gather(m, rows) + one_minus_beta_1 * g
        v_rows = beta_2 * tf.gather(v, rows) + one_minus_beta_2 * tf.square(g)
        self.assign(m, tf.IndexedSlices(m_rows, rows, gradient.dense_shape))
        self.assign(v, tf.IndexedSlices(v_rows, rows, gradient.dense_shape))
        step = lr_t * m_rows / (tf.sqrt(v_rows) + epsilon)
        self.assign_sub(variable, tf.IndexedSlices(step, rows, gradient.dense_shape))


# ------------------------------------------------------------------ fast paths
# The native op only (its default fast path): TensorFlow's Adam kernel folds
# epsilon differently from this dense rule.
@fused.native_kernel(LazyAdam, "adam")
def _lazy_adam_native(opt, learning_rate, dtype):
    # ``_coefficients`` casts each scalar to the variable's dtype itself.
    coefficients = fused.once(opt, ("native-lazy-adam", dtype), lambda: tf.stack(opt._coefficients(dtype, learning_rate)))
    return ("m", "v"), coefficients, {"form": "lazy"}
