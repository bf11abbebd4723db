"""AdaBelief: Adam whose second moment tracks the belief in the gradient, (g - m)^2."""

import tensorflow as tf

from optimlab import spaces
from optimlab._checks import check_bool
from optimlab.optimizers.rectified_adam import _RectifiedBase
from optimlab.registry import register


@register(
    "adabelief",
    paper="Zhuang et al., AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
    year=2020,
    url="https://arxiv.org/abs/2010.07468",
    quadratic=({"learning_rate": 0.05}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.01, "rectify": False}, 5000, 5e-2),
    space={**spaces.ADAM_LIKE, "epsilon": spaces.log(1e-16, 1e-4, "Zhuang et al. 2020 use 1e-16 (1e-14 here) and 1e-8; "
                                                      "six decades either side of 1e-10")},
)
class AdaBelief(_RectifiedBase):
    """AdaBelief (Zhuang et al., 2020): steps large where the gradient matches its average, small where it surprises.

    Use it where Adam generalizes worse than SGD, or on GANs; it keeps Adam's
    speed with SGD-like steps in flat, consistent regions.

    Update rule (TF Addons' form; ``t`` counts from 1)::

        m <- beta_1 * m + (1 - beta_1) * g;                 m_hat <- m / (1 - beta_1^t)
        s <- beta_2 * s + (1 - beta_2) * (g - m)^2 + epsilon;  s_corr <- sqrt(s / (1 - beta_2^t))
        x <- x - lr_t * m_hat / (s_corr + epsilon)         (rectify=False)

    With ``rectify=True`` the step is RAdam's: ``x <- x - lr_t * r_t * m_hat /
    (s_corr + epsilon)`` once ``rho_t >= sma_threshold`` and ``x <- x - lr_t * m_hat``
    before (see ``RectifiedAdam``, which also describes ``total_steps``,
    ``warmup_proportion`` and ``min_lr``).

    Args:
        learning_rate: ``lr`` (default 0.001).
        beta_1: first-moment decay in [0, 1) (default 0.9).
        beta_2: belief decay in [0, 1) (default 0.999).
        epsilon: added inside ``s`` and to ``s_corr`` (default 1e-14).
        amsgrad: use the running maximum of ``s`` (default False).
        rectify: RAdam's rectification (default True, as TF Addons).
        sma_threshold: (default 5.0); total_steps: (default 0);
        warmup_proportion: (default 0.1); min_lr: (default 0.0).
        **kwargs: ``weight_decay`` etc. (Keras' decoupled ``x <- x - lr * wd * x``).

    Conventions: defaults are TF Addons'. The paper's Algorithm 2 has no
    rectification (``rectify=False``) and epsilon 1e-16 (the authors' packages
    default to 1e-14/1e-16 and ``rectify=True`` in later versions); Optax's
    ``adabelief`` has no rectification, epsilon 1e-16 and ``eps_root`` 1e-16.

    Paper: https://arxiv.org/abs/2010.07468

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.AdaBelief(learning_rate=0.1, rectify=False)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.8889
    """

    def __init__(
        self,
        learning_rate=0.001,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-14,
        amsgrad=False,
        rectify=True,
        sma_threshold=5.0,
        total_steps=0,
        warmup_proportion=0.1,
        min_lr=0.0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_rectified_args(beta_1, beta_2, epsilon, amsgrad, sma_threshold, total_steps, warmup_proportion, min_lr)
        self.rectify = check_bool("rectify", rectify)

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        beta_1 = self._get_hyper("beta_1", tf.float64)
        beta_2 = self._get_hyper("beta_2", tf.float64)
        epsilon = self._get_hyper("epsilon", dtype)
        m = self.get_slot(variable, "m")
        s = self.get_slot(variable, "v")
        m.assign(tf.cast(beta_1, dtype) * m + tf.cast(1.0 - beta_1, dtype) * gradient)
        s.assign(tf.cast(beta_2, dtype) * s + tf.cast(1.0 - beta_2, dtype) * tf.square(gradient - m) + epsilon)
        self._rectified_step(variable, m, s, learning_rate)
