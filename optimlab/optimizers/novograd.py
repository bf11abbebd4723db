"""NovoGrad: layer-wise normalized gradients with momentum."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import cast, exact
from optimlab.registry import register


@register(
    "novograd",
    paper="Ginsburg et al., Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training of Deep Networks",
    year=2019,
    url="https://arxiv.org/abs/1905.11286",
    quadratic=({"learning_rate": 0.02}, 2000, 1e-2),
    rosenbrock=({"learning_rate": 0.002}, 10000, 5e-2),
    space={**spaces.ADAM_LIKE, "grad_averaging": spaces.BOOLEAN},
)
class NovoGrad(Optimizer):
    """NovoGrad (Ginsburg et al., 2019): momentum on gradients normalized by a per-layer second moment.

    Use it for large-batch training of speech and language models, where it
    needs one scalar of state per layer instead of Adam's per-weight ``v``.

    Update rule (TF Addons' form; ``v`` is one scalar per variable)::

        v <- ||g||^2                                     on the first step (v == 0)
        v <- beta_2 * v + (1 - beta_2) * ||g||^2         afterwards    (amsgrad: v_hat <- max(v_hat, v))
        d <- g / (sqrt(v) + epsilon) + weight_decay * x
        d <- (1 - beta_1) * d                            (grad_averaging only)
        m <- beta_1 * m + d
        x <- x - lr * m

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: momentum in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added to ``sqrt(v)`` (default 1e-7).
        weight_decay: ``weight_decay`` >= 0 added to the normalized gradient,
            honouring ``exclude_from_weight_decay`` (default None = 0).
        grad_averaging: scale ``d`` by ``1 - beta_1`` (default False).
        amsgrad: use the running maximum of ``v`` (default False).

    Conventions: TF Addons' defaults and form. Here ``weight_decay`` is the
    paper's (inside the momentum), not Keras' decoupled ``x <- x - lr * wd * x``
    that other optimlab optimizers apply.

    Paper: https://arxiv.org/abs/1905.11286

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.NovoGrad(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        weight_decay=None,
        grad_averaging=False,
        amsgrad=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=weight_decay, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.grad_averaging = check_bool("grad_averaging", grad_averaging)
        self.amsgrad = check_bool("amsgrad", amsgrad)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "m")
        for var in var_list:
            self.add_slot(var, "v", shape=())
        if self.amsgrad:
            for var in var_list:
                self.add_slot(var, "v_hat", shape=())

    def _apply_weight_decay(self, variables):
        """NovoGrad puts weight decay inside its update instead (see ``update_step``)."""

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        beta_1, one_minus_beta_1, beta_2, one_minus_beta_2 = cast(dtype, beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2)
        epsilon = self._get_hyper("epsilon", dtype)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        g2 = tf.reduce_sum(tf.square(gradient))
        v_new = v.assign(tf.where(tf.equal(v, 0.0), g2, beta_2 * v + one_minus_beta_2 * g2))
        if self.amsgrad:
            v_hat = self.get_slot(variable, "v_hat")
            v_new = v_hat.assign(tf.maximum(v_hat, v_new))
        d = gradient / (tf.sqrt(v_new) + epsilon)
        if self.weight_decay is not None and self._use_weight_decay(variable):
            d = d + exact(self.weight_decay, dtype) * variable
        if self.grad_averaging:
            d = one_minus_beta_1 * d
        m.assign(beta_1 * m + d)
        variable.assign_sub(lr * m)
