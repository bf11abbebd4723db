"""Any optimizer in the convergence test: Keras 3 and optimlab ones, and Keras 2's contract.

The test takes an optimlab or Keras optimizer, a registered name, or any
object with an ``apply_gradients`` method: the TensorFlow guide "Optimizers
with Core APIs" writes its optimizers as plain objects with
``apply_gradients(grads, vars)`` (two lists), Keras 2's optimizer contract is
``apply_gradients(grads_and_vars)``. :func:`applier` turns each into one
``apply(gradient, variable)``; :func:`check_traceable` tells whether the object
can run inside a compiled loop (a plain object that keeps state in Python
attributes, such as the guide's Momentum with ``self.change``, cannot).
"""

import inspect

import keras
import numpy as np

from optimlab.lab import factory


def resolve(optimizer):
    """A registered name becomes a new optimizer at its defaults; an already built Keras optimizer is refused."""
    if isinstance(optimizer, str):
        return factory.make_optimizer(optimizer, {})
    if isinstance(optimizer, keras.optimizers.Optimizer) and optimizer.built:
        raise ValueError(
            f"optimizer {optimizer.name!r} has already been built for other variables; "
            "pass a new optimizer to each convergence test"
        )
    return optimizer


def _takes_two_lists(apply_gradients):
    """True for the guide's ``apply_gradients(grads, vars)``, False for Keras 2's ``(grads_and_vars)``."""
    try:
        params = inspect.signature(apply_gradients).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [
        p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(required) >= 2


def applier(optimizer):
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


def label(optimizer):
    return getattr(optimizer, "name", None) or type(optimizer).__name__


def learning_rate(optimizer):
    """The optimizer's learning rate as a float, or None when it has none that reads as a number."""
    try:
        return float(np.asarray(optimizer.learning_rate))
    except (AttributeError, TypeError, ValueError):
        return None


# ------------------------------------------------------------ Python-side state
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


def check_traceable(program, optimizer):
    """Trace ``program``; returns a note (why not) when the optimizer cannot run compiled, else ``""``.

    Keras optimizers trace as is. For any other object, tracing must leave its
    Python attributes untouched: an object that keeps state in Python (the
    guide's Momentum stores ``self.change``) would freeze that state into the
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
