"""Seed 000's convergence test, compiled into one TensorFlow program.

``convergence_test(optimizer, function)`` minimizes ``function`` from ``init``
and reports whether the optimizer converged, exploded or ran out of
iterations, with the full parameter path. The seed's definitions are the
defaults: converged when the updated parameter equals its previous value,
exploded when the gradient is NaN or the parameter is no longer finite.

The whole loop is one ``tf.function`` around a ``tf.while_loop`` (no Python per
iteration), and the same iteration body can run eagerly (``compiled=False``),
giving the same iteration counts.

Example:
    >>> import optimlab
    >>> from optimlab.lab import convergence_test
    >>> r = convergence_test(optimlab.Adam(0.1), "quartic", init=2.0, max_iters=2000)
    >>> r.status, r.iterations
    ('converged', 1156)
"""

import contextlib
import dataclasses
import inspect
import math
import time

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from optimlab import _interrupt, registry
from optimlab._checks import check_bool, check_choice, check_nonnegative
from optimlab.lab.convergence.functions import as_function
from optimlab.lab.training.runner.loop import optimizer_structure

RUNNING, STEP, GRADIENT, OPTIMUM, EXPLODED = range(5)
_CRITERIA = {STEP: "step", GRADIENT: "gradient", OPTIMUM: "optimum"}
EXPLOSION_RULES = ("seed", "immediate")


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


# ------------------------------------------------------------ optimizers
def _takes_two_lists(apply_gradients):
    """True for seed 000's ``apply_gradients(grads, vars)``, False for ``(grads_and_vars)``."""
    try:
        params = inspect.signature(apply_gradients).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) >= 2


def _applier(optimizer):
    """A function ``apply(gradient, variable)`` for any supported optimizer."""
    apply_gradients = getattr(optimizer, "apply_gradients", None)
    if not callable(apply_gradients):
        raise TypeError(
            "optimizer must be a registered optimizer name, an optimlab or Keras optimizer, or an object "
            f"with apply_gradients(grads, vars); got {optimizer!r}"
        )
    if not isinstance(optimizer, keras.optimizers.Optimizer) and _takes_two_lists(apply_gradients):
        return lambda g, x: apply_gradients([g], [x])
    return lambda g, x: apply_gradients([(g, x)])


def _resolve_optimizer(optimizer):
    if isinstance(optimizer, str):
        return registry.get(optimizer)
    if isinstance(optimizer, keras.optimizers.Optimizer) and optimizer.built:
        raise ValueError(
            f"optimizer {optimizer.name!r} has already been built for other variables; "
            "pass a new optimizer to each convergence test"
        )
    return optimizer


def _label(optimizer):
    return getattr(optimizer, "name", None) or type(optimizer).__name__


def _learning_rate(optimizer):
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


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


def _make_step(function, x, apply, minima, step_tol, grad_tol, optimum_tol, explosion, start):
    """One iteration: gradient, explosion check, update, convergence check; returns a status code."""

    def step():
        with tf.GradientTape() as tape:
            loss = function.fn(x)
        g = tape.gradient(loss, x)
        param_bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(x)))
        if explosion == "seed":
            grad_bad = tf.reduce_any(tf.math.is_nan(g))
        else:
            grad_bad = tf.logical_not(tf.reduce_all(tf.math.is_finite(g)))

        def update():
            old = x.read_value()
            apply(g, x)
            new = x.read_value()
            return _status_code(old, new, g, minima, step_tol, grad_tol, optimum_tol, explosion, start)

        return tf.cond(tf.logical_or(param_bad, grad_bad), lambda: tf.constant(EXPLODED), update)

    return step


def _start_gradient_norm(fn, x):
    """The gradient's norm at the start: the scale a standstill's gradient is judged by."""
    with tf.GradientTape() as tape:
        loss = fn.fn(x)
    return tf.cast(tf.norm(tape.gradient(loss, x)), x.dtype)


def _status_code(old, new, g, minima, step_tol, grad_tol, optimum_tol, explosion, start):
    """The first criterion met after an update (RUNNING if none).

    A standstill counts as convergence only where the gradient has shrunk to a
    thousandth of its norm at the start (or is zero): an optimizer whose steps are
    too small to change a float far from a minimum, such as Prodigy while its
    step-size estimate grows from ``d0=1e-6``, has not converged; it runs on.
    """
    if step_tol == 0:
        step_done = tf.reduce_all(tf.equal(new, old))
    else:
        step_done = tf.norm(new - old) <= step_tol
    flat = tf.logical_or(tf.norm(g) <= 1e-3 * tf.cast(start, g.dtype), tf.reduce_all(tf.equal(g, tf.zeros_like(g))))
    step_done = tf.logical_and(step_done, flat)
    checks = [(STEP, step_done)]
    if grad_tol is not None:
        checks.append((GRADIENT, tf.norm(g) <= grad_tol))
    if optimum_tol is not None:
        gaps = [tf.norm(new - tf.constant(np.reshape(m, new.shape), new.dtype)) for m in minima]
        checks.append((OPTIMUM, tf.reduce_min(tf.stack(gaps)) <= optimum_tol))
    if explosion == "immediate":
        checks.insert(0, (EXPLODED, tf.logical_not(tf.reduce_all(tf.math.is_finite(new)))))
    code = tf.constant(RUNNING)
    for value, done in reversed(checks):
        code = tf.where(done, tf.constant(value), code)
    return code


def _eager_loop(step, x, max_iters):
    path = [x.numpy()]
    t, code = 0, RUNNING
    while code == RUNNING and t < max_iters:
        _interrupt.check()  # a Ctrl-C (inside the command line's graceful block) stops here
        t += 1
        code = int(step())
        path.append(x.numpy())
    return t, code, np.stack(path)


_STOP = []  # [tf.Variable(False)]: set to end a running compiled loop early (Ctrl-C)


def _stop_flag():
    if not _STOP:
        _STOP.append(tf.Variable(False, trainable=False, name="stop"))
    return _STOP[0]


def _compiled_program(step, x, max_iters, jit_compile):
    """The seed's loop as one ``tf.function``; it also ends when the stop flag is set (not under XLA,
    which reads the flag once: there a Ctrl-C waits for the loop's end)."""
    stop = _stop_flag()

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


@contextlib.contextmanager
def _eager_arithmetic():
    """Keep the eager float arithmetic while a compiled program is instantiated.

    Grappler's arithmetic optimizer rewrites, e.g., ``pow(x, 3)`` as ``x * x * x``,
    which rounds differently; switching it off here makes the compiled loop
    follow the eager loop bit for bit. The process-wide option is restored after.
    """
    before = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({"arithmetic_optimization": False})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options({"arithmetic_optimization": before.get("arithmetic_optimization", True)})


def _python_state(obj):
    """A shallow snapshot of a plain object's attributes (lists copied) to detect Python-side state."""
    state = getattr(obj, "__dict__", None)
    if state is None:
        return None
    return {k: (v, list(v) if isinstance(v, list) else None) for k, v in state.items()}


def _state_changed(obj, snapshot):
    now = obj.__dict__
    if now.keys() != snapshot.keys():
        return True
    for key, (value, items) in snapshot.items():
        if now[key] is not value:
            return True
        if items is not None and (len(items) != len(value) or any(a is not b for a, b in zip(items, value))):
            return True
    return False


def _restore(obj, snapshot):
    obj.__dict__.clear()
    for key, (value, items) in snapshot.items():
        if items is not None:
            value[:] = items
        obj.__dict__[key] = value


def _trace(program, optimizer):
    """Trace ``program``; returns a note (why not) when the optimizer cannot run compiled.

    Keras optimizers trace as is. For any other object, tracing must leave its
    Python attributes untouched: an object that keeps state in Python (seed
    000's Momentum stores ``self.change``) would freeze that state into the
    graph, so it runs eagerly instead.
    """
    keras_optimizer = isinstance(optimizer, keras.optimizers.Optimizer)
    snapshot = None if keras_optimizer else _python_state(optimizer)
    try:
        program.get_concrete_function()
    except Exception as error:  # noqa: BLE001 - any tracing failure means: run eagerly
        if snapshot is not None:
            _restore(optimizer, snapshot)
        return f"ran eagerly: the optimizer could not be traced ({type(error).__name__}: {error})"
    if snapshot is not None and _state_changed(optimizer, snapshot):
        _restore(optimizer, snapshot)
        return "ran eagerly: the optimizer keeps state in Python attributes, which a compiled loop would freeze"
    return ""


def _float_dtype(dtype):
    try:
        name = tf.as_dtype(dtype).name
    except TypeError:
        name = repr(dtype)
    return check_choice("dtype", name, ("float16", "bfloat16", "float32", "float64"))


def _check_tol(name, value):
    if value is not None:
        check_nonnegative(name, value)


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
    """Minimize ``function`` from ``init`` and report how the optimizer fared (seed 000's test).

    Use it to see whether and how fast an optimizer and learning rate reach a
    minimum from a poor start, and to plot the path taken.

    At each iteration ``t = 1..max_iters`` the gradient is taken with
    ``tf.GradientTape`` at the current parameter, the run explodes if the
    gradient is NaN or the parameter is not finite, otherwise the optimizer
    updates the parameter and the run converges when the new value equals the
    old one (or when a tolerance below is met).

    Args:
        optimizer: an optimlab or Keras optimizer (new, not yet built), a
            registered optimizer name (its defaults), or any object with seed
            000's ``apply_gradients(grads, vars)`` (two lists) or Keras 2's
            ``apply_gradients(grads_and_vars)``.
        function: a registered function name (see ``optimlab functions``), a
            ``TestFunction``, or any TensorFlow callable of the parameter.
        init: the start: a number (filling every coordinate of an N-D function)
            or an array of the function's shape; None uses the function's
            standard start (default 2.0, the seed's).
        max_iters: the maximum number of iterations (default 2000).
        step_tol: converged when ``|x_t - x_(t-1)| <= step_tol`` (default 0:
            exact equality, the seed's criterion).
        grad_tol: also converged when the norm of the gradient applied at
            iteration ``t`` is ``<= grad_tol`` (default None: off).
        optimum_tol: also converged when ``x_t`` is within ``optimum_tol`` of a
            known minimum (default None: off; needs a function with known minima).
        explosion: ``"seed"`` (default): exploded at ``t`` when the gradient at
            ``t`` is NaN or the parameter entering ``t`` is not finite; the
            seed's check, which sees a float32 overflow one iteration after the
            infinite gradient that caused it. ``"immediate"``: exploded at the
            iteration whose gradient or updated parameter is not finite.
        compiled: run the loop as one compiled TensorFlow program (default
            True). Objects keeping Python state fall back to eager, with a note.
        jit_compile: compile with XLA (default False). XLA may fuse and
            reorder float arithmetic, so iteration counts can differ from eager.
        dtype: the parameter's dtype (default float32, the seed's).

    Returns:
        A ``ConvergenceResult``.

    Example:
        >>> import optimlab
        >>> r = convergence_test(optimlab.GradientDescent(0.1), "quartic")
        >>> r.status, r.iterations
        ('exploded', 6)
    """
    fn = as_function(function)
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
    value = _initial_value(fn, init, "float64")
    optimizer = _resolve_optimizer(optimizer)
    apply = _applier(optimizer)

    start = time.perf_counter()
    key = None
    if _programs is not None and compiled and isinstance(optimizer, keras.optimizers.Optimizer):
        key = (id(fn), fn.name, dtype, int(max_iters), step_tol, grad_tol, optimum_tol, explosion, jit_compile,
               optimizer_structure(optimizer)[:2])
    if key in (_programs or {}):
        x, program, traced, g0 = _programs[key]  # one trace per optimizer class and setting: reset, not retrace
        x.assign(tf.cast(value, dtype))
        optimizer.build([x])
        for mine, fresh in zip(traced.variables, optimizer.variables, strict=True):
            mine.assign(fresh)
        g0.assign(_start_gradient_norm(fn, x))
        note = ""
    else:
        x = tf.Variable(tf.cast(value, dtype), name="x")
        if isinstance(optimizer, keras.optimizers.Optimizer):
            optimizer.build([x])
        g0 = tf.Variable(_start_gradient_norm(fn, x), name="start_gradient_norm")
        step = _make_step(fn, x, apply, fn.minima, step_tol, grad_tol, optimum_tol, explosion, g0)
        note = ""
        if compiled:
            program = _compiled_program(step, x, int(max_iters), jit_compile)
            note = _trace(program, optimizer)
            if key is not None and not note:
                _programs[key] = (x, program, optimizer, g0)
    if compiled and not note:
        with _eager_arithmetic():
            t, code, path = (np.asarray(v) for v in _interrupt.call(program, stop=_stop_flag()))
        t, code, path = int(t), int(code), path[: int(t) + 1]
    else:
        t, code, path = _eager_loop(step, x, int(max_iters))
    seconds = time.perf_counter() - start
    return _result(fn, optimizer, t, code, path, compiled and not note, seconds, note)


def _result(fn, optimizer, t, code, path, compiled, seconds, note):
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
        criterion=_CRITERIA.get(code),
        compiled=compiled,
        function=fn.name,
        optimizer=_label(optimizer),
        learning_rate=_learning_rate(optimizer),
        seconds=seconds,
        note=note,
    )


# ------------------------------------------------------------ tables
def run_grid(optimizers, function, learning_rates, *, on_result=None, **kwargs):
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
        **kwargs: passed to ``convergence_test`` (``init``, ``max_iters``, tolerances, ...).

    The compiled program of an optimizer is traced once and reused across its
    learning rates (the parameter, slots, ``iterations`` and hyperparameters are
    reset; hyperparameters are variables), so a table costs one trace per optimizer.

    Returns:
        A dict ``{(label, learning_rate): ConvergenceResult}`` in run order.
    """
    factories = optimizer_factories(optimizers)
    rates = _rates_per_optimizer(learning_rates, factories)
    results = {}
    programs = {}  # traced programs, reused across the learning rates of an optimizer
    fn = as_function(function)
    for label, factory in factories.items():
        for lr in rates[label]:
            _interrupt.check()  # between runs: a Ctrl-C stops here
            result = convergence_test(factory(float(lr)), fn, _programs=programs, **kwargs)
            results[(label, float(lr))] = result
            if on_result is not None:
                on_result(label, float(lr), result)
    return results


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


def optimizer_factories(optimizers):
    """``{label: factory(learning_rate)}`` from names (a list or comma-separated string) or a dict."""
    if isinstance(optimizers, dict):
        for label, factory in optimizers.items():
            if not callable(factory):
                raise TypeError(f"optimizers[{label!r}] must be a callable of the learning rate; got {factory!r}")
        return dict(optimizers)
    names = optimizers.split(",") if isinstance(optimizers, str) else list(optimizers)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise ValueError(f"optimizers must name at least one optimizer; got {optimizers!r}")
    for name in names:
        registry.info(name)  # ValueError listing the valid names
    return {name: (lambda lr, name=name: registry.get(name, learning_rate=lr)) for name in names}


def results_table(results):
    """A DataFrame with one row per run: optimizer, learning_rate, status, iterations, losses."""
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
        }
        for (label, lr), r in results.items()
    ]
    return pd.DataFrame(rows)


def run_table(optimizers, function, learning_rates, **kwargs):
    """``results_table(run_grid(...))``: the seed's table for optimizers x learning rates."""
    return results_table(run_grid(optimizers, function, learning_rates, **kwargs))


def parse_numbers(text, name):
    """Floats from a comma-separated string such as ``"1e-3,1e-2"``; ValueError naming ``name``."""
    try:
        values = [float(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{name} must be comma-separated numbers, e.g. 1e-3,1e-2; got {text!r}") from None
    if not values:
        raise ValueError(f"{name} must hold at least one number; got {text!r}")
    return values
