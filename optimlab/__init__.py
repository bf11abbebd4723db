"""optimlab: optimizers from TensorFlow's core APIs on Keras 3, and a lab to compare them.

The package loads lazily: ``import optimlab`` is instant and TensorFlow is imported
on the first use of an attribute (``optimlab.Adam``, ``optimlab.get``, ...). That
keeps ``optimlab --help`` and argument errors fast. Saved models still load after
a plain ``import optimlab``: its classes register with Keras as soon as TensorFlow
is loaded (:mod:`optimlab._keras_registration`). Example::

    >>> import optimlab
    >>> opt = optimlab.Adam(learning_rate=1e-3)   # TensorFlow is imported here
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from optimlab import _keras_registration  # noqa: E402

_keras_registration.install()

__version__ = "0.1.0"

# Submodules are imported by name on first access (``optimlab.registry``, ``optimlab.sam``...).
_SUBMODULES = {"bench", "cli", "fused", "gradients", "kernels", "lab", "legacy", "optimizer", "optimizers",
               "registry", "sam", "schedules", "spaces", "wrappers"}
_BASE_ALL = ["Optimizer", "get", "info", "names", "entries", "sam", "schedules", "wrappers", "SAMModel",
             "sam_gradients", "SWA", "Lookahead", "PerVariableOptimizer", "decoupled_weight_decay",
             "lr_multipliers"]


def _load():
    """Import the library (TensorFlow included) and bind the public names once."""
    from optimlab import optimizers as _optimizers  # noqa: F401  (registers every optimizer)
    from optimlab import registry, sam, schedules, wrappers
    from optimlab.optimizer import Optimizer

    names = {"Optimizer": Optimizer, "get": registry.get, "info": registry.info, "names": registry.names,
             "entries": registry.entries, "sam": sam, "schedules": schedules, "wrappers": wrappers,
             "SAMModel": sam.SAMModel, "sam_gradients": sam.sam_gradients, "SWA": wrappers.SWA,
             "Lookahead": wrappers.Lookahead, "PerVariableOptimizer": wrappers.PerVariableOptimizer,
             "decoupled_weight_decay": wrappers.decoupled_weight_decay, "lr_multipliers": wrappers.lr_multipliers}
    # Every registered optimizer class is exported at the top level: optimlab.Adam, ...
    names.update({e.cls.__name__: e.cls for e in registry.entries()})
    names["__all__"] = _BASE_ALL + sorted(e.cls.__name__ for e in registry.entries())
    globals().update(names)


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"optimlab.{name}")
    if name.startswith("_") and name != "__all__":  # private submodules are imported by the import system
        raise AttributeError(f"module 'optimlab' has no attribute {name!r}")
    _load()
    try:
        return globals()[name]
    except KeyError:
        raise AttributeError(f"module 'optimlab' has no attribute {name!r}") from None


def __dir__():
    _load()
    return sorted(globals())
