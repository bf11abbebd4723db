"""``optimlab.legacy.Optimizer``: the base class with Keras 2's subclassing contract.

Code written for ``tf.keras.optimizers.Optimizer`` of TF 2.0-2.10 (TensorFlow
Addons 0.23 is the reference client, see ``tests/test_legacy_tfa.py``) subclasses
this class with only its base-class import changed (see :mod:`optimlab.legacy`).

What the base reproduces from Keras 2 (and why it differs from optimlab's modern base):

* hyperparameters in ``self._hyper`` (Keras 2's store; the attribute routing and
  the serialization of schedules and callables are shared with the modern base in
  :mod:`optimlab.hyperparameters`): raw values until the first apply, then
  variables whose dtype follows the value (float32 for floats, int32 for ints,
  bool for bools) exactly as Keras 2 creates them; ``_get_hyper`` returns that
  ``tf.Variable`` (or casts it), ``_serialize_hyperparameter`` keeps bools and ints;
* ``iterations``, ``get_slot`` and ``add_slot`` hand out ``tf.Variable`` objects,
  ``add_slot`` accepts a tensor or a variable as initial value;
* ``_create_slots`` runs once, eagerly (``tf.init_scope``), when the optimizer is
  built; ``apply_state`` is prepared by ``_prepare`` for every (device, dtype);
* sparse gradients go to ``_resource_apply_sparse_duplicate_indices`` (whose
  default sums duplicates with ``tf.unique`` + ``unsorted_segment_sum`` and calls
  ``_resource_apply_sparse``), dense ones to ``_resource_apply_dense``;
* ``variables()`` / ``weights`` / ``get_weights`` / ``set_weights`` list the
  iteration counter and the slots in creation order (no hyperparameters);
* ``apply_gradients`` returns a tensor usable in ``tf.group``;
* Keras 2's names (:mod:`optimlab.legacy.names`, ``tests/test_legacy_names.py``): the counter
  ``<optimizer>/iter:0``, hyperparameters ``<optimizer>/<name>:0``, slots
  ``<optimizer>/<variable's name>/<slot>:0`` (``Adam/var0/m:0``), under the ``tf.name_scope``
  around the first ``apply_gradients`` (the counter: around the constructor, where Keras 3
  creates it); the Keras path of each is its TensorFlow name without ``:0``;
* a Keras 3 optimizer (``tf.keras.optimizers.Adam`` on TF >= 2.16, or optimlab's) as the inner
  optimizer of Keras 2 wrapper code: :func:`optimlab.legacy.as_legacy` (TFA's wrappers loaded
  by ``tensorflow_addons()`` call it); what it covers is in :mod:`optimlab.legacy.keras3`;
* ``load_own_variables`` (``keras.models.load_model``) restores slots that do
  not exist yet when they are created (Keras 2's deferred slot restoration).

Everything else (validation, clipping, aggregation, accumulation, EMA,
``tf.distribute``) is the modern base's, :class:`optimlab.optimizer.Optimizer`.
"""

import contextlib
import inspect
import warnings

import keras
import numpy as np
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from optimlab._validation import KERAS_BASE_ARGS, check_keras2_keyword_args, check_learning_rate
from optimlab.hyperparameters import serializable
from optimlab.legacy.names import Keras2Names, applying, optimizer_scope, shared_name
from optimlab.optimizer import Optimizer as _ModernOptimizer

_LEGACY_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "lr", "decay")
# Keras 3 base arguments a legacy optimizer may still take (weight_decay is left
# out: Keras 2 code keeps its own ``weight_decay`` hyperparameter).
_KERAS3_EXTRAS = tuple(arg for arg in KERAS_BASE_ARGS if arg != "weight_decay")


def _tf_variable(variable):
    """The ``tf.Variable`` behind a Keras 3 variable (Keras 2 code calls ``handle``,
    ``read_value``, ``dtype.base_dtype``, ``assign_add(..., read_value=False)``)."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _deduplicate(values, indices):
    """Keras 2's duplicate summing: ``tf.unique`` then ``unsorted_segment_sum`` (bit-equal order)."""
    unique_indices, positions = tf.unique(indices)
    summed = tf.math.unsorted_segment_sum(values, positions, tf.shape(unique_indices)[0])
    return summed, unique_indices


class _CallableList(list):
    """A list that also answers ``opt.variables()`` (Keras 2 made it a method, Keras 3 a property)."""

    def __call__(self):
        return self


class Optimizer(Keras2Names, _ModernOptimizer):
    """Base class with the Keras 2 (``OptimizerV2``) subclassing contract.

    Args:
        name: the optimizer's name (positional, as in Keras 2).
        gradient_aggregator, gradient_transformers: as in Keras 2.
        **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr`` (deprecated
            alias handled by the subclass), ``decay`` (time-based decay of the
            learning rate: ``lr / (1 + decay * iterations)``), and Keras 3's base
            arguments ``use_ema``, ``ema_momentum``, ``ema_overwrite_frequency``,
            ``loss_scale_factor``, ``gradient_accumulation_steps``.
    """

    _HAS_AGGREGATE_GRAD = False

    def __init__(self, name, gradient_aggregator=None, gradient_transformers=None, **kwargs):
        check_keras2_keyword_args(kwargs, _LEGACY_KWARGS, (*_KERAS3_EXTRAS, "learning_rate", "skip_nonfinite"))
        if "lr" in kwargs:
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", stacklevel=2)
        kwargs.pop("lr", None)
        kwargs.pop("learning_rate", None)  # a subclass sets it with _set_hyper, as in Keras 2
        decay = kwargs.pop("decay", 0.0) or 0.0
        super().__init__(
            name=name,
            gradient_aggregator=gradient_aggregator,
            gradient_transformers=gradient_transformers,
            **kwargs,
        )
        state = {
            "_hyper": {},
            "_hyper_variables": [],
            "_hypers_created": False,
            "_weights": [],
            "_iterations_listed": False,
            "_own_iterations": self._iterations,
            "_pending_restore": {},
            "_use_locking": True,
            "_initial_decay": float(decay),
            "_slot_variable_name": None,
        }
        for key, value in state.items():
            object.__setattr__(self, key, value)

    def _init_learning_rate(self, learning_rate):
        """Nothing: a Keras 2 subclass sets ``learning_rate`` itself with ``_set_hyper``."""

    # ------------------------------------------------------- hyperparameters
    _LEARNING_RATE_TO_STORE = False  # a subclass's own ``learning_rate`` property is honoured

    def _hyperparameter_names(self):
        return self.__dict__.get("_hyper")

    def _set_hyper(self, name, value, check=None):
        """Keras 2: a raw value until ``_create_hypers``; later, a number is assigned to its variable.

        ``check`` is the modern base's and is not used (Keras 2 did not validate).
        """
        hyper = self._hyper
        if name == "lr":
            name = "learning_rate"
        if name == "learning_rate":
            check_learning_rate(value)
        if isinstance(value, (tf.Variable, keras.Variable)):
            value = _tf_variable(value)
        if name not in hyper:
            hyper[name] = value
            return
        previous = hyper[name]
        if (
            callable(previous)
            or isinstance(previous, (tf.Tensor, int, float, LearningRateSchedule))
            or isinstance(value, LearningRateSchedule)
        ):
            hyper[name] = value
        else:
            previous.assign(value)

    def _get_hyper(self, name, dtype=None):
        if not self._hypers_created:
            self._create_hypers()
        value = self._hyper[name]
        if isinstance(value, LearningRateSchedule):
            return value
        if callable(value):
            value = value()
        if dtype:
            return tf.cast(value, dtype)
        return value

    def _create_hypers(self):
        """Numbers become variables (float32, int32 or bool, as Keras 2 makes them), in name order."""
        if self._hypers_created:
            return
        with tf.init_scope():
            for name, value in sorted(self._hyper.items()):
                if isinstance(value, (tf.Tensor, tf.Variable)) or callable(value):
                    continue
                dtype = tf.convert_to_tensor(value).dtype
                if dtype.is_floating:
                    dtype = tf.float32
                variable = self._add_named_variable(
                    self._keras2_name(name), (), dtype, keras.initializers.Constant(value)
                )
                self._hyper_variables.append(variable)
                self._hyper[name] = variable.value
        object.__setattr__(self, "_hypers_created", True)

    def _serialize_hyperparameter(self, hyperparameter_name):
        """Keras 2's config value: a schedule's config, else a Python number of the value's own type."""
        value = serializable(self._hyper[hyperparameter_name])
        if tf.is_tensor(value):
            value = keras.ops.convert_to_numpy(value)
        if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
            value = value.item()
        return value

    def __dir__(self):
        names = set(super().__dir__())
        hyper = self.__dict__.get("_hyper", {})
        names |= set(hyper)
        if "learning_rate" in hyper:
            names.add("lr")
        return sorted(names)

    @property
    def learning_rate(self):
        """The ``learning_rate`` hyperparameter (variable or schedule); None where there is none."""
        hyper = self.__dict__.get("_hyper")
        if hyper is None or "learning_rate" not in hyper:
            return None
        return self._get_hyper("learning_rate")

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_hyper("learning_rate", value)

    @property
    def lr(self):
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = value

    @property
    def weight_decay(self):
        """Keras 2 code owns ``weight_decay`` as a hyperparameter; Keras 3's decay stays off."""
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and "weight_decay" in hyper:
            return self._get_hyper("weight_decay")
        return None

    @weight_decay.setter
    def weight_decay(self, value):
        if value is not None:
            self._set_hyper("weight_decay", value)

    def _apply_weight_decay(self, variables):
        """Keras 2 has no base weight decay (the optimizer applies its own)."""

    def _decayed_lr(self, var_dtype):
        """The learning rate (schedule evaluated) with Keras 2's time-based decay, in ``var_dtype``."""
        lr_t = self._get_hyper("learning_rate", var_dtype)
        if isinstance(lr_t, LearningRateSchedule):
            local_step = tf.cast(self.iterations, var_dtype)
            lr_t = tf.cast(lr_t(local_step), var_dtype)
        if self._initial_decay > 0.0:
            local_step = tf.cast(self.iterations, var_dtype)
            decay_t = tf.cast(self._initial_decay, var_dtype)
            lr_t = lr_t / (1.0 + decay_t * local_step)
        return lr_t

    # -------------------------------------------------------------- state
    @property
    def iterations(self):
        """The step counter as a ``tf.Variable`` (int64), listed first in ``weights`` once used."""
        variable = self._iterations
        if variable is self.__dict__.get("_own_iterations") and not self.__dict__.get("_iterations_listed", True):
            object.__setattr__(self, "_iterations_listed", True)
            self._list_weight(_tf_variable(variable))
        return _tf_variable(variable)

    @iterations.setter
    def iterations(self, variable):
        raise RuntimeError(
            "Cannot set `iterations` to a new Variable after the Optimizer weights have been "
            f"created; got {variable!r}"
        )

    @property
    def variables(self):
        """Keras 2's ``variables()``: the iteration counter and the slots, in creation order
        (hyperparameters are not state; they travel in ``get_config``)."""
        if "_hyper" not in self.__dict__:  # still in Keras 3's constructor
            return super().variables
        listed = {id(v) for v in self._weights}
        hidden = listed | {id(v.value) for v in self._hyper_variables}
        hidden |= {id(_tf_variable(self._learning_rate_store)), id(_tf_variable(self._own_iterations))}
        extras = [_tf_variable(v) for v in self._variables if id(_tf_variable(v)) not in hidden]
        return _CallableList(self.weights + extras)

    @property
    def weights(self):
        return self._weights

    def get_weights(self):
        return [np.asarray(keras.ops.convert_to_numpy(v)) for v in self.weights]

    def set_weights(self, weights):
        params = self.weights
        if len(params) != len(weights):
            raise ValueError(
                f"set_weights got {len(weights)} arrays for optimizer {self.name!r}, which has "
                f"{len(params)} weights (the iteration counter, then the slots)"
            )
        for param, value in zip(params, weights):
            if tuple(param.shape) != tuple(np.shape(value)):
                raise ValueError(f"Optimizer weight shape {tuple(param.shape)} not compatible with {np.shape(value)}")
        for param, value in zip(params, weights):
            param.assign(value)

    def _create_slots(self, var_list):
        """Override to create slots with ``add_slot``."""

    def _create_all_weights(self, var_list):
        _ = self.iterations
        self._create_hypers()
        self._create_slots(var_list)

    def add_slot(self, var, slot_name, initializer="zeros", shape=None):
        """Keras 2's ``add_slot``: ``initializer`` is a name, a callable or an initial value
        (tensor, variable, array), whose shape the slot then takes."""
        key = self._var_key(var)
        existing = self._slots.get(key, {}).get(slot_name)
        if existing is not None:
            return _tf_variable(existing)
        with tf.init_scope():
            if isinstance(initializer, keras.initializers.Constant):
                # Keras 2's Constant made the value in the slot's dtype; Keras 3's goes through float32.
                constant = initializer.value
                init = lambda shape, dtype: tf.fill(shape, tf.constant(constant, dtype))  # noqa: E731
            elif isinstance(initializer, str) or callable(initializer):
                init = keras.initializers.get(initializer) if isinstance(initializer, str) else initializer
            else:
                value = tf.convert_to_tensor(_tf_variable(initializer))
                shape = tuple(value.shape)
                init = lambda shape, dtype: tf.cast(value, dtype)  # noqa: E731
            object.__setattr__(self, "_slot_variable_name", self._keras2_name(f"{shared_name(var)}/{slot_name}"))
            try:
                slot = _tf_variable(super().add_slot(var, slot_name, initializer=init, shape=shape))
            finally:
                object.__setattr__(self, "_slot_variable_name", None)
        self._list_weight(slot)
        return slot

    def _add_state_variable(self, name, shape, dtype, initializer="zeros"):
        """A non-slot weight listed in ``weights`` (Keras 2's ``add_weight`` + ``_weights.append``)."""
        with tf.init_scope():
            variable = _tf_variable(self._add_named_variable(self._keras2_name(name), shape, dtype, initializer))
        self._list_weight(variable)
        return variable

    def _list_weight(self, variable):
        """Append to ``weights``; a value loaded before the weight existed is restored now, eagerly."""
        self._weights.append(variable)
        pending = self._pending_restore.pop(len(self._weights) - 1, None)
        if pending is not None:
            with tf.init_scope():
                variable.assign(pending)

    def get_slot(self, var, slot_name):
        return _tf_variable(super().get_slot(var, slot_name))

    def _resource_scatter_add(self, x, i, v):
        with tf.control_dependencies([tf.raw_ops.ResourceScatterAdd(resource=x.handle, indices=i, updates=v)]):
            return x.value()

    def _resource_scatter_update(self, x, i, v):
        with tf.control_dependencies([tf.raw_ops.ResourceScatterUpdate(resource=x.handle, indices=i, updates=v)]):
            return x.value()

    # ------------------------------------------------------------ apply hooks
    @property
    def _dense_apply_args(self):
        return inspect.getfullargspec(self._resource_apply_dense).args

    @property
    def _sparse_apply_args(self):
        return inspect.getfullargspec(self._resource_apply_sparse).args

    def _prepare(self, var_list):
        keys = {(var.device, var.dtype.base_dtype) for var in map(_tf_variable, var_list)}
        apply_state = {}
        for var_device, var_dtype in keys:
            apply_state[(var_device, var_dtype)] = {}
            with tf.device(var_device):
                self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state

    def _prepare_local(self, var_device, var_dtype, apply_state):
        if "learning_rate" in self._hyper:
            apply_state[(var_device, var_dtype)]["lr_t"] = tf.identity(self._decayed_lr(var_dtype))

    def _fallback_apply_state(self, var_device, var_dtype):
        apply_state = {(var_device, var_dtype): {}}
        self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state[(var_device, var_dtype)]

    def _resource_apply_dense(self, grad, handle, apply_state):
        raise NotImplementedError(f"{type(self).__name__} must implement _resource_apply_dense")

    def _resource_apply_sparse_duplicate_indices(self, grad, handle, indices, **kwargs):
        summed, unique = _deduplicate(grad, indices)
        return self._resource_apply_sparse(summed, handle, unique, **kwargs)

    def _resource_apply_sparse(self, grad, handle, indices, apply_state):
        """Without an override, the dense rule on the densified gradient (Keras 2 raised here)."""
        dense = tf.convert_to_tensor(tf.IndexedSlices(grad, indices, tf.shape(handle, out_type=indices.dtype)))
        kwargs = {"apply_state": apply_state} if "apply_state" in self._dense_apply_args else {}
        return self._resource_apply_dense(dense, handle, **kwargs)

    def _apply_one(self, var, grad, apply_state):
        """Keras 2's per-variable update: the sparse hook for ``IndexedSlices``, else the dense one."""
        kwargs = {}
        if isinstance(grad, tf.IndexedSlices):
            if "apply_state" in self._sparse_apply_args:
                kwargs["apply_state"] = apply_state
            return self._resource_apply_sparse_duplicate_indices(grad.values, var, grad.indices, **kwargs)
        if "apply_state" in self._dense_apply_args:
            kwargs["apply_state"] = apply_state
        return self._resource_apply_dense(grad, var, **kwargs)

    # ------------------------------------------------ mapping to the modern base
    def build(self, var_list):
        if self.built:
            return
        # Built outside apply_gradients (Keras 3's fit): named as inside it, as Keras 2's fit names them.
        naming = optimizer_scope(self.name) if not applying() else contextlib.nullcontext()
        with tf.init_scope(), naming:
            super().build(var_list)
            self._create_all_weights([_tf_variable(v) for v in var_list])

    def apply_gradients(self, grads_and_vars, name=None, experimental_aggregate_gradients=True):
        """Keras 2's ``apply_gradients``: pairs without gradient are dropped; returns a tensor
        (the new iteration count) that ``tf.group`` accepts."""
        given = list(grads_and_vars)
        if not given:
            return tf.no_op()
        pairs = [pair for pair in given if not isinstance(pair, (tuple, list)) or pair[0] is not None]
        pairs = pairs or given  # all None: the base names the variables in its error
        with optimizer_scope(self.name):  # Keras 2 names the state it creates here
            super().apply_gradients(pairs, name=name, experimental_aggregate_gradients=experimental_aggregate_gradients)
        return self.iterations.read_value()

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        variables = [_tf_variable(v) for _, v in grads_and_vars]
        apply_state = self._prepare(variables)
        for (grad, _), var in zip(grads_and_vars, variables):
            with distribution.extended.colocate_vars_with(var):
                distribution.extended.update(var, self._apply_one, args=(grad, apply_state), group=False)

    # ------------------------------------------------------------ save / load
    def save_own_variables(self, store):
        for i, variable in enumerate(self.variables):
            store[str(i)] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        """Restore by position; values for slots that do not exist yet wait until they are created."""
        variables = self.variables
        saved = len(store.keys())
        if saved < len(variables):
            raise ValueError(
                f"Optimizer {self.name!r} has {len(variables)} variables but the file holds {saved}"
            )
        for i in range(saved):
            if i < len(variables):
                variables[i].assign(store[str(i)])
            else:
                self._pending_restore[i] = np.asarray(store[str(i)])

    # ------------------------------------------------------------ serialization
    def get_config(self):
        """Keras 2's base config: the name, the clipping options set, and ``decay``.

        Subclasses add their hyperparameters with ``_serialize_hyperparameter``.
        """
        config = {"name": self.name}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        if self._initial_decay:
            config["decay"] = self._initial_decay
        defaults = {"use_ema": False, "ema_momentum": 0.99}
        for key in _KERAS3_EXTRAS:
            if getattr(self, key) != defaults.get(key):
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = keras.optimizers.schedules.deserialize(
                config["learning_rate"], custom_objects=custom_objects
            )
        return cls(**config)
