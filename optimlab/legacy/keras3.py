"""A Keras 3 optimizer behind Keras 2's hooks, for legacy wrappers: :func:`as_legacy`.

On TensorFlow >= 2.16 ``tf.keras.optimizers.Adam`` is Keras 3's. Keras 2 wrapper code
(TensorFlow Addons' ``Lookahead``, ``MovingAverage``, ``SWA``, ``MultiOptimizer``, and the
same patterns in user code) checks that its inner optimizer is a
``tf.keras.optimizers.legacy.Optimizer`` and drives it through Keras 2's private hooks:
``_create_slots``, ``_create_hypers``, ``_prepare_local``, ``_resource_apply_dense`` /
``_resource_apply_sparse`` with ``apply_state``, ``_get_hyper("learning_rate")``,
``weights``, and ``_iterations`` shared by assignment. A Keras 3 optimizer has none of them.

:func:`as_legacy` gives a :class:`Keras3Optimizer`: an :class:`optimlab.legacy.Optimizer` whose
hooks run the Keras 3 optimizer's own ``build`` and ``update_step`` (so its maths is its own):

* ``_create_slots(var_list)`` builds it (once: a Keras 3 optimizer knows its variables
  from ``build``; a later variable is refused by the Keras 3 optimizer);
* ``_resource_apply_dense(grad, var)`` is one ``update_step`` with its current learning
  rate; its ``iterations`` is the counter of whoever drives the step (the adapter's, or the
  wrapper's after ``inner._iterations = wrapper.iterations``), so bias corrections count
  the wrapper's steps, as a Keras 2 inner optimizer's do;
* sparse gradients are densified (what Keras 3's Adam, SGD, ... do with ``IndexedSlices``);
* ``learning_rate`` / ``_get_hyper("learning_rate")`` / ``_set_hyper`` read and set the
  Keras 3 optimizer's learning rate (a number or a schedule of the shared counter);
* ``weights``: the Keras 3 optimizer's own state (no counter, no learning rate), as a Keras 2
  inner optimizer's under a wrapper; ``get_config`` holds the serialized Keras 3 optimizer, and
  ``model.save`` / ``keras.models.load_model`` restore the state (its names are Keras 3's own,
  e.g. ``adam/dense_kernel_0_momentum``, not Keras 2's).

Not supported: Keras 3 gradient accumulation, EMA or ``loss_scale_factor`` on the inner
optimizer (they live in its ``apply``, which the wrapper does not call), and optimizers
whose ``update_step`` needs all variables at once (Keras 3's ``Muon`` is per-variable and works).
"""

import keras
import tensorflow as tf

from optimlab.legacy.base import Optimizer, _tf_variable


def as_legacy(optimizer):
    """``optimizer`` as a Keras 2 optimizer: itself if it is one, a :class:`Keras3Optimizer`
    for a Keras 3 optimizer (including optimlab's own modern optimizers), else unchanged."""
    if isinstance(optimizer, Optimizer) or not isinstance(optimizer, keras.optimizers.Optimizer):
        return optimizer
    return Keras3Optimizer(optimizer)


@keras.saving.register_keras_serializable("optimlab.legacy")
class Keras3Optimizer(Optimizer):
    """A Keras 3 optimizer with Keras 2's subclassing contract (see the module docstring).

    Args:
        optimizer: a ``keras.optimizers.Optimizer`` (not yet built or built on the variables
            it will update).
        name: defaults to the Keras 3 optimizer's name.

    Example::

        import optimlab.legacy
        tfa = optimlab.legacy.tensorflow_addons()
        opt = tfa.Lookahead(keras.optimizers.Adam(1e-3))   # converted with as_legacy
    """

    def __init__(self, optimizer, name=None, **kwargs):
        super().__init__(name or optimizer.name, **kwargs)
        object.__setattr__(self, "_inner", optimizer)
        object.__setattr__(self, "_inner_own_state", (id(optimizer._iterations), id(optimizer._learning_rate)))
        self._track_trackable(optimizer, "keras3_optimizer")

    @property
    def inner_optimizer(self):
        return self._inner

    # Keras 2 hooks -> the Keras 3 optimizer
    def _create_slots(self, var_list):
        if not self._inner.built:
            self._inner.build(var_list)

    def _prepare_local(self, var_device, var_dtype, apply_state):
        """Nothing to prepare: the Keras 3 optimizer reads its own hyperparameters."""

    def _resource_apply_dense(self, grad, var, apply_state=None):
        inner = self._inner
        object.__setattr__(inner, "_iterations", self.iterations)  # the driver's counter
        learning_rate = tf.cast(inner._get_current_learning_rate(), var.dtype)
        with tf.control_dependencies([grad]):
            inner.update_step(grad, var, learning_rate)
        return var.read_value()

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        """The densified gradient (wrappers call this with or without ``apply_state``)."""
        dense = tf.convert_to_tensor(tf.IndexedSlices(grad, indices, tf.shape(var, out_type=indices.dtype)))
        return self._resource_apply_dense(dense, var)

    # learning rate: the Keras 3 optimizer's
    def _get_hyper(self, name, dtype=None):
        if name != "learning_rate":
            return super()._get_hyper(name, dtype)
        object.__setattr__(self._inner, "_iterations", self.iterations)
        value = self._inner._get_current_learning_rate()
        return tf.cast(value, dtype) if dtype else value

    def _set_hyper(self, name, value, check=None):
        if name in ("learning_rate", "lr") and "_inner" in self.__dict__:
            self._inner.learning_rate = value
        elif name not in ("learning_rate", "lr"):
            super()._set_hyper(name, value, check)

    @property
    def learning_rate(self):
        return self._get_hyper("learning_rate")

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_hyper("learning_rate", value)

    @property
    def weights(self):
        """The Keras 3 optimizer's state, without a counter: the adapter exists for wrappers, whose
        counter drives it (a Keras 2 inner optimizer's ``weights`` have no counter there either)."""
        own = _tf_variable(self._own_iterations)
        return [w for w in self._weights if w is not own] + self._inner_state()

    def _inner_state(self):
        own = self.__dict__.get("_inner_own_state", ())
        return [v.value for v in self._inner.variables if id(v) not in own]

    def save_own_variables(self, store):
        """The adapter's own counter (whoever drives the steps), then the Keras 3 optimizer's state."""
        for i, variable in enumerate([self._own_iterations.value, *self._inner_state()]):
            store[str(i)] = keras.ops.convert_to_numpy(variable)

    def load_own_variables(self, store):
        state = [self._own_iterations.value, *self._inner_state()]
        if len(store.keys()) != len(state):
            raise ValueError(
                f"Optimizer {self.name!r} holds {len(state)} variables (counter, then the Keras 3 "
                f"optimizer's built state) but the file holds {len(store.keys())}"
            )
        for i, variable in enumerate(state):
            variable.assign(store[str(i)])

    def get_config(self):
        config = super().get_config()
        config["optimizer"] = keras.optimizers.serialize(self._inner)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inner = keras.optimizers.deserialize(config.pop("optimizer"), custom_objects=custom_objects)
        return cls(inner, **config)
