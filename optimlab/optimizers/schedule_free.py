"""Schedule-Free SGD and AdamW, and the swap between training and evaluation weights."""

import contextlib

import keras
import tensorflow as tf

from optimlab import fused, spaces
from optimlab._checks import check_int, check_nonnegative, check_unit_interval
from optimlab.optimizer import Optimizer
from optimlab.optimizers._common import bias_correction, cast, own_weight_decay, step_count
from optimlab.registry import register


def warmup_factor(t, warmup_steps):
    """``min(1, t / warmup_steps)`` in float64 (1 without warm-up)."""
    if warmup_steps == 0:
        return tf.constant(1.0, tf.float64)
    return tf.minimum(tf.constant(1.0, tf.float64), t / tf.constant(warmup_steps, tf.float64))


def averaging_weight(weight, weight_sum):
    """``c = weight / weight_sum``, 0 while both are 0 (a warm-up starting at lr = 0)."""
    return tf.math.divide_no_nan(weight, weight_sum)


class _EvaluationSwap:
    """The weight swap of schedule-free optimizers (a mixin; not an optimizer).

    The model's variables hold ``y`` (where gradients are taken) during
    training; evaluate, save for inference and export at ``x`` (the average).
    """

    def eval_mode(self):
        """Put the averaged weights ``x`` into the variables (for evaluation)."""
        self._load_point(lambda z, x, beta: x)

    def train_mode(self):
        """Put the training point ``y = (1 - beta) * z + beta * x`` back into the variables."""
        self._load_point(lambda z, x, beta: (1 - beta) * z + beta * x)

    @contextlib.contextmanager
    def evaluation_weights(self):
        """Context manager: ``x`` in the variables inside, ``y`` again on exit."""
        self.eval_mode()
        try:
            yield self
        finally:
            self.train_mode()

    def _load_point(self, point):
        if not self.built or int(self.iterations.numpy()) == 0:
            return  # before the first step x = y = z = the initial weights
        for var in self._trainable_variables:
            beta = self._get_hyper("beta_1", var.dtype)
            var.assign(point(self.get_slot(var, "z"), self.get_slot(var, "x"), beta))

    def build(self, var_list):
        """The optimizer's own variables, then ``z``, ``x``, ``lr_max`` and ``weight_sum`` of each variable."""
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "z")
            self.add_slot(var, "x")
            self.add_slot(var, "lr_max", shape=(), dtype="float64")
            self.add_slot(var, "weight_sum", shape=(), dtype="float64")

    def _apply_weight_decay(self, variables):
        """Off: the decay is taken at ``y`` inside the step, as the paper's code does."""

    def _averaging_scalars(self, variable, learning_rate):
        """Advance ``lr_max`` and ``weight_sum``; the step's scalars in ``variable``'s dtype.

        Returns ``first`` (1 on the first step, when ``z`` and ``x`` start at the
        weights, else 0), ``beta``, the averaging weight ``c``, ``lr_t`` and ``wd``.
        """
        dtype = variable.dtype
        t = step_count(self)
        lr_max, weight_sum = self.get_slot(variable, "lr_max"), self.get_slot(variable, "weight_sum")
        lr_t = tf.cast(learning_rate, tf.float64) * warmup_factor(t, self.warmup_steps)
        lr_max.assign(tf.maximum(lr_max, lr_t))
        weight = tf.square(lr_max)
        weight_sum.assign_add(weight)
        first = tf.cast(tf.equal(t, 1.0), dtype)
        c = cast(dtype, averaging_weight(weight, weight_sum))
        wd = tf.cast(own_weight_decay(self, variable), dtype)
        return first, self._get_hyper("beta_1", dtype), c, tf.cast(lr_t, dtype), wd

    def _averaged_step(self, variable, direction_fn, learning_rate):
        """z <- z - lr_t * d(y); x <- (1 - c) x + c z; variable <- (1 - beta) z + beta x."""
        first, beta, c, lr_t, wd = self._averaging_scalars(variable, learning_rate)
        z, x = self.get_slot(variable, "z"), self.get_slot(variable, "x")
        # z and x start at the weights the first step sees (set after build if need be).
        z.assign(tf.where(first > 0, variable, z))
        x.assign(tf.where(first > 0, variable, x))
        y = (1 - beta) * z + beta * x
        z.assign_sub(lr_t * (direction_fn() + wd * y))
        x.assign((1 - c) * x + c * z)
        variable.assign((1 - beta) * z + beta * x)


_SWAP_DOC = """
    Evaluation weights: the variables hold ``y`` while training. Evaluate and
    save at ``x``: ``opt.eval_mode()`` / ``opt.train_mode()``, the context manager
    ``with opt.evaluation_weights(): model.evaluate(...)``, or the callback
    ``ScheduleFreeEvaluation(opt)`` in ``model.fit`` (``x`` during validation
    and after training).
"""


@register(
    "schedule_free_sgd",
    paper="Defazio et al., The Road Less Scheduled",
    year=2024,
    url="https://arxiv.org/abs/2405.15682",
    quadratic=({"learning_rate": 0.1}, 500, 1e-2),
    rosenbrock=({"learning_rate": 3e-3, "beta_1": 0.5}, 10000, 5e-2),
    aliases=("sfsgd",),
    space={"learning_rate": spaces.log(1e-3, 10.0, "Defazio et al. 2024 use rates near 1 for SGD; [1e-3, 10]"),
           "beta_1": spaces.BETA_1},
)
class ScheduleFreeSGD(_EvaluationSwap, Optimizer):
    """Schedule-Free SGD (Defazio et al., 2024): momentum by interpolation and averaging, no schedule.

    Replaces SGD with momentum plus a learning-rate schedule when the length of
    training is not known in advance: there is nothing to decay, and the
    average ``x`` is as good as a tuned schedule's last iterate.

    Update rule (Algorithm 1 of the paper with the official code's weighting;
    ``t`` from 1, ``z = x = y`` at the start)::

        y      = (1 - beta_1) * z + beta_1 * x        (the variables; gradients are taken here)
        lr_t   = lr * min(1, t / warmup_steps)
        z     <- z - lr_t * (g + wd * y)
        c      = lr_max^2 / sum_i lr_max,i^2           (lr_max: the largest lr_t so far; 1/t for a constant lr)
        x     <- (1 - c) * x + c * z

    Memory: two slots per parameter (``z``, ``x``; the official code keeps only
    ``z`` and recovers ``x`` from ``y``, dividing by ``beta_1``) plus two scalars per variable.
    {swap}
    Args:
        learning_rate: ``lr`` (default 1.0, the official code's; often 0.1 to 10
            times larger than for SGD with momentum).
        beta_1: interpolation ``beta`` in [0, 1) (default 0.9).
        warmup_steps: linear warm-up length (default 0).
        weight_decay: ``wd``, taken at ``y`` inside the step (default None).

    Where libraries disagree: Optax's ``contrib.schedule_free_sgd`` folds the
    warm-up into a schedule and weights by ``lr_max^2`` as here; Keras has no SGD
    version. The official code also offers ``r`` (polynomial weighting, 0 here)
    and ``weight_lr_power`` (2 here).

    Reference: https://arxiv.org/abs/2405.15682

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.ScheduleFreeSGD(learning_rate=0.1)
        >>> for _ in range(2): _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.712
        >>> with opt.evaluation_weights():
        ...     round(float(x.numpy()), 4)
        0.72
    """

    def __init__(self, learning_rate=1.0, beta_1=0.9, warmup_steps=0, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)

    def update_step(self, gradient, variable, learning_rate):
        self._averaged_step(variable, lambda: gradient, learning_rate)


@register(
    "schedule_free_adamw",
    paper="Defazio et al., The Road Less Scheduled",
    year=2024,
    url="https://arxiv.org/abs/2405.15682",
    quadratic=({"learning_rate": 0.1}, 1000, 1e-2),
    rosenbrock=({"learning_rate": 0.02}, 10000, 5e-2),
    aliases=("sfadamw",),
    space=spaces.ADAM_LIKE,
)
class ScheduleFreeAdamW(_EvaluationSwap, Optimizer):
    """Schedule-Free AdamW (Defazio et al., 2024): Adam's scaling with schedule-free averaging.

    Replaces AdamW plus a cosine or linear-decay schedule; no stopping time is
    needed. Warm-up (``warmup_steps``) is still advised for transformers.

    Update rule (the official reference code; ``t`` from 1, ``z = x = y`` at the start)::

        v     <- beta_2 * v + (1 - beta_2) * g^2
        d      = g / (sqrt(v / (1 - beta_2^t)) + epsilon) + wd * y
        z     <- z - lr_t * d,   x <- (1 - c) * x + c * z,   y = (1 - beta_1) * z + beta_1 * x

    with ``lr_t`` and ``c`` as in ``ScheduleFreeSGD``. Memory: three slots per
    parameter (``z``, ``x``, ``v``) plus two scalars per variable.
    {swap}
    Args:
        learning_rate: ``lr`` (default 0.0025, the official code's).
        beta_1: interpolation ``beta`` in [0, 1) (default 0.9).
        beta_2: second-moment decay in [0, 1) (default 0.999).
        epsilon: added after the square root (default 1e-8).
        warmup_steps: linear warm-up length (default 0).
        weight_decay: ``wd``, taken at ``y`` inside the step (default None).

    Where libraries disagree: ``keras.optimizers.ScheduleFreeAdamW`` averages
    with ``c = 1/t`` whatever the learning rate and recovers ``x`` from ``y`` by
    dividing by ``beta_1``; in Keras 3.15 that recovery reads ``z`` after its
    update, so its iterates leave the paper's from the second step on (found by
    this module's tests). The official fast code folds ``sqrt(1 - beta_2^t)`` into ``lr``,
    which moves epsilon and changes the weights ``c`` early on; this follows its
    reference code. Optax's ``contrib.schedule_free_adamw`` weights as here.

    Reference: https://arxiv.org/abs/2405.15682

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable(1.0)
        >>> opt = optimlab.ScheduleFreeAdamW(learning_rate=0.1)
        >>> _ = opt.minimize(lambda: x ** 2, [x])
        >>> round(float(x.numpy()), 4)
        0.9
    """

    def __init__(
        self,
        learning_rate=0.0025,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        warmup_steps=0,
        name=None,
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self._set_hyper("beta_1", beta_1, check=check_unit_interval)
        self._set_hyper("beta_2", beta_2, check=check_unit_interval)
        self._set_hyper("epsilon", epsilon, check=check_nonnegative)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, low=0)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)  # the averages first
        for var in var_list:
            self.add_slot(var, "v")

    def _moment_scalars(self, dtype):
        """``beta_2``, ``1 - beta_2``, the bias correction ``1 - beta_2^t`` and ``epsilon``, in ``dtype``."""
        b2 = self._get_hyper("beta_2", tf.float64)
        return (*cast(dtype, b2, 1 - b2, bias_correction(b2, step_count(self))), self._get_hyper("epsilon", dtype))

    def update_step(self, gradient, variable, learning_rate):
        b2, c2, k2, epsilon = self._moment_scalars(variable.dtype)
        v = self.get_slot(variable, "v")
        v.assign(b2 * v + c2 * tf.square(gradient))
        denom = tf.sqrt(v / k2) + epsilon
        self._averaged_step(variable, lambda: gradient / denom, learning_rate)


ScheduleFreeSGD.__doc__ = ScheduleFreeSGD.__doc__.replace("{swap}", _SWAP_DOC)
ScheduleFreeAdamW.__doc__ = ScheduleFreeAdamW.__doc__.replace("{swap}", _SWAP_DOC)


# ------------------------------------------------------------------ fast paths
def _schedule_free_kernel(opt, gradient, variable, learning_rate, adam):
    """optimlab's native op: the averaging scalars (and Adam's moment scalars) as ``update_step`` computes them."""
    library = fused.native(variable)
    if library is None:
        return fused.DECLINED
    scalars = list(opt._averaging_scalars(variable, learning_rate))
    slots = ("z", "x", "v") if adam else ("z", "x")
    if adam:
        scalars += opt._moment_scalars(variable.dtype)
    return library.optimlab_apply_schedule_free(
        handles=[variable.handle] + [fused.handle(opt.get_slot(variable, s)) for s in slots],
        grad=gradient,
        coefficients=tf.stack(scalars),
        adam=adam,
    )


@fused.fast_path(ScheduleFreeSGD)
def _schedule_free_sgd_kernel(opt, gradient, variable, learning_rate):
    return _schedule_free_kernel(opt, gradient, variable, learning_rate, adam=False)


@fused.fast_path(ScheduleFreeAdamW)
def _schedule_free_adamw_kernel(opt, gradient, variable, learning_rate):
    return _schedule_free_kernel(opt, gradient, variable, learning_rate, adam=True)


class ScheduleFreeEvaluation(keras.callbacks.Callback):
    """Keras callback: ``x`` in the model during validation, testing, prediction and after training.

    Example: ``model.fit(..., callbacks=[ScheduleFreeEvaluation(opt)])``.
    """

    def __init__(self, optimizer):
        super().__init__()
        if not isinstance(optimizer, _EvaluationSwap):
            raise TypeError(f"optimizer must be ScheduleFreeSGD or ScheduleFreeAdamW; got {type(optimizer).__name__}")
        self.optimizer = optimizer

    def on_train_begin(self, logs=None):
        self.optimizer.train_mode()

    def on_test_begin(self, logs=None):
        self.optimizer.eval_mode()

    def on_test_end(self, logs=None):
        self.optimizer.train_mode()

    def on_predict_begin(self, logs=None):
        self.optimizer.eval_mode()

    def on_predict_end(self, logs=None):
        self.optimizer.train_mode()

    def on_train_end(self, logs=None):
        self.optimizer.eval_mode()
