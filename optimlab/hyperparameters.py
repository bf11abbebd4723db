"""Hyperparameters of the optimizer bases: their forms, attribute access and serialization.

A hyperparameter (``learning_rate``, ``beta_1``, ...) is set with
``_set_hyper(name, value)``, read with ``_get_hyper(name, dtype)`` (the names of
Keras 2's contract, which every optimizer here uses), written to ``get_config``
with ``_serialize_hyperparameter(name)``, and reads and writes as an attribute:
``opt.beta_1 = 0.5``. Its value may be a number, a tensor, a variable, a
zero-argument callable or a ``LearningRateSchedule``.

What both bases share lives here: :class:`HyperparameterAttributes` (the
attribute routing, ``lr`` an alias of ``learning_rate``) and :func:`serializable`
(schedules as their Keras config, callables by their current value). Where the
values are kept differs, on purpose:

* :class:`Float64Hyperparameters`, the modern base's store: one float64 variable
  per hyperparameter from construction on, whatever form its value takes, so an
  assignment reaches a traced function and the saved state does not depend on the
  form;
* ``optimlab.legacy.Optimizer`` keeps Keras 2's store (``self._hyper``): raw
  values until the first apply, then variables whose dtype follows the value
  (float32, int32, bool), as Keras 2 code and its checkpoints expect.
"""

import keras
import numpy as np
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from optimlab._validation import check_learning_rate, is_dynamic

LEARNING_RATE_NAMES = ("learning_rate", "lr")


# ------------------------------------------------------------------ value forms
def to_float(name, value):
    """A number or an eager scalar tensor as a Python float (for variable storage)."""
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a number, a scalar tensor, a zero-argument callable or a "
            f"LearningRateSchedule; got {value!r}"
        ) from error


def exact(value):
    """Python numbers as float64 tensors: ``tf.cast(0.9, tf.float64)`` would pass through float32."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return tf.constant(value, tf.float64)
    return value


def serializable(value):
    """What ``get_config`` holds for a hyperparameter's value before it becomes a number.

    A schedule gives its Keras config (a dict), a zero-argument callable its current
    value; anything else comes back unchanged. Each base then makes the number:
    a float (modern), or a Python int, bool or float as Keras 2 did (legacy).
    """
    if isinstance(value, LearningRateSchedule):
        return keras.optimizers.schedules.serialize(value)
    if callable(value):
        return value()
    return value


# --------------------------------------------------------- attribute routing
class HyperparameterAttributes:
    """``opt.NAME`` reads and ``opt.NAME = value`` sets hyperparameter ``NAME``.

    A base names its hyperparameters with ``_hyperparameter_names()`` (None while
    its constructor has not made the store yet: attributes are then ordinary).
    ``lr`` is an alias of ``learning_rate``. With ``_LEARNING_RATE_TO_STORE`` (the
    modern base) an assigned learning rate always goes to ``_set_hyper``; without
    it (Keras 2, where a subclass may define its own ``learning_rate`` property)
    it goes through the class's ``learning_rate`` attribute unless it is stored.
    """

    _LEARNING_RATE_TO_STORE = True

    def _hyperparameter_names(self):
        raise NotImplementedError

    @staticmethod
    def _canonical(name):
        return "learning_rate" if name == "lr" else name

    def __getattr__(self, name):
        names = self._hyperparameter_names()
        key = self._canonical(name)
        if names is not None and key in names:
            return self._get_hyper(key)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name, value):
        names = self._hyperparameter_names()
        key = self._canonical(name)
        if names is not None and (key in names or (key == "learning_rate" and self._LEARNING_RATE_TO_STORE)):
            self._set_hyper(key, value)
        else:
            super().__setattr__(key, value)


# ---------------------------------------------------------- the modern store
class Float64Hyperparameters(HyperparameterAttributes):
    """The modern base's store: every hyperparameter owns one float64 "store" variable.

    A number lives in its store (an assignment reaches traced functions without
    retracing); callables, schedules and variables are read at each step and
    copied into the store before saving, so the optimizer's variables (and its
    saved state) do not depend on the form of a value. The learning rate is
    Keras 3's ``self._learning_rate``; the others are in ``self._hypers``.
    Mixed into ``optimlab.Optimizer``, whose ``add_variable``, ``iterations`` and
    ``learning_rate`` it uses.
    """

    def _init_hyperparameters(self):
        """The (empty) store and the learning rate's variable; called by the constructor."""
        # Plain dicts, out of Keras' tracking: the stores are tracked as variables,
        # and a user's own variable given as a value must not become optimizer state.
        object.__setattr__(self, "_hypers", {})
        object.__setattr__(self, "_hyper_stores", {})
        self._hyper_checks = {}
        self._learning_rate_store = self._new_store("learning_rate")

    def _hyperparameter_names(self):
        return self.__dict__.get("_hypers")

    def _new_store(self, name):
        return self.add_variable(shape=(), initializer="zeros", dtype="float64", name=name)

    def _source_for(self, name, value, store):
        """What hyperparameter ``name`` reads from: its store for numbers, else ``value``."""
        if is_dynamic(value) or isinstance(value, (tf.Variable, keras.Variable)):
            return value
        store.assign(to_float(name, value))
        return store

    def _set_hyper(self, name, value, check=None):
        """Create or update hyperparameter ``name``.

        Numbers and tensors live in a float64 variable (assignments reach traced
        functions without retracing); callables, schedules and variables are read
        at each step. ``check(name, value)`` validates numbers now and on every
        later assignment.
        """
        if name in LEARNING_RATE_NAMES:
            check_learning_rate(value)
            source = self._source_for("learning_rate", value, self._learning_rate_store)
            object.__setattr__(self, "_learning_rate", source)
            return
        if check is not None:
            self._hyper_checks[name] = check
        if name in self._hyper_checks and not is_dynamic(value):
            self._hyper_checks[name](name, value)
        if name not in self._hyper_stores:
            self._hyper_stores[name] = self._new_store(name)
        self._hypers[name] = self._source_for(name, value, self._hyper_stores[name])

    def _get_hyper(self, name, dtype=None):
        """The current value of hyperparameter ``name``, cast to ``dtype`` if given."""
        if name in LEARNING_RATE_NAMES:
            value = self.learning_rate
        elif name not in self._hypers:
            raise KeyError(f"{type(self).__name__} has no hyperparameter {name!r}; it has {sorted(self._hypers)}")
        else:
            value = self._hypers[name]
            if isinstance(value, LearningRateSchedule):
                value = value(self.iterations)
            elif is_dynamic(value):
                value = exact(value())
        if dtype is not None:
            value = tf.cast(value, dtype)
        return value

    def _serialize_hyperparameter(self, name):
        """A JSON-able value for ``get_config``: schedules serialized, callables evaluated."""
        value = serializable(self._learning_rate if name in LEARNING_RATE_NAMES else self._hypers[name])
        return value if isinstance(value, dict) else float(np.asarray(value))

    def _hyper_sources(self):
        """``({name: where the value is read}, {name: its float64 store})`` for saving."""
        sources = dict(self._hypers, learning_rate=self._learning_rate)
        return sources, dict(self._hyper_stores, learning_rate=self._learning_rate_store)

    def variable_hyperparameters(self):
        """Names of the hyperparameters whose value lives in a variable.

        Assigning a new number to one of them reaches a traced function without
        retracing it; the others (callables, schedules, structural arguments)
        are part of the traced program.
        """
        sources, stores = self._hyper_sources()
        return frozenset(name for name, source in sources.items()
                         if source is not None and source is stores.get(name))

    def save_own_variables(self, store):
        """Keras 3's saving, with every non-number hyperparameter copied into its store."""
        sources, stores = self._hyper_sources()
        for name, source in sources.items():
            if source is not stores[name] and not isinstance(source, LearningRateSchedule):
                stores[name].assign(self._serialize_hyperparameter(name))
        super().save_own_variables(store)
