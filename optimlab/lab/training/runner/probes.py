"""Measurements taken while a run trains: naive baseline, gradient norm, update ratios, dead ReLU units.

:func:`train <optimlab.lab.training.runner.loop.train>` calls a :class:`Probe`
at every evaluation; the values land in the run's history and record, and
:mod:`optimlab.lab.training.analysis.diagnostics` turns them into flags.

* :func:`naive_baseline`: the loss and metric of the best constant prediction
  (the training targets' mean for regression, the training class frequencies
  for classification: its accuracy is the majority class's share). A network
  that ends at this loss has learned nothing from its inputs.
* ``grad_norm``: the global L2 norm of the training-loss gradient on up to
  ``rows`` training rows (the first ones, the same at every evaluation),
  computed in inference mode.
* ``update_ratio``: per layer, ``||w_now - w_before|| / ||w_before||`` since the
  previous evaluation (the history keeps the largest over layers).
* ``dead_units``: the share of ReLU units (Dense/Conv units or channels whose
  activation is ``relu``) that output 0 for every one of those rows.
"""

import numpy as np
import tensorflow as tf


def naive_baseline(problem, data, evaluate_constant, num_outputs):
    """Loss (and first metric) of the constant predictor per split; None for ``mean_output`` problems.

    ``evaluate_constant(y, out)`` returns ``(loss, metrics...)`` for a
    prediction ``out`` broadcast to every row.
    """
    if problem.loss == "mean_output":
        return None
    y = data.y_train
    if np.issubdtype(y.dtype, np.integer):
        counts = np.bincount(y.reshape(-1), minlength=num_outputs)[:num_outputs].astype(np.float64)
        constant = np.log(np.maximum(counts / counts.sum(), 1e-7))
        kind = f"majority class {int(counts.argmax())} (class frequencies as the prediction)"
    else:
        constant = y.reshape(len(y), -1).mean(axis=0)
        kind = "mean of the training targets"
    out = {"kind": kind}
    for split in ("train", "valid", "test"):
        ys = getattr(data, f"y_{split}")
        if not len(ys):
            continue
        prediction = np.broadcast_to(np.asarray(constant, np.float32), (len(ys), len(np.atleast_1d(constant))))
        values = [float(v) for v in evaluate_constant(ys, prediction)]
        out[f"{split}_loss"] = values[0]
        if len(values) > 1 and problem.metric:
            out[f"{split}_{problem.metric}"] = values[1]
    return out


def _relu_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if getattr(getattr(layer, "activation", None), "__name__", "") == "relu"]


def _relu_maxima(model, input_spec):
    """A concrete function ``x -> [per-unit max of each ReLU output]``, or None without ReLU layers.

    Each ReLU layer's activation is wrapped for the one trace that builds the
    function (so its outputs can be returned), then restored.
    """
    layers = _relu_layers(model)
    if not layers:
        return None
    captured = []
    originals = [layer.activation for layer in layers]

    def recording(activation):
        def relu(x):
            out = activation(x)
            captured.append(out)
            return out

        return relu

    @tf.function
    def maxima(x):
        captured.clear()
        model(x, training=False)
        return [tf.reduce_max(t, axis=list(range(len(t.shape) - 1))) for t in captured]

    try:
        for layer in layers:
            layer.activation = recording(layer.activation)
        return maxima.get_concrete_function(input_spec)
    finally:
        for layer, activation in zip(layers, originals):
            layer.activation = activation


def layer_name(variable):
    """``sequential/dense/kernel`` -> ``sequential/dense``."""
    path = getattr(variable, "path", None) or variable.name
    return path.rpartition("/")[0] or path


class Probe:
    """Gradient norm, update ratios and dead ReLU units of ``model`` on a fixed sample of training rows."""

    def __init__(self, model, loss, x, y, rows=2048):
        self.model = model
        self.x, self.y = tf.constant(x[:rows]), tf.constant(y[:rows])
        self.variables = list(model.trainable_variables)
        self.layers = sorted({layer_name(v) for v in self.variables})
        self._groups = [[i for i, v in enumerate(self.variables) if layer_name(v) == name] for name in self.layers]
        self._before = self._weights()
        spec = tf.TensorSpec([None, *self.x.shape[1:]], self.x.dtype)
        self._maxima = _relu_maxima(model, spec)

        @tf.function
        def grad_norm(x, y):
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=False))
            grads = [g for g in tape.gradient(value, self.variables) if g is not None]
            return tf.linalg.global_norm(grads)

        self._grad_norm = grad_norm

    def _weights(self):
        return [v.numpy().astype(np.float64) for v in self.variables]

    def measure(self):
        """``{"grad_norm", "update_ratio", "dead_units"}`` and ``{layer: ratio}`` since the last call."""
        now = self._weights()
        ratios = {}
        for name, group in zip(self.layers, self._groups):
            change = np.sqrt(sum(np.sum((now[i] - self._before[i]) ** 2) for i in group))
            size = np.sqrt(sum(np.sum(self._before[i] ** 2) for i in group))
            ratios[name] = float(change / size) if size > 0 else (0.0 if change == 0 else float("inf"))
        self._before = now
        values = {"grad_norm": float(self._grad_norm(self.x, self.y)),
                  "update_ratio": max(ratios.values()) if ratios else float("nan"),
                  "dead_units": float("nan")}
        if self._maxima is not None:
            maxima = [m.numpy() for m in self._maxima(self.x)]
            units = sum(m.size for m in maxima)
            values["dead_units"] = float(sum(int(np.sum(m <= 0)) for m in maxima) / units) if units else float("nan")
        return values, ratios
