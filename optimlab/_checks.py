"""Argument checks shared by every constructor: one message format everywhere.

Messages name the argument, the allowed range and the bad value, e.g.
``beta_1 must be in [0, 1); got 1.2``.
"""

import math
import numbers
import sys

import numpy as np

from optimlab._names import did_you_mean  # noqa: F401 - TensorFlow-free, for the command line too


_KINDS = "a number, a scalar tensor, a zero-argument callable or a LearningRateSchedule"


def _as_python_number(name, value, kinds=_KINDS):
    """The Python number behind ``value``, or None when it is not a plain number.

    Python and NumPy numbers, 0-d NumPy arrays and eager scalar tensors count as
    numbers; variables, callables, schedules and symbolic tensors do not (they
    are checked when they are used, not here). Booleans are not numbers.
    """
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {kinds}, not a bool; got {value!r}")
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be {kinds}; got an array of shape {value.shape} and dtype {value.dtype}: {value!r}")
        return float(value)
    tf = _tensorflow()
    if tf is not None and isinstance(value, tf.Tensor) and not isinstance(value, tf.Variable) and tf.executing_eagerly():
        if value.shape.rank != 0 or not (value.dtype.is_floating or value.dtype.is_integer):
            raise TypeError(f"{name} must be {kinds}; got a tensor of shape {value.shape} and dtype {value.dtype.name}")
        return float(value.numpy())
    return None


def _tensorflow():
    """TensorFlow if it is loaded, else None: a value cannot be a tensor before TensorFlow is imported.

    These checks run before TensorFlow too (the command's values, the lab's report), so they never import it.
    """
    return sys.modules.get("tensorflow")


def _is_deferred(value):
    """Values read at each step (variables, callables, schedules, symbolic tensors): checked when used."""
    tf = _tensorflow()
    tensor = tf is not None and isinstance(value, (tf.Variable, tf.Tensor))
    return tensor or callable(value) or hasattr(value, "dtype") and hasattr(value, "assign")


def check_range(name, value, low=None, high=None, low_open=False, high_open=False, dynamic=True):
    """Raise ValueError unless ``low <= value <= high`` (with open ends as asked).

    ``value`` is a number (Python, NumPy, 0-d array or eager scalar tensor). With
    ``dynamic=True`` (hyperparameters) variables, callables and schedules pass,
    to be read at each step; anything else (bool, string, None, list...) is a
    TypeError.
    """
    kinds = _KINDS if dynamic else "a number"
    number = _as_python_number(name, value, kinds)
    if number is None:
        if dynamic and _is_deferred(value):
            return value
        raise TypeError(f"{name} must be {kinds}; got {type(value).__name__} {value!r}")
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    bad = not math.isfinite(number)
    if low is not None:
        bad = bad or number < low or (low_open and number == low)
    if high is not None:
        bad = bad or number > high or (high_open and number == high)
    if bad:
        raise ValueError(f"{name} must be a finite number in {left}{lo}, {hi}{right}; got {value!r}")
    return value


def check_int(name, value, low=None, high=None):
    """An integer (not a bool) in ``[low, high]`` (either end may be None): step counts and periods.

    Returns the value as a Python ``int``. A value of another type is a
    TypeError, an integer out of range a ValueError; both messages read
    ``NAME must be an integer >= LOW; got VALUE`` (or ``<= HIGH``, ``in [LOW, HIGH]``).
    """
    if low is not None and high is not None:
        allowed = f"an integer in [{low}, {high}]"
    elif low is not None:
        allowed = f"an integer >= {low}"
    elif high is not None:
        allowed = f"an integer <= {high}"
    else:
        allowed = "an integer"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {allowed}; got {type(value).__name__} {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must be {allowed}; got {value!r}")
    return int(value)


def check_unit_interval(name, value):
    """Decay rates such as ``beta_1``: in [0, 1)."""
    return check_range(name, value, 0.0, 1.0, high_open=True)


def check_nonnegative(name, value, dynamic=True):
    return check_range(name, value, 0.0, dynamic=dynamic)


def check_positive(name, value, dynamic=True):
    return check_range(name, value, 0.0, low_open=True, dynamic=dynamic)


def check_choice(name, value, allowed):
    if value not in allowed:
        raise ValueError(f"{name} must be one of {sorted(map(str, allowed))}; got {value!r}"
                         f"{did_you_mean(value, allowed)}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return value
