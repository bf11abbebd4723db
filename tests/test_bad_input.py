"""Bad input, for every registered optimizer: every constructor argument and every ``apply`` input.

Each argument is tried with NaN, inf, a negative number, a bool, a string, None,
a list and a 0-d array. A value the argument does not allow must raise
``ValueError`` or ``TypeError`` whose message names the argument, shows the value
and says what is allowed ("must ..."); for ``apply``, the variables, every
optimizer variable (slots, accumulators, ``iterations``) stay unchanged.

Allowed values are read from each argument's default (a bool argument takes
bools, an argument defaulting to None takes None, a negative default allows
negative numbers, an infinite one inf), plus the few listed in ``ALSO_ALLOWED``.
"""

import inspect
import math

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab.optimizer import Optimizer

ENTRIES = optimlab.entries()
IDS = [entry.name for entry in ENTRIES]

BAD = {
    "nan": float("nan"),
    "inf": float("inf"),
    "negative": -1.0,
    "bool": True,
    "string": "x",
    "None": None,
    "list": [0.1],
    "0-d array": np.array(float("nan")),
}
# Base-class arguments every optimizer takes (besides its own), with their defaults.
BASE_DEFAULTS = {
    "learning_rate": 0.001,
    "clipvalue": None,
    "clipnorm": None,
    "global_clipnorm": None,
    "weight_decay": None,
    "use_ema": False,
    "ema_momentum": 0.99,
    "ema_overwrite_frequency": None,
    "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
    "gradient_aggregator": None,
    "gradient_transformers": None,
    "skip_nonfinite": False,
    "fused": None,
}
ALSO_ALLOWED = {("fused", "bool"), ("name", "string"), ("name", "None"), ("weight_decay", "None")}


def constructor_arguments(entry):
    params = inspect.signature(entry.cls.__init__).parameters
    own = {k: p.default for k, p in params.items() if k != "self" and p.kind == p.POSITIONAL_OR_KEYWORD}
    return {**BASE_DEFAULTS, **own}


def allowed(arg, default, label):
    value = BAD[label]
    if (arg, label) in ALSO_ALLOWED:
        return True
    if label == "bool":
        return isinstance(default, bool)
    if label == "None":
        return default is None
    if label == "negative":
        return isinstance(default, (int, float)) and not isinstance(default, bool) and default < 0
    if label == "inf":
        return isinstance(default, float) and math.isinf(default)
    return value is default


def shown(value, message):
    """Whether ``message`` shows ``value`` (its repr, or its str for arrays)."""
    return repr(value) in message or str(value) in message


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_constructor_argument_rejects_bad_values_with_a_clear_message(entry):
    problems = []
    for arg, default in constructor_arguments(entry).items():
        for label, value in BAD.items():
            if allowed(arg, default, label):
                continue
            try:
                entry.cls(**{arg: value})
            except (ValueError, TypeError) as error:
                message = str(error)
                if arg not in message or not shown(value, message) or "must" not in message:
                    problems.append(f"{arg}={label}: unclear message {message!r}")
            else:
                problems.append(f"{arg}={label}: accepted")
    assert not problems, "\n".join(problems)


# ------------------------------------------------------------------ apply inputs
def _built(entry, **extra):
    x = tf.Variable(np.linspace(-1.0, 1.0, 6).reshape(2, 3))
    y = tf.Variable([0.5, -0.5], dtype=tf.float64)
    opt = entry.cls(**{**entry.quadratic.kwargs, **extra})
    opt.apply_gradients([(tf.ones((2, 3), tf.float64), x), (tf.ones(2, tf.float64), y)])
    return opt, x, y


def _state(opt, variables):
    return [v.numpy().copy() for v in list(variables) + list(opt.variables)]


def _unchanged(opt, variables, before):
    after = _state(opt, variables)
    return len(before) == len(after) and all(np.array_equal(a, b, equal_nan=True) for a, b in zip(before, after))


def bad_applies(x, y):
    """``(label, call(opt), expected error, words the message must hold)``."""
    g = tf.ones((2, 3), tf.float64)
    good = tf.ones(2, tf.float64)
    sparse = lambda index: tf.IndexedSlices(tf.ones((1, 3), tf.float64), tf.constant([index]), tf.constant([2, 3]))  # noqa: E731
    return [
        ("grad string", lambda o: o.apply_gradients([("x", x), (good, y)]), TypeError, ["grads[0]", "'x'", "must"]),
        ("grad bool", lambda o: o.apply_gradients([(True, x), (good, y)]), TypeError, ["grads[0]", "True", "must"]),
        ("grad list", lambda o: o.apply_gradients([([0.1], x), (good, y)]), ValueError, ["grads[0]", "(1,)", "must"]),
        ("grad 0-d array", lambda o: o.apply_gradients([(np.array(0.5), x), (good, y)]), ValueError, ["grads[0]", "shape ()", "must"]),
        ("grads all None", lambda o: o.apply_gradients([(None, x), (None, y)]), ValueError, ["No gradients", "at least one"]),
        ("sparse index -1", lambda o: o.apply_gradients([(sparse(-1), x), (good, y)]), ValueError, ["grads[0]", "[-1]", "outside"]),
        ("sparse index 2", lambda o: o.apply_gradients([(sparse(2), x), (good, y)]), ValueError, ["grads[0]", "[2]", "outside"]),
        ("variable string", lambda o: o.apply([g, good], ["x", y]), TypeError, ["variables[0]", "'x'", "must"]),
        ("variable None", lambda o: o.apply([g, good], [None, y]), TypeError, ["variables[0]", "None", "must"]),
        ("variable list", lambda o: o.apply([g, good], [[0.1], y]), TypeError, ["variables[0]", "[0.1]", "must"]),
        ("variable 0-d array", lambda o: o.apply([g, good], [np.array(1.0), y]), TypeError, ["variables[0]", "array(1.)", "must"]),
        ("fewer gradients", lambda o: o.apply([g], [x, y]), ValueError, ["same length", "1 gradients", "2 variables"]),
        ("not pairs", lambda o: o.apply_gradients([g, good]), TypeError, ["grads_and_vars", "pairs"]),
        ("name", lambda o: o.apply_gradients([(g, x), (good, y)], name=5), TypeError, ["name", "must"]),
        ("aggregate flag", lambda o: o.apply_gradients([(g, x), (good, y)], experimental_aggregate_gradients="no"), TypeError, ["experimental_aggregate_gradients", "'no'", "must"]),
        ("unknown variable", lambda o: o.apply_gradients([(g, tf.Variable(tf.zeros((2, 3), tf.float64)))]), ValueError, ["Unknown variable"]),
    ]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_apply_input_is_checked_before_anything_changes(entry):
    opt, x, y = _built(entry)
    problems = []
    for label, call, error, words in bad_applies(x, y):
        before = _state(opt, [x, y])
        try:
            call(opt)
        except error as raised:
            missing = [w for w in words if w not in str(raised)]
            if missing:
                problems.append(f"{label}: message {str(raised)!r} lacks {missing}")
        except Exception as raised:  # noqa: BLE001 - any other error is a finding
            problems.append(f"{label}: {type(raised).__name__} instead of {error.__name__}: {raised}")
        else:
            problems.append(f"{label}: accepted")
        if not _unchanged(opt, [x, y], before):
            problems.append(f"{label}: state changed")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_nonfinite_gradients_are_skipped_with_skip_nonfinite(entry):
    opt, x, y = _built(entry, skip_nonfinite=True)
    for bad in (np.nan, np.inf, -np.inf):
        before = _state(opt, [x, y])
        opt.apply_gradients([(tf.fill((2, 3), tf.constant(bad, tf.float64)), x), (tf.ones(2, tf.float64), y)])
        after = _state(opt, [x, y])
        changed = [i for i, (a, b) in enumerate(zip(before, after)) if not np.array_equal(a, b)]
        # only the skip counter moves
        assert [opt.variables[i - 2].path for i in changed] == [opt._nonfinite_steps.path]
    assert int(opt.nonfinite_steps) == 3 and int(opt.iterations) == 1


def test_base_defaults_listed_here_are_the_base_class_defaults():
    params = inspect.signature(Optimizer.__init__).parameters
    for arg, default in BASE_DEFAULTS.items():
        if arg in params:
            assert params[arg].default == default, arg
