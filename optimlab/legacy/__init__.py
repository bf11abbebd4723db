"""``optimlab.legacy``: optimizers written for Keras 2 (``OptimizerV2``) run on Keras 3.

Code written for ``tf.keras.optimizers.Optimizer`` of TF 2.0-2.10 (TensorFlow
Addons 0.23 is the reference client, see ``tests/test_legacy_tfa.py``) runs with
only its base-class import changed, and trains Keras 3 models with ``fit``::

    from optimlab.legacy import Optimizer   # was: tf.keras.optimizers.legacy.Optimizer

    class MyMomentum(Optimizer):
        def __init__(self, learning_rate=0.01, momentum=0.9, name="MyMomentum", **kwargs):
            super().__init__(name, **kwargs)
            self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
            self._set_hyper("momentum", momentum)
        def _create_slots(self, var_list): ...
        def _resource_apply_dense(self, grad, var, apply_state=None): ...

The package:

* :mod:`optimlab.legacy.base`: ``Optimizer``, the base class with Keras 2's hooks;
* :mod:`optimlab.legacy.builtins` and :mod:`optimlab.legacy.builtins_adam`: Keras 2's
  built-in optimizers (``SGD``, ``Adam``, ...), re-exported here and listed in ``BUILTINS``;
* :mod:`optimlab.legacy.keras3`: :func:`as_legacy`, a Keras 3 optimizer (``tf.keras.optimizers.Adam``
  on TF >= 2.16, or optimlab's) behind Keras 2's hooks, for legacy wrappers that drive an inner optimizer;
* :mod:`optimlab.legacy.tfa`: TensorFlow Addons' optimizers loaded on this base
  (:func:`tensorflow_addons`), whose wrappers convert a Keras 3 inner optimizer with :func:`as_legacy`;
* here: :func:`install` / :func:`uninstall`, which make ``tf.keras.optimizers.legacy``
  hand out these classes to unchanged code.

Imports go one way: ``builtins`` and ``keras3`` import ``base``, this module imports them;
nothing imports this module back.
"""

import contextlib
import importlib

from optimlab.legacy.base import Optimizer
from optimlab.legacy.builtins import SGD, Adadelta, Adagrad, Ftrl, RMSprop
from optimlab.legacy.builtins_adam import Adam, Adamax, Nadam
from optimlab.legacy.keras3 import Keras3Optimizer, as_legacy

BUILTINS = {cls.__name__: cls for cls in (SGD, Adadelta, Adagrad, Adam, Adamax, Ftrl, Nadam, RMSprop)}
BUILTINS["Optimizer"] = Optimizer
_LEGACY_MODULES = ("keras.optimizers.legacy", "tensorflow.keras.optimizers.legacy", "keras._tf_keras.keras.optimizers.legacy")
_saved = []  # (module, name, previous value or _MISSING) for uninstall()
_MISSING = object()


def install():
    """Make ``tf.keras.optimizers.legacy`` (and ``tensorflow.keras.optimizers.legacy``) hand out
    optimlab's legacy classes, so that unchanged Keras 2 code runs on TF >= 2.16.

    It sets ``Optimizer``, ``SGD``, ``Adam``, ``Adagrad``, ``Adadelta``, ``Adamax``, ``Ftrl``,
    ``Nadam`` and ``RMSprop`` in the modules Keras 3 registers under those import paths
    (``keras.optimizers.legacy``, ``tensorflow.keras.optimizers.legacy``), which otherwise
    hold stubs that raise. Nothing else changes. ``uninstall()`` puts the stubs back; used as
    a context manager (``with optimlab.legacy.install(): ...``) it undoes itself on exit.

    Example::

        import optimlab.legacy
        optimlab.legacy.install()
        import tensorflow as tf
        opt = tf.keras.optimizers.legacy.Adam(0.01)   # optimlab.legacy.Adam
    """
    if not _saved:
        for module_name in _LEGACY_MODULES:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                continue
            for name, cls in BUILTINS.items():
                _saved.append((module, name, module.__dict__.get(name, _MISSING)))
                setattr(module, name, cls)
    return _Installed()


def uninstall():
    """Undo ``install()``: the modules get back exactly what they held before."""
    while _saved:
        module, name, previous = _saved.pop()
        if previous is _MISSING:
            module.__dict__.pop(name, None)
        else:
            setattr(module, name, previous)


def installed():
    """Whether ``install()`` is in effect."""
    return bool(_saved)


class _Installed(contextlib.AbstractContextManager):
    def __exit__(self, *exc):
        uninstall()
        return False


def tensorflow_addons():
    """TensorFlow Addons 0.23's optimizers on this base, for Keras 3: the module ``tensorflow_addons.optimizers``.

    TFA cannot be imported with Keras 3; after this call ``import tensorflow_addons as tfa`` and
    ``tfa.optimizers.AdamW(...)`` work, every optimizer a subclass of :class:`Optimizer` (see
    :mod:`optimlab.legacy.tfa`). Needs ``pip install tensorflow-addons==0.23.0 tf_keras``.

    Example:
        >>> import optimlab.legacy
        >>> tfa_optimizers = optimlab.legacy.tensorflow_addons()  # doctest: +SKIP
        >>> opt = tfa_optimizers.Yogi(learning_rate=0.01)  # doctest: +SKIP
    """
    import sys

    from optimlab.legacy import tfa

    return tfa.load(sys.modules[__name__])
