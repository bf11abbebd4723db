"""The convergence test of the TensorFlow guide "Optimizers with Core APIs", compiled into one program.

``convergence_test(optimizer, function)`` minimizes ``function`` from ``init``
and reports whether the optimizer converged, exploded or ran out of
iterations, with the full parameter path. The guide's definitions are the
defaults: converged when the updated parameter equals its previous value,
exploded when the gradient is NaN or the parameter is no longer finite.

The whole loop is one ``tf.function`` around a ``tf.while_loop`` (no Python per
iteration), and the same iteration body can run eagerly (``compiled=False``),
giving the same iteration counts. :func:`run_grid` runs optimizers x learning
rates in one program: every optimizer's learning rates side by side in one loop
(:mod:`optimlab.lab.convergence.side_by_side`), except, for an optimizer whose
update mixes a variable's entries, one run after another in a program of its
own traced once (the cache of :mod:`optimlab.lab.programs`); :func:`run_table`
gives the guide's table. How any optimizer object is driven
is :mod:`optimlab.lab.convergence.adapters`.

Example:
    >>> import optimlab
    >>> from optimlab.lab import convergence_test
    >>> r = convergence_test(optimlab.Adam(0.1), "quartic", init=2.0, max_iters=2000)
    >>> r.status, r.iterations
    ('converged', 1156)
"""

import dataclasses
import inspect
import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from optimlab import _interrupt
from optimlab._checks import check_bool, check_choice, check_nonnegative
from optimlab.lab import factory, programs
from optimlab.lab.convergence import adapters, side_by_side, stopping
from optimlab.lab.convergence.functions import as_function

from optimlab.lab.convergence.stopping import EXPLODED, EXPLOSION_RULES, RUNNING


@dataclasses.dataclass
class ConvergenceResult:
    """The outcome of one convergence test.

    Attributes:
        status: ``"converged"``, ``"exploded"`` or ``"max_iters"``.
        iterations: the iteration at which the test stopped (1-based; for
            ``"max_iters"`` the maximum).
        path: parameter values, ``path[0]`` the start and ``path[t]`` the value
            after update ``t``; shape ``(steps + 1,) + parameter shape``. An
            exploded run stops before the update of the iteration that exploded.
        final_loss: the loss at the last parameter value.
        distance: Euclidean distance from it to the nearest known minimum (inf if unknown).
        criterion: which criterion stopped a converged run: ``"step"``,
            ``"gradient"`` or ``"optimum"`` (None otherwise).
        compiled: True when the loop ran as one compiled TensorFlow program.
        function, optimizer: names; learning_rate: the optimizer's, when readable.
        seconds: wall time, tracing included.
        note: why the run was not compiled, when it was not.
    """

    status: str
    iterations: int
    path: np.ndarray
    final_loss: float
    distance: float
    criterion: object
    compiled: bool
    function: str
    optimizer: str
    learning_rate: object
    seconds: float
    note: str = ""

    @property
    def converged(self):
        return self.status == "converged"

    @property
    def final(self):
        """The last parameter value."""
        return self.path[-1]


# ------------------------------------------------------------ the loop
def _initial_value(function, init, dtype):
    if init is None:
        if function.start is None:
            raise ValueError(f"init is required for function {function.name!r}, which has no standard start")
        init = function.start
    value = np.asarray(init, dtype=dtype)
    if value.ndim == 0 and function.dim > 0:
        value = np.full(function.shape, value, dtype=dtype)
    if function.dim >= 0 and value.shape != function.shape:
        raise ValueError(f"init must have shape {function.shape} for {function.name!r}; got {init!r}")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"init must be finite; got {init!r}")
    return value


def _make_step(function, x, apply, rules, start):
    """One iteration: gradient, explosion check, update, convergence check; returns a status code."""

    def step():
        with tf.GradientTape() as tape:
            loss = function.fn(x)
        g = tape.gradient(loss, x)

        def update():
            old = x.read_value()
            apply(g, x)
            new = x.read_value()
            return stopping.status_code(old, new, g, rules, start)

        bad = stopping.exploded_before_update(x, g, rules)
        return tf.cond(bad, lambda: tf.constant(EXPLODED), update)

    return step


def _eager_loop(step, x, max_iters):
    path = [x.numpy()]
    t, code = 0, RUNNING
    while code == RUNNING and t < max_iters:
        _interrupt.check()  # a Ctrl-C (inside the command line's graceful block) stops here
        t += 1
        code = int(step())
        path.append(x.numpy())
    return t, code, np.stack(path)


def _compiled_program(step, x, max_iters, jit_compile):
    """The guide's loop as one ``tf.function``; it also ends when the stop flag is set (not under XLA,
    which reads the flag once: there a Ctrl-C waits for the loop's end)."""
    stop = stopping.stop_flag()

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loop():
        path = tf.TensorArray(x.dtype, size=max_iters + 1, element_shape=x.shape)
        path = path.write(0, x.read_value())

        def keep_going(t, code, path):
            return tf.equal(code, RUNNING) & (t < max_iters) & ~stop.read_value()

        def body(t, code, path):
            code = step()
            return t + 1, code, path.write(t + 1, x.read_value())

        t, code, path = tf.while_loop(keep_going, body, (tf.constant(0), tf.constant(RUNNING), path))
        return t, code, path.stack()  # entries after t are unwritten (zeros)

    return loop


@dataclasses.dataclass
class _Loop:
    """One convergence test's parameter and iteration, and the compiled program that runs them (None: eager).

    A compiled loop is kept (:mod:`optimlab.lab.programs`) and reused by the
    next test of the same function, settings and optimizer structure:
    :meth:`reset` puts the new start point and the new optimizer's fresh
    variables into the traced ones.
    """

    x: tf.Variable
    start_norm: tf.Variable  # the gradient's norm at the start
    step: object
    optimizer: object  # the optimizer traced into the program
    program: object = None
    note: str = ""  # why the loop runs eagerly although compiled was asked for

    @classmethod
    def build(cls, fn, value, optimizer, rules, max_iters, compiled, jit_compile):
        apply = adapters.applier(optimizer)
        x = tf.Variable(value, name="x")
        if isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer.build([x])
        start_norm = tf.Variable(stopping.start_gradient_norm(fn, x), name="start_gradient_norm")
        loop = cls(x, start_norm, _make_step(fn, x, apply, rules, start_norm), optimizer)
        if compiled:
            program = _compiled_program(loop.step, x, max_iters, jit_compile)
            loop.note = adapters.check_traceable(program, optimizer)
            loop.program = None if loop.note else program
        return loop

    def reset(self, fn, value, optimizer):
        self.x.assign(value)
        programs.load_fresh_state(self.optimizer, optimizer, [self.x])
        self.start_norm.assign(stopping.start_gradient_norm(fn, self.x))

    def run(self, max_iters):
        """``(iterations, status code, path)``: compiled in one call, else eagerly step by step."""
        if self.program is None:
            return _eager_loop(self.step, self.x, max_iters)
        with programs.grappler(arithmetic_optimization=False):  # the eager float arithmetic, bit for bit
            t, code, path = (np.asarray(v) for v in _interrupt.call(self.program, stop=stopping.stop_flag()))
        return int(t), int(code), path[: int(t) + 1]


def _float_dtype(dtype):
    try:
        name = tf.as_dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    return check_choice("dtype", name, ("float16", "bfloat16", "float32", "float64"))


def _check_tol(name, value):
    if value is not None:
        check_nonnegative(name, value)


def _checked_settings(fn, max_iters, step_tol, grad_tol, optimum_tol, explosion, compiled, jit_compile, dtype):
    """Validate :func:`convergence_test`'s settings (ValueError/TypeError naming the bad one); the dtype's name."""
    if isinstance(max_iters, bool) or not isinstance(max_iters, (int, np.integer)) or max_iters < 1:
        raise ValueError(f"max_iters must be an integer >= 1; got {max_iters!r}")
    for name, value in (("step_tol", step_tol), ("grad_tol", grad_tol), ("optimum_tol", optimum_tol)):
        _check_tol(name, value)
    check_choice("explosion", explosion, EXPLOSION_RULES)
    check_bool("compiled", compiled)
    check_bool("jit_compile", jit_compile)
    dtype = _float_dtype(dtype)
    if optimum_tol is not None and not fn.minima:
        raise ValueError(f"optimum_tol needs a function with known minima; {fn.name!r} has none")
    return dtype


def convergence_test(
    optimizer,
    function,
    init=2.0,
    max_iters=2000,
    *,
    step_tol=0.0,
    grad_tol=None,
    optimum_tol=None,
    explosion="seed",
    compiled=True,
    jit_compile=False,
    dtype="float32",
    _programs=None,
):
    """Minimize ``function`` from ``init`` and report how the optimizer fared (the guide's convergence test).

    Use it to see whether and how fast an optimizer and learning rate reach a
    minimum from a poor start, and to plot the path taken.

    At each iteration ``t = 1..max_iters`` the gradient is taken with
    ``tf.GradientTape`` at the current parameter, the run explodes if the
    gradient is NaN or the parameter is not finite, otherwise the optimizer
    updates the parameter and the run converges when the new value equals the
    old one (or when a tolerance below is met).

    Args:
        optimizer: an optimlab or Keras optimizer (new, not yet built), a
            registered optimizer name (its defaults), or any object with the
            guide's ``apply_gradients(grads, vars)`` (two lists) or Keras 2's
            ``apply_gradients(grads_and_vars)``.
        function: a registered function name (see ``optimlab functions``), a
            ``TestFunction``, or any TensorFlow callable of the parameter.
        init: the start: a number (filling every coordinate of an N-D function)
            or an array of the function's shape; None uses the function's
            standard start (default 2.0, the guide's).
        max_iters: the maximum number of iterations (default 2000).
        step_tol: converged when ``|x_t - x_(t-1)| <= step_tol`` (default 0:
            exact equality, the guide's criterion).
        grad_tol: also converged when the norm of the gradient applied at
            iteration ``t`` is ``<= grad_tol`` (default None: off).
        optimum_tol: also converged when ``x_t`` is within ``optimum_tol`` of a
            known minimum (default None: off; needs a function with known minima).
        explosion: ``"seed"`` (default, the guide's rule; the name is kept for
            compatibility): exploded at ``t`` when the gradient at ``t`` is NaN
            or the parameter entering ``t`` is not finite; this sees a float32
            overflow one iteration after the infinite gradient that caused it.
            ``"immediate"``: exploded at the iteration whose gradient or
            updated parameter is not finite.
        compiled: run the loop as one compiled TensorFlow program (default
            True). Objects keeping Python state fall back to eager, with a note.
        jit_compile: compile with XLA (default False). XLA may fuse and
            reorder float arithmetic, so iteration counts can differ from eager.
        dtype: the parameter's dtype (default float32, the guide's).

    Returns:
        A ``ConvergenceResult``.

    Example:
        >>> import optimlab
        >>> r = convergence_test(optimlab.GradientDescent(0.1), "quartic")
        >>> r.status, r.iterations
        ('exploded', 6)
    """
    fn = as_function(function)
    dtype = _checked_settings(fn, max_iters, step_tol, grad_tol, optimum_tol, explosion, compiled, jit_compile, dtype)
    rules = stopping.Rules(step_tol, grad_tol, optimum_tol, explosion, fn.minima)
    value = tf.cast(_initial_value(fn, init, "float64"), dtype)
    optimizer = adapters.resolve(optimizer)
    start = time.perf_counter()
    context = (id(fn), fn.name, dtype, int(max_iters), step_tol, grad_tol, optimum_tol, explosion, jit_compile)
    shared = _programs is not None and compiled and isinstance(optimizer, keras.optimizers.Optimizer)
    loop = _programs.find(context, programs.optimizer_structure(optimizer)) if shared else None
    if loop is not None:  # one trace per optimizer class and setting: reset, not retrace
        loop.reset(fn, value, optimizer)
    else:
        structure = programs.optimizer_structure(optimizer) if shared else None
        loop = _Loop.build(fn, value, optimizer, rules, int(max_iters), compiled, jit_compile)
        if shared and loop.program is not None:
            _programs.add(context, structure, loop)
    t, code, path = loop.run(int(max_iters))
    seconds = time.perf_counter() - start
    return _result(fn, _who(optimizer), t, code, path, loop.program is not None, seconds, loop.note)


def _who(optimizer):
    """``(label, learning rate)`` of an optimizer, as its result names them."""
    return adapters.label(optimizer), adapters.learning_rate(optimizer)


def _result(fn, who, t, code, path, compiled, seconds, note):
    if code == EXPLODED:
        path = path[:-1]  # the exploded iteration made no update
    elif code == RUNNING and not np.all(np.isfinite(path[-1])):
        code = EXPLODED  # the last update overflowed; no iteration was left to see it
    final = path[-1]
    status = {EXPLODED: "exploded", RUNNING: "max_iters"}.get(code, "converged")
    with np.errstate(all="ignore"):
        final_loss = float(np.asarray(fn.fn(tf.constant(final))))
    return ConvergenceResult(
        status=status,
        iterations=t,
        path=path,
        final_loss=final_loss,
        distance=fn.distance_to_minimum(final) if np.all(np.isfinite(final)) else math.inf,
        criterion=stopping.CRITERIA.get(code),
        compiled=compiled,
        function=fn.name,
        optimizer=who[0],
        learning_rate=who[1],
        seconds=seconds,
        note=note,
    )


# ------------------------------------------------------------ tables
def run_grid(optimizers, function, learning_rates, *, on_result=None, side_by_side=True, **kwargs):
    """Run ``convergence_test`` for every optimizer and learning rate.

    Args:
        optimizers: registered names (``"gd,momentum,adam"`` or a list), or a
            dict ``{label: factory}`` where ``factory(learning_rate)`` returns a
            new optimizer.
        function: as for ``convergence_test``.
        learning_rates: a list of learning rates (or one) for every optimizer,
            or a dict ``{label: rate or list of rates}`` (e.g. tuned rates).
        on_result: optional callback ``on_result(label, learning_rate, result)``
            after each run (the CLI's progress bar).
        side_by_side: run the optimizers' learning rates side by side in one
            compiled program (default True; see below).
        **kwargs: passed to ``convergence_test`` (``init``, ``max_iters``, tolerances, ...).

    The optimlab optimizers' learning rates run side by side
    (:mod:`optimlab.lab.convergence.side_by_side`): one program holds every
    such run of the table, an optimizer's runs stacked along a leading axis
    (its group, updated by its own optimizer), each run with its own learning
    rate, state, stopping iteration and status, and each run's result equals
    the run computed alone, bit for bit. Where that cannot apply (an update
    that mixes a variable's entries, such as LARS, LAMB, Muon, NovoGrad, Adafactor,
    Prodigy, or a norm clip; an optimizer that is not an optimlab one), each
    run of that optimizer is its own call of one program traced once for it
    and reused across its learning rates (parameter, slots, ``iterations`` and
    hyperparameters reset), and the result's ``note`` says why; the others
    share the program without it. An optimizer given one learning rate runs
    alone too (no note). A run's ``seconds`` is its share of its program's
    time, tracing included.

    Returns:
        A dict ``{(label, learning_rate): ConvergenceResult}`` in run order.
    """
    check_bool("side_by_side", side_by_side)
    factories = factory.factories(optimizers)
    rates = _rates_per_optimizer(learning_rates, factories)
    results = {}
    cache = programs.ProgramCache()  # traced programs: the one of the runs side by side, those of runs alone
    fn = as_function(function)
    lrs = {label: [float(lr) for lr in rates[label]] for label in factories}
    together, notes = _side_by_side(factories, lrs, fn, cache, kwargs) if side_by_side else ({}, {})
    for label, make in factories.items():
        _interrupt.check()  # between optimizers: a Ctrl-C stops here
        for lr in lrs[label]:
            if label in together:
                result = together[label][lr]
            else:
                _interrupt.check()  # between runs: a Ctrl-C stops here
                result = convergence_test(make(lr), fn, _programs=cache, **kwargs)
                if notes.get(label):
                    result.note = "; ".join(filter(None, (result.note, notes[label])))
            results[(label, lr)] = result
            if on_result is not None:
                on_result(label, lr, result)
    return results


@dataclasses.dataclass
class _Group:
    """An optimizer's runs side by side: its label, factory, learning rates, its runs' names and
    hyperparameters given per run, and its optimizers (None once a failed attempt has used them)."""

    label: str
    make: object
    lrs: list
    who: list
    structure: tuple
    names: tuple
    runs: list = None

    def optimizers(self):
        """``(traced, runs)`` for :meth:`side_by_side.SideBySide.build` or ``reset``: new ones after an attempt."""
        if self.runs is None:
            self.runs = [adapters.resolve(self.make(lr)) for lr in self.lrs]
        runs, self.runs = self.runs, None
        return runs[0], runs


def _side_by_side(factories, lrs, fn, cache, kwargs):
    """``({label: {lr: ConvergenceResult}}, {label: note})``: the optimizers whose runs ran side by side, all in
    one program, and why the others could not (no note where nothing was tried: one rate, eager runs)."""
    settings = inspect.signature(convergence_test).bind(None, fn, **kwargs)
    settings.apply_defaults()
    options = dict(settings.arguments)
    if not options["compiled"]:
        return {}, {}
    dtype = _checked_settings(fn, *(options[k] for k in (
        "max_iters", "step_tol", "grad_tol", "optimum_tol", "explosion", "compiled", "jit_compile", "dtype")))
    max_iters = int(options["max_iters"])
    rules = stopping.Rules(options["step_tol"], options["grad_tol"], options["optimum_tol"], options["explosion"],
                           fn.minima)
    start = time.perf_counter()
    value = tf.cast(_initial_value(fn, options["init"], "float64"), dtype)
    rank = value.shape.rank + 1
    groups, notes = [], {}
    for label, make in factories.items():
        if len(set(lrs[label])) < 2 or len(set(lrs[label])) != len(lrs[label]):
            continue
        runs = [adapters.resolve(make(lr)) for lr in lrs[label]]
        if not isinstance(runs[0], keras.optimizers.Optimizer):
            continue
        structure = programs.optimizer_structure(runs[0])
        notes[label] = side_by_side.verdict(structure, dtype, rank)
        if not notes[label]:
            try:
                names = tuple(side_by_side.per_run_names(runs))
            except side_by_side.NotSideBySide as reason:
                notes[label] = str(reason)
                side_by_side.remember(structure, dtype, rank, notes[label])
                continue
            # their names and rates (_who) read before the first run's optimizer becomes the program's
            groups.append(_Group(label, make, lrs[label], [_who(opt) for opt in runs], structure, names, runs))
    together = {}
    batches = [groups] if groups else []  # the groups of one program; split where a program fails as a whole
    while batches:
        batch = batches.pop(0)
        try:
            program = _program_for(batch, fn, value, dtype, rules, max_iters, options["jit_compile"], cache)
        except side_by_side.NotSideBySide as failed:
            if failed.reasons is None and len(batch) > 1:  # which group broke it is not known: one by one
                batches.extend([group] for group in batch)
                continue
            reasons = failed.reasons if failed.reasons is not None else {0: str(failed)}
            for k, reason in reasons.items():
                notes[batch[k].label] = reason
                side_by_side.remember(batch[k].structure, dtype, rank, reason)
            survivors = [group for k, group in enumerate(batch) if k not in reasons]
            batches.extend([survivors] if survivors else [])
            continue
        iterations, codes, paths = program.run()
        seconds = (time.perf_counter() - start) / len(iterations)
        start = time.perf_counter()
        row = 0
        for group in batch:
            together[group.label] = {}
            for lr, who in zip(group.lrs, group.who):
                together[group.label][lr] = _result(fn, who, iterations[row], codes[row], paths[row], True, seconds,
                                                    "")
                row += 1
    return together, notes


def _program_for(groups, fn, value, dtype, rules, max_iters, jit_compile, cache):
    """The program of ``groups``' runs side by side, from the cache (reset) or traced (kept in the cache);
    raises :class:`side_by_side.NotSideBySide` where some or all of them cannot share it."""
    values = tf.stack([value] * sum(len(group.lrs) for group in groups))
    # every group's structure, run count and hyperparameters given per run: a program fits no other table
    context = ("side_by_side", tuple(value.shape), dtype, id(fn), fn.name, max_iters, rules, jit_compile,
               tuple((len(group.lrs), group.names) for group in groups))
    structure = ("side_by_side", tuple(group.structure[:2] for group in groups), repr(None))
    program = cache.find(context, structure)
    if program is not None:
        program.reset(fn, values, [group.optimizers() for group in groups])
        return program
    program = side_by_side.SideBySide.build(fn, values, [group.optimizers() for group in groups], rules, max_iters,
                                            jit_compile)
    return cache.add(context, structure, program)


def _as_rates(value):
    rates = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    for lr in rates:
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not 0 < lr < math.inf:
            raise ValueError(f"learning rates must be finite numbers > 0; got {lr!r} in {rates!r}")
    if not rates:
        raise ValueError("learning_rates must hold at least one learning rate; got none")
    return rates


def _rates_per_optimizer(learning_rates, factories):
    if not isinstance(learning_rates, dict):
        rates = _as_rates(learning_rates)
        return {label: rates for label in factories}
    missing = sorted(set(factories) - set(learning_rates))
    if missing:
        raise ValueError(f"learning_rates has no rate for optimizer(s) {missing}; it has {sorted(learning_rates)}")
    return {label: _as_rates(learning_rates[label]) for label in factories}


def results_table(results):
    """A DataFrame with one row per run: optimizer, learning_rate, status, iterations, losses, whether compiled,
    seconds, and the run's note (why it ran eagerly, or alone rather than side by side)."""
    rows = [
        {
            "optimizer": label,
            "learning_rate": lr,
            "status": r.status,
            "iterations": r.iterations,
            "final_loss": r.final_loss,
            "distance": r.distance,
            "compiled": r.compiled,
            "seconds": r.seconds,
            "note": r.note,
        }
        for (label, lr), r in results.items()
    ]
    return pd.DataFrame(rows)


def run_table(optimizers, function, learning_rates, **kwargs):
    """``results_table(run_grid(...))``: the guide's table for optimizers x learning rates."""
    return results_table(run_grid(optimizers, function, learning_rates, **kwargs))
