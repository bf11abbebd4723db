"""Measurements taken while a run trains: naive baseline, gradient norm, update ratios, dead ReLU units.

:func:`train <optimlab.lab.training.runner.loop.train>`'s traced program calls
a :class:`Probe` at every evaluation; the values land in the run's history and record, and
:mod:`optimlab.lab.training.analysis.diagnostics` turns them into flags.

* :func:`naive_baseline`: the loss and metric of the best constant prediction
  (the training targets' mean for regression, the training class frequencies
  for classification: its accuracy is the majority class's share). A network
  that ends at this loss has learned nothing from its inputs.
* ``grad_norm``: the global L2 norm of the training-loss gradient on up to
  ``rows`` training rows (the first ones, the same at every evaluation),
  computed in inference mode.
* ``update_ratio``: per layer, ``||w_now - w_before|| / ||w_before||`` since the
  previous evaluation (the history keeps the largest over layers; 0 where a
  layer's weights were all zero).
* ``dead_units``: the share of ReLU units (Dense/Conv units or channels whose
  activation is ``relu``) that output 0 for every one of those rows.
"""

import contextlib
import math
import re

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


def layer_name(variable):
    """``sequential/dense/kernel`` -> ``sequential/dense``."""
    path = getattr(variable, "path", None) or variable.name
    return path.rpartition("/")[0] or path


def stable_layer_names(variables):
    """``{layer path: name}`` without Keras's process-wide counters (``sequential_3/dense_7`` -> ``sequential/dense``).

    Keras numbers layers by how many were built before in the process, so the
    raw paths of one model differ between processes; records must not. Layers
    whose names then coincide get ``#1``, ``#2``, ... in build order.
    """
    order = list(dict.fromkeys(layer_name(v) for v in variables))
    base = {p: re.sub(r"_\d+(?=/|$)", "", p) for p in order}
    names = {}
    for p in order:
        same = [q for q in order if base[q] == base[p]]
        names[p] = base[p] if len(same) == 1 else f"{base[p]}#{same.index(p) + 1}"
    return names


class Probe:
    """Gradient norm, update ratios and dead ReLU units of ``model``, as TensorFlow ops for a traced program.

    ``measure(before)`` runs inside the training program at every evaluation;
    ``before`` is the list of trainable weights at the previous evaluation
    (:meth:`snapshot`). Dead units need the ReLU outputs: while the program is
    traced inside :meth:`recording`, each ReLU layer's activation also hands
    its output to the probe; the layers are restored afterwards.
    """

    COLUMNS = ("grad_norm", "update_ratio", "dead_units")

    def __init__(self, model, loss, x, y, rows=2048):
        self.model, self.loss = model, loss
        self.x, self.y = tf.constant(x[:rows]), tf.constant(y[:rows])
        self.variables = list(model.trainable_variables)
        self.layers = sorted({layer_name(v) for v in self.variables})
        self._groups = [[i for i, v in enumerate(self.variables) if layer_name(v) == name] for name in self.layers]
        self._relus = _relu_layers(model)
        self._captured = []

    @contextlib.contextmanager
    def recording(self):
        """Within: every ReLU layer's output is also kept by the probe (used while tracing)."""
        originals = [layer.activation for layer in self._relus]

        def recording(activation):
            def relu(x):
                out = activation(x)
                self._captured.append(out)
                return out

            return relu

        try:
            for layer in self._relus:
                layer.activation = recording(layer.activation)
            yield self
        finally:
            for layer, activation in zip(self._relus, originals):
                layer.activation = activation

    def snapshot(self):
        return [tf.identity(v) for v in self.variables]

    def measure(self, before):
        """``[grad_norm, largest update ratio, dead share]`` and the per-layer update ratios (tensors)."""
        with tf.GradientTape() as tape:
            self._captured.clear()
            value = self.loss(self.y, self.model(self.x, training=False))
        outputs = list(self._captured)
        grads = [g for g in tape.gradient(value, self.variables) if g is not None]
        norm = tf.linalg.global_norm(grads) if grads else tf.constant(math.nan)
        ratios = []
        for group in self._groups:
            change = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(self.variables[i] - before[i])) for i in group]))
            size = tf.sqrt(tf.add_n([tf.reduce_sum(tf.square(before[i])) for i in group]))
            ratios.append(tf.math.divide_no_nan(change, size))
        ratios = tf.stack(ratios) if ratios else tf.zeros([0])
        if outputs:
            maxima = [tf.reduce_max(t, axis=list(range(len(t.shape) - 1))) for t in outputs]
            dead = tf.add_n([tf.reduce_sum(tf.cast(m <= 0, tf.float32)) for m in maxima])
            dead = dead / float(sum(int(m.shape[-1]) for m in maxima))
        else:
            dead = tf.constant(math.nan)
        largest = tf.reduce_max(ratios) if self.layers else tf.constant(math.nan)
        return tf.stack([norm, largest, dead]), ratios
