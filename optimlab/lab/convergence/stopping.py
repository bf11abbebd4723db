"""When a convergence test stops: status codes, the criteria after an update, the explosion rules, the stop flag.

Shared by the one-run loop (:mod:`optimlab.lab.convergence.runner`) and the
many-runs program (:mod:`optimlab.lab.convergence.side_by_side`), so both judge
a run with the same operations.
"""

import dataclasses

import numpy as np
import tensorflow as tf

RUNNING, STEP, GRADIENT, OPTIMUM, EXPLODED = range(5)
CRITERIA = {STEP: "step", GRADIENT: "gradient", OPTIMUM: "optimum"}
EXPLOSION_RULES = ("seed", "immediate")


@dataclasses.dataclass(frozen=True)
class Rules:
    """When a run stops: :func:`convergence_test`'s tolerances and explosion rule, the function's minima."""

    step_tol: float
    grad_tol: object
    optimum_tol: object
    explosion: str
    minima: tuple


def _over_entries(reduce, v, rows):
    """``reduce`` over all of ``v``'s entries; with ``rows``, over each row's (one value per run of a stack)."""
    if not rows:
        return reduce(v)
    return reduce(tf.reshape(v, (v.shape[0], -1)), axis=1)


def norm(v, rows=False):
    """Euclidean norm of ``v`` (``tf.norm``), or of each row of a stack."""
    return _over_entries(tf.norm, v, rows)


def exploded_before_update(x, g, rules, rows=False):
    """Whether the iteration explodes before its update: parameter not finite, or gradient NaN ("seed")
    or not finite ("immediate"); with ``rows``, one answer per run of a stack."""
    param_bad = tf.logical_not(_over_entries(tf.reduce_all, tf.math.is_finite(x), rows))
    if rules.explosion == "seed":
        grad_bad = _over_entries(tf.reduce_any, tf.math.is_nan(g), rows)
    else:
        grad_bad = tf.logical_not(_over_entries(tf.reduce_all, tf.math.is_finite(g), rows))
    return tf.logical_or(param_bad, grad_bad)


def start_gradient_norm(fn, x):
    """The gradient's norm at ``x`` (a variable, or a tensor): the scale a standstill's gradient is judged by."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn.fn(x)
    return tf.cast(tf.norm(tape.gradient(loss, x)), x.dtype)


def status_code(old, new, g, rules, start, rows=False):
    """The first criterion met after an update (RUNNING if none); with ``rows``, one code per run of a stack.

    A standstill counts as convergence only where the gradient has shrunk to a
    thousandth of its norm at the start (or is zero): an optimizer whose steps are
    too small to change a float far from a minimum, such as Prodigy while its
    step-size estimate grows from ``d0=1e-6``, has not converged; it runs on.
    """
    every = lambda v: _over_entries(tf.reduce_all, v, rows)  # noqa: E731
    if rules.step_tol == 0:
        step_done = every(tf.equal(new, old))
    else:
        step_done = norm(new - old, rows) <= rules.step_tol
    flat = tf.logical_or(norm(g, rows) <= 1e-3 * tf.cast(start, g.dtype), every(tf.equal(g, tf.zeros_like(g))))
    step_done = tf.logical_and(step_done, flat)
    checks = [(STEP, step_done)]
    if rules.grad_tol is not None:
        checks.append((GRADIENT, norm(g, rows) <= rules.grad_tol))
    if rules.optimum_tol is not None:
        shape = new.shape[1:] if rows else new.shape
        gaps = [norm(new - tf.constant(np.reshape(m, shape), new.dtype), rows) for m in rules.minima]
        checks.append((OPTIMUM, tf.reduce_min(tf.stack(gaps), axis=0) <= rules.optimum_tol))
    if rules.explosion == "immediate":
        checks.insert(0, (EXPLODED, tf.logical_not(every(tf.math.is_finite(new)))))
    code = tf.constant(RUNNING)
    for value, done in reversed(checks):
        code = tf.where(done, tf.constant(value), code)
    return code


_STOP = []  # [tf.Variable(False)]: set to end a running compiled loop early (Ctrl-C)


def stop_flag():
    """The flag a Ctrl-C sets to end a running compiled loop (made once)."""
    if not _STOP:
        _STOP.append(tf.Variable(False, trainable=False, name="stop"))
    return _STOP[0]
