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

from optimlab.lab.training.problems import models


@dataclasses.dataclass
class Result:
    """One run: its history, ``ok``/``diverged``, last values and time to target."""

    history: pd.DataFrame
    status: str
    final: dict
    time_to_target: dict


def loss_fn(kind):
    """Mean-squared error or sparse softmax crossentropy from logits, averaged over rows."""
    if kind == "mse":
        return lambda y, out: tf.reduce_mean(tf.square(y - out))
    return lambda y, out: tf.reduce_mean(
        tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int32), logits=out))


def metric_fn(kind):
    """Mean absolute error, or the fraction of rows whose largest logit is the label."""
    if kind == "mae":
        return lambda y, out: tf.reduce_mean(tf.abs(y - out))
    return lambda y, out: tf.reduce_mean(tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32), tf.cast(y, tf.int32)), tf.float32))


def _train_step(model, optimizer, loss, x, y):
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    grads = tape.gradient(value, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return value


def _full_batch_runner(model, optimizer, loss, x, y):
    """``run(k)``: k full-batch steps; returns each epoch's loss (before its update)."""

    @tf.function
    def run(k):
        losses = tf.TensorArray(tf.float32, size=k)
        for epoch in tf.range(k):
            losses = losses.write(epoch, _train_step(model, optimizer, loss, x, y))
        return losses.stack()

    return run, run.get_concrete_function(tf.TensorSpec([], tf.int32))


def _minibatch_runner(model, optimizer, loss, x, y):
    """``run(orders)``: epochs of minibatch steps, ``orders[e, s]`` the rows of step s."""

    @tf.function
    def run(orders):
        losses = tf.TensorArray(tf.float32, size=tf.shape(orders)[0])
        for epoch in tf.range(tf.shape(orders)[0]):
            total = tf.constant(0.0)
            for step in tf.range(tf.shape(orders)[1]):
                rows = orders[epoch, step]
                total += _train_step(model, optimizer, loss, tf.gather(x, rows), tf.gather(y, rows))
            losses = losses.write(epoch, total / tf.cast(tf.shape(orders)[1], tf.float32))
        return losses.stack()

    return run, run.get_concrete_function(tf.TensorSpec([None, None, None], tf.int32))


def epoch_orders(rng, n, batch_size, epochs):
    """Seed 002's Dataset order: a new permutation per epoch, ``n // batch_size`` full batches."""
    steps = n // batch_size
    return np.stack([rng.permutation(n)[: steps * batch_size].reshape(steps, batch_size) for _ in range(epochs)])


def _evaluator(model, loss, metric):
    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        out = model(x, training=False)
        return loss(y, out), metric(y, out)

    return evaluate


def _first_reached(history, target):
    """Epoch and seconds of the first row whose validation (else training) loss <= target."""
    column = "valid_loss" if history["valid_loss"].notna().any() else "train_loss"
    hit = history[history[column] <= target]
    if target is None or hit.empty:
        return {"target": target, "epoch": None, "seconds": None}
    row = hit.iloc[0]
    return {"target": target, "epoch": int(row["epoch"]), "seconds": float(row["wall_time"])}


def train(problem, data, optimizer, seed, epochs=None, batch_size="problem", eval_every=None, target=None,
          on_epoch=None):
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

    ``wall_time`` counts training seconds only (tracing and evaluation excluded).

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

    model = models.build(problem, data.x_train.shape[1], seed)
    optimizer.build(model.trainable_variables)
    loss, metric = loss_fn(problem.loss), metric_fn(problem.metric)
    full_batch = batch_size is None
    runner = _full_batch_runner if full_batch else _minibatch_runner
    run, _ = runner(model, optimizer, loss, x_train, y_train)
    evaluate = _evaluator(model, loss, metric)
    rng = np.random.default_rng(int(seed))

    def row(epoch, train_loss, seconds):
        values = {"epoch": epoch, "train_loss": train_loss}
        for split, x, y in (("valid", data.x_valid, data.y_valid), ("test", data.x_test, data.y_test)):
            if len(x):
                split_loss, split_metric = (float(v) for v in evaluate(x, y))
            else:
                split_loss = split_metric = math.nan
            values[f"{split}_loss"], values[f"{split}_{problem.metric}"] = split_loss, split_metric
        values["wall_time"] = seconds
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
            status, done = "diverged", done + int(bad[0]) + 1
            rows.append(row(done, float(losses[bad[0]]), seconds))
            break
        done += k
        rows.append(row(done, float(losses.mean()), seconds))
        if not all(math.isfinite(rows[-1][c]) for c in watched):
            status = "diverged"
        if on_epoch is not None:
            on_epoch(done)
    history = pd.DataFrame(rows)
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != "epoch"}
    final["epochs_run"] = int(history["epoch"].iloc[-1])
    return Result(history, status, final, _first_reached(history, target))


def fit(problem, data, optimizer, seed, epochs=None, batch_size="problem"):
    """The same training through ``keras.Model.fit``; returns a history DataFrame.

    Keras shuffles with its own generator (seeded by ``seed``), so the data
    order differs from :func:`train`'s.
    """
    epochs = problem.epochs if epochs is None else int(epochs)
    batch_size = problem.batch_size if batch_size == "problem" else batch_size
    model = models.build(problem, data.x_train.shape[1], seed)
    loss, metric = loss_fn(problem.loss), metric_fn(problem.metric)
    model.compile(optimizer=optimizer, loss=loss)
    evaluate = _evaluator(model, loss, metric)
    rows = []

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = {"epoch": epoch + 1, "train_loss": float(logs["loss"])}
            for split, x, y in (("valid", data.x_valid, data.y_valid), ("test", data.x_test, data.y_test)):
                split_loss, split_metric = (float(v) for v in evaluate(x, y)) if len(x) else (math.nan, math.nan)
                values[f"{split}_loss"], values[f"{split}_{problem.metric}"] = split_loss, split_metric
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
