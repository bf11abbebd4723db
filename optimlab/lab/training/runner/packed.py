"""Packed runs: runs of one optimizer configuration trained side by side in one compiled program.

The lab's problems are small: one run's program spends most of its time
dispatching operations, not computing. :func:`train` trains ``K`` runs that
differ only in seed and in hyperparameters held in variables (learning rate,
momentum, betas, ...) in one traced program: every weight of the model is one
variable with the runs stacked along the axis before the last (a kernel
``[d, h]`` becomes ``[d, K, h]``, a bias ``[h]`` becomes ``[K, h]``), every
hyperparameter held in a variable becomes a float64 column ``[K, 1]`` that
broadcasts against them, and the optimizer (its own code, unfused) updates the
stacked variables. Between layers the runs' activations sit side by side,
``[rows, K * h]``: a layer on inputs shared by the runs is one matrix product,
on the runs' own inputs a batched one, and the bias is Keras's ``BiasAdd``.
An operation then serves ``K`` runs, so a pack costs little more than one run.

What each run gets is its own: its seed's initial weights, its data order
(:func:`~optimlab.lab.training.runner.loop.epoch_orders` from its seed), its
slots, its loss (the program differentiates the sum of the runs' losses, whose
gradient with respect to run ``k``'s weights is run ``k``'s gradient), its
evaluations, diagnostics and time to target. A run whose loss (or watched
evaluation) becomes non-finite stops: its weights are held from then on
(``tf.where`` on the run's slice after every step) and its record ends there,
as it would alone; the others go on, untouched (no operation mixes runs).

Exactness: the matrix products, the per-run loss means, the element-wise
optimizer updates and the activations are the operations of a run alone on
the same values, so the losses, evaluations and weights of a packed run equal
the run's alone bit for bit on a CPU where the same kernels run for both shapes
(``tests/lab/training/test_packed.py``): with TensorFlow's oneDNN kernels off
(``TF_ENABLE_ONEDNN_OPTS=0``), and on CPUs where oneDNN, on by default on x86,
picks the same matrix kernel for the packed shape; where it picks another (an
AMD EPYC with AVX-512 does), within a relative 1e-5.
The diagnostics' norms (gradient norm, update ratios) sum the same squares in
another order: equal within a relative 1e-5. ``wall_time`` of a packed run is
its share of the pack's training seconds: each chunk's seconds divided by the
runs still training in it (the shares of a pack add up to its training time).

Where it does not apply, :func:`reason` says why, and the runs go one per
program (:func:`~optimlab.lab.training.runner.loop.train_named`):

* the model is not a chain of ``Dense`` / ``Activation`` layers (a
  ``keras.Sequential`` or the lab's MLP) with relu or linear activations
  (Eigen rounds tanh and sigmoid by where a value sits in memory), no
  regularizer or constraint, on flat inputs:
  a user's subclassed model, a CNN, batch normalization, dropout;
* the optimizer is not one whose update acts value by value
  (:data:`ELEMENTWISE`): norms over a whole variable (LAMB, LARS,
  NovoGrad), factored statistics (Adafactor), matrix updates (Muon), state
  shared across values; or its settings couple values (``clipnorm``,
  ``global_clipnorm``, ``skip_nonfinite``, ...): only the learning rate,
  hyperparameters held in variables, ``weight_decay`` and ``clipvalue`` may be set;
* a learning-rate schedule, mixup, label smoothing, or a loss or metric given
  as a function.
"""

import copy
import json
import math
import types

import keras
import numpy as np
import tensorflow as tf

from optimlab import _interrupt
from optimlab.lab import factory, programs
from optimlab.lab.training.problems import models
from optimlab.lab.training.runner import loop, probes
from optimlab.lab.training.runner.program import loss_fn, metric_fn

ELEMENTWISE = frozenset({"sgd", "gd", "momentum", "adam", "adamw", "adamax", "nadam", "adagrad", "rmsprop",
                         "adabelief", "lion"})
ACTIVATIONS = frozenset({"relu", "linear"})  # exact wherever a value sits (tanh, sigmoid: packet vs scalar paths)
SETTABLE = frozenset({"learning_rate", "weight_decay", "clipvalue"})
TRACES = 0  # packed programs traced in this process
_TEMPLATES = {}  # (problem, input shape) -> (template model, chain) or reason
_CONFIGURATIONS = {}  # (problem, input shape, optimizer, hyperparameters) -> (structure, hyperparameter values)


def _chain(model):
    """``[(dense layer or None, activation, relu?)]`` of a replicable model, or a reason why it is not one."""
    if isinstance(model, models.MLP):
        layers = [*model.feature_extractor.layers, model.last_linear]
    elif isinstance(model, keras.Sequential):
        layers = list(model.layers)
    else:
        return (f"model: a {type(model).__name__} (only a keras.Sequential or the lab's MLP of Dense and Activation "
                "layers is replicated)")
    if model.non_trainable_weights:
        return "model: it has non-trainable weights"
    chain = []
    for layer in layers:
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Activation)):
            return f"model: layer {layer.name!r} is a {type(layer).__name__} (only Dense and Activation are replicated)"
        dense = isinstance(layer, keras.layers.Dense)
        if dense and any(getattr(layer, a, None) is not None for a in (
                "kernel_regularizer", "bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint")):
            return f"model: layer {layer.name!r} has a regularizer or constraint"
        if dense and getattr(layer, "lora_enabled", False):
            return f"model: layer {layer.name!r} uses LoRA"
        name = getattr(layer.activation, "__name__", "")
        if name not in ACTIVATIONS:
            return f"model: layer {layer.name!r} has activation {name or layer.activation!r} (replicated: {sorted(ACTIVATIONS)})"
        chain.append((layer if dense else None, layer.activation, name == "relu"))
    return chain


def _template(problem, data):
    """The problem's model built once (seed 0) and its chain, or the reason it cannot be packed."""
    key = (problem, data.x_train.shape[1:])
    if key not in _TEMPLATES:
        if data.x_train.ndim != 2:
            _TEMPLATES[key] = f"data: inputs of shape {data.x_train.shape[1:]} (packing needs flat rows)"
        else:
            model = models.build(problem, data.x_train.shape[1:], 0)
            chain = _chain(model)
            _TEMPLATES[key] = chain if isinstance(chain, str) else (model, chain)
    return _TEMPLATES[key]


def reason(problem, data, name, hyperparameters, schedule=None):
    """Why runs of ``name`` with ``hyperparameters`` on ``problem`` cannot be packed (None: they can)."""
    if schedule is not None:
        return "a learning-rate schedule"
    for option in ("batchnorm", "mixup", "label_smoothing"):
        if getattr(problem, option):
            return f"{option} is on"
    if problem.loss not in ("mse", "crossentropy"):
        return "the loss is a function (packed: 'mse', 'crossentropy')"
    if any(m not in ("mae", "accuracy") for m in problem.metrics):
        return "a metric is a function (packed: 'mae', 'accuracy')"
    canonical = factory.canonical(name)
    if canonical not in ELEMENTWISE:
        return (f"optimizer {canonical!r} is not known to update value by value "
                f"(packed: {', '.join(sorted(ELEMENTWISE))})")
    optimizer = factory.make_optimizer(name, hyperparameters)
    allowed = SETTABLE | set(optimizer.variable_hyperparameters())
    for key, value in hyperparameters.items():
        if value is not None and key not in allowed:
            return f"{key} is set (packed: {', '.join(sorted(allowed))})"
    if getattr(optimizer, "skip_nonfinite", False) or getattr(optimizer, "use_ema", False):
        return "skip_nonfinite or EMA is on"
    template = _template(problem, data)
    return template if isinstance(template, str) else None


def _configuration(problem, data, name, hyperparameters):
    """``(structure, {hyperparameter held in a variable: value})`` of a run's own optimizer on the problem's model.

    Kept per configuration: building an optimizer costs tens of milliseconds, a pack's run a few.
    """
    key = (problem, data.x_train.shape[1:], name, json.dumps(hyperparameters, sort_keys=True))
    if key not in _CONFIGURATIONS:
        model, _ = _template(problem, data)
        optimizer = factory.make_optimizer(name, hyperparameters)
        optimizer.build(model.trainable_variables)
        values = {h: float(optimizer._get_hyper(h)) for h in sorted(optimizer.variable_hyperparameters())}
        _CONFIGURATIONS[key] = (programs.optimizer_structure(optimizer), values)
    return _CONFIGURATIONS[key]


def structure(problem, data, name, hyperparameters):
    """What runs must share to be packed together: the run's optimizer structure on the problem's model."""
    return _configuration(problem, data, name, hyperparameters)[0]


class PackedProgram:
    """One traced program training ``runs`` runs side by side (see the module's docstring).

    :attr:`function` is called as ``function(sizes, orders)``: the epochs of
    each chunk, and ``[runs, epochs, steps, batch]`` minibatch rows (empty for
    full batch). :meth:`reset` puts a new pack's weights and optimizer state in place.
    """

    def __init__(self, problem, data, name, hyperparameters, runs, full_batch, diagnostics=True):
        self.problem, self.data, self.full_batch, self.diagnostics, self.runs = problem, data, full_batch, diagnostics, runs
        self.template, self.chain = _template(problem, data)
        self.weights = list(self.template.weights)
        trainable = list(self.template.trainable_variables)
        self.index = [next(i for i, w in enumerate(self.weights) if w is v) for v in trainable]  # into get_weights()
        self.variables = [tf.Variable(tf.zeros([*v.shape[:-1], runs, v.shape[-1]], v.dtype), name=v.name)
                          for v in trainable]
        self.where = {id(v): i for i, v in enumerate(trainable)}
        self.structure, values = _configuration(problem, data, name, hyperparameters)
        self.hypers = {h: tf.Variable(tf.zeros([runs, 1], tf.float64), name=f"packed_{h}") for h in values}
        self.optimizer = factory.make_optimizer(name, hyperparameters)
        for h, variable in self.hypers.items():
            self.optimizer._set_hyper(h, variable)
        self.optimizer.fused = False  # the fused kernels take scalar hyperparameters
        self.optimizer.build(self.variables)
        self.fresh = [v.numpy() for v in self.optimizer.variables]  # slots, iterations: a new pack's start
        self.stop = tf.Variable(False, trainable=False)
        self.baseline = None
        self.loss, self.train_loss = _per_run_loss(problem.loss), _per_run_loss(problem.loss)
        self.metrics = [_per_run_metric(m) for m in problem.metrics]
        self.x, self.y = tf.constant(data.x_train), tf.constant(data.y_train)
        self.splits = [(tf.constant(data.x_valid), tf.constant(data.y_valid)) if len(data.x_valid) else None,
                       (tf.constant(data.x_test), tf.constant(data.y_test)) if len(data.x_test) else None]
        self.width = 1 + len(self.metrics)
        if diagnostics:
            self.probe_x, self.probe_y = tf.constant(data.x_train[:2048]), tf.constant(data.y_train[:2048])
            layer_of = [probes.layer_name(v) for v in trainable]
            layers = sorted(set(layer_of))
            self.groups = [[i for i, n in enumerate(layer_of) if n == layer] for layer in layers]
            self.probe = types.SimpleNamespace(COLUMNS=probes.Probe.COLUMNS, variables=trainable, layers=layers)
        else:
            self.probe = None
        self.function = self._trace()

    def reset(self, weights, values):
        """Run ``k`` starts from ``weights[k]`` (a ``get_weights()`` list) with hyperparameters ``values[k]``.

        The optimizer's slots and ``iterations`` go back to their fresh values
        (the runs share the optimizer's structure, so these are every pack's).
        """
        for j, variable in enumerate(self.variables):
            variable.assign(np.stack([w[self.index[j]] for w in weights], axis=-2))
        for h, variable in self.hypers.items():
            variable.assign([[v[h]] for v in values])
        for variable, value in zip(self.optimizer.variables, self.fresh, strict=True):
            variable.assign(value)

    # ------------------------------------------------------------ the model, replicated
    def _forward(self, x):
        """The runs' outputs ``[runs, rows, units]`` and their ReLU outputs ``[rows, runs * units]``.

        ``x``: inputs shared by the runs ``[rows, d]``, or the runs' own ``[runs, rows, d]``. Each
        operation is the one Keras's Dense computes for one run (matrix product, ``BiasAdd`` or, for one
        unit, ``tf.add``), so the values and gradients equal a run's alone bit for bit where the same
        matrix kernel runs for both shapes (see the module's docstring).
        """
        k = self.runs
        h, layout = x, ("shared" if x.shape.rank == 2 else "batched")
        relus = []
        for dense, activation, relu in self.chain:
            if dense is not None:
                kernel = self.variables[self.where[id(dense.kernel)]]  # [d, runs, units]
                units = int(kernel.shape[-1])
                if layout == "shared":  # one product: [rows, d] @ [d, runs * units]
                    h = tf.matmul(h, tf.reshape(kernel, [-1, k * units]))
                else:  # each run's rows by its own kernel
                    h = _side_by_side(tf.matmul(h if layout == "batched" else _per_run(h, k),
                                                tf.transpose(kernel, [1, 0, 2])))
                layout = "flat"
                if dense.bias is not None:
                    bias = self.variables[self.where[id(dense.bias)]]  # [runs, units]
                    if units > 1:  # Keras's BiasAdd (its gradient: BiasAddGrad, column sums)
                        h = tf.nn.bias_add(h, tf.reshape(bias, [k * units]))
                    else:  # Keras adds a one-unit bias with tf.add (its gradient: a sum over the rows)
                        h, layout = _per_run(h, k) + bias[:, None, :], "batched"
            h = activation(h)
            if relu:
                relus.append(_side_by_side(h) if layout == "batched" else h)
        return (h[None] if layout == "shared" else h if layout == "batched" else _per_run(h, k)), relus

    # ------------------------------------------------------------ the traced program
    def _trace(self):
        program = tf.function(self._program, autograph=False)
        program.get_concrete_function(tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None, None, None], tf.int32))
        return program

    def _program(self, sizes, orders):
        k = self.runs
        start_loss = self.loss(self.y, self._forward(self.x)[0])
        start = self._evaluate()
        before = [tf.identity(v) for v in self.variables]
        start_diag, _ = self._measure(before)
        watched = tf.math.is_finite(start) & tf.constant(([True] + [False] * (self.width - 1)) * 2)
        chunks = tf.shape(sizes)[0]
        n_layers = len(self.probe.layers) if self.probe else 0
        arrays = (tf.TensorArray(tf.float32, size=tf.reduce_sum(sizes), element_shape=[k]),
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[k, 2 * self.width]),
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[k, 3 if self.probe else 0]),
                  tf.TensorArray(tf.float32, size=chunks, element_shape=[k, n_layers]),
                  tf.TensorArray(tf.float64, size=chunks, element_shape=[]),
                  tf.TensorArray(tf.bool, size=chunks, element_shape=[k]))  # the runs training in each chunk

        def body(chunk, done, going, before, arrays):
            losses, evals, diags, ratios, seconds, counts = arrays
            counts = counts.write(chunk, going)
            began = tf.timestamp()
            with tf.control_dependencies([began]):
                done, going, losses = self._epochs(orders, sizes[chunk], done, going, losses)
            with tf.control_dependencies([losses.flow]):
                ended = tf.timestamp()
                row = self._evaluate()
                diag, layer_ratios = self._measure(before)
                after = [tf.identity(v) for v in self.variables]
            going = going & ~tf.reduce_any(watched & ~tf.math.is_finite(row), axis=1)
            arrays = (losses, evals.write(chunk, row), diags.write(chunk, diag), ratios.write(chunk, layer_ratios),
                      seconds.write(chunk, ended - began), counts)
            return chunk + 1, done, going, after, arrays

        def more(chunk, done, going, before, arrays):
            return tf.reduce_any(going) & (chunk < chunks) & ~self.stop.read_value()

        chunk, _, _, _, arrays = tf.while_loop(more, body, (tf.constant(0), tf.constant(0), tf.ones([k], tf.bool),
                                                            before, arrays))
        return (start_loss, start, *(a.stack() for a in arrays[:5]), chunk, start_diag, arrays[5].stack())

    def _epochs(self, orders, size, done, going, losses):
        def body(i, done, going, losses):
            value = self._epoch(orders, done, going)
            return i + 1, done + 1, going & tf.math.is_finite(value), losses.write(done, value)

        return tf.while_loop(lambda i, d, going, _: (i < size) & tf.reduce_any(going) & ~self.stop.read_value(), body,
                             (tf.constant(0), done, going, losses))[1:]

    @tf.autograph.experimental.do_not_convert
    def _step(self, x, y, going):
        """One step of every run; the weights of runs that stopped are held."""
        with tf.GradientTape() as tape:
            value = self.train_loss(y, self._forward(x)[0])
            total = tf.reduce_sum(value)  # d total / d run k's weights = run k's gradient
        grads = tape.gradient(total, self.variables)
        held = [tf.identity(v) for v in self.variables]
        with tf.control_dependencies(held):
            self.optimizer.apply(grads, self.variables)
        for variable, old in zip(self.variables, held):
            variable.assign(tf.where(going[:, None], variable, old))
        return value

    def _epoch(self, orders, e, going):
        if self.full_batch:
            return self._step(self.x, self.y, going)
        steps = tf.shape(orders)[2]

        def step(i, total):
            rows = orders[:, e, i]
            return i + 1, total + self._step(tf.gather(self.x, rows), tf.gather(self.y, rows), going)

        _, total = tf.while_loop(lambda i, _: (i < steps) & ~self.stop.read_value(), step,
                                 (tf.constant(0), tf.zeros([self.runs])))
        return total / tf.cast(steps, tf.float32)

    def _evaluate(self):
        """``[runs, 2 * width]``: valid loss, valid metrics, test loss, test metrics (NaN for an empty split)."""
        values = []
        for split in self.splits:
            if split is None:
                values += [tf.fill([self.runs], math.nan)] * self.width
            else:
                out = self._forward(split[0])[0]
                values += [self.loss(split[1], out)] + [m(split[1], out) for m in self.metrics]
        return tf.stack(values, axis=1)

    def _measure(self, before):
        """Per run: ``[grad_norm, largest update ratio, dead share]`` and the per-layer update ratios."""
        if self.probe is None:
            return tf.zeros([self.runs, 0]), tf.zeros([self.runs, 0])
        with tf.GradientTape() as tape:
            out, relus = self._forward(self.probe_x)
            total = tf.reduce_sum(self.loss(self.probe_y, out))
        grads = tape.gradient(total, self.variables)
        norm = tf.sqrt(tf.add_n([_per_run_sum(tf.square(g)) for g in grads]))
        ratios = []
        for group in self.groups:
            change = tf.sqrt(tf.add_n([_per_run_sum(tf.square(self.variables[i] - before[i])) for i in group]))
            size = tf.sqrt(tf.add_n([_per_run_sum(tf.square(before[i])) for i in group]))
            ratios.append(tf.math.divide_no_nan(change, size))
        ratios = tf.stack(ratios, axis=1)
        if relus:  # [rows, runs * units]: a unit is dead where its largest output is <= 0
            maxima = [tf.reshape(tf.reduce_max(r, axis=0), [self.runs, -1]) for r in relus]
            dead = tf.add_n([tf.reduce_sum(tf.cast(m <= 0, tf.float32), axis=1) for m in maxima])
            dead = dead / float(sum(int(r.shape[-1]) // self.runs for r in relus))
        else:
            dead = tf.fill([self.runs], math.nan)
        return tf.stack([norm, tf.reduce_max(ratios, axis=1), dead], axis=1), ratios


def _side_by_side(t):
    """``[runs, rows, units]`` -> ``[rows, runs * units]``."""
    return tf.reshape(tf.transpose(t, [1, 0, 2]), [tf.shape(t)[1], -1])


def _per_run(t, runs):
    """``[rows, runs * units]`` -> ``[runs, rows, units]``."""
    return tf.transpose(tf.reshape(t, [tf.shape(t)[0], runs, -1]), [1, 0, 2])


def _per_run_sum(t):
    """Sum over every axis but the runs' (the one before the last)."""
    return tf.reduce_sum(t, axis=[i for i in range(t.shape.rank) if i != t.shape.rank - 2])


def _per_run_mean(t):
    """``[runs, ...]`` -> each run's mean (one reduction for all runs: a trace of a few operations, not ``runs``)."""
    return tf.reduce_mean(t, axis=list(range(1, t.shape.rank)))


def _per_run_loss(kind):
    """The problem's loss, one value per run, for outputs ``[runs, rows, ...]`` (the same operations as alone)."""
    if kind == "mse":
        return lambda y, out: _per_run_mean(tf.square(y - out))

    def crossentropy(y, out):
        labels = tf.broadcast_to(tf.cast(y, tf.int32), tf.shape(out)[:-1])
        return _per_run_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out))

    return crossentropy


def _per_run_metric(kind):
    if kind == "mae":
        return lambda y, out: _per_run_mean(tf.abs(y - out))
    return lambda y, out: _per_run_mean(tf.cast(tf.equal(tf.argmax(out, axis=-1, output_type=tf.int32),
                                                         tf.cast(y, tf.int32)), tf.float32))


def program_for(problem, data, name, hyperparameters, runs, full_batch, diagnostics):
    """A packed program for ``runs`` runs of this configuration: reused from the one cache, else traced."""
    global TRACES
    key = structure(problem, data, name, hyperparameters)
    context = ("packed", runs, *loop._context(problem, data, full_batch, diagnostics))
    program = loop._PROGRAMS.find(context, key)
    if program is None:
        program = loop._PROGRAMS.add(context, key, PackedProgram(problem, data, name, hyperparameters, runs,
                                                                 full_batch, diagnostics))
        TRACES += 1
    return program


def train(problem, data, name, hyperparameters, seeds, epochs=None, batch_size="problem", eval_every=None,
          target=None, diagnostics=True, size=None):
    """Runs ``(hyperparameters[k], seeds[k])`` of optimizer ``name`` in one program; their :class:`~loop.Result` s.

    The runs must share :func:`structure` and :func:`reason` must be None for each. ``size``: the
    program's number of runs (default: as many as given); fewer runs are padded with copies of the
    last one, whose results are dropped, so packs of any size up to ``size`` share one trace.
    """
    given = len(seeds)
    size = max(given, size or given)
    hyperparameters = [*hyperparameters, *[hyperparameters[-1]] * (size - given)]
    seeds = [*seeds, *[seeds[-1]] * (size - given)]
    runs = size
    budget = loop._budget(problem, data, epochs, batch_size, eval_every, target)
    epochs, batch_size, eval_every, target = budget
    model, _ = _template(problem, data)
    configurations = [_configuration(problem, data, name, h) for h in hyperparameters]
    if len({c[0] for c in configurations}) != 1:
        raise ValueError("packed runs must share their optimizer's structure (slots, settings not held in variables)")
    program = program_for(problem, data, name, hyperparameters[0], runs, batch_size is None, diagnostics)
    program.reset([loop.initial_weights(problem, data.x_train.shape[1:], s) for s in seeds],
                  [c[1] for c in configurations])
    sizes = [eval_every] * (epochs // eval_every) + ([epochs % eval_every] if epochs % eval_every else [])
    if batch_size is None:
        orders = np.zeros((0, 0, 0, 0), np.int32)
    else:
        orders = np.stack([loop.epoch_orders(np.random.default_rng(int(s)), len(data.x_train), batch_size, epochs)
                           for s in seeds]).astype(np.int32)
    with programs.grappler(disable_meta_optimizer=True):
        outputs = _interrupt.call(program.function, tf.constant(sizes, tf.int32), tf.constant(orders), stop=program.stop)
    start_loss, start, losses, evals, diags, ratios, seconds, chunks, start_diag, counts = (v.numpy() for v in outputs)
    share = seconds / np.maximum(counts[:, :given].sum(axis=1), 1)  # the given runs share the chunk's seconds
    if program.diagnostics and program.baseline is None:
        metrics = [metric_fn(m) for m in problem.metrics]
        num_outputs = int(model(data.x_train[:1], training=False).shape[-1])
        program.baseline = [probes.naive_baseline(problem, data, loop._constant_evaluator(loss_fn(problem), metrics),
                                                  num_outputs)]
    results = []
    for k in range(given):
        result = loop._result(problem, target, sizes, program.probe, start_loss[k], start[k], losses[:, k],
                              evals[:, k], share, chunks, start_diag[k], diags[:, k], ratios[:, k])
        if program.diagnostics:
            result.diagnostics["baseline"] = copy.deepcopy(program.baseline[0])
        results.append(result)
    return results
