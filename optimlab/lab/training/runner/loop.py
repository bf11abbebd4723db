"""Training loops: full-batch gradient descent and minibatch SGD, compiled, with a history.

:func:`train` runs a whole run in one call of a ``tf.function`` (chunks of
epochs, an evaluation after each) and returns a
:class:`Result` whose ``history`` is a pandas DataFrame with columns ``epoch,
train_loss, valid_loss, test_loss, valid_<metric>, test_<metric>, wall_time``.
Minibatches follow seed 002's ``Dataset``: a fresh shuffle every epoch and
``n // batch_size`` steps (the remainder is dropped). The shuffles come from
``seed`` alone, so every optimizer sees the same data order.

The traced :class:`Program` is kept and reused by later runs of the same
configuration (problem, data, batch mode, optimizer class and the settings not
held in variables): only weights, slots, ``iterations`` and hyperparameters are
reset, so a table of seeds x learning rates traces once per optimizer.
``TRACES`` counts the programs traced in this process.

A run whose loss becomes non-finite stops and gets ``status="diverged"``.
:func:`fit` trains the same model through ``keras.Model.fit`` for comparison.
"""

import contextlib
import dataclasses
import json
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


@tf.autograph.experimental.do_not_convert  # optimizers and models trace as plain graph code (much faster)
def _train_step(model, optimizer, loss, x, y):
    with tf.GradientTape() as tape:
        value = loss(y, model(x, training=True))
    grads = tape.gradient(value, model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return value


def epoch_orders(rng, n, batch_size, epochs):
    """Seed 002's Dataset order: a new permutation per epoch, ``n // batch_size`` full batches."""
    steps = n // batch_size
    return np.stack([rng.permutation(n)[: steps * batch_size].reshape(steps, batch_size) for _ in range(epochs)])


def _first_reached(history, target):
    """Epoch and seconds of the first row whose validation (else training) loss <= target."""
    column = "valid_loss" if history["valid_loss"].notna().any() else "train_loss"
    hit = history[history[column] <= target]
    if target is None or hit.empty:
        return {"target": target, "epoch": None, "seconds": None}
    row = hit.iloc[0]
    return {"target": target, "epoch": int(row["epoch"]), "seconds": float(row["wall_time"])}


class Program:
    """One traced training program, reused by every run of the same configuration.

    The program trains chunks of epochs and evaluates after each, all in one
    ``tf.function`` call per run, and stops after a chunk whose loss (or
    watched evaluation) is not finite. Runs that differ only in seed, learning
    rate or another hyperparameter held in a variable reuse it: :meth:`reset`
    copies a freshly built model's weights and a freshly built optimizer's
    variables (slots, ``iterations``, hyperparameters) into the traced ones, so
    a reused program computes exactly what a new one would.
    """

    def __init__(self, problem, data, optimizer, full_batch, initial_weights):
        self.problem, self.data, self.full_batch = problem, data, full_batch
        self.model = models.build(problem, data.x_train.shape[1], 0)  # weights replaced below
        self.model.set_weights(initial_weights)
        self.optimizer = optimizer
        optimizer.build(self.model.trainable_variables)
        self.structure = optimizer_structure(optimizer)
        self.function = self._trace()
        global TRACES
        TRACES += 1

    def _trace(self):
        model, optimizer, full_batch = self.model, self.optimizer, self.full_batch
        loss, metric = loss_fn(self.problem.loss), metric_fn(self.problem.metric)
        data = self.data
        x, y = tf.constant(data.x_train), tf.constant(data.y_train)
        splits = [(tf.constant(data.x_valid), tf.constant(data.y_valid)) if len(data.x_valid) else None,
                  (tf.constant(data.x_test), tf.constant(data.y_test)) if len(data.x_test) else None]

        @tf.autograph.experimental.do_not_convert
        def evaluate():
            """valid loss, valid metric, test loss, test metric (NaN for an empty split)."""
            values = []
            for split in splits:
                if split is None:
                    values += [tf.constant(math.nan), tf.constant(math.nan)]
                else:
                    out = model(split[0], training=False)
                    values += [loss(split[1], out), metric(split[1], out)]
            return tf.stack(values)

        def epoch(orders, e):
            if full_batch:
                return _train_step(model, optimizer, loss, x, y)
            total = tf.constant(0.0)
            for step in tf.range(tf.shape(orders)[1]):
                rows = orders[e, step]
                total += _train_step(model, optimizer, loss, tf.gather(x, rows), tf.gather(y, rows))
            return total / tf.cast(tf.shape(orders)[1], tf.float32)

        @tf.function
        def program(sizes, orders):
            start_loss = loss(y, model(x, training=False))
            start = evaluate()
            watched = tf.math.is_finite(start) & tf.constant([True, False, True, False])
            chunks = tf.shape(sizes)[0]
            losses = tf.TensorArray(tf.float32, size=tf.reduce_sum(sizes))
            evals = tf.TensorArray(tf.float32, size=chunks, element_shape=[4])
            seconds = tf.TensorArray(tf.float64, size=chunks, element_shape=[])
            done, chunk, going = 0, 0, True
            while going and chunk < chunks:
                began = tf.timestamp()
                with tf.control_dependencies([began]):
                    for _ in tf.range(sizes[chunk]):
                        value = epoch(orders, done)
                        losses = losses.write(done, value)
                        going = going and tf.math.is_finite(value)
                        done += 1
                with tf.control_dependencies([losses.flow]):
                    ended = tf.timestamp()
                    row = evaluate()
                seconds = seconds.write(chunk, ended - began)
                evals = evals.write(chunk, row)
                going = going and not tf.reduce_any(watched & ~tf.math.is_finite(row))
                chunk += 1
            return start_loss, start, losses.stack(), evals.stack(), seconds.stack(), chunk

        program.get_concrete_function(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None, None], tf.int32))
        return program

    def reset(self, initial_weights, optimizer):
        """Put the fresh state of a new run in place: the seed's weights, ``optimizer``'s variables."""
        self.model.set_weights(initial_weights)
        optimizer.build(self.model.trainable_variables)
        for mine, fresh in zip(self.optimizer.variables, optimizer.variables, strict=True):
            mine.assign(fresh)


@contextlib.contextmanager
def _fast_instantiation():
    """Skip Grappler's graph rewrites while a program is instantiated (its first call).

    They take about a second per program and gain nothing measurable on these
    small loops; every run of a program uses the same instantiation, so results
    do not depend on the order of runs. The process-wide option is restored after.
    """
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {"disable_meta_optimizer": before.get("disable_meta_optimizer", False)})


def _variable_backed(optimizer):
    """Names of the hyperparameters that live in variables (changing them needs no new trace)."""
    names = set(getattr(optimizer, "_hypers", {}))
    names.add("learning_rate")
    sources = dict(getattr(optimizer, "_hypers", {}), learning_rate=getattr(optimizer, "_learning_rate", None))
    stores = dict(getattr(optimizer, "_hyper_stores", {}), learning_rate=getattr(optimizer, "_learning_rate_store", 0))
    return {n for n in names if sources.get(n) is not None and sources.get(n) is stores.get(n)}


def optimizer_structure(optimizer):
    """What must match for two optimizers to share a traced program: class, non-variable config, variables."""
    config = {k: v for k, v in optimizer.get_config().items() if k not in _variable_backed(optimizer) | {"name"}}
    shapes = [(tuple(v.shape), str(v.dtype)) for v in optimizer.variables] if optimizer.built else None
    return type(optimizer), json.dumps(config, sort_keys=True, default=repr), repr(shapes)


TRACES = 0
_PROGRAMS = []  # most recently used last
_KEEP_PROGRAMS = 8
_WEIGHTS = {}
_KEEP_WEIGHTS = 64


def initial_weights(problem, num_features, seed):
    """The weights ``models.build`` gives for ``seed`` (cached: paired runs share them)."""
    key = (problem.name, problem.model, tuple(problem.hidden), problem.outputs, int(num_features), int(seed))
    if key not in _WEIGHTS:
        if len(_WEIGHTS) >= _KEEP_WEIGHTS:
            _WEIGHTS.pop(next(iter(_WEIGHTS)))
        _WEIGHTS[key] = models.build(problem, num_features, seed).get_weights()
    return _WEIGHTS[key]


def _find(problem, data, full_batch, structure):
    for i, program in enumerate(_PROGRAMS):
        if program.data is data and program.problem == problem and program.full_batch == full_batch \
                and program.structure[:2] == structure[:2]:
            _PROGRAMS.append(_PROGRAMS.pop(i))
            return program
    return None


def program_for(problem, data, optimizer, full_batch, weights):
    """A program for this configuration, reset for a new run: reused when one exists, else traced."""
    program = _find(problem, data, full_batch, optimizer_structure(optimizer))
    if program is not None:
        program.reset(weights, optimizer)
        return program, False
    program = Program(problem, data, optimizer, full_batch, weights)
    _PROGRAMS.append(program)
    if len(_PROGRAMS) > _KEEP_PROGRAMS:
        _PROGRAMS.pop(0)
    return program, True


_FRESH = {}  # (optimizer name, hyperparameters) -> (structure, values of its variables when freshly built)


def _budget(problem, data, epochs, batch_size, eval_every, target):
    epochs = problem.epochs if epochs is None else int(epochs)
    batch_size = problem.batch_size if batch_size == "problem" else batch_size
    eval_every = eval_every or max(1, epochs // 100)
    target = problem.target if target is None else target
    n = len(data.x_train)
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None; got {batch_size!r}")
    return epochs, batch_size, eval_every, target


def train(problem, data, optimizer, seed, epochs=None, batch_size="problem", eval_every=None, target=None):
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

    The run reuses the traced program of an earlier run with the same
    problem, data and optimizer structure (see :class:`Program`); ``wall_time``
    counts training seconds only (tracing and evaluation excluded).

    Example:
        >>> import optimlab
        >>> from optimlab.lab.training import problems
        >>> p = problems.get("iris")
        >>> r = train(p, problems.load(p), optimlab.get("adam", learning_rate=0.05), seed=0, epochs=20)
        >>> r.status, len(r.history)
        ('ok', 21)
    """
    budget = _budget(problem, data, epochs, batch_size, eval_every, target)
    weights = initial_weights(problem, data.x_train.shape[1], seed)
    program, _ = program_for(problem, data, optimizer, budget[1] is None, weights)
    return _run(program, problem, data, seed, *budget)


def train_named(problem, data, name, hyperparameters, seed, epochs=None, batch_size="problem", eval_every=None,
                target=None):
    """:func:`train` with ``optimlab.get(name, **hyperparameters)``, the lab's runs.

    The fresh state of each optimizer configuration is kept, so further seeds
    of a configuration neither construct nor build an optimizer: they copy
    that state into the traced program's variables. The result is the same.
    """
    budget = _budget(problem, data, epochs, batch_size, eval_every, target)
    weights = initial_weights(problem, data.x_train.shape[1], seed)
    key = (name, json.dumps(hyperparameters, sort_keys=True))
    program = None
    if key in _FRESH:
        structure, values = _FRESH[key]
        program = _find(problem, data, budget[1] is None, structure)
        if program is not None:
            program.model.set_weights(weights)
            for variable, value in zip(program.optimizer.variables, values, strict=True):
                variable.assign(value)
    if program is None:
        import optimlab

        program, _ = program_for(problem, data, optimlab.get(name, **hyperparameters), budget[1] is None, weights)
        _FRESH[key] = (program.structure, [v.numpy() for v in program.optimizer.variables])
    return _run(program, problem, data, seed, *budget)


def _run(program, problem, data, seed, epochs, batch_size, eval_every, target):
    """One call of ``program`` for the whole run, then its history and outcome."""
    sizes = [eval_every] * (epochs // eval_every) + ([epochs % eval_every] if epochs % eval_every else [])
    if batch_size is None:
        orders = np.zeros((0, 0, 0), np.int32)
    else:
        orders = epoch_orders(np.random.default_rng(int(seed)), len(data.x_train), batch_size, epochs).astype(np.int32)
    with _fast_instantiation():
        outputs = program.function(tf.constant(sizes, tf.int32), tf.constant(orders))
    start_loss, start, losses, evals, seconds, chunks = (v.numpy() for v in outputs)
    return _result(problem, target, sizes, float(start_loss), start, losses, evals, seconds, int(chunks))


def _result(problem, target, sizes, start_loss, start, losses, evals, seconds, chunks):
    """The history and outcome, row by row as the chunks of the program ran."""
    names = ["valid_loss", f"valid_{problem.metric}", "test_loss", f"test_{problem.metric}"]

    def row(epoch, train_loss, values, wall):
        return {"epoch": epoch, "train_loss": train_loss, **dict(zip(names, (float(v) for v in values))),
                "wall_time": wall}

    rows = [row(0, start_loss, start, 0.0)]
    watched = [c for c in ("valid_loss", "test_loss") if math.isfinite(rows[0][c])]
    status, done, wall = "ok", 0, 0.0
    for chunk in range(chunks):
        k = sizes[chunk]
        chunk_losses = losses[done: done + k]
        wall += float(seconds[chunk])
        bad = np.flatnonzero(~np.isfinite(chunk_losses))
        if bad.size:
            status, done = "diverged", done + int(bad[0]) + 1
            rows.append(row(done, float(chunk_losses[bad[0]]), evals[chunk], wall))
            break
        done += k
        rows.append(row(done, float(chunk_losses.mean()), evals[chunk], wall))
        if not all(math.isfinite(rows[-1][c]) for c in watched):
            status = "diverged"
            break
    history = pd.DataFrame(rows)
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != "epoch"}
    final["epochs_run"] = int(history["epoch"].iloc[-1])
    return Result(history, status, final, _first_reached(history, target))


def _evaluator(model, loss, metric):
    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        out = model(x, training=False)
        return loss(y, out), metric(y, out)

    return evaluate


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
