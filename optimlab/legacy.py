"""``optimlab.legacy.Optimizer``: run optimizers written for Keras 2 on Keras 3.

Code written for ``tf.keras.optimizers.Optimizer`` of TF 2.0-2.10 (the style of
seed 002, seed 004 and TensorFlow Addons) runs with only its base-class import
changed::

    from optimlab.legacy import Optimizer

    class MyAdam(Optimizer):
        def __init__(self, learning_rate=0.001, beta_1=0.9, name="MyAdam", **kwargs):
            super().__init__(name, **kwargs)
            self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
            ...
        def _create_slots(self, var_list): ...
        def _resource_apply_dense(self, grad, var, apply_state=None): ...

The hooks map onto the modern base: ``build`` calls ``_create_slots``;
``update_step`` calls ``_resource_apply_dense``; the sparse path calls
``_resource_apply_sparse`` with summed duplicate indices (or, where a class has
none, the dense rule on the densified gradient).
"""

import inspect
import warnings

import keras
import tensorflow as tf

from optimlab.optimizer import KERAS_BASE_ARGS
from optimlab.optimizer import Optimizer as _ModernOptimizer

_LEGACY_KWARGS = ("clipnorm", "clipvalue", "global_clipnorm", "lr", "decay")


def _takes_apply_state(method):
    return "apply_state" in inspect.signature(method).parameters


def _tf_variable(variable):
    """The ``tf.Variable`` behind a Keras 3 variable: Keras 2 code calls its methods
    (``scatter_update``, ``handle``, ``dtype.base_dtype``) on slots."""
    return variable.value if isinstance(variable, keras.Variable) else variable


class Optimizer(_ModernOptimizer):
    """Base class with the Keras 2 (``OptimizerV2``) subclassing hooks.

    Args:
        name: the optimizer's name (positional, as in Keras 2).
        gradient_aggregator, gradient_transformers: as in seed 003.
        **kwargs: ``clipnorm``, ``clipvalue``, ``global_clipnorm``, ``lr`` (deprecated
            alias handled by the subclass), ``decay`` (time-based decay of the
            learning rate: ``lr / (1 + decay * iterations)``), and Keras 3's base
            arguments (``weight_decay``, ``use_ema``, ...).
    """

    def __init__(self, name, gradient_aggregator=None, gradient_transformers=None, **kwargs):
        allowed = set(_LEGACY_KWARGS) | set(KERAS_BASE_ARGS) | {"learning_rate"}
        for key, value in kwargs.items():
            if key not in allowed:
                raise TypeError(
                    f"Unexpected keyword argument passed to optimizer: {key}. "
                    f"Allowed kwargs are {sorted(allowed)}"
                )
            if key in _LEGACY_KWARGS and value is not None and not callable(value) and value < 0:
                raise ValueError(f"Expected {key} >= 0, received: {value}")
        if "lr" in kwargs:
            warnings.warn("The `lr` argument is deprecated, use `learning_rate` instead.", stacklevel=2)
        kwargs.pop("lr", None)
        decay = kwargs.pop("decay", 0.0) or 0.0
        learning_rate = kwargs.pop("learning_rate", 0.001)
        super().__init__(
            learning_rate=learning_rate,
            name=name,
            gradient_aggregator=gradient_aggregator,
            gradient_transformers=gradient_transformers,
            **kwargs,
        )
        self._initial_decay = float(decay)
        self._apply_state = {}

    # ------------------------------------------------------------- Keras 2 API
    @property
    def lr(self):
        return self.learning_rate

    @lr.setter
    def lr(self, value):
        self.learning_rate = value

    def _create_slots(self, var_list):
        """Override to create slots with ``add_slot``."""

    def _decayed_lr(self, var_dtype):
        """The learning rate (schedule evaluated) with Keras 2's time-based decay."""
        lr_t = self._get_hyper("learning_rate", var_dtype)
        if self._initial_decay > 0.0:
            local_step = tf.cast(self.iterations, var_dtype)
            lr_t = lr_t / (1.0 + tf.constant(self._initial_decay, var_dtype) * local_step)
        return lr_t

    def _prepare_local(self, var_device, var_dtype, apply_state):
        apply_state[(var_device, var_dtype)]["lr_t"] = tf.identity(self._decayed_lr(var_dtype))

    def _fallback_apply_state(self, var_device, var_dtype):
        apply_state = {(var_device, var_dtype): {}}
        self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state[(var_device, var_dtype)]

    def _resource_apply_dense(self, grad, handle, apply_state):
        raise NotImplementedError(f"{type(self).__name__} must implement _resource_apply_dense")

    def _resource_apply_sparse(self, grad, handle, indices, apply_state):
        raise NotImplementedError(f"{type(self).__name__} has no _resource_apply_sparse")

    def add_slot(self, var, slot_name, initializer="zeros", shape=None, dtype=None):
        return _tf_variable(super().add_slot(var, slot_name, initializer=initializer, shape=shape, dtype=dtype))

    def get_slot(self, var, slot_name):
        return _tf_variable(super().get_slot(var, slot_name))

    def _resource_scatter_add(self, x, i, v):
        x = _tf_variable(x)
        x.scatter_add(tf.IndexedSlices(v, i))
        return x.value()

    def _resource_scatter_update(self, x, i, v):
        x = _tf_variable(x)
        x.scatter_update(tf.IndexedSlices(v, i))
        return x.value()

    # ------------------------------------------------ mapping to the modern base
    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._create_slots(var_list)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        self._apply_state = {}
        super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
        self._apply_state = {}

    def _state_for(self, variable):
        key = (variable.device, variable.dtype.base_dtype)
        if key not in self._apply_state:
            self._apply_state[key] = {}
            self._prepare_local(key[0], key[1], self._apply_state)
        return self._apply_state

    def update_step(self, gradient, variable, learning_rate):
        method = self._resource_apply_dense
        if _takes_apply_state(method):
            return method(gradient, variable, apply_state=self._state_for(variable))
        return method(gradient, variable)

    def sparse_update_step(self, gradient, variable, learning_rate):
        if type(self)._resource_apply_sparse is Optimizer._resource_apply_sparse:
            return self.update_step(tf.convert_to_tensor(gradient), variable, learning_rate)
        method = self._resource_apply_sparse
        if _takes_apply_state(method):
            return method(gradient.values, variable, gradient.indices, apply_state=self._state_for(variable))
        return method(gradient.values, variable, gradient.indices)

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
        for key in KERAS_BASE_ARGS:
            if getattr(self, key) != defaults.get(key):
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        return super().from_config(config, custom_objects=custom_objects)
