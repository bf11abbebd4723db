"""Your own problem: check it, describe it for records, load its data.

A :class:`~optimlab.lab.training.problems.Problem` needs three things, and
gets a ``ValueError``/``TypeError`` naming what is wrong when one is missing:

* ``model``: a built-in name or a function of no arguments returning a fresh
  ``keras.Model`` (called after the run's seed is set: paired initial weights);
* ``data``: train and test splits as NumPy arrays or finite
  ``tf.data.Dataset`` s of ``(x, y)``, or a function returning them (a
  validation split is cut from the training rows when none is given);
* ``loss``: ``mse``, ``crossentropy``, ``mean_output`` or a function
  ``loss(y_true, y_pred)``; required with your own data (no silent MSE).

``metrics`` default to the one that fits the loss (:func:`default_metrics`:
``accuracy`` for crossentropy, ``mae`` for mse, none otherwise; ``mae`` with
class labels or ``accuracy`` without them is refused); the budget
(``epochs``, ``batch_size``) and the options have defaults. That model, data,
loss and metrics fit together (output units, label range, input shape) is
checked by one step on one batch before any run
(:func:`optimlab.lab.training.runner.loop.preflight`).

From the command line, ``--task package.module:attribute`` names a
Problem or a function returning one (``problems.get``); ``--optimizers
package.module:Class`` names an optimizer class the same way.

Example:
    >>> import keras, numpy as np
    >>> from optimlab.lab import Problem
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(200, 3)).astype("float32"), rng.normal(size=(200, 1)).astype("float32")
    >>> p = Problem(name="toy", model=lambda: keras.Sequential([keras.layers.Dense(1)]),
    ...             data=((x[:150], y[:150]), (x[150:], y[150:])), loss="mse", epochs=3)
    >>> load(p, 0.2, False).x_valid.shape
    (30, 3)
"""

import dataclasses
import functools
import importlib
import math
import numbers

import numpy as np

from optimlab.lab.training.problems.data import VALID_SEED, Data, holdout, standardize_inputs

LOSSES = ("mse", "crossentropy", "mean_output")
METRICS = ("mae", "accuracy")
BUILTIN_MODELS = ("mlp", "linear", "cnn")


def import_object(path, what):
    """``"package.module:attribute"`` -> the attribute; ValueError naming ``what`` when it cannot be found."""
    module_name, sep, attribute = path.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"{what} must be 'package.module:attribute'; got {path!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"{what} {path!r}: cannot import module {module_name!r} ({error})") from error
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ValueError(f"{what} {path!r}: module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def metric_name(metric):
    return metric if isinstance(metric, str) else getattr(metric, "__name__", type(metric).__name__)


def describe_value(value):
    """A JSON-able name (no memory addresses): strings as they are, functions and classes as ``module:qualname``."""
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return value
    if isinstance(value, (list, tuple)):
        return [describe_value(v) for v in value]
    if isinstance(value, functools.partial):
        args = [repr(a) for a in value.args] + [f"{k}={v!r}" for k, v in value.keywords.items()]
        return f"{describe_value(value.func)}({', '.join(args)})"
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None) or type(value).__qualname__
    return f"{module}:{name}" if module else name


def describe(problem):
    """JSON-able metadata of ``problem`` (no arrays: data given as arrays shows as ``"arrays"``).

    Fields marked ``metadata={"recorded": False}`` (the ``note``) are left out, so records stay as they were.
    """
    meta = {}
    for field in dataclasses.fields(problem):
        if not field.metadata.get("recorded", True):
            continue
        value = getattr(problem, field.name)
        if field.name == "data" and value is not None and not callable(value):
            value = "arrays"
        meta[field.name] = describe_value(value)
    meta["metric"] = problem.metric
    meta["metrics"] = [metric_name(m) for m in problem.metrics]
    return meta


def _check_name_or_function(value, names, allowed, not_callable=None):
    """Raise unless ``value`` is one of ``names`` or callable.

    ``allowed`` begins both messages (``"; got <value>"`` follows); ``not_callable``,
    when given, is the whole TypeError message instead. Example::

        _check_name_or_function("hinge", LOSSES, "loss must be one of [...]")  # ValueError
    """
    if isinstance(value, str):
        if value not in names:
            raise ValueError(f"{allowed}; got {value!r}")
    elif not callable(value):
        raise TypeError(not_callable or f"{allowed}; got {value!r}")


def default_metrics(loss):
    """The metrics that fit ``loss`` when none are given: accuracy for crossentropy, mae for mse, none otherwise."""
    return {"crossentropy": ("accuracy",), "mse": ("mae",)}.get(loss, ()) if isinstance(loss, str) else ()


def _check_loss(problem):
    """A loss is required with your own data (no silent MSE), and must be a known name or a function."""
    if problem.loss is None:
        if problem.data is None:
            return  # a built-in problem's data with no loss: refused before any run (loop.preflight)
        raise ValueError(f"loss is required with your own data: one of {list(LOSSES)} ('mse' for real-valued "
                         "targets, 'crossentropy' for class labels) or a function loss(y_true, y_pred); got None")
    _check_name_or_function(problem.loss, LOSSES,
                            f"loss must be one of {list(LOSSES)} or a function loss(y_true, y_pred)")


def _check_metric_fits(metric, loss):
    """``mae`` needs real-valued targets (loss mse), ``accuracy`` class labels (crossentropy); a function fits any."""
    if not isinstance(metric, str) or callable(loss) or loss is None:
        return
    if metric == "mae" and loss != "mse":
        raise ValueError(f"metrics: 'mae' compares real-valued targets with the outputs, which loss={loss!r} "
                         f"does not have; use {list(default_metrics(loss))} (the default for {loss!r}) or a function")
    if metric == "accuracy" and loss != "crossentropy":
        raise ValueError(f"metrics: 'accuracy' needs class labels and one logit per class (loss='crossentropy'); "
                         f"loss={loss!r} has none: use {list(default_metrics(loss))} (the default for {loss!r}) "
                         "or a function")


def check_problem(problem):
    """Raise ValueError/TypeError naming the first missing or bad part of ``problem``."""
    if not isinstance(problem.name, str) or not problem.name or "/" in problem.name or ":" in problem.name:
        raise ValueError(f"name must be a non-empty string without '/' or ':' (it names the records' folder); "
                         f"got {problem.name!r}")
    _check_name_or_function(
        problem.model,
        BUILTIN_MODELS,
        f"model must be one of {list(BUILTIN_MODELS)} or a function returning a keras.Model",
        f"model must be a function of no arguments returning a keras.Model (or one of {list(BUILTIN_MODELS)}); "
        f"got {type(problem.model).__name__}",
    )
    _check_loss(problem)
    if isinstance(problem.metrics, (str, bytes)) or not isinstance(problem.metrics, (list, tuple)):
        raise TypeError(f"metrics must be a list of names {list(METRICS)} or functions; got {problem.metrics!r}")
    for metric in problem.metrics:
        _check_name_or_function(metric, METRICS, f"metrics must hold names in {list(METRICS)} or functions")
        _check_metric_fits(metric, problem.loss)
    if isinstance(problem.epochs, bool) or not isinstance(problem.epochs, numbers.Integral) or problem.epochs < 1:
        raise ValueError(f"epochs must be a positive integer; got {problem.epochs!r}")
    batch = problem.batch_size
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, numbers.Integral) or batch < 1):
        raise ValueError(f"batch_size must be a positive integer or None (full batch); got {batch!r}")
    if not (isinstance(problem.mixup, numbers.Real) and math.isfinite(problem.mixup) and problem.mixup >= 0):
        raise ValueError(f"mixup must be a finite number >= 0 (the Beta(alpha, alpha) parameter; 0: off); "
                         f"got {problem.mixup!r}")
    smoothing = problem.label_smoothing
    if not (isinstance(smoothing, numbers.Real) and 0 <= smoothing < 1):
        raise ValueError(f"label_smoothing must be in [0, 1); got {smoothing!r}")
    if smoothing and problem.loss != "crossentropy":
        raise ValueError(f"label_smoothing needs loss='crossentropy'; got loss={problem.loss!r}")
    if not isinstance(problem.note, str):
        raise TypeError(f"note must be a string (\"\" for none); got {problem.note!r}")
    if problem.batchnorm not in (True, False):
        raise TypeError(f"batchnorm must be True or False; got {problem.batchnorm!r}")
    if problem.batchnorm and problem.model == "linear":
        raise ValueError("batchnorm needs hidden layers; the 'linear' model has none (use an 'mlp' or 'cnn' problem)")
    if problem.mixup and problem.loss == "mean_output":
        raise ValueError("mixup needs targets to mix; loss='mean_output' problems have none")
    if problem.batchnorm and problem.loss == "mean_output":
        raise ValueError("batchnorm needs hidden layers; loss='mean_output' problems (the model is the loss) have none")


# ------------------------------------------------------------------ data
def _dataset_arrays(dataset, split):
    """A finite ``tf.data.Dataset`` of ``(x, y)`` (batched or not) as two NumPy arrays."""
    import tensorflow as tf

    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2):
        raise ValueError(f"data: the {split} tf.data.Dataset must yield (x, y) pairs; got elements {spec}")
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"data: the {split} tf.data.Dataset is infinite (drop .repeat()); the lab needs every row "
                         "in memory to give each optimizer the same data order")
    batched = spec[0].shape.rank is not None and spec[0].shape.rank > 0 and spec[0].shape[0] is None
    rows = dataset.unbatch() if batched else dataset
    xs, ys = [], []
    for x, y in rows.batch(4096).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    if not xs:
        raise ValueError(f"data: the {split} tf.data.Dataset is empty")
    return np.concatenate(xs), np.concatenate(ys)


def _pair(value, split):
    """``(x, y)`` arrays from a pair of arrays or a Dataset."""
    if hasattr(value, "element_spec"):
        return _dataset_arrays(value, split)
    if not (isinstance(value, (list, tuple)) and len(value) == 2):
        raise ValueError(f"data: the {split} split must be an (x, y) pair of arrays or a tf.data.Dataset of (x, y); "
                         f"got {type(value).__name__}")
    x, y = (np.asarray(v) for v in value)
    if len(x) != len(y):
        raise ValueError(f"data: the {split} split has {len(x)} inputs but {len(y)} targets")
    if len(x) == 0:
        raise ValueError(f"data: the {split} split is empty")
    return x, y


def splits(data):
    """``{"train": (x, y), "valid": (x, y) or None, "test": (x, y)}`` from any accepted layout."""
    if callable(data) and not hasattr(data, "element_spec"):
        data = data()
    if isinstance(data, dict):
        unknown = set(data) - {"train", "valid", "validation", "test"}
        if unknown or "train" not in data or "test" not in data:
            raise ValueError(f"data dict needs keys 'train' and 'test' (optionally 'valid'); got {sorted(data)}")
        valid = data.get("valid", data.get("validation"))
        return {"train": _pair(data["train"], "train"), "valid": None if valid is None else _pair(valid, "valid"),
                "test": _pair(data["test"], "test")}
    if hasattr(data, "element_spec"):
        raise ValueError("data: a single tf.data.Dataset has no test split; pass {'train': ds, 'test': ds_test} "
                         "(optionally 'valid')")
    if isinstance(data, (list, tuple)):
        if len(data) == 4 and not any(isinstance(d, (list, tuple)) for d in data):
            data = ((data[0], data[1]), (data[2], data[3]))
        if len(data) == 2:
            return {"train": _pair(data[0], "train"), "valid": None, "test": _pair(data[1], "test")}
        if len(data) == 3:
            return {"train": _pair(data[0], "train"), "valid": _pair(data[1], "valid"), "test": _pair(data[2], "test")}
    raise ValueError("data must be ((x_train, y_train), (x_test, y_test)), (train, valid, test) pairs, "
                     "a dict with 'train' and 'test', or a function returning one of these; "
                     f"got {type(data).__name__}")


def _numeric(array, what, split):
    """``array`` unless its dtype is not numeric: ValueError naming ``data``, the split and the dtype."""
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise ValueError(f"data: the {split} {what} must be numbers (encode text or categories first); "
                         f"got dtype {array.dtype}")
    return array


def _targets(problem, y, split):
    y = _numeric(np.asarray(y), "targets", split)
    if problem.loss == "mse":
        return y.astype(np.float32).reshape(len(y), -1)
    if problem.loss == "crossentropy":
        if y.ndim == 2 and y.shape[1] > 1:  # one-hot rows -> labels
            y = y.argmax(axis=1)
        if y.ndim > 1 and y.size != len(y):
            raise ValueError(f"data: loss='crossentropy' needs one class label per row (or one-hot rows); "
                             f"the {split} targets have shape {y.shape}")
        bad = y[y != np.round(y)] if np.issubdtype(y.dtype, np.floating) else y[:0]
        if bad.size:
            raise ValueError(f"data: loss='crossentropy' needs integer class labels 0, 1, ...; the {split} targets "
                             f"hold {bad.flat[0]!r} (for real-valued targets use loss='mse')")
        return y.reshape(-1).astype(np.int32)
    return y.astype(np.int32) if np.issubdtype(y.dtype, np.integer) else y.astype(np.float32)


def load(problem, valid_fraction, standardize):
    """The :class:`~optimlab.lab.training.problems.Data` of a problem that carries its own ``data``."""
    parts = splits(problem.data)
    (x_tr, y_tr), (x_te, y_te) = parts["train"], parts["test"]
    if parts["valid"] is None:
        (x_tr, y_tr), (x_va, y_va) = holdout(x_tr, y_tr, valid_fraction, VALID_SEED)
    else:
        x_va, y_va = parts["valid"]
    if x_tr.shape[1:] != x_te.shape[1:] or (len(x_va) and x_va.shape[1:] != x_tr.shape[1:]):
        raise ValueError(f"data: inputs of the splits differ in shape: train {x_tr.shape[1:]}, "
                         f"valid {x_va.shape[1:]}, test {x_te.shape[1:]}")
    split_names = ("train", "valid", "test")
    inputs = [_numeric(np.asarray(x), "inputs", s).astype(np.float32) for x, s in zip((x_tr, x_va, x_te), split_names)]
    if standardize:
        inputs = [x.astype(np.float32) for x in standardize_inputs(inputs)]
    targets = [_targets(problem, y, s) for y, s in zip((y_tr, y_va, y_te), split_names)]
    return Data(inputs[0], targets[0], inputs[1], targets[1], inputs[2], targets[2])
