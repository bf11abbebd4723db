"""Keras 2's names for a legacy optimizer's state (the rule: ``tests/test_legacy_names.py``).

Keras 2 creates an optimizer's state inside ``tf.name_scope(optimizer.name)`` during the first
``apply_gradients``: ``<scope>/<optimizer>/iter:0``, ``<scope>/<optimizer>/<hyperparameter>:0``,
``<scope>/<optimizer>/<variable's name without ':0'>/<slot>:0``.
"""

import contextlib
import threading

import keras
import tensorflow as tf

_applying = threading.local()  # .scopes: Keras 2 scopes of the legacy optimizers applying now, innermost last


def scope_prefix():
    """The enclosing ``tf.name_scope`` as a prefix (``"outer/"``, or ``""`` at top level)."""
    scope = tf.get_current_name_scope().strip("/")
    return f"{scope}/" if scope else ""


def current_scope():
    """Keras 2's name scope for a variable created now: the innermost applying optimizer's
    ``<scope>/<optimizer>/``, else the enclosing ``tf.name_scope``."""
    scopes = getattr(_applying, "scopes", None)
    return scopes[-1] if scopes else scope_prefix()


@contextlib.contextmanager
def optimizer_scope(name):
    """Keras 2's ``tf.name_scope(optimizer.name)`` around ``apply_gradients``, for the names only
    (the TensorFlow scopes optimlab's apply enters are not Keras 2's)."""
    scopes = _applying.__dict__.setdefault("scopes", [])
    scopes.append(f"{current_scope()}{name}/")
    try:
        yield
    finally:
        scopes.pop()


def applying():
    return bool(getattr(_applying, "scopes", None))


def shared_name(variable):
    """Keras 2's ``var._shared_name``: the TensorFlow name without ``:0`` (for a Keras 3 layer's
    variable that is its path, the model's name first: ``sequential/dense/kernel``)."""
    variable = variable.value if isinstance(variable, keras.Variable) else variable
    return variable.name.split(":")[0]


def named_variable(full_name, shape, dtype, initializer, aggregation="none"):
    """A Keras variable whose TensorFlow name is ``full_name:0`` and whose Keras path is
    ``full_name`` (a Keras 3 variable's own name cannot hold a ``/``: it is the last part)."""
    parent, _, leaf = full_name.rpartition("/")
    grandparent, _, last = parent.rpartition("/")
    scopes = contextlib.ExitStack()
    if parent:  # the Keras scope sets the path; the absolute tf.name_scope inside it, the TensorFlow name
        scopes.enter_context(keras.name_scope(last, override_parent=grandparent))
        scopes.enter_context(tf.name_scope(parent + "/"))
    with scopes:
        return keras.Variable(
            initializer=keras.initializers.get(initializer),
            shape=shape,
            dtype=dtype,
            trainable=False,
            aggregation=aggregation,
            name=leaf,
        )


class Keras2Names:
    """The legacy base's naming, before the modern base in its MRO: ``_keras2_name`` for hyperparameters
    and state, ``add_variable`` for slots (``add_slot`` sets ``_slot_variable_name``), the counter
    renamed in Keras 3's constructor (``_track_variable`` and ``__setattr__``)."""

    def _track_variable(self, variable):
        """Keras 3's constructor tracks its step counter ``<optimizer>/iteration``; Keras 2's
        ``<optimizer>/iter`` (same dtype and aggregation) is tracked in its place (and set as
        ``_iterations`` by ``__setattr__``)."""
        if "_hyper" in self.__dict__ or variable.name != "iteration" or "_keras2_counter" in self.__dict__:
            super()._track_variable(variable)
            return
        full_name = f"{current_scope()}{self.name}/iter"
        counter = self._add_named_variable(full_name, (), variable.dtype, "zeros", "only_first_replica")
        object.__setattr__(self, "_keras2_counter", counter)

    def __setattr__(self, name, value):
        if name == "_iterations" and "_hyper" not in self.__dict__ and "_keras2_counter" in self.__dict__:
            value = self.__dict__["_keras2_counter"]  # in Keras 3's constructor: see _track_variable
        super().__setattr__(name, value)


    def _keras2_name(self, name):
        """Keras 2's name of an optimizer variable created now: ``current_scope()`` then ``name``
        (``<variable's shared name>/<slot>`` for a slot): ``Adam/var0/m`` inside Adam's
        ``apply_gradients``, ``Lookahead/var0/m`` for Adam's slot made by a Lookahead around it,
        ``learning_rate`` for a hyperparameter read before any step (as Keras 2 names them)."""
        return f"{current_scope()}{name}"

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none", layout=None, name=None):
        """Keras 3's; while ``add_slot`` creates a slot, the slot gets its Keras 2 name."""
        full_name = self.__dict__.get("_slot_variable_name")
        if full_name is None:
            return super().add_variable(shape, initializer, dtype, aggregation=aggregation, layout=layout, name=name)
        return self._add_named_variable(full_name, shape, dtype, initializer, aggregation)

    def _add_named_variable(self, full_name, shape, dtype, initializer, aggregation="none"):
        variable = named_variable(full_name, shape, dtype, initializer, aggregation)
        self._track_variable(variable)
        return variable

