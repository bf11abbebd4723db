"""TensorFlow Addons' optimizers on Keras 3, on optimlab's Keras 2 base: :func:`load`.

TensorFlow Addons 0.23 (no longer maintained) cannot be imported with Keras 3:
its optimizers subclass ``tf.keras.optimizers.legacy.Optimizer``, which raises
on TensorFlow >= 2.16, its top-level package imports layers and custom ops,
and three of its modules import Keras 2 internals by the name ``keras``
(``keras.src.engine.keras_tensor``, ``keras.src.utils.tf_utils``,
``keras.src.backend``). :func:`load` imports only ``tensorflow_addons.optimizers``
from the installed wheel, with its base class set to ``optimlab.legacy.Optimizer``,
:func:`optimlab.legacy.install` in effect (so ``LazyAdam``, ``AdamW`` and
``SGDW`` subclass optimlab's Keras 2 ``Adam`` and ``SGD``), and those three
names pointed at ``tf_keras``' modules while it imports. No TFA code is copied.

Example::

    import optimlab.legacy
    tfa_optimizers = optimlab.legacy.tensorflow_addons()   # also: import tensorflow_addons as tfa
    opt = tfa_optimizers.AdamW(weight_decay=1e-4, learning_rate=1e-3)
"""

import contextlib
import functools
import importlib
import importlib.util
import sys
import types


def _require(module, what):
    if importlib.util.find_spec(module) is None:
        raise ImportError(f"{what} needs the {module} package: pip install tensorflow-addons==0.23.0 tf_keras")


@contextlib.contextmanager
def keras2_internals():
    """While TFA's modules import, ``keras.src.{engine,utils.tf_utils,backend}`` are tf_keras's."""
    import keras.src
    import keras.src.utils
    import tf_keras.src.backend as k2_backend
    import tf_keras.src.engine.keras_tensor as k2_keras_tensor
    import tf_keras.src.utils.tf_utils as k2_tf_utils

    engine = types.ModuleType("keras.src.engine")
    engine.__path__ = []
    engine.keras_tensor = k2_keras_tensor
    patched = [(keras.src, "engine", engine), (keras.src.utils, "tf_utils", k2_tf_utils), (keras.src, "backend", k2_backend)]
    saved = [(module, name, module.__dict__.get(name)) for module, name, _ in patched]
    modules = {"keras.src.engine": engine, "keras.src.engine.keras_tensor": k2_keras_tensor}
    saved_modules = {name: sys.modules.get(name) for name in modules}
    for module, name, value in patched:
        setattr(module, name, value)
    sys.modules.update(modules)
    try:
        yield
    finally:
        for module, name, value in saved:
            if value is None:
                module.__dict__.pop(name, None)
            else:
                setattr(module, name, value)
        for name, value in saved_modules.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def load(legacy=None):
    """``tensorflow_addons.optimizers`` from the wheel, on ``legacy`` (``optimlab.legacy``) or unchanged.

    Unchanged (``legacy=None``) is for the real Keras 2 (``TF_USE_LEGACY_KERAS=1``), the reference of
    the tests. Afterwards ``import tensorflow_addons as tfa; tfa.optimizers.AdamW`` finds the same module.
    """
    for name in [n for n in sys.modules if n == "tensorflow_addons" or n.startswith("tensorflow_addons.")]:
        del sys.modules[name]  # a previous load's package: import the wheel's modules afresh
    _require("tensorflow_addons", "TensorFlow Addons' optimizers")
    _require("tf_keras", "TensorFlow Addons' optimizers")
    # The wheel's package with its spec (find_spec keeps working), its __init__ not run: that would import
    # all of TFA (layers, losses, ...) on Keras 2 internals that Keras 3 lacks.
    package = importlib.util.module_from_spec(importlib.util.find_spec("tensorflow_addons"))
    sys.modules["tensorflow_addons"] = package
    with contextlib.ExitStack() as stack:
        stack.enter_context(keras2_internals())
        if legacy is not None:
            constants = types.ModuleType("tensorflow_addons.optimizers.constants")
            constants.KerasLegacyOptimizer = legacy.Optimizer
            sys.modules[constants.__name__] = constants
            stack.enter_context(legacy.install())
        module = importlib.import_module("tensorflow_addons.optimizers")
    if legacy is not None:
        _accept_keras3_inner_optimizers(module, legacy.as_legacy)
    return module


def _accept_keras3_inner_optimizers(module, as_legacy):
    """TFA's wrappers convert a Keras 3 inner optimizer with ``as_legacy`` before their own
    code runs (see :mod:`optimlab.legacy.keras3`); their code is unchanged."""
    for cls in (module.Lookahead, module.AveragedOptimizerWrapper):
        cls.__init__ = _converting_first_argument(cls.__init__, as_legacy)
    multi = module.MultiOptimizer
    multi.create_optimizer_spec = classmethod(_converting_first_argument(multi.create_optimizer_spec.__func__, as_legacy))
    original_spec = multi.maybe_initialize_optimizer_spec.__func__

    @functools.wraps(original_spec)
    def maybe_initialize_optimizer_spec(cls, spec):
        return original_spec(cls, dict(spec, optimizer=as_legacy(spec["optimizer"])))

    multi.maybe_initialize_optimizer_spec = classmethod(maybe_initialize_optimizer_spec)


def _converting_first_argument(method, as_legacy):
    @functools.wraps(method)
    def converting(self, optimizer, *args, **kwargs):
        return method(self, as_legacy(optimizer), *args, **kwargs)

    return converting
