"""Sharpness-Aware Minimization (SAM) and Adaptive SAM for any optimizer, in fit and in custom loops.

SAM needs the loss twice per step, at the weights and at a perturbed copy of
them, so it couples model and optimizer (TensorFlow's guide "Optimizers with
Core APIs" names it as the case that does not fit the usual optimizer interface). Here it is a gradient function,
``sam_gradients``, any optimizer can apply, and a ``keras.Model`` wrapper,
``SAMModel``, whose ``train_step`` uses it in ``model.fit``.
"""

import keras
import tensorflow as tf

from optimlab._checks import check_bool, check_nonnegative
from optimlab import gradients as gradient_ops


def _scaling(variables, adaptive, eta):
    """ASAM's elementwise ``T_w = |w| + eta``, or None for SAM."""
    return [tf.abs(v) + tf.cast(eta, v.dtype) for v in variables] if adaptive else None


def sam_gradients(loss_fn, variables, rho=0.05, adaptive=False, eta=0.01):
    """The SAM gradient ``grad L(w + e)``, with ``e`` the worst-case step of radius ``rho``.

    ``loss_fn()`` returns the loss (or a tuple whose first item is the loss).
    The weights are perturbed in place and restored before returning.

    Update rule (Foret et al., 2021; adaptive: Kwon et al., 2021)::

        g <- grad L(w)
        e <- rho * g / ||g||                         (SAM)
        e <- rho * T^2 g / ||T g||,  T = |w| + eta   (ASAM, elementwise)
        return grad L(w + e)                         (to any optimizer)

    ``||.||`` is the global norm over all ``variables``. Under ``tf.distribute``
    (called in a replica context) ``g`` is summed across replicas first, so every
    replica takes the global batch's perturbation, as one device would.

    Args:
        loss_fn: zero-argument callable computing the loss.
        variables: the trainable variables.
        rho: neighbourhood radius >= 0 (default 0.05; ASAM papers use ~0.5-2).
        adaptive: ASAM instead of SAM (default False).
        eta: ASAM's offset of ``|w|`` (default 0.01, the authors').

    Returns:
        ``(gradients, outputs)``: the gradients at ``w + e`` and ``loss_fn``'s
        outputs at ``w`` (for metrics).

    Paper: https://arxiv.org/abs/2010.01412 (SAM), https://arxiv.org/abs/2102.11600 (ASAM)

    Example:
        >>> import tensorflow as tf, optimlab
        >>> x = tf.Variable([1.0, -2.0])
        >>> grads, loss = sam_gradients(lambda: tf.reduce_sum(x ** 2), [x], rho=0.1)
        >>> _ = optimlab.SGD(0.1).apply_gradients(zip(grads, [x]))
        >>> x.numpy().astype(float).round(4).tolist()
        [0.7911, -1.5821]
    """
    check_nonnegative("rho", rho)
    check_bool("adaptive", adaptive)
    check_nonnegative("eta", eta)
    variables = list(variables)
    with tf.GradientTape() as tape:
        outputs = loss_fn()
    loss = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
    grads = tape.gradient(loss, variables)
    # Under tf.distribute the perturbation is the global batch's, as on one device.
    grads = [g for g, _ in gradient_ops.all_reduce_sum(zip(grads, variables))]
    scale = _scaling(variables, adaptive, eta)
    scaled = grads if scale is None else [t * g for t, g in zip(scale, grads)]
    norm = tf.linalg.global_norm(scaled)
    steps = []
    for i, (var, g) in enumerate(zip(variables, scaled)):
        e = g if scale is None else scale[i] * g
        e = e * tf.cast(rho / (norm + 1e-12), var.dtype)
        var.assign_add(e)
        steps.append(e)
    with tf.GradientTape() as tape:
        perturbed = loss_fn()
    perturbed = perturbed[0] if isinstance(perturbed, (tuple, list)) else perturbed
    sharp_grads = tape.gradient(perturbed, variables)
    for var, e in zip(variables, steps):
        var.assign_sub(e)
    return sharp_grads, outputs


@keras.saving.register_keras_serializable(package="optimlab")
class SAMModel(keras.Model):
    """A model trained with SAM / ASAM by ``fit``: ``SAMModel(model, rho=0.05, adaptive=False)``.

    Compile it with any optimizer; each training step computes the loss at the
    weights (for the logged loss and metrics), then the gradient at the
    perturbed weights, which the optimizer applies. Prediction and evaluation
    are the inner model's. TensorFlow backend.

    Args: model (a built or buildable ``keras.Model``); rho (default 0.05);
    adaptive (default False); eta (default 0.01). See ``sam_gradients``.

    Example:
        >>> import keras, numpy as np, optimlab
        >>> inner = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        >>> model = SAMModel(inner, rho=0.05)
        >>> model.compile(optimizer=optimlab.SGD(0.1), loss="mse")
        >>> _ = model.fit(np.ones((4, 2)), np.ones((4, 1)), epochs=1, verbose=0)
    """

    def __init__(self, model, rho=0.05, adaptive=False, eta=0.01, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model; got {model!r}")
        self.model = model
        self.rho = float(check_nonnegative("rho", rho))
        self.adaptive = check_bool("adaptive", adaptive)
        self.eta = float(check_nonnegative("eta", eta))

    def call(self, inputs, training=False):
        return self.model(inputs, training=training)

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)

        def loss_fn():
            y_pred = self(x, training=True)
            return self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True), y_pred

        variables = self.trainable_variables
        grads, (loss, y_pred) = sam_gradients(loss_fn, variables, self.rho, self.adaptive, self.eta)
        self.optimizer.apply_gradients(zip(grads, variables))
        self._loss_tracker.update_state(loss, sample_weight=tf.shape(tf.nest.flatten(x)[0])[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def get_config(self):
        return {"model": keras.saving.serialize_keras_object(self.model), "rho": self.rho, "adaptive": self.adaptive, "eta": self.eta}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config["model"] = keras.saving.deserialize_keras_object(config["model"], custom_objects=custom_objects)
        return cls(**config)
