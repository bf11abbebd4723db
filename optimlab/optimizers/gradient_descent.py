"""Plain gradient descent, as TensorFlow's guide "Optimizers with Core APIs" writes it."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "gd",
    paper="Cauchy, Méthode générale pour la résolution des systèmes d'équations simultanées",
    year=1847,
    url="https://gallica.bnf.fr/ark:/12148/bpt6k2982c/f540.item",
    quadratic=({"learning_rate": 0.1}, 200, 1e-3),
    rosenbrock=({"learning_rate": 2e-3}, 20000, 5e-2),
    capabilities=("sparse", "lazy_sparse"),
    aliases=("gradient_descent", "gradientdescent"),
    space={"learning_rate": spaces.LEARNING_RATE},
)
class GradientDescent(Optimizer):
    """Gradient descent (Cauchy, 1847): the first optimizer of the "Optimizers with Core APIs" guide.

    Use it as the baseline every other optimizer must beat, and to study
    learning rates and clipping on their own.

    Update rule::

        x <- x - lr * g

    Args:
        learning_rate: step size ``lr`` (default 0.001, the Core APIs guide's).
        **kwargs: base arguments (``clipnorm``, ``clipvalue``, ``global_clipnorm``,
            ``weight_decay``, ...). ``GradientDescent(1e-3, clipnorm=2)`` is the gradient
            descent with clipping by norm of the book chapter on the Boston
            housing regression.

    Conventions: the same as ``keras.optimizers.SGD(momentum=0)``,
    ``torch.optim.SGD`` and ``optax.sgd``. A sparse gradient updates only its rows.

    Reference: https://gallica.bnf.fr/ark:/12148/bpt6k2982c/f540.item

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(2.0)
        >>> opt = optimlab.GradientDescent(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        1.6
    """

    def __init__(self, learning_rate=0.001, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        variable.assign_sub(lr * gradient)

    def sparse_update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        variable.scatter_sub(tf.IndexedSlices(lr * gradient.values, gradient.indices, gradient.dense_shape))


# ------------------------------------------------------------------ fast paths
@fused.native_kernel(GradientDescent, "gradient_descent")
def _gradient_descent_native(opt, learning_rate, dtype):
    return (), fused.coefficients(opt, "native-gd", dtype, lambda: [learning_rate]), {}


@fused.fast_path(GradientDescent)
def _gradient_descent_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's ``ResourceApplyGradientDescent`` (the native op serves only the multi-tensor path)."""
    lr = fused.lr(opt, learning_rate, variable.dtype)
    return tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=gradient)
