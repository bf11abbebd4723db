"""Adam, in the form of the paper's Algorithm 1 (and of the TensorFlow guide "Optimizers with Core APIs")."""

import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_bool, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, keras_adam_step_size, step_count
from optimlab.registry import register


@register(
    "adam",
    paper="Kingma & Ba, Adam: A Method for Stochastic Optimization",
    year=2014,
    url="https://arxiv.org/abs/1412.6980",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 5000, 5e-2),
    space={**spaces.ADAM_LIKE, "amsgrad": spaces.choice((False, True), "Reddi et al. 2018's variant, off or on")},
)
class Adam(Optimizer):
    """Adam (Kingma & Ba, 2014): bias-corrected first and second moments.

    The default choice for most networks; robust to the scale of gradients.

    Update rule (Algorithm 1 of the paper; ``t`` counts from 1)::

        m <- beta_1 * m + (1 - beta_1) * g
        v <- beta_2 * v + (1 - beta_2) * g^2
        m_hat <- m / (1 - beta_1^t)
        v_hat <- v / (1 - beta_2^t)          (amsgrad: v_max <- max(v_max, v), used for v)
        x <- x - lr * m_hat / (sqrt(v_hat) + epsilon)

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added after the square root (default 1e-7, as the Core APIs guide and Keras).
        amsgrad: keep the running maximum of ``v`` (Reddi et al., 2018) (default False).
        epsilon_hat: if True use the paper's "efficient" form that Keras, TF and
            Optax's ``eps_root=0`` path use, ``x <- x - lr_t * m / (sqrt(v) + epsilon)``
            with ``lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)``, computed operation
            for operation as ``keras.optimizers.Adam`` does (default False).

    Conventions: the default form is that of TensorFlow's guide "Optimizers with
    Core APIs" and torch.optim's (epsilon added to ``sqrt(v_hat)``); Keras 3 adds
    epsilon to ``sqrt(v)`` (``epsilon_hat=True``), which acts like a smaller
    epsilon early in training. On that guide's quartic at
    learning rate 0.1 the default form converges in 1156 iterations, the Keras
    form in 1093. torch and Optax default to epsilon 1e-8.

    Reference: https://arxiv.org/abs/1412.6980 (AMSGrad: https://openreview.net/forum?id=ryQu7f-RZ)

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(2.0)
        >>> opt = optimlab.Adam(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        1.9
    """

    slots = ("m", "v")

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        epsilon_hat=False,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.amsgrad = check_bool("amsgrad", amsgrad)
        self.epsilon_hat = check_bool("epsilon_hat", epsilon_hat)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        if self.amsgrad:
            for var in var_list:
                self.add_slot(var, "v_max")

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        t = step_count(self)
        lr = tf.cast(learning_rate, dtype)
        epsilon = self._get_hyper("epsilon", dtype)
        m = self.get_slot(variable, "m")
        v = self.get_slot(variable, "v")

        if self.epsilon_hat:
            self._keras_form(gradient, variable, lr, epsilon, m, v)
            return
        m.assign(tf.cast(beta_1, dtype) * m + tf.cast(1.0 - beta_1, dtype) * gradient)
        v.assign(tf.cast(beta_2, dtype) * v + tf.cast(1.0 - beta_2, dtype) * tf.square(gradient))
        v_used = v
        if self.amsgrad:
            v_max = self.get_slot(variable, "v_max")
            v_used = v_max.assign(tf.maximum(v_max, v))
        m_hat = m / tf.cast(bias_correction(beta_1, t), dtype)
        v_hat = v_used / tf.cast(bias_correction(beta_2, t), dtype)
        variable.assign_sub(lr * (m_hat / (tf.sqrt(v_hat) + epsilon)))

    def _keras_form(self, gradient, variable, lr, epsilon, m, v):
        """The arithmetic of ``keras.optimizers.Adam``, operation for operation."""
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        alpha = keras_adam_step_size(lr, beta_1, beta_2, self.iterations + 1, dtype)
        m.assign_add((gradient - m) * tf.cast(1.0 - beta_1, dtype))
        v.assign_add((tf.square(gradient) - v) * tf.cast(1.0 - beta_2, dtype))
        if self.amsgrad:
            v_max = self.get_slot(variable, "v_max")
            v = v_max.assign(tf.maximum(v_max, v))
        variable.assign_sub(m * alpha / (tf.sqrt(v) + epsilon))


# ------------------------------------------------------------------ fast paths
@fused.native_kernel(Adam, "adam")
def _adam_native(opt, learning_rate, dtype):
    """optimlab's Adam op: the scalars of ``update_step`` (or of ``_keras_form``), in its order."""
    slots = ("m", "v", "v_max") if opt.amsgrad else ("m", "v")

    def scalars():  # computed once per apply and dtype
        beta_1, beta_2, epsilon = (opt._get_hyper(name, tf.float64) for name in ("beta_1", "beta_2", "epsilon"))
        if opt.epsilon_hat:
            alpha = keras_adam_step_size(learning_rate, beta_1, beta_2, opt.iterations + 1, dtype)
            return 1.0 - beta_1, 1.0 - beta_2, alpha, epsilon
        beta_1_power, beta_2_power = fused.powers(opt, "beta_1", "beta_2")
        return beta_1, 1.0 - beta_1, beta_2, 1.0 - beta_2, 1.0 - beta_1_power, 1.0 - beta_2_power, learning_rate, epsilon

    coefficients = fused.coefficients(opt, "native-adam", dtype, scalars)
    return slots, coefficients, {"amsgrad": opt.amsgrad, "form": "keras" if opt.epsilon_hat else "paper"}


@fused.fast_path(Adam)
def _adam_kernel(opt, gradient, variable, learning_rate):
    """The native op on the CPU; else TensorFlow's ``ResourceApplyAdam`` (``...WithAmsgrad``)."""
    dtype = variable.dtype
    library = fused.native(variable)
    if library is not None:
        return fused.native_apply(library, opt, [gradient], [variable], learning_rate, single=True)

    def scalars():
        beta_1_power, beta_2_power = fused.powers(opt, "beta_1", "beta_2")
        epsilon = opt._get_hyper("epsilon", tf.float64)
        if not opt.epsilon_hat:
            # m_hat / (sqrt(v_hat) + eps) == lr_t * m / (sqrt(v) + eps * sqrt(1 - beta_2^t))
            epsilon = epsilon * tf.sqrt(1.0 - beta_2_power)
        return dict(
            beta1_power=tf.cast(beta_1_power, dtype),
            beta2_power=tf.cast(beta_2_power, dtype),
            lr=fused.lr(opt, learning_rate, dtype),
            beta1=fused.hyper(opt, "beta_1", dtype),
            beta2=fused.hyper(opt, "beta_2", dtype),
            epsilon=tf.cast(epsilon, dtype),
        )

    m, v = (fused.handle(opt.get_slot(variable, s)) for s in ("m", "v"))
    args = dict(var=variable.handle, m=m, v=v, grad=gradient, **fused.once(opt, ("adam", dtype), scalars))
    if opt.amsgrad:
        return tf.raw_ops.ResourceApplyAdamWithAmsgrad(vhat=fused.handle(opt.get_slot(variable, "v_max")), **args)
    return tf.raw_ops.ResourceApplyAdam(**args)
