"""Adadelta with Keras's arguments."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "adadelta",
    paper="Zeiler, ADADELTA: An Adaptive Learning Rate Method",
    year=2012,
    url="https://arxiv.org/abs/1212.5701",
    quadratic=({"learning_rate": 1.0, "epsilon": 1e-4}, 1000, 1e-2),
    rosenbrock=({"learning_rate": 1.0, "epsilon": 1e-7, "rho": 0.99, "clipnorm": 1.0}, 40000, 5e-2),
    space={"learning_rate": spaces.log(1e-4, 10.0, "Zeiler 2012 uses 1.0 (Keras defaults to 1e-3); four decades"),
           "rho": spaces.log1m(0.5, 0.9999, "Zeiler 2012 uses 0.95; 1 - rho in [1e-4, 0.5]"),
           "epsilon": spaces.log(1e-10, 1e-2, "Zeiler 2012 uses 1e-6 and 1e-8; [1e-10, 1e-2]")},
)
class Adadelta(Optimizer):
    """Adadelta (Zeiler, 2012): steps scaled by the ratio of running RMS of updates and of gradients.

    Meant to need no learning-rate tuning (the paper's ``lr`` is 1); in
    practice it is slow to start and rarely the first choice today.

    Update rule (Algorithm 1 of the paper, ``Eg`` and ``Edx`` start at zero)::

        Eg  <- rho * Eg + (1 - rho) * g^2
        dx  <- -sqrt(Edx + epsilon) / sqrt(Eg + epsilon) * g
        Edx <- rho * Edx + (1 - rho) * dx^2
        x   <- x + lr * dx

    Args:
        learning_rate: ``lr`` (default 0.001, Keras's; the paper and torch use 1.0).
        rho: decay of both running averages, in [0, 1) (default 0.95).
        epsilon: stabilizer inside both square roots (default 1e-7; its size
            sets the first steps, which are about ``lr * sqrt(epsilon)``).

    Conventions: identical to ``keras.optimizers.Adadelta`` and, with
    ``learning_rate=1.0, rho=0.9, epsilon=1e-6``, to ``torch.optim.Adadelta``'s
    defaults. Optax's ``adadelta`` has the same rule.

    Reference: https://arxiv.org/abs/1212.5701

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.Adadelta(learning_rate=1.0, epsilon=1e-2)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.5636
    """

    slots = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("rho", rho, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        rho = self._get_hyper("rho", tf.float64)
        rho_t, one_minus_rho = tf.cast(rho, dtype), tf.cast(1.0 - rho, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        eg = self.get_slot(variable, "accumulated_grad")
        edx = self.get_slot(variable, "accumulated_delta_var")

        eg.assign(rho_t * eg + one_minus_rho * tf.square(gradient))
        dx = -(tf.sqrt(edx + epsilon) * gradient) / tf.sqrt(eg + epsilon)
        edx.assign(rho_t * edx + one_minus_rho * tf.square(dx))
        variable.assign_add(lr * dx)


# ------------------------------------------------------------------ fast paths
@fused.fast_path(Adadelta)
def _adadelta_kernel(opt, gradient, variable, learning_rate):
    """TensorFlow's ``ResourceApplyAdadelta``."""
    dtype = variable.dtype
    return tf.raw_ops.ResourceApplyAdadelta(
        var=variable.handle,
        accum=fused.handle(opt.get_slot(variable, "accumulated_grad")),
        accum_update=fused.handle(opt.get_slot(variable, "accumulated_delta_var")),
        lr=fused.lr(opt, learning_rate, dtype),
        rho=fused.hyper(opt, "rho", dtype),
        epsilon=fused.hyper(opt, "epsilon", dtype),
        grad=gradient,
    )
