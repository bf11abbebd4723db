"""AdamW: Adam with decoupled weight decay, with Keras's arguments."""

from optimlab import spaces
from optimlab._checks import check_nonnegative
from optimlab.optimizers.adam import Adam
from optimlab.registry import register


@register(
    "adamw",
    paper="Loshchilov & Hutter, Decoupled Weight Decay Regularization",
    year=2017,
    url="https://arxiv.org/abs/1711.05101",
    quadratic=({"learning_rate": 0.05, "weight_decay": 1e-4}, 500, 1e-2),
    rosenbrock=({"learning_rate": 0.02, "weight_decay": 1e-5}, 5000, 5e-2),
    space={**spaces.ADAM_LIKE,
           "weight_decay": spaces.log(1e-5, 1.0, "Loshchilov & Hutter 2019 sweep decay on a log grid; [1e-5, 1]")},
)
class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2017): Adam with weight decay decoupled from the gradient.

    The standard optimizer for transformers; prefer it to Adam with an L2
    penalty, which adaptive scaling weakens for large weights.

    Update rule (each step, before Adam's update of :class:`optimlab.Adam`)::

        x <- x - lr * weight_decay * x
        x <- x - lr * m_hat / (sqrt(v_hat) + epsilon)

    The decay is Keras 3's generic decoupled ``weight_decay``, done once by the
    base class for every optimizer (with ``exclude_from_weight_decay``); AdamW is
    ``Adam`` with a non-zero default for it.

    Args:
        learning_rate: ``lr`` (default 0.001).
        weight_decay: decay per unit learning rate, >= 0 (default 0.004, Keras's).
        beta_1, beta_2, epsilon, amsgrad, epsilon_hat: as :class:`optimlab.Adam`
            (defaults 0.9, 0.999, 1e-7, False, False).

    Conventions: the decay is scaled by the learning rate, as in
    ``keras.optimizers.AdamW``, ``torch.optim.AdamW`` (default 0.01) and Optax's
    ``adamw`` (default 1e-4); the paper scales it by the schedule multiplier
    only (use ``weight_decay = lambda / lr`` for a constant ``lr``). The Adam
    part defaults to the paper's and torch's form (epsilon added to
    ``sqrt(v_hat)``); ``epsilon_hat=True`` gives Keras's arithmetic.

    Reference: https://arxiv.org/abs/1711.05101

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.AdamW(learning_rate=0.1, weight_decay=0.5)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.85
    """

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        epsilon_hat=False,
        name=None,
        **kwargs,
    ):
        check_nonnegative("weight_decay", weight_decay)
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            epsilon_hat=epsilon_hat,
            name=name,
            weight_decay=weight_decay,
            **kwargs,
        )
