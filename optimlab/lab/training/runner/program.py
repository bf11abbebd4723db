"""The training lab's compiled program: a whole run in one ``tf.function`` call.

A :class:`Program` trains chunks of epochs and evaluates after each, all in
one call, and stops after a chunk whose loss (or watched evaluation) is not
finite. One step is :func:`_train_step` (loss, gradient, ``optimizer.apply``);
minibatches follow the Boston housing chapter's ``Dataset`` (see
:func:`optimlab.lab.training.runner.loop.epoch_orders`). The losses and
metrics of a problem are :func:`loss_fn` and :func:`metric_fn`.

Programs are kept and reused through :mod:`optimlab.lab.programs` (see
:func:`optimlab.lab.training.runner.loop.program_for`).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from optimlab.lab import programs
from optimlab.lab.training.problems import models
from optimlab.lab.training.runner import probes


def loss_fn(problem, training=False):
    """The problem's loss ``loss(y, out)`` averaged over rows (``problem`` may also be a loss name).

    ``mse``; ``crossentropy``: sparse softmax crossentropy from logits, with the
    problem's label smoothing when ``training``; ``mean_output``: the mean of
    the model's output (models that compute their own per-row loss); or the
    problem's own function.
    """
    kind = getattr(problem, "loss", problem)
    smoothing = getattr(problem, "label_smoothing", 0.0) if training else 0.0
    if callable(kind):
        return lambda y, out: tf.reduce_mean(kind(y, out))
    if kind == "mse":
        return lambda y, out: tf.reduce_mean(tf.square(y - out))
    if kind == "mean_output":
        return lambda y, out: tf.reduce_mean(out)
    if smoothing:
        def smoothed(y, out):
            labels = tf.one_hot(tf.cast(y, tf.int32), tf.shape(out)[-1])
            return tf.reduce_mean(keras.losses.categorical_crossentropy(labels, out, from_logits=True,
                                                                        label_smoothing=smoothing))
        return smoothed
    return lambda y, out: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=out))


def metric_fn(kind):
    """Mean absolute error, the fraction of rows whose largest logit is the label, or ``kind(y, out)`` averaged."""
    if callable(kind):
        return lambda y, out: tf.reduce_mean(tf.cast(kind(y, out), tf.float32))
    if kind == "mae":
        return lambda y, out: tf.reduce_mean(tf.abs(y - out))
    return lambda y, out: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32))


def _mixup_weight(optimizer, alpha, seed):
    """lambda ~ Beta(alpha, alpha) from the seed and the step number (paired across optimizers)."""
    step = tf.cast(tf.convert_to_tensor(optimizer.iterations), tf.int64)
    draws = tf.random.stateless_gamma([2], tf.stack([tf.cast(seed, tf.int64), step]),
                                      alpha=tf.constant(alpha, tf.float32))
    return draws[0] / (draws[0] + draws[1])


@tf.autograph.experimental.do_not_convert  # optimizers and models trace as plain graph code (much faster)
def _train_step(model, optimizer, loss, x, y, mixup=0.0, seed=0):
    """One step; with ``mixup`` the batch is mixed with its reverse (the batch's rows are already shuffled)."""
    with tf.GradientTape() as tape:
        if mixup:
            lam = _mixup_weight(optimizer, mixup, seed)
            out = model(lam * x + (1 - lam) * tf.reverse(x, [0]), training=True)
            value = lam * loss(y, out) + (1 - lam) * loss(tf.reverse(y, [0]), out)
        else:
            value = loss(y, model(x, training=True))
        total = value + tf.add_n(model.losses) if model.losses else value
    grads = tape.gradient(total, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return value


class Program:
    """One traced training program, reused by every run of the same configuration.

    Runs that differ only in seed, learning rate or another hyperparameter
    held in a variable reuse it: :meth:`reset` copies a freshly built model's
    weights and a freshly built optimizer's variables (slots, ``iterations``,
    hyperparameters) into the traced ones, so a reused program computes exactly
    what a new one would. :attr:`function` is called as
    ``function(sizes, orders, seed)``: the epochs of each chunk, the minibatch
    rows of each epoch and step (empty for full batch), the seed (mixup).
    """

    def __init__(self, problem, data, optimizer, full_batch, initial_weights, diagnostics=True):
        self.problem, self.data, self.full_batch, self.diagnostics = problem, data, full_batch, diagnostics
        self.model = models.build(problem, data.x_train.shape[1:], 0)  # weights replaced below
        self.model.set_weights(initial_weights)
        self.optimizer = optimizer
        optimizer.build(self.model.trainable_variables)
        self.structure = programs.optimizer_structure(optimizer)
        self.probe = probes.Probe(self.model, loss_fn(problem), data.x_train, data.y_train) if diagnostics else None
        self.stop = tf.Variable(False, trainable=False)  # set from outside to end a running call early (Ctrl-C)
        self.on_chunk = None  # on_chunk(epochs done, evaluation row) -> True ends the run after this chunk (a pruner)
        self.asking = tf.Variable(False, trainable=False)  # whether on_chunk is set: Python is called only then
        self.baseline = None  # [naive baseline], computed by the first run
        self.loss, self.metrics = loss_fn(problem), [metric_fn(m) for m in problem.metrics]
        self.train_loss = loss_fn(problem, training=True)
        self.x, self.y = tf.constant(data.x_train), tf.constant(data.y_train)
        self.splits = [(tf.constant(data.x_valid), tf.constant(data.y_valid)) if len(data.x_valid) else None,
                       (tf.constant(data.x_test), tf.constant(data.y_test)) if len(data.x_test) else None]
        self.width = 1 + len(self.metrics)  # per split: loss, metrics
        self.function = self._trace()

    def reset(self, initial_weights, optimizer):
        """Put the fresh state of a new run in place: the seed's weights, ``optimizer``'s variables."""
        self.model.set_weights(initial_weights)
        programs.load_fresh_state(self.optimizer, optimizer, self.model.trainable_variables)

    # ------------------------------------------------------------ the traced program, piece by piece
    def _trace(self):
        program = tf.function(self._program, autograph=False)  # explicit loops: no AutoGraph rewriting (seconds)
        specs = (tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None, None], tf.int32),
                 tf.TensorSpec([], tf.int64))
        if self.probe is None:
            program.get_concrete_function(*specs)
        else:
            with self.probe.recording():  # ReLU outputs reach the probe in the traced program
                program.get_concrete_function(*specs)
        return program

    def _program(self, sizes, orders, seed):
        """The run: start values, then chunks of epochs each followed by an evaluation, until done or not finite."""
        start_loss = self.loss(self.y, self.model(self.x, training=False))
        start = self._evaluate()
        before = self.probe.snapshot() if self.probe else []
        start_diag, _ = self._measure(before)
        watched = tf.math.is_finite(start) & tf.constant(([True] + [False] * (self.width - 1)) * 2)
        chunks = tf.shape(sizes)[0]
        n_layers = len(self.probe.layers) if self.probe else 0
        arrays = (tf.TensorArray(tf.float32, size=tf.reduce_sum(sizes)),  # epoch losses
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[2 * self.width]),  # evaluations
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[3 if self.probe else 0]),  # diagnostics
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[n_layers]),  # per-layer ratios
                  tf.TensorArray(tf.float64, size=chunks, element_shape=[]))  # training seconds

        def body(chunk, done, going, before, arrays):
            return self._chunk(sizes, orders, seed, watched, chunk, done, going, before, arrays)

        def more(chunk, done, going, before, arrays):
            return going & (chunk < chunks) & ~self.stop.read_value()

        chunk, _, _, _, arrays = tf.while_loop(more, body, (tf.constant(0), tf.constant(0), tf.constant(True),
                                                            before, arrays))
        losses, evals, diags, layer_ratios, seconds = arrays
        return (start_loss, start, losses.stack(), evals.stack(), seconds.stack(), chunk, start_diag,
                diags.stack(), layer_ratios.stack())

    def _chunk(self, sizes, orders, seed, watched, chunk, done, going, before, arrays):
        """One chunk: its epochs (timed), then an evaluation and the probe's measurements, written to ``arrays``."""
        losses, evals, diags, layer_ratios, seconds = arrays
        began = tf.timestamp()
        with tf.control_dependencies([began]):
            done, going, losses = self._epochs(orders, seed, sizes[chunk], done, going, losses)
        with tf.control_dependencies([losses.flow]):
            ended = tf.timestamp()
            row = self._evaluate()
            diag, ratios = self._measure(before)
            after = self.probe.snapshot() if self.probe else []
        going = going & ~tf.reduce_any(watched & ~tf.math.is_finite(row))
        asked = tf.cond(self.asking.read_value(),  # a call into Python costs ~0.1 ms: made for a pruner only
                        lambda: tf.reshape(tf.numpy_function(self._stop_here, [done, row], tf.bool, stateful=True), []),
                        lambda: tf.constant(False))
        going = going & ~asked
        arrays = (losses, evals.write(chunk, row), diags.write(chunk, diag),
                  layer_ratios.write(chunk, ratios), seconds.write(chunk, ended - began))
        return chunk + 1, done, going, after, arrays

    def _stop_here(self, done, row):
        """Python, at each chunk boundary: whether :attr:`on_chunk` (if any) ends the run here."""
        return np.bool_(self.on_chunk is not None and bool(self.on_chunk(int(done), row)))

    def _epochs(self, orders, seed, size, done, going, losses):
        """``size`` epochs from epoch ``done``: each epoch's loss written, ``going`` false after a non-finite one."""
        def body(i, done, going, losses):
            value = self._epoch(orders, done, seed)
            return i + 1, done + 1, going & tf.math.is_finite(value), losses.write(done, value)

        return tf.while_loop(lambda i, *_: (i < size) & ~self.stop.read_value(), body,
                             (tf.constant(0), done, going, losses))[1:]

    def _epoch(self, orders, e, seed):
        """Train epoch ``e``; its mean loss. A minibatch epoch stops early once a stop is requested."""
        model, optimizer, loss, mixup = self.model, self.optimizer, self.train_loss, self.problem.mixup
        if self.full_batch:
            return _train_step(model, optimizer, loss, self.x, self.y, mixup, seed)
        steps = tf.shape(orders)[1]

        def step(i, total):
            rows = orders[e, i]
            return i + 1, total + _train_step(model, optimizer, loss, tf.gather(self.x, rows),
                                              tf.gather(self.y, rows), mixup, seed)

        _, total = tf.while_loop(lambda i, _: (i < steps) & ~self.stop.read_value(), step,
                                 (tf.constant(0), tf.constant(0.0)))
        return total / tf.cast(steps, tf.float32)

    def _evaluate(self):
        """valid loss, valid metrics, test loss, test metrics (NaN for an empty split)."""
        values = []
        for split in self.splits:
            if split is None:
                values += [tf.constant(math.nan)] * self.width
            else:
                out = self.model(split[0], training=False)
                values += [self.loss(split[1], out)] + [m(split[1], out) for m in self.metrics]
        return tf.stack(values)

    def _measure(self, before):
        if self.probe is None:
            return tf.zeros([0]), tf.zeros([0])
        return self.probe.measure(before)
