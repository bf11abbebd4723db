"""Stochastic gradient descent with optional (Nesterov) momentum, Keras's SGD."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "sgd",
    paper="Robbins & Monro, A Stochastic Approximation Method; Sutskever et al., On the importance of initialization and momentum",
    year=1951,
    url="https://doi.org/10.1214/aoms/1177729586",
    quadratic=({"learning_rate": 0.05, "momentum": 0.5}, 300, 1e-3),
    rosenbrock=({"learning_rate": 1e-3, "momentum": 0.9}, 10000, 5e-2),
    capabilities=("sparse",),
    space={"learning_rate": spaces.LEARNING_RATE, "momentum": spaces.MOMENTUM, "nesterov": spaces.BOOLEAN},
)
class SGD(Optimizer):
    """Stochastic gradient descent (Robbins & Monro, 1951) with momentum (Sutskever et al., 2013).

    The workhorse for convolutional networks when tuned with a schedule.

    Update rule (Keras's convention, velocity ``u`` starts at zero)::

        u <- momentum * u - lr * g
        x <- x + u                         (nesterov: x <- x + momentum * u - lr * g)

    With ``momentum=0`` it is plain gradient descent and keeps no slot.

    Args:
        learning_rate: ``lr`` (default 0.01, Keras's).
        momentum: in [0, 1) (default 0.0).
        nesterov: use Nesterov momentum (default False).

    Conventions: identical to ``keras.optimizers.SGD``. ``torch.optim.SGD``
    keeps ``lr`` outside the buffer (``b <- momentum * b + g; x <- x - lr * b``),
    which differs when the learning rate changes during training; Optax's
    ``sgd`` follows torch. See ``optimlab.Momentum`` for the form of TensorFlow's guide "Optimizers with Core APIs".

    Reference: https://doi.org/10.1214/aoms/1177729586 and
    https://proceedings.mlr.press/v28/sutskever13.html

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.SGD(learning_rate=0.1, momentum=0.9)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.8
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("momentum", momentum, check=check_unit_interval)
        self.nesterov = check_bool("nesterov", nesterov)
        self._has_momentum = not (isinstance(momentum, (int, float)) and momentum == 0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self._has_momentum:
            for var in var_list:
                self.add_slot(var, "momentum")

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        if not self._has_momentum:
            variable.assign_sub(gradient * lr)
            return
        momentum = self._get_hyper("momentum", variable.dtype)
        u = self.get_slot(variable, "momentum")
        u.assign(-gradient * lr + u * momentum)
        if self.nesterov:
            variable.assign_add(-gradient * lr + u * momentum)
        else:
            variable.assign_add(u)

    def sparse_update_step(self, gradient, variable, learning_rate):
        if self._has_momentum:
            return super().sparse_update_step(gradient, variable, learning_rate)
        lr = tf.cast(learning_rate, variable.dtype)
        variable.scatter_sub(tf.IndexedSlices(gradient.values * lr, gradient.indices, gradient.dense_shape))


# ------------------------------------------------------------------ fast paths
@fused.native_kernel(SGD, "sgd_momentum")
def _sgd_native(opt, learning_rate, dtype):
    if not opt._has_momentum:
        return fused.DECLINED  # SGD without momentum: the per-variable path's TensorFlow kernel

    def scalars():
        return learning_rate, opt._get_hyper("momentum", tf.float64)

    return ("momentum",), fused.coefficients(opt, "native-sgd", dtype, scalars), {"nesterov": opt.nesterov}


@fused.fast_path(SGD)
def _sgd_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's gradient-descent kernel; with momentum the native op on the CPU, else ``ResourceApplyKerasMomentum``."""
    dtype = variable.dtype
    lr = fused.lr(opt, learning_rate, dtype)
    if not opt._has_momentum:
        return tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=lr, delta=gradient)
    library = fused.native(variable)
    if library is not None:
        return fused.native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    return tf.raw_ops.ResourceApplyKerasMomentum(
        var=variable.handle,
        accum=fused.handle(opt.get_slot(variable, "momentum")),
        lr=lr,
        grad=gradient,
        momentum=fused.hyper(opt, "momentum", dtype),
        use_nesterov=opt.nesterov,
    )
