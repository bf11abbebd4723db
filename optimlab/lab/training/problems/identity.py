"""What a problem is, as one hash: :func:`fingerprint`, part of every run's record key.

Two problems with the same name (two unnamed ``Problem(...)`` s are both
``custom``) are the same problem only when their fingerprints agree. The
fingerprint covers:

* the data actually loaded (:func:`data_digest`: every array of the split,
  with its shape and dtype, after the validation rows are cut and inputs standardized);
* the definition: name, model (a built-in name or the function's
  ``module:qualname``), loss and metrics (with a function's code and a Keras
  object's config), hidden layers, outputs and batch normalization;
* the model's structure (:func:`model_structure`: each layer's class and
  config, and every weight's shape and dtype), built once from seed 0;
* :data:`SEED_RULE`, how a run's seed gives its initial weights.

The budget (epochs, batch size, target) and the training options (mixup,
label smoothing) are not part of it: every run's spec holds its own, so they
change the run's key without making it another problem. The fingerprint is computed in the process that writes the
records (the driver); workers receive the spec that holds it, so every
executor files a run under the same key.

Example:
    >>> from optimlab.lab.training import problems
    >>> iris = problems.get("iris")
    >>> len(fingerprint(iris, problems.load(iris)))
    16
"""

import hashlib
import json
import numbers

import numpy as np

from optimlab.lab.training.problems import custom

SEED_RULE = "keras.utils.set_random_seed(seed), then the model is built"  # see models.build
# the budget, training options (each run's spec holds them, so they enter its key there) and labels
_NOT_IDENTITY = ("epochs", "batch_size", "target", "mixup", "label_smoothing", "description", "needs_data")
_CACHE = {}  # (id(problem), id(data)) -> (problem, data, fingerprint): computed once per pair
_KEEP = 4  # each entry holds its data alive


def data_digest(data):
    """SHA-256 (hex) of every array of a :class:`~optimlab.lab.training.problems.Data`, with shapes and dtypes."""
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_valid", "y_valid", "x_test", "y_test"):
        array = np.ascontiguousarray(getattr(data, name))
        digest.update(f"{name}{array.shape}{array.dtype.str}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _plain(value):
    """``value`` as JSON-able data with no memory addresses: functions and objects by ``module:qualname``."""
    if value is None or isinstance(value, (str, bool, numbers.Number)):
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"array": value.shape, "sha256": hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}
    return custom.describe_value(value)


def _callable_identity(value):
    """A function's name and code, a Keras object's class and config: what decides what it computes."""
    out = {"name": custom.describe_value(value)}
    code = getattr(getattr(value, "func", value), "__code__", None)
    if code is not None:
        out["code"] = hashlib.sha256(code.co_code + repr(_plain(list(code.co_consts))).encode()).hexdigest()[:16]
    if hasattr(value, "get_config"):
        try:
            out["config"] = _plain(value.get_config())
        except Exception:  # noqa: BLE001 - an object without a usable config is known by its class
            pass
    return out


def model_structure(model):
    """Each layer's class and config (without its name, which Keras numbers per process) and each weight's shape."""
    layers = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        entry = {"class": f"{type(layer).__module__}:{type(layer).__qualname__}"}
        if not list(layer._flatten_layers(include_self=False, recursive=False)):  # a container's config names its parts
            try:
                config = layer.get_config()
                entry["config"] = _plain({k: v for k, v in config.items() if k != "name"})
            except Exception:  # noqa: BLE001 - a custom layer without get_config is known by its class and weights
                pass
        layers.append(entry)
    weights = [[list(w.shape), str(w.dtype), bool(w.trainable)] for w in model.weights]
    return {"model": f"{type(model).__module__}:{type(model).__qualname__}", "layers": layers, "weights": weights}


def definition(problem, input_shape):
    """The JSON-able definition of ``problem`` that the fingerprint hashes (data aside)."""
    from optimlab.lab.training.problems import models  # here: Keras loads only when a model is built

    meta = {k: v for k, v in problem.meta().items() if k not in _NOT_IDENTITY}
    if callable(problem.loss):
        meta["loss"] = _callable_identity(problem.loss)
    meta["metrics"] = [_callable_identity(m) if callable(m) else m for m in problem.metrics]
    meta["structure"] = model_structure(models.build(problem, input_shape, seed=0))
    meta["seed_rule"] = SEED_RULE
    return meta


def fingerprint(problem, data):
    """16 hex digits naming what ``problem`` is on ``data`` (its loaded Data); the same in every process.

    Computed once per (problem, data) pair in a process (the model is built once, from seed 0).
    """
    cache_key = (id(problem), id(data))
    if cache_key not in _CACHE:
        if len(_CACHE) >= _KEEP:
            _CACHE.pop(next(iter(_CACHE)))
        text = json.dumps(definition(problem, data.x_train.shape[1:]), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(text.encode())
        digest.update(data_digest(data).encode())
        _CACHE[cache_key] = (problem, data, digest.hexdigest()[:16])  # holding both keeps their ids unique
    return _CACHE[cache_key][2]
