"""RMSprop, plain and centered, with Keras's arguments."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.registry import register


def rms_denominator(mean_square, epsilon, epsilon_inside_sqrt):
    """``sqrt(ms + eps)`` (Keras, TF) or ``sqrt(ms) + eps`` (torch, Optax's default).

    The square root goes through a ``Snapshot`` (a copy): inside ``tf.function``
    Grappler rewrites ``x / sqrt(y)`` as ``x * rsqrt(y)``, which rounds
    differently (1 ulp), so the plain path would no longer equal itself run
    eagerly, nor the native kernels that compute ``x / sqrt(y)``.
    """
    if epsilon_inside_sqrt:
        return tf.raw_ops.Snapshot(input=tf.sqrt(mean_square + epsilon))
    return tf.sqrt(mean_square) + epsilon


@register(
    "rmsprop",
    paper="Hinton, Srivastava & Swersky, Neural Networks for Machine Learning, Lecture 6e",
    year=2012,
    url="https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf",
    quadratic=({"learning_rate": 0.01}, 500, 1e-2),
    rosenbrock=({"learning_rate": 1e-3, "momentum": 0.9}, 5000, 5e-2),
    space={"learning_rate": spaces.LEARNING_RATE,
           "rho": spaces.log1m(0.0, 0.9999, spaces.CHOI.format("1 - rho; optimlab's range 1 - rho in [1e-4, 1]")),
           "momentum": spaces.MOMENTUM, "epsilon": spaces.EPSILON, "centered": spaces.BOOLEAN},
)
class RMSprop(Optimizer):
    """RMSprop (Hinton, Srivastava & Swersky, 2012), centered form by Graves (2013).

    Divides the gradient by a running root mean square of recent gradients;
    a common choice for recurrent networks and reinforcement learning.

    Update rule (``v``, ``mg`` and ``u`` start at zero)::

        v  <- rho * v + (1 - rho) * g^2
        mg <- rho * mg + (1 - rho) * g              (centered only)
        ms <- v - mg^2 if centered else v
        d  <- lr * g / sqrt(ms + epsilon)           (epsilon_inside_sqrt=False: sqrt(ms) + epsilon)
        u  <- momentum * u + d ;  x <- x - u        (momentum = 0: x <- x - d)

    Args:
        learning_rate: ``lr`` (default 0.001).
        rho: decay of the mean square, in [0, 1) (default 0.9).
        momentum: in [0, 1) (default 0.0; with 0 no momentum slot is created, so
            it cannot be switched on later).
        epsilon: stabilizer (default 1e-7).
        centered: divide by an estimate of the gradient's variance instead of
            its second moment (Graves, 2013) (default False).
        epsilon_inside_sqrt: where epsilon goes (default True, Keras's).

    Conventions: ``keras.optimizers.RMSprop``'s arithmetic with the defaults:
    bit-equal eagerly; inside ``tf.function`` Grappler rewrites Keras's
    ``g / sqrt(v + eps)`` as ``g * rsqrt(v + eps)``, so there they agree up to rounding.
    ``torch.optim.RMSprop`` adds epsilon outside the square root
    (``epsilon_inside_sqrt=False``, torch's default epsilon 1e-8, rho called
    alpha=0.99) and keeps ``lr`` outside the momentum buffer, which differs from
    here only when the learning rate changes. Optax's ``rmsprop`` also adds
    epsilon outside by default.

    Reference: https://www.cs.toronto.edu/~tijmen/csc321/slides/lecture_slides_lec6.pdf
    and, for the centered form, https://arxiv.org/abs/1308.0850.

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.RMSprop(learning_rate=0.01)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9684
    """

    def __init__(
        self,
        learning_rate=0.001,
        rho=0.9,
        momentum=0.0,
        epsilon=1e-7,
        centered=False,
        epsilon_inside_sqrt=True,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("rho", rho, check=check_unit_interval)
        self._set_hyper("momentum", momentum, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.centered = check_bool("centered", centered)
        self.epsilon_inside_sqrt = check_bool("epsilon_inside_sqrt", epsilon_inside_sqrt)
        self._has_momentum = not (isinstance(momentum, (int, float)) and momentum == 0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "velocity")
        if self._has_momentum:
            for var in var_list:
                self.add_slot(var, "momentum")
        if self.centered:
            for var in var_list:
                self.add_slot(var, "average_gradient")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        rho = self._get_hyper("rho", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        v = self.get_slot(variable, "velocity")

        v.assign(tf.cast(rho, dtype) * v + tf.cast(1.0 - rho, dtype) * tf.square(gradient))
        mean_square = v
        if self.centered:
            mg = self.get_slot(variable, "average_gradient")
            mg.assign(tf.cast(rho, dtype) * mg + tf.cast(1.0 - rho, dtype) * gradient)
            mean_square = v - tf.square(mg)
        increment = lr * gradient / rms_denominator(mean_square, epsilon, self.epsilon_inside_sqrt)
        if not self._has_momentum:
            variable.assign_sub(increment)
            return
        u = self.get_slot(variable, "momentum")
        u.assign(self._get_hyper("momentum", dtype) * u + increment)
        variable.assign_sub(u)


# ------------------------------------------------------------------ fast paths
@fused.native_kernel(RMSprop, "rmsprop")
def _rmsprop_native(opt, learning_rate, dtype):
    def scalars():
        rho = opt._get_hyper("rho", tf.float64)
        head = (rho, 1.0 - rho, learning_rate, opt._get_hyper("epsilon", tf.float64))
        return head + (opt._get_hyper("momentum", tf.float64),) if opt._has_momentum else head

    slots = ("velocity",) + ("average_gradient",) * opt.centered + ("momentum",) * opt._has_momentum
    attrs = {"centered": opt.centered, "momentum": opt._has_momentum, "epsilon_inside_sqrt": opt.epsilon_inside_sqrt}
    return slots, fused.coefficients(opt, "native-rmsprop", dtype, scalars), attrs


@fused.fast_path(RMSprop)
def _rmsprop_kernel(opt, gradient, variable, learning_rate):
    """The native op on the CPU; else TensorFlow's ``ResourceApply(Centered)RMSProp`` where it has the semantics."""
    dtype = variable.dtype
    library = fused.native(variable)
    if library is not None:
        return fused.native_apply(library, opt, [gradient], [variable], learning_rate, single=True)
    if not (opt.epsilon_inside_sqrt and opt._has_momentum):
        return fused.DECLINED  # TensorFlow's kernels need a momentum slot and epsilon inside the square root
    args = dict(
        var=variable.handle,
        ms=fused.handle(opt.get_slot(variable, "velocity")),
        mom=fused.handle(opt.get_slot(variable, "momentum")),
        lr=fused.lr(opt, learning_rate, dtype),
        rho=fused.hyper(opt, "rho", dtype),
        momentum=fused.hyper(opt, "momentum", dtype),
        epsilon=fused.hyper(opt, "epsilon", dtype),
        grad=gradient,
    )
    if opt.centered:
        average_gradient = fused.handle(opt.get_slot(variable, "average_gradient"))
        return tf.raw_ops.ResourceApplyCenteredRMSProp(mg=average_gradient, **args)
    return tf.raw_ops.ResourceApplyRMSProp(**args)
