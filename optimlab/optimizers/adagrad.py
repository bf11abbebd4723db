"""Adagrad with Keras's arguments and a lazy sparse path."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_nonnegative
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import constant
from optimlab.optimizers.rmsprop import rms_denominator
from optimlab.registry import register


@register(
    "adagrad",
    paper="Duchi, Hazan & Singer, Adaptive Subgradient Methods for Online Learning and Stochastic Optimization",
    year=2011,
    url="https://jmlr.org/papers/v12/duchi11a.html",
    quadratic=({"learning_rate": 0.5}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.5}, 10000, 5e-2),
    capabilities=("sparse", "lazy_sparse"),
    space={"learning_rate": spaces.LEARNING_RATE,
           "initial_accumulator_value": spaces.log(1e-4, 1.0, "Keras default 0.1; [1e-4, 1]"),
           "epsilon": spaces.log(1e-10, 1e-2, "Keras default 1e-7; [1e-10, 1e-2]")},
)
class Adagrad(Optimizer):
    """Adagrad (Duchi, Hazan & Singer, 2011): per-coordinate steps shrinking with the summed squared gradients.

    Suits sparse features (embeddings, linear models on one-hot data): rare
    coordinates keep large steps. Its step only shrinks, so long runs stall.

    Update rule (``a`` starts at ``initial_accumulator_value``)::

        a <- a + g^2
        x <- x - lr * g / sqrt(a + epsilon)       (epsilon_inside_sqrt=False: sqrt(a) + epsilon)

    A sparse gradient updates only its rows of ``x`` and ``a``; since a zero
    gradient leaves both unchanged, this is also the dense rule.

    Args:
        learning_rate: ``lr`` (default 0.001).
        initial_accumulator_value: starting value of ``a``, >= 0 (default 0.1).
        epsilon: stabilizer (default 1e-7).
        epsilon_inside_sqrt: where epsilon goes (default True, Keras's).

    Conventions: ``keras.optimizers.Adagrad``'s arithmetic (bit-equal eagerly; inside
    ``tf.function`` Grappler rewrites Keras's ``g / sqrt(a + eps)`` as
    ``g * rsqrt(a + eps)``, so there they agree up to rounding). ``torch.optim.Adagrad``
    starts ``a`` at 0, adds epsilon (1e-10) outside the square root
    (``epsilon_inside_sqrt=False``) and defaults to lr 0.01; Optax's ``adagrad``
    starts ``a`` at 0.1 and adds epsilon (1e-7) inside the square root, as here.

    Reference: https://jmlr.org/papers/v12/duchi11a.html

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Adagrad(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9012
    """

    def __init__(
        self,
        learning_rate=0.001,
        initial_accumulator_value=0.1,
        epsilon=1e-7,
        epsilon_inside_sqrt=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.initial_accumulator_value = float(check_nonnegative("initial_accumulator_value", initial_accumulator_value))
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.epsilon_inside_sqrt = check_bool("epsilon_inside_sqrt", epsilon_inside_sqrt)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "accumulator", initializer=constant(self.initial_accumulator_value))

    def _step(self, gradient, accumulator, lr, epsilon):
        return lr * gradient / rms_denominator(accumulator, epsilon, self.epsilon_inside_sqrt)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        a = self.get_slot(variable, "accumulator")
        a.assign_add(tf.square(gradient))
        variable.assign_sub(self._step(gradient, a, lr, epsilon))

    def sparse_update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        a = self.get_slot(variable, "accumulator")
        rows, g = gradient.indices, gradient.values
        self.assign_add(a, tf.IndexedSlices(tf.square(g), rows, gradient.dense_shape))
        step = self._step(g, tf.gather(a, rows), lr, epsilon)
        variable.scatter_sub(tf.IndexedSlices(step, rows, gradient.dense_shape))


# ------------------------------------------------------------------ fast paths
@fused.native_kernel(Adagrad, "adagrad")
def _adagrad_native(opt, learning_rate, dtype):
    def scalars():
        return learning_rate, opt._get_hyper("epsilon", tf.float64)

    coefficients = fused.coefficients(opt, "native-adagrad", dtype, scalars)
    return ("accumulator",), coefficients, {"epsilon_inside_sqrt": opt.epsilon_inside_sqrt}


@fused.fast_path(Adagrad, sparse=True)
def _adagrad_kernel(opt, gradient, variable, learning_rate):
    """The native op for dense gradients on the CPU; else TensorFlow's ``Resource(Sparse)ApplyAdagradV2``."""
    library = fused.native(variable)
    if library is not None and not isinstance(gradient, tf.IndexedSlices):
        return fused.native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    if opt.epsilon_inside_sqrt:
        return fused.DECLINED  # TensorFlow's AdagradV2 kernel adds epsilon after the square root
    dtype = variable.dtype
    return fused.resource_apply(
        "AdagradV2",
        gradient,
        var=variable.handle,
        accum=fused.handle(opt.get_slot(variable, "accumulator")),
        lr=fused.lr(opt, learning_rate, dtype),
        epsilon=fused.hyper(opt, "epsilon", dtype),
    )
