"""Proximal Adagrad: Adagrad followed by the proximal step of l1 and l2 penalties."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_nonnegative, check_positive
from optimlab.optimizer import Optimizer
from optimlab.registry import register


def proximal_step(x, g, accumulator, lr, l1, l2):
    """One FOBOS step with Adagrad's per-coordinate rate ``lr / sqrt(accumulator)``."""
    eta = lr / tf.sqrt(accumulator)
    shifted = x - eta * g
    shrunk = tf.sign(shifted) * tf.maximum(tf.abs(shifted) - eta * l1, 0.0)
    return shrunk / (1.0 + eta * l2)


@register(
    "proximal_adagrad",
    paper="Duchi & Singer, Efficient Online and Batch Learning using Forward Backward Splitting",
    year=2009,
    url="https://jmlr.org/papers/v10/duchi09a.html",
    quadratic=({"learning_rate": 0.5}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.5}, 10000, 5e-2),
    capabilities=("sparse", "lazy_sparse"),
    space={"learning_rate": spaces.LEARNING_RATE,
           "initial_accumulator_value": spaces.log(1e-4, 1.0, "Keras / TF default 0.1; [1e-4, 1]")},
)
class ProximalAdagrad(Optimizer):
    """ProximalAdagrad (Duchi & Singer, 2009): Adagrad with a proximal l1/l2 step that yields exact zeros.

    Use it for sparse linear models (wide features, click prediction) where the
    l1 penalty should set weights exactly to zero.

    Update rule (TensorFlow's ``ApplyProximalAdagrad``)::

        a <- a + g^2
        eta <- lr / sqrt(a)
        x <- sign(x - eta g) * max(|x - eta g| - eta * l1, 0) / (1 + eta * l2)

    A ``tf.IndexedSlices`` gradient updates only its rows (TensorFlow's sparse
    kernel): rows without gradient are not shrunk by ``l1``/``l2``.

    Args:
        learning_rate: ``lr`` (default 0.001).
        initial_accumulator_value: start value of ``a``, > 0 (default 0.1).
        l1_regularization_strength: ``l1`` >= 0 (default 0.0).
        l2_regularization_strength: ``l2`` >= 0 (default 0.0).

    Conventions: TF Addons' defaults and TensorFlow's kernel; with ``l1 = l2 = 0``
    it is ``keras.optimizers.Adagrad`` with ``epsilon=0``.

    Paper: https://jmlr.org/papers/v10/duchi09a.html

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.ProximalAdagrad(learning_rate=0.1, l1_regularization_strength=1.0)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.8518
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        l1_regularization_strength=0.0,
        l2_regularization_strength=0.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = check_positive("initial_accumulator_value", initial_accumulator_value)
        self._set_hyper("l1_regularization_strength", l1_regularization_strength, check=check_nonnegative)
        self._set_hyper("l2_regularization_strength", l2_regularization_strength, check=check_nonnegative)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        value = float(self.initial_accumulator_value)
        for var in var_list:
            self.add_slot(var, "accumulator", initializer=lambda shape, dtype=None: tf.fill(shape, tf.constant(value, dtype)))

    def _hypers_for(self, dtype, learning_rate):
        l1 = self._get_hyper("l1_regularization_strength", dtype)
        l2 = self._get_hyper("l2_regularization_strength", dtype)
        return tf.cast(learning_rate, dtype), l1, l2

    def update_step(self, gradient, variable, learning_rate):
        lr, l1, l2 = self._hypers_for(variable.dtype, learning_rate)
        accumulator = self.get_slot(variable, "accumulator")
        accumulator.assign_add(tf.square(gradient))
        variable.assign(proximal_step(variable, gradient, accumulator, lr, l1, l2))

    def sparse_update_step(self, gradient, variable, learning_rate):
        lr, l1, l2 = self._hypers_for(variable.dtype, learning_rate)
        rows, g, shape = gradient.indices, gradient.values, gradient.dense_shape
        accumulator = self.get_slot(variable, "accumulator")
        a_rows = tf.gather(accumulator, rows) + tf.square(g)
        self.assign(accumulator, tf.IndexedSlices(a_rows, rows, shape))
        x_rows = proximal_step(tf.gather(variable, rows), g, a_rows, lr, l1, l2)
        self.assign(variable, tf.IndexedSlices(x_rows, rows, shape))


# ------------------------------------------------------------------ fast paths
@fused.fast_path(ProximalAdagrad, sparse=True)
def _proximal_adagrad_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's ``Resource(Sparse)ApplyProximalAdagrad``."""
    dtype = variable.dtype
    lr, l1, l2 = fused.once(opt, ("proximal_adagrad", dtype), lambda: opt._hypers_for(dtype, learning_rate))
    accumulator = fused.handle(opt.get_slot(variable, "accumulator"))
    return fused.resource_apply("ProximalAdagrad", gradient, var=variable.handle, accum=accumulator, lr=lr, l1=l1, l2=l2)
