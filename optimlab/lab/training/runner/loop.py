"""Training loops: full-batch gradient descent and minibatch SGD, compiled, with a history.

:func:`train` runs chunks of epochs inside one ``tf.function`` (traced once,
before the clock starts), evaluates between chunks and returns a
:class:`Result` whose ``history`` is a pandas DataFrame with columns ``epoch,
train_loss, valid_loss, test_loss, valid_<metric>, test_<metric>, wall_time``.
Minibatches follow seed 002's ``Dataset``: a fresh shuffle every epoch and
``n // batch_size`` steps (the remainder is dropped). The shuffles come from
``seed`` alone, so every optimizer sees the same data order.

A run whose loss becomes non-finite stops and gets ``status="diverged"``.
:func:`fit` trains the same model through ``keras.Model.fit`` for comparison.
"""

import dataclasses
import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from optimlab.lab.training.problems import custom, models
from optimlab.lab.training.runner import probes


@dataclasses.dataclass
class Result:
    """One run: its history, ``ok``/``diverged``, last values and time to target."""

    history: pd.DataFrame
    status: str
    final: dict
    time_to_target: dict
    diagnostics: dict = dataclasses.field(default_factory=dict)


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


def _full_batch_runner(model, optimizer, loss, x, y, mixup=0.0, seed=0):
    """``run(k)``: k full-batch steps; returns each epoch's loss (before its update)."""

    @tf.function
    def run(k):
        losses = tf.TensorArray(tf.float32, size=k)
        for epoch in tf.range(k):
            losses = losses.write(epoch, _train_step(model, optimizer, loss, x, y, mixup, seed))
        return losses.stack()

    return run, run.get_concrete_function(tf.TensorSpec([], tf.int32))


def _minibatch_runner(model, optimizer, loss, x, y, mixup=0.0, seed=0):
    """``run(orders)``: epochs of minibatch steps, ``orders[e, s]`` the rows of step s."""

    @tf.function
    def run(orders):
        losses = tf.TensorArray(tf.float32, size=tf.shape(orders)[0])
        for epoch in tf.range(tf.shape(orders)[0]):
            total = tf.constant(0.0)
            for step in tf.range(tf.shape(orders)[1]):
                rows = orders[epoch, step]
                total += _train_step(model, optimizer, loss, tf.gather(x, rows), tf.gather(y, rows), mixup, seed)
            losses = losses.write(epoch, total / tf.cast(tf.shape(orders)[1], tf.float32))
        return losses.stack()

    return run, run.get_concrete_function(tf.TensorSpec([None, None, None], tf.int32))


def epoch_orders(rng, n, batch_size, epochs):
    """Seed 002's Dataset order: a new permutation per epoch, ``n // batch_size`` full batches."""
    steps = n // batch_size
    return np.stack([rng.permutation(n)[: steps * batch_size].reshape(steps, batch_size) for _ in range(epochs)])


def _evaluator(model, loss, metrics):
    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        out = model(x, training=False)
        return (loss(y, out), *[m(y, out) for m in metrics])

    return evaluate


def _constant_evaluator(loss, metrics):
    """``(y, prediction)`` -> loss and metrics of a fixed prediction (the naive baseline)."""
    return lambda y, out: (loss(tf.constant(y), tf.constant(out)), *[m(tf.constant(y), tf.constant(out)) for m in metrics])


def _first_reached(history, target):
    """Epoch and seconds of the first row whose validation (else training) loss <= target."""
    column = "valid_loss" if history["valid_loss"].notna().any() else "train_loss"
    hit = history[history[column] <= target]
    if target is None or hit.empty:
        return {"target": target, "epoch": None, "seconds": None}
    row = hit.iloc[0]
    return {"target": target, "epoch": int(row["epoch"]), "seconds": float(row["wall_time"])}


def train(problem, data, optimizer, seed, epochs=None, batch_size="problem", eval_every=None, target=None,
          on_epoch=None, diagnostics=True):
    """Train ``problem``'s model on ``data`` with ``optimizer``; return a :class:`Result`.

    Args:
        problem: a :class:`optimlab.lab.training.problems.Problem`.
        data: its :class:`optimlab.lab.training.problems.Data`.
        optimizer: a fresh optimizer (``optimlab.get(name, learning_rate=..., clipnorm=...)``).
        seed: fixes the initial weights and the data order (paired across optimizers).
        epochs: passes over the training data (default: the problem's budget).
        batch_size: rows per step; None for full-batch gradient descent
            (default: the problem's choice).
        eval_every: epochs between evaluations (default: about 100 evaluations).
        target: validation loss that counts as reached (default: the problem's).
        on_epoch: called with the epoch number after each evaluation (progress bars).
        diagnostics: also record, per evaluation, the gradient norm, the largest
            per-layer update ratio and the share of dead ReLU units
            (:mod:`~optimlab.lab.training.runner.probes`), and the naive baseline.

    ``wall_time`` counts training seconds only (tracing and evaluation excluded).
    ``train_loss`` is the mean of the epochs' losses since the last evaluation,
    ``train_loss_max`` the largest of them and ``peak_epoch`` its epoch (so a
    one-epoch explosion shows).

    Example:
        >>> import optimlab
        >>> from optimlab.lab.training import problems
        >>> p = problems.get("iris")
        >>> r = train(p, problems.load(p), optimlab.get("adam", learning_rate=0.05), seed=0, epochs=20)
        >>> r.status, len(r.history)
        ('ok', 21)
    """
    epochs = problem.epochs if epochs is None else int(epochs)
    batch_size = problem.batch_size if batch_size == "problem" else batch_size
    eval_every = eval_every or max(1, epochs // 100)
    target = problem.target if target is None else target
    x_train, y_train = tf.constant(data.x_train), tf.constant(data.y_train)
    if batch_size is not None and not 1 <= batch_size <= len(data.x_train):
        raise ValueError(f"batch_size must be in [1, {len(data.x_train)}] or None; got {batch_size!r}")

    model = models.build(problem, data.x_train.shape[1:], seed)
    optimizer.build(model.trainable_variables)
    loss, metrics = loss_fn(problem), [metric_fn(m) for m in problem.metrics]
    names = [custom.metric_name(m) for m in problem.metrics]
    full_batch = batch_size is None
    runner = _full_batch_runner if full_batch else _minibatch_runner
    run, _ = runner(model, optimizer, loss_fn(problem, training=True), x_train, y_train, problem.mixup, int(seed))
    evaluate = _evaluator(model, loss, metrics)
    probe = probes.Probe(model, loss, data.x_train, data.y_train) if diagnostics else None
    layer_ratios = {name: [] for name in (probe.layers if probe else [])}
    rng = np.random.default_rng(int(seed))

    def row(epoch, train_loss, seconds, peak=None):
        values = {"epoch": epoch, "train_loss": train_loss}
        for split, x, y in (("valid", data.x_valid, data.y_valid), ("test", data.x_test, data.y_test)):
            scores = [float(v) for v in evaluate(x, y)] if len(x) else [math.nan] * (1 + len(names))
            values[f"{split}_loss"] = scores[0]
            values.update({f"{split}_{name}": score for name, score in zip(names, scores[1:])})
        values["wall_time"] = seconds
        if probe is not None:
            peak_loss, peak_epoch = peak if peak is not None else (train_loss, epoch)
            measured, ratios = probe.measure()
            values.update(train_loss_max=peak_loss, peak_epoch=peak_epoch, **measured)
            for name in layer_ratios:
                layer_ratios[name].append(ratios[name] if epoch else 0.0)
        return values

    rows = [row(0, float(evaluate(x_train, y_train)[0]), 0.0)]
    watched = [c for c in ("valid_loss", "test_loss") if math.isfinite(rows[0][c])]
    status, seconds, done = "ok", 0.0, 0
    while done < epochs and status == "ok":
        k = min(eval_every, epochs - done)
        start = time.perf_counter()
        if full_batch:
            losses = run(tf.constant(k, tf.int32)).numpy()
        else:
            losses = run(tf.constant(epoch_orders(rng, len(data.x_train), batch_size, k), tf.int32)).numpy()
        seconds += time.perf_counter() - start
        bad = np.flatnonzero(~np.isfinite(losses))
        if bad.size:
            status, first = "diverged", int(bad[0])
            rows.append(row(done + first + 1, float(losses[first]), seconds, (float(losses[first]), done + first + 1)))
            done += first + 1
            break
        peak = (float(losses.max()), done + int(losses.argmax()) + 1)
        done += k
        rows.append(row(done, float(losses.mean()), seconds, peak))
        if not all(math.isfinite(rows[-1][c]) for c in watched):
            status = "diverged"
        if on_epoch is not None:
            on_epoch(done)
    history = pd.DataFrame(rows)
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != "epoch"}
    final["epochs_run"] = int(history["epoch"].iloc[-1])
    extra = {}
    if diagnostics:
        num_outputs = int(model(data.x_train[:1], training=False).shape[-1])
        extra = {"baseline": probes.naive_baseline(problem, data, _constant_evaluator(loss, metrics), num_outputs),
                 "layers": layer_ratios}
    return Result(history, status, final, _first_reached(history, target), extra)


def fit(problem, data, optimizer, seed, epochs=None, batch_size="problem"):
    """The same training through ``keras.Model.fit``; returns a history DataFrame.

    Keras shuffles with its own generator (seeded by ``seed``), so the data
    order differs from :func:`train`'s.
    """
    epochs = problem.epochs if epochs is None else int(epochs)
    batch_size = problem.batch_size if batch_size == "problem" else batch_size
    model = models.build(problem, data.x_train.shape[1:], seed)
    loss, metrics = loss_fn(problem), [metric_fn(m) for m in problem.metrics]
    names = [custom.metric_name(m) for m in problem.metrics]
    model.compile(optimizer=optimizer, loss=loss)
    evaluate = _evaluator(model, loss, metrics)
    rows = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = {"epoch": epoch + 1, "train_loss": float(logs["loss"])}
            for split, x, y in (("valid", data.x_valid, data.y_valid), ("test", data.x_test, data.y_test)):
                scores = [float(v) for v in evaluate(x, y)] if len(x) else [math.nan] * (1 + len(names))
                values[f"{split}_loss"] = scores[0]
                values.update({f"{split}_{name}": score for name, score in zip(names, scores[1:])})
            values["wall_time"] = time.perf_counter() - start
            rows.append(values)

    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, batch_size=batch_size or len(data.x_train),
              shuffle=batch_size is not None, verbose=0, callbacks=[Record(), keras.callbacks.TerminateOnNaN()])
    return pd.DataFrame(rows)


def write_tensorboard(history, logdir):
    """Write a history's columns as TensorBoard scalars under ``logdir``."""
    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for _, values in history.iterrows():
            for column, value in values.items():
                if column != "epoch" and math.isfinite(value):
                    tf.summary.scalar(column, value, step=int(values["epoch"]))
    writer.flush()
