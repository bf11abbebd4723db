"""Conditional gradient (Frank-Wolfe) over a norm ball, in TF Addons' form."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_choice, check_nonnegative, check_range
from optimlab.optimizer import Optimizer
from optimlab.gradients import frobenius_norm
from optimlab.registry import register


def frobenius_direction(g, epsilon):
    """``g / (||g||_F + epsilon)``: the Frank-Wolfe atom of the Frobenius ball, up to sign and radius."""
    return g / (frobenius_norm(g) + epsilon)


def nuclear_direction(g):
    """``u1 v1^T`` for the top singular pair of ``g`` (scalars and vectors as 1-row matrices)."""
    matrix = tf.reshape(g, (-1, g.shape[-1])) if g.shape.rank else tf.reshape(g, (1, 1))
    _, u, v = tf.linalg.svd(matrix, full_matrices=False)
    return tf.reshape(tf.matmul(u[:, :1], v[:, :1], transpose_b=True), tf.shape(g))


@register(
    "conditional_gradient",
    paper="Frank & Wolfe, An algorithm for quadratic programming; Ravi et al., Constrained deep learning using conditional gradient",
    year=1956,
    url="https://arxiv.org/abs/1803.06453",
    quadratic=({"learning_rate": 0.99, "lambda_": 5.0}, 2000, 5e-2),
    rosenbrock=({"learning_rate": 0.9998, "lambda_": 1.45}, 20000, 2.5e-1),  # constant-step Frank-Wolfe creeps along the valley
    aliases=("frank_wolfe",),
    space={"learning_rate": spaces.LEARNING_RATE,
           "lambda_": spaces.log(1e-4, 10.0, "the constraint's radius, 0.01 by default (TF Addons); [1e-4, 10]")},
)
class ConditionalGradient(Optimizer):
    """ConditionalGradient (Frank & Wolfe, 1956; Ravi et al., 2018): keeps each variable in a norm ball of radius ``lambda_``.

    Use it to train under a hard norm constraint (Frobenius or nuclear) without
    projections: every iterate is a convex combination of points of the ball.

    Update rule (TF Addons' form; ``learning_rate`` is the weight KEPT on the old value)::

        s <- g / (||g||_F + epsilon)             ord="fro"
        s <- u1 v1^T (top singular pair of g)    ord="nuclear"
        x <- lr * x - (1 - lr) * lambda_ * s

    that is ``x <- x + gamma (s* - x)`` with the Frank-Wolfe step ``gamma = 1 - lr``
    towards the ball's extreme point ``s* = -lambda_ s``.

    Args:
        learning_rate: ``lr`` in [0, 1]; 1 freezes the variables (default 0.01).
        lambda_: radius of the constraint ball >= 0 (default 0.01).
        epsilon: added to the Frobenius norm (default 1e-7).
        ord: "fro" or "nuclear" (default "fro"); "nuclear" treats a variable of
            rank > 2 as a matrix of shape (-1, last dimension).

    Conventions: TF Addons' names and defaults; note its ``learning_rate`` is
    one minus the step size ``gamma`` of the papers. Keras and torch.optim have
    no Frank-Wolfe optimizer. A sparse gradient is applied
    densely (the rows without gradient are still shrunk by ``lr``), unlike TF
    Addons' sparse path, which shrinks only the indexed rows.

    Paper: https://arxiv.org/abs/1803.06453

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([3.0, 4.0])
        >>> opt = optimlab.ConditionalGradient(learning_rate=0.5, lambda_=1.0)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(x ** 2), [x])
        >>> x.numpy().astype(float).round(4).tolist()
        [1.2, 1.6]
    """

    def __init__(self, learning_rate=0.01, lambda_=0.01, epsilon=1e-7, ord="fro", name=None, **kwargs):
        if not callable(learning_rate):
            check_range("learning_rate", learning_rate, 0.0, 1.0)
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("lambda_", lambda_, check=check_nonnegative)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.ord = check_choice("ord", ord, ("fro", "nuclear"))

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        lambda_ = self._get_hyper("lambda_", dtype)
        if self.ord == "fro":
            s = frobenius_direction(gradient, self._get_hyper("epsilon", dtype))
        else:
            s = nuclear_direction(gradient)
        variable.assign(lr * variable - (1 - lr) * lambda_ * s)


# ------------------------------------------------------------------ fast paths
@fused.fast_path(ConditionalGradient)
def _conditional_gradient_kernel(opt, gradient, variable, learning_rate):
    """optimlab's native op (Frobenius norm only; the nuclear-norm step needs an SVD)."""
    library = fused.native(variable)
    if library is None or opt.ord != "fro":
        return fused.DECLINED
    dtype = variable.dtype
    lr = tf.cast(learning_rate, dtype)
    # The op takes ||g|| in a first pass of its own (summed in double, faster
    # than a separate l2_loss), so the result equals the plain path's up to rounding.
    coefficients = tf.stack([lr, (1 - lr) * opt._get_hyper("lambda_", dtype), opt._get_hyper("epsilon", dtype)])
    return library.optimlab_apply_conditional_gradient(
        handles=[variable.handle], grad=gradient, coefficients=coefficients, norm=True
    )
