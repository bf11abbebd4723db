"""LARS: momentum SGD with a layer-wise trust ratio (TF Addons' large-batch optimizer)."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.gradients import frobenius_norm
from optimlab.optimizers._common import cast, check_patterns, matches_any, own_weight_decay
from optimlab.registry import register


def trust_ratio(w_norm, g_norm, trust_coefficient, weight_decay, epsilon):
    """``eta * ||w|| / (||g|| + wd * ||w|| + eps)``, or 1 where either norm is zero."""
    ratio = trust_coefficient * w_norm / (g_norm + weight_decay * w_norm + epsilon)
    return tf.where((w_norm > 0) & (g_norm > 0), ratio, tf.ones_like(ratio))


@register(
    "lars",
    paper="You, Gitman & Ginsburg, Large Batch Training of Convolutional Networks",
    year=2017,
    url="https://arxiv.org/abs/1708.03888",
    quadratic=({"learning_rate": 1.0, "momentum": 0.5, "trust_coefficient": 0.005, "weight_decay": 0.0, "exclude_vectors": False}, 1000, 1e-2),
    rosenbrock=({"learning_rate": 1e-3, "momentum": 0.9, "weight_decay": 0.0}, 10000, 5e-2),
    space={"learning_rate": spaces.log(1e-3, 10.0, "You et al. 2017 scale a base rate near 1 by the trust ratio; [1e-3, 10]"),
           "momentum": spaces.MOMENTUM,
           "weight_decay": spaces.log(1e-6, 1e-2, "You et al. 2017 use 5e-4; [1e-6, 1e-2]"),
           "trust_coefficient": spaces.log(1e-4, 1e-1, "You et al. 2017 use 1e-3; [1e-4, 0.1]"),
           "nesterov": spaces.BOOLEAN},
)
class LARS(Optimizer):
    """LARS (You, Gitman & Ginsburg, 2017): momentum SGD with a per-layer trust ratio.

    For large-batch training of convolutional networks: each layer's
    step is scaled by the ratio of its weight norm to its gradient norm, so that
    no layer moves by more than a fraction ``trust_coefficient`` of its size.

    Update rule (Algorithm 1 of the paper, per variable ``w``; ``wd`` the weight decay)::

        lambda <- eta * ||w|| / (||g|| + wd * ||w|| + epsilon)   (1 where a norm is 0)
        v      <- momentum * v + lr * lambda * (g + wd * w)
        w      <- w - v                  (nesterov: w <- w - momentum * v - lr * lambda * (g + wd * w))

    Excluded variables (by default every variable of rank <= 1: biases and the
    scales and offsets of normalization layers; plus names matching
    ``exclude_from_adaptation``) use ``lambda = 1`` and no weight decay, as in the
    large-batch recipes (SimCLR, MLPerf ResNet). ``exclude_from_weight_decay``
    (Keras) removes only the decay.

    Args:
        learning_rate: global ``lr`` (default 1.0; the effective per-layer step is
            ``lr * lambda``, about ``lr * eta * ||w|| / ||g||``, so values of 1 to
            10 are usual).
        momentum: in [0, 1) (default 0.9, the paper's).
        weight_decay: ``wd``, coupled into the gradient and the trust ratio, not
            Keras's decoupled decay (default 5e-4, the paper's).
        trust_coefficient: ``eta`` (default 0.001, the paper's).
        epsilon: added to the trust ratio's denominator (default 0.0).
        nesterov: Nesterov momentum (default False).
        exclude_vectors: exclude variables of rank <= 1 (default True).
        exclude_from_adaptation: regular expressions; variables whose name
            matches one are excluded too (default None).

    Where libraries disagree: the paper divides by ``||g|| + wd * ||w||``;
    TF Models' LARS, Optax's ``lars`` and most torch ports divide by
    ``||g + wd * w||`` (never larger, so their ratio is a little larger). Optax
    sets the ratio to 1 (not ``eta``) where a norm is zero, as here, requires
    masks for exclusions (none by default) and defaults to ``weight_decay=0``.
    tensorflow_addons' ``LARS`` is gone with TF Addons.

    Reference: https://arxiv.org/abs/1708.03888

    Example:
        >>> import tensorflow as tf, optimlab
        >>> w = tf.Variable([[3.0, 4.0]])
        >>> opt = optimlab.LARS(learning_rate=1.0, weight_decay=0.0)
        >>> _ = opt.minimize(lambda: tf.reduce_sum(w ** 2), [w])
        >>> [round(x, 4) for x in w.numpy()[0].tolist()]
        [2.997, 3.996]
    """

    slots = ("momentum",)

    def __init__(
        self,
        learning_rate=1.0,
        momentum=0.9,
        weight_decay=5e-4,
        trust_coefficient=0.001,
        epsilon=0.0,
        nesterov=False,
        exclude_vectors=True,
        exclude_from_adaptation=None,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, name=name, **kwargs)
        self._set_hyper("momentum", momentum, check=check_unit_interval)
        self._set_hyper("trust_coefficient", trust_coefficient, check=check_nonnegative)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.nesterov = check_bool("nesterov", nesterov)
        self.exclude_vectors = check_bool("exclude_vectors", exclude_vectors)
        self.exclude_from_adaptation = check_patterns("exclude_from_adaptation", exclude_from_adaptation)

    def _apply_weight_decay(self, variables):
        """Off: LARS couples its weight decay into the step (see ``update_step``)."""

    def is_adapted(self, variable):
        """Whether ``variable`` gets the trust ratio and weight decay (not excluded)."""
        if self.exclude_vectors and len(variable.shape) <= 1:
            return False
        return not matches_any(self.exclude_from_adaptation, variable)

    def _adapted_rate(self, variable, gradient, lr):
        """``lr * lambda`` and the weight decay of an adapted variable, in its dtype."""
        wd, eta, epsilon = cast(
            variable.dtype,
            own_weight_decay(self, variable),
            self._get_hyper("trust_coefficient"),
            self._get_hyper("epsilon"),
        )
        return lr * trust_ratio(frobenius_norm(variable), frobenius_norm(gradient), eta, wd, epsilon), wd

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        momentum = self._get_hyper("momentum", dtype)
        v = self.get_slot(variable, "momentum")
        if self.is_adapted(variable):
            rate, wd = self._adapted_rate(variable, gradient, lr)
            step = rate * (gradient + wd * variable)
        else:
            step = lr * gradient
        v.assign(momentum * v + step)
        variable.assign_sub(momentum * v + step if self.nesterov else v)


# ------------------------------------------------------------------ fast paths
@fused.fast_path(LARS)
def _lars_kernel(opt, gradient, variable, learning_rate):
    """optimlab's native op, with the trust ratio computed as ``update_step`` computes it."""
    library = fused.native(variable)
    if library is None:
        return fused.DECLINED
    dtype = variable.dtype
    lr = tf.cast(learning_rate, dtype)
    adapted = opt.is_adapted(variable)
    if adapted:
        rate, weight_decay = opt._adapted_rate(variable, gradient, lr)
        scalars = [rate, weight_decay, opt._get_hyper("momentum", dtype)]
    else:
        scalars = [lr, tf.zeros([], dtype), opt._get_hyper("momentum", dtype)]
    return library.optimlab_apply_lars(
        handles=[variable.handle, fused.handle(opt.get_slot(variable, "momentum"))],
        grad=gradient,
        coefficients=tf.stack(scalars),
        nesterov=opt.nesterov,
        adapted=adapted,
    )
