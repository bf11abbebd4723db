"""Training loops: full-batch gradient descent and minibatch SGD, compiled, with a history.

:func:`train` runs a whole run in one call of a ``tf.function`` (chunks of
epochs, an evaluation after each) and returns a
:class:`Result` whose ``history`` is a pandas DataFrame with columns ``epoch,
train_loss, valid_loss, test_loss, valid_<metric>, test_<metric>, wall_time``.
Minibatches follow the Boston housing chapter's ``Dataset``: a fresh shuffle every epoch and
``n // batch_size`` steps (the remainder is dropped). The shuffles come from
``seed`` alone, so every optimizer sees the same data order.

The traced :class:`~optimlab.lab.training.runner.program.Program` is kept
(in :mod:`optimlab.lab.programs`' cache) and reused by later runs of the same
configuration (problem, data, batch mode, optimizer class and the settings not
held in variables): only weights, slots, ``iterations`` and hyperparameters are
reset, so a table of seeds x learning rates traces once per optimizer.
``TRACES`` counts the programs traced in this process.

A run whose loss becomes non-finite stops and gets ``status="diverged"``.
:func:`fit` trains the same model through ``keras.Model.fit`` for comparison.
"""

import copy
import dataclasses
import json
import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from optimlab import _interrupt
from optimlab.lab import factory, programs
from optimlab.lab.training.problems import custom, models
from optimlab.lab.training.runner import probes
from optimlab.lab.training.runner.program import Program, loss_fn, metric_fn


@dataclasses.dataclass
class Result:
    """One run: its history, ``ok``/``diverged``, last values and time to target."""

    history: pd.DataFrame
    status: str
    final: dict
    time_to_target: dict
    diagnostics: dict = dataclasses.field(default_factory=dict)


def epoch_orders(rng, n, batch_size, epochs):
    """The Boston housing chapter's ``Dataset`` order: a new permutation per epoch, ``n // batch_size`` full batches."""
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


TRACES = 0  # training programs traced in this process
_PROGRAMS = programs.ProgramCache(keep=8)
_WEIGHTS = {}
_KEEP_WEIGHTS = 64


def initial_weights(problem, input_shape, seed):
    """The weights ``models.build`` gives for ``seed`` (cached: paired runs share them)."""
    shape = (int(input_shape),) if np.isscalar(input_shape) else tuple(int(d) for d in input_shape)
    key = (problem.name, id(problem.model) if callable(problem.model) else problem.model, tuple(problem.hidden),
           problem.outputs, problem.batchnorm, shape, int(seed))
    if key not in _WEIGHTS:
        if len(_WEIGHTS) >= _KEEP_WEIGHTS:
            _WEIGHTS.pop(next(iter(_WEIGHTS)))
        _WEIGHTS[key] = models.build(problem, shape, seed).get_weights()
    return _WEIGHTS[key]


PREFLIGHT_ROWS = 16  # rows of the one batch that preflight trains on


def _check_outputs(problem, data, outputs):
    """The model's outputs checked against every split's targets (shapes, label range): ValueError naming the field."""
    units = outputs.shape[-1] if outputs.ndim > 1 else None
    if problem.loss == "crossentropy":
        labels = np.concatenate([data.y_train, data.y_valid, data.y_test])
        low, high = int(labels.min()), int(labels.max())
        if low < 0:
            raise ValueError(f"data: loss='crossentropy' needs class labels 0, 1, ...; the targets hold {low}")
        if outputs.ndim != 2 or units < 2 or units <= high:
            raise ValueError(f"model: outputs {units or 1} value(s) per row (shape {tuple(outputs.shape)}); "
                             f"loss='crossentropy' with labels 0..{high} needs one logit per class: "
                             f"{max(high + 1, 2)} units in the last layer")
    elif problem.loss == "mse" and tuple(outputs.shape[1:]) != tuple(data.y_train.shape[1:]):
        raise ValueError(f"model: outputs rows of shape {tuple(outputs.shape[1:])} but the targets' rows have shape "
                         f"{tuple(data.y_train.shape[1:])}; loss='mse' compares them value by value "
                         f"(give the last layer {int(np.prod(data.y_train.shape[1:]))} units)")


def _checked(field, what, call):
    """``call()``, its error turned into one ValueError line naming ``field``."""
    try:
        return call()
    except Exception as error:  # noqa: BLE001 - TensorFlow's traceback, cut to the line that says what is wrong
        raise ValueError(f"{field}: {what}: {models.reason(error)}") from error


def preflight(problem, data):
    """One forward and backward step on one batch of ``data``, before any run writes anything.

    Turns what would fail (or silently mean nothing) inside a run into one
    ValueError/TypeError naming the field (``model``, ``data``, ``loss``,
    ``metrics``) and what was expected: a model function returning a
    non-model, inputs the model cannot take, too few output units for the
    labels, labels out of range, outputs that do not match regression
    targets, a loss or metric that fails on the batch, a loss that is not
    finite or gives no gradient. Changes no weights of any run.
    """
    if problem.loss is None:
        raise ValueError(f"loss: problem {problem.name!r} has none; give loss= one of {list(custom.LOSSES)} "
                         "or a function loss(y_true, y_pred)")
    model = models.build(problem, data.x_train.shape[1:], seed=0)
    x, y = tf.constant(data.x_train[:PREFLIGHT_ROWS]), tf.constant(data.y_train[:PREFLIGHT_ROWS])
    shapes = f"inputs {tuple(x.shape)}, targets {tuple(y.shape)} {y.dtype.name}"
    with tf.GradientTape() as tape:
        outputs = _checked("model", f"fails on one batch ({shapes})", lambda: model(x, training=True))
        _check_outputs(problem, data, outputs)
        loss = _checked("loss", f"{custom.describe_value(problem.loss)} fails on one batch ({shapes}, outputs "
                        f"{tuple(outputs.shape)})", lambda: loss_fn(problem, training=True)(y, outputs))
    if not np.isfinite(float(loss)):
        raise ValueError(f"loss: {custom.describe_value(problem.loss)} gives {float(loss)} at the initial weights "
                         "(a finite number is expected)")
    gradients = tape.gradient(loss, model.trainable_variables)
    if not any(g is not None for g in gradients):
        raise ValueError(f"loss: {custom.describe_value(problem.loss)} does not depend on the model's trainable "
                         f"weights ({len(gradients)} of them): no gradient reaches them")
    for metric in problem.metrics:
        _checked("metrics", f"{custom.metric_name(metric)} fails on one batch ({shapes}, outputs "
                 f"{tuple(outputs.shape)})", lambda metric=metric: metric_fn(metric)(y, outputs))


def _context(problem, data, full_batch, diagnostics):
    """What a traced program computes on, besides the optimizer (the program holds problem and data)."""
    return id(problem), id(data), full_batch, diagnostics


def _same_variables(optimizer, program):
    """Whether ``optimizer``, built on ``program``'s model, has the variables of the program's optimizer.

    A hyperparameter held in a variable can still decide which slots exist
    (SGD has momentum slots only for a momentum other than 0), so a copy of
    the optimizer is built to see. An optimizer that cannot be copied from its
    config gets a program of its own.
    """
    if optimizer.built:
        return programs.optimizer_structure(optimizer) == program.structure
    try:
        copy = type(optimizer).from_config(optimizer.get_config())
        copy.build(program.model.trainable_variables)
    except Exception:  # noqa: BLE001 - any failure means: do not share
        return False
    return programs.optimizer_structure(copy) == program.structure


def program_for(problem, data, optimizer, full_batch, weights, diagnostics=True):
    """A program for this configuration, reset for a new run: reused when one exists, else traced."""
    global TRACES
    context = _context(problem, data, full_batch, diagnostics)
    program = _PROGRAMS.find(context, programs.optimizer_structure(optimizer))
    if program is not None and _same_variables(optimizer, program):
        program.reset(weights, optimizer)
        return program, False
    program = Program(problem, data, optimizer, full_batch, weights, diagnostics)
    TRACES += 1
    return _PROGRAMS.add(context, program.structure, program), True


_FRESH = {}  # (problem, input shape, optimizer, hyperparameters, schedule) -> (structure, fresh variable values)


def _budget(problem, data, epochs, batch_size, eval_every, target):
    epochs = problem.epochs if epochs is None else int(epochs)
    batch_size = problem.batch_size if batch_size == "problem" else batch_size
    eval_every = eval_every or max(1, epochs // 100)
    target = problem.target if target is None else target
    n = len(data.x_train)
    if batch_size is not None and not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be in [1, {n}] or None; got {batch_size!r}")
    return epochs, batch_size, eval_every, target


def train(problem, data, optimizer, seed, epochs=None, batch_size="problem", eval_every=None, target=None,
          diagnostics=True):
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
        diagnostics: also record, per evaluation, the gradient norm, the largest
            per-layer update ratio and the share of dead ReLU units
            (:mod:`~optimlab.lab.training.runner.probes`), and the naive baseline.

    ``train_loss`` is the mean of the epochs' losses since the last
    evaluation, ``train_loss_max`` the largest of them and ``peak_epoch`` its
    epoch (so a one-epoch explosion shows). The run reuses the traced program of an earlier run with the same
    problem, data and optimizer structure (see :mod:`~optimlab.lab.training.runner.program`); ``wall_time``
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
    weights = initial_weights(problem, data.x_train.shape[1:], seed)
    program, _ = program_for(problem, data, optimizer, budget[1] is None, weights, diagnostics)
    return _run(program, problem, data, seed, *budget)


def train_named(problem, data, name, hyperparameters, seed, epochs=None, batch_size="problem", eval_every=None,
                target=None, schedule=None, diagnostics=True, on_chunk=None):
    """:func:`train` with the optimizer ``name`` (registered or ``package.module:Class``), the lab's runs.

    ``schedule`` is ``(name, {args})`` or None (see
    :func:`optimlab.lab.factory.make_optimizer`). ``on_chunk(epochs done, validation loss)``,
    called after each evaluation but the last, ends the run there when it returns True (a pruner):
    the result then has ``status="pruned"``, a partial run. The
    fresh state of each optimizer configuration is kept, so further seeds of
    a configuration neither construct nor build an optimizer: they copy that
    state into the traced program's variables. The result is the same.
    """
    budget = _budget(problem, data, epochs, batch_size, eval_every, target)
    weights = initial_weights(problem, data.x_train.shape[1:], seed)
    key = (problem, data.x_train.shape[1:], name, json.dumps(hyperparameters, sort_keys=True),
           json.dumps(schedule, sort_keys=True), diagnostics)
    program = None
    if key in _FRESH:
        structure, values = _FRESH[key]
        program = _PROGRAMS.find(_context(problem, data, budget[1] is None, diagnostics), structure)
        if program is not None:
            program.model.set_weights(weights)
            for variable, value in zip(program.optimizer.variables, values, strict=True):
                variable.assign(value)
    if program is None:
        optimizer = factory.make_optimizer(name, hyperparameters, schedule)
        program, _ = program_for(problem, data, optimizer, budget[1] is None, weights, diagnostics)
        _FRESH[key] = (program.structure, [v.numpy() for v in program.optimizer.variables])
    return _run(program, problem, data, seed, *budget, on_chunk=on_chunk)


def _run(program, problem, data, seed, epochs, batch_size, eval_every, target, on_chunk=None):
    """One call of ``program`` for the whole run, then its history, outcome and naive baseline."""
    sizes = [eval_every] * (epochs // eval_every) + ([epochs % eval_every] if epochs % eval_every else [])
    if batch_size is None:
        orders = np.zeros((0, 0, 0), np.int32)
    else:
        orders = epoch_orders(np.random.default_rng(int(seed)), len(data.x_train), batch_size, epochs).astype(np.int32)
    arguments = (tf.constant(sizes, tf.int32), tf.constant(orders), tf.constant(int(seed), tf.int64))
    stopped = []

    def hook(done, row):  # at a chunk boundary, in the running program: ask on_chunk (never after the last chunk)
        if done < epochs and on_chunk(done, float(row[0])):
            stopped.append(done)
            return True
        return False

    program.on_chunk = hook if on_chunk is not None else None
    program.asking.assign(on_chunk is not None)
    try:
        with programs.grappler(disable_meta_optimizer=True):  # about a second less per new program
            outputs = _interrupt.call(program.function, *arguments, stop=program.stop)  # Ctrl-C: within a step
    finally:
        program.on_chunk = None
        program.asking.assign(False)
    result = _result(problem, target, sizes, program.probe, *(v.numpy() for v in outputs))
    if stopped and result.status == "ok":
        result.status = "pruned"
    if program.diagnostics:
        if program.baseline is None:  # the same for every run of the program: computed once
            metrics = [metric_fn(m) for m in problem.metrics]
            num_outputs = int(program.model(data.x_train[:1], training=False).shape[-1])
            program.baseline = [probes.naive_baseline(
                problem, data, _constant_evaluator(loss_fn(problem), metrics), num_outputs)]
        result.diagnostics["baseline"] = copy.deepcopy(program.baseline[0])
    return result


def _result(problem, target, sizes, probe, start_loss, start, losses, evals, seconds, chunks, start_diag, diags,
            layer_ratios):
    """The history and outcome, row by row as the chunks of the program ran."""
    chunks = int(chunks)
    names = [custom.metric_name(m) for m in problem.metrics]
    columns = [f"{split}_{name}" for split in ("valid", "test") for name in ["loss", *names]]

    def row(epoch, train_loss, values, wall, peak, diag):
        out = {"epoch": epoch, "train_loss": train_loss, **dict(zip(columns, (float(v) for v in values))),
               "wall_time": wall}
        if probe is not None:
            out.update(train_loss_max=peak[0], peak_epoch=peak[1], **dict(zip(probe.COLUMNS, (float(v) for v in diag))))
        return out

    start_loss = float(start_loss)
    rows = [row(0, start_loss, start, 0.0, (start_loss, 0), start_diag)]
    watched = [c for c in ("valid_loss", "test_loss") if math.isfinite(rows[0][c])]
    status, done, wall = "ok", 0, 0.0
    for chunk in range(chunks):
        k = sizes[chunk]
        chunk_losses = losses[done: done + k]
        wall += float(seconds[chunk])
        bad = np.flatnonzero(~np.isfinite(chunk_losses))
        if bad.size:
            status, done = "diverged", done + int(bad[0]) + 1
            value = float(chunk_losses[bad[0]])
            rows.append(row(done, value, evals[chunk], wall, (value, done), diags[chunk]))
            break
        peak = (float(chunk_losses.max()), done + int(chunk_losses.argmax()) + 1)
        done += k
        rows.append(row(done, float(chunk_losses.mean()), evals[chunk], wall, peak, diags[chunk]))
        if not all(math.isfinite(rows[-1][c]) for c in watched):
            status = "diverged"
            break
    history = pd.DataFrame({column: [r[column] for r in rows] for column in rows[0]})  # by columns: faster
    final = {k: float(v) for k, v in history.iloc[-1].items() if k != "epoch"}
    final["epochs_run"] = int(history["epoch"].iloc[-1])
    extra = {}
    if probe is not None:
        used = layer_ratios[: len(rows) - 1]
        stable = probes.stable_layer_names(probe.variables)
        extra["layers"] = {stable[name]: [0.0] + [float(v) for v in used[:, i]] for i, name in enumerate(probe.layers)}
    return Result(history, status, final, _first_reached(history, target), extra)


def _evaluator(model, loss, metrics):
    @tf.function(reduce_retracing=True)
    def evaluate(x, y):
        out = model(x, training=False)
        return (loss(y, out), *[m(y, out) for m in metrics])

    return evaluate


def _constant_evaluator(loss, metrics):
    """``(y, prediction)`` -> loss and metrics of a fixed prediction (the naive baseline)."""
    return lambda y, out: (loss(tf.constant(y), tf.constant(out)), *[m(tf.constant(y), tf.constant(out)) for m in metrics])


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
