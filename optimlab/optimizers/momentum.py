"""Gradient descent with momentum in the form TensorFlow's guide "Optimizers with Core APIs" writes it."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.registry import register


@register(
    "momentum",
    paper="Polyak, Some methods of speeding up the convergence of iteration methods",
    year=1964,
    url="https://doi.org/10.1016/0041-5553(64)90137-5",
    quadratic=({"learning_rate": 0.05}, 300, 1e-3),
    rosenbrock=({"learning_rate": 1e-3, "momentum": 0.9}, 10000, 5e-2),
    space={"learning_rate": spaces.LEARNING_RATE, "momentum": spaces.MOMENTUM},
)
class Momentum(Optimizer):
    """Gradient descent with (heavy-ball) momentum (Polyak, 1964), as the "Optimizers with Core APIs" guide writes it.

    Use it where plain gradient descent crawls over plateaus.

    Update rule (``p`` the momentum)::

        change <- lr * g + p * change
        x      <- x - change

    Args:
        learning_rate: ``lr`` (default 0.001, the guide's).
        momentum: ``p`` in [0, 1) (default 0.7, the guide's).

    Conventions: with a constant learning rate this is ``keras.optimizers.SGD``
    with momentum (whose velocity is ``-change``); with a schedule the two differ,
    since here the old change keeps the old learning rate. ``torch.optim.SGD``
    keeps ``lr`` outside the buffer: ``buf = p * buf + g; x -= lr * buf``.
    Unlike the guide, the change is kept per variable (the guide shares one across
    all variables, which only works for a single variable).

    Reference: https://doi.org/10.1016/0041-5553(64)90137-5

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(2.0)
        >>> opt = optimlab.Momentum(learning_rate=0.1, momentum=0.7)
        >>> for _ in range(2): _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        1.0
    """

    slots = ("change",)

    def __init__(self, learning_rate=0.001, momentum=0.7, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("momentum", momentum, check=check_unit_interval)

    def update_step(self, gradient, variable, learning_rate):
        lr = tf.cast(learning_rate, variable.dtype)
        p = self._get_hyper("momentum", variable.dtype)
        change = self.get_slot(variable, "change")
        change.assign(lr * gradient + p * change)
        variable.assign_sub(change)


# ------------------------------------------------------------------ fast paths
# The native op only (its default fast path): TensorFlow's momentum kernels keep
# ``change / lr``, not ``change``, so they would differ under a schedule.
@fused.native_kernel(Momentum, "sgd_momentum")
def _momentum_native(opt, learning_rate, dtype):
    def scalars():
        return learning_rate, opt._get_hyper("momentum", tf.float64)

    return ("change",), fused.coefficients(opt, "native-momentum", dtype, scalars), {"change_form": True}
