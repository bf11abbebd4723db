"""``optimlab.Optimizer``: Keras 3's optimizer base plus the contract Keras 3 dropped.

Keras 3 already does schedules, decoupled weight decay, EMA, gradient
accumulation, loss scaling, saving and ``tf.distribute`` updates; this class
keeps all of that and adds what seed 003 documents for Keras 2's ``OptimizerV2``:

* ``minimize(loss, var_list, grad_loss=None, name=None, tape=None)``;
* ``apply_gradients(grads_and_vars, name=None, experimental_aggregate_gradients=True)``;
* gradient processing in Keras 2's order: aggregate across replicas (sum, or a
  ``gradient_aggregator``), then ``clipvalue``, ``clipnorm``, ``global_clipnorm``,
  then ``gradient_transformers``;
* named slots (``add_slot`` / ``get_slot`` / ``get_slot_names``);
* hyperparameters that may be numbers, tensors, zero-argument callables or
  ``LearningRateSchedule`` objects, stored in variables so that
  ``opt.beta_1 = 0.5`` takes effect inside an already traced ``tf.function``;
* a sparse update path for ``tf.IndexedSlices`` with duplicate indices summed;
* validation of constructor arguments and of every apply, before any state changes.

A subclass implements ``build(var_list)`` (create slots), ``update_step(gradient,
variable, learning_rate)`` and, optionally, ``sparse_update_step``. Its
``get_config`` is derived from its constructor signature.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf
from keras.optimizers.schedules import LearningRateSchedule

from optimlab import fused as fast_paths
from optimlab import gradients as gradient_ops
from optimlab._checks import check_bool, check_int, check_nonnegative, check_positive, check_range

# Constructor arguments of Keras 3's base that optimlab passes through untouched.
KERAS_BASE_ARGS = (
    "weight_decay",
    "use_ema",
    "ema_momentum",
    "ema_overwrite_frequency",
    "loss_scale_factor",
    "gradient_accumulation_steps",
)
_CLIP_ARGS = ("clipvalue", "clipnorm", "global_clipnorm")


def _is_dynamic(value):
    """Schedules and zero-argument callables are evaluated at every step."""
    if isinstance(value, LearningRateSchedule):
        return True
    return callable(value) and not isinstance(value, (tf.Variable, keras.Variable, tf.Tensor))


def _to_float(name, value):
    """A number or an eager scalar tensor as a Python float (for variable storage)."""
    try:
        return float(np.asarray(value))
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a number, a scalar tensor, a zero-argument callable or a "
            f"LearningRateSchedule; got {value!r}"
        ) from error


def _exact(value):
    """Python numbers as float64 tensors: ``tf.cast(0.9, tf.float64)`` would pass through float32."""
    if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
        return tf.constant(value, tf.float64)
    return value


def _check_base_args(kwargs):
    """Keras 3's base arguments, checked before anything is built (Keras lets NaN, -1, strings through)."""
    if kwargs.get("weight_decay") is not None:
        check_nonnegative("weight_decay", kwargs["weight_decay"])
    if "use_ema" in kwargs:
        check_bool("use_ema", kwargs["use_ema"])
    if "ema_momentum" in kwargs:
        check_range("ema_momentum", kwargs["ema_momentum"], 0.0, 1.0, dynamic=False)
    if kwargs.get("ema_overwrite_frequency") is not None:
        check_int("ema_overwrite_frequency", kwargs["ema_overwrite_frequency"], 1)
    if kwargs.get("loss_scale_factor") is not None:
        check_positive("loss_scale_factor", kwargs["loss_scale_factor"], dynamic=False)
    if kwargs.get("gradient_accumulation_steps") is not None:
        check_int("gradient_accumulation_steps", kwargs["gradient_accumulation_steps"], 2)


def _all_finite(grads):
    """True when no gradient holds a NaN or an infinity (one scalar for the whole step)."""
    checks = []
    for g in grads:
        values = g.values if isinstance(g, tf.IndexedSlices) else tf.convert_to_tensor(g)
        checks.append(tf.reduce_all(tf.math.is_finite(values)))
    return tf.reduce_all(tf.stack(checks))


def _after(guards, gradient):
    """``gradient`` made to depend on ``guards`` (the sparse-index assertions) in a graph."""
    if not guards or gradient is None:
        return gradient
    with tf.control_dependencies(guards):
        if isinstance(gradient, tf.IndexedSlices):
            return tf.IndexedSlices(tf.identity(gradient.values), tf.identity(gradient.indices), gradient.dense_shape)
        return tf.identity(gradient)


def _var_label(variable):
    return getattr(variable, "path", None) or getattr(variable, "name", repr(variable))


class Optimizer(keras.optimizers.Optimizer):
    """Base class of every optimlab optimizer (modern style).

    Args:
        learning_rate: float, tensor, zero-argument callable or
            ``keras.optimizers.schedules.LearningRateSchedule``.
        clipvalue: clip every gradient element to ``[-clipvalue, clipvalue]``.
        clipnorm: clip each gradient to this L2 norm.
        global_clipnorm: clip all gradients jointly to this global L2 norm.
        gradient_aggregator: function on a list of ``(gradient, variable)``
            pairs that replaces the default cross-replica sum.
        gradient_transformers: functions on lists of pairs applied after
            aggregation and clipping (cannot be combined with clipping, as in Keras 2).
        fused: TensorFlow's fused kernels where an optimizer has one (see
            ``optimlab.fused``): None (default) uses them for variables with at least
            ``optimlab.fused.MIN_SIZE`` elements (optimlab's bit-identical native
            kernels for every size), True always, False never.
        skip_nonfinite: when True, a step whose gradients (after aggregation
            across replicas) hold a NaN or an infinity is skipped: variables,
            slots, accumulators, EMA and ``iterations`` stay as they were, and
            ``nonfinite_steps`` counts the skipped steps (Optax's
            ``apply_if_finite``). Default False: such a step is applied, as in
            Keras and torch.
        name: the optimizer's name.
        **kwargs: Keras 3 base arguments (``weight_decay``, ``use_ema``,
            ``ema_momentum``, ``ema_overwrite_frequency``, ``loss_scale_factor``,
            ``gradient_accumulation_steps``).
    """

    def __init__(
        self,
        learning_rate=0.001,
        clipvalue=None,
        clipnorm=None,
        global_clipnorm=None,
        gradient_aggregator=None,
        gradient_transformers=None,
        fused=None,
        name=None,
        skip_nonfinite=False,
        **kwargs,
    ):
        unknown = sorted(set(kwargs) - set(KERAS_BASE_ARGS))
        if unknown:
            allowed = sorted(set(KERAS_BASE_ARGS) | set(_CLIP_ARGS) | {"learning_rate", "name"})
            raise TypeError(
                f"{type(self).__name__} got unexpected keyword argument(s) {unknown}; "
                f"allowed besides the optimizer's own arguments: {allowed}"
            )
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string; got {name!r}")
        for arg, value in zip(_CLIP_ARGS, (clipvalue, clipnorm, global_clipnorm)):
            if value is not None:
                check_nonnegative(arg, value)
        _check_base_args(kwargs)
        check_bool("skip_nonfinite", skip_nonfinite)
        self._check_learning_rate(learning_rate)
        # Keras creates its own float32 learning-rate variable for numbers; a
        # placeholder callable stops that so that optimlab can keep it in float64.
        super().__init__(learning_rate=lambda: 0.0, name=name, **kwargs)
        # Plain dicts, out of Keras' tracking: the stores are tracked as variables,
        # and a user's own variable given as a value must not become optimizer state.
        object.__setattr__(self, "_hypers", {})
        object.__setattr__(self, "_hyper_stores", {})
        self._hyper_checks = {}
        self._slots = {}
        self._slot_names = []
        self._aggregate_in_apply = True
        if fused not in (None, True, False):
            raise ValueError(f"fused must be None (automatic), True or False; got {fused!r}")
        self.fused = fused
        self._learning_rate_store = self._new_store("learning_rate")
        self.skip_nonfinite = skip_nonfinite
        if skip_nonfinite:
            self._nonfinite_steps = self.add_variable(
                shape=(), initializer="zeros", dtype="int64", name="nonfinite_steps", aggregation="only_first_replica"
            )
        self._set_hyper("learning_rate", learning_rate)
        if gradient_aggregator is not None and not callable(gradient_aggregator):
            raise TypeError(f"gradient_aggregator must be callable; got {gradient_aggregator!r}")
        self.gradient_aggregator = gradient_aggregator or gradient_ops.all_reduce_sum
        if gradient_transformers is not None and not isinstance(gradient_transformers, (list, tuple)):
            raise TypeError(f"gradient_transformers must be a list of callables or None; got {gradient_transformers!r}")
        transformers = list(gradient_transformers or [])
        for fn in transformers:
            if not callable(fn):
                raise TypeError(f"gradient_transformers must be a list of callables; got {gradient_transformers!r}")
        self.gradient_transformers = transformers
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm`; "
                f"got clipnorm={clipnorm}, global_clipnorm={global_clipnorm}"
            )
        self.clipvalue = clipvalue

    # ------------------------------------------------------------------ clipping
    def _check_clip_allowed(self, arg, value):
        if value is not None and getattr(self, "gradient_transformers", None):
            raise ValueError(
                f"`{arg}` cannot be set when `gradient_transformers` is set; use the "
                f"transformers for clipping instead. Got {arg}={value}, "
                f"gradient_transformers={self.gradient_transformers}"
            )
        if value is not None:
            check_nonnegative(arg, value)

    @property
    def clipnorm(self):
        return self.__dict__.get("_clipnorm")

    @clipnorm.setter
    def clipnorm(self, value):
        self._check_clip_allowed("clipnorm", value)
        if value is not None and self.__dict__.get("_global_clipnorm") is not None:
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm`; "
                f"got clipnorm={value}, global_clipnorm={self.global_clipnorm}"
            )
        self.__dict__["_clipnorm"] = value

    @property
    def global_clipnorm(self):
        return self.__dict__.get("_global_clipnorm")

    @global_clipnorm.setter
    def global_clipnorm(self, value):
        self._check_clip_allowed("global_clipnorm", value)
        if value is not None and self.__dict__.get("_clipnorm") is not None:
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm`; "
                f"got clipnorm={self.clipnorm}, global_clipnorm={value}"
            )
        self.__dict__["_global_clipnorm"] = value

    @property
    def clipvalue(self):
        return self.__dict__.get("_clipvalue")

    @clipvalue.setter
    def clipvalue(self, value):
        self._check_clip_allowed("clipvalue", value)
        self.__dict__["_clipvalue"] = value

    # ------------------------------------------------------------ learning rate
    @staticmethod
    def _check_learning_rate(value):
        if _is_dynamic(value) or isinstance(value, (tf.Variable, keras.Variable)):
            return
        check_range("learning_rate", value, 0.0)

    @property
    def learning_rate(self):
        return _exact(self._get_current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_hyper("learning_rate", value)

    # ---------------------------------------------------------- hyperparameters
    # Every hyperparameter owns one float64 "store" variable, whatever form its
    # value takes, so that the optimizer's variables (and so its saved state) do
    # not depend on whether a value is a number, a callable or a schedule. A
    # number lives in its store; other forms are read directly and copied into
    # the store before saving (``get_config`` writes them out as numbers).
    def _new_store(self, name):
        return self.add_variable(shape=(), initializer="zeros", dtype="float64", name=name)

    def _source_for(self, name, value, store):
        """What hyperparameter ``name`` reads from: its store for numbers, else ``value``."""
        if _is_dynamic(value) or isinstance(value, (tf.Variable, keras.Variable)):
            return value
        store.assign(_to_float(name, value))
        return store

    def _set_hyper(self, name, value, check=None):
        """Create or update hyperparameter ``name``.

        Numbers and tensors live in a float64 variable (assignments reach traced
        functions without retracing); callables, schedules and variables are read
        at each step. ``check(name, value)`` validates numbers now and on every
        later assignment.
        """
        if name in ("learning_rate", "lr"):
            self._check_learning_rate(value)
            source = self._source_for("learning_rate", value, self._learning_rate_store)
            object.__setattr__(self, "_learning_rate", source)
            return
        if check is not None:
            self._hyper_checks[name] = check
        if name in self._hyper_checks and not _is_dynamic(value):
            self._hyper_checks[name](name, value)
        if name not in self._hyper_stores:
            self._hyper_stores[name] = self._new_store(name)
        self._hypers[name] = self._source_for(name, value, self._hyper_stores[name])

    def _get_hyper(self, name, dtype=None):
        """The current value of hyperparameter ``name``, cast to ``dtype`` if given."""
        if name in ("learning_rate", "lr"):
            value = self.learning_rate
        elif name not in self._hypers:
            raise KeyError(f"{type(self).__name__} has no hyperparameter {name!r}; it has {sorted(self._hypers)}")
        else:
            value = self._hypers[name]
            if isinstance(value, LearningRateSchedule):
                value = value(self.iterations)
            elif _is_dynamic(value):
                value = _exact(value())
        if dtype is not None:
            value = tf.cast(value, dtype)
        return value

    def _serialize_hyperparameter(self, name):
        """A JSON-able value for ``get_config``: schedules serialized, callables evaluated."""
        value = self._learning_rate if name in ("learning_rate", "lr") else self._hypers[name]
        if isinstance(value, LearningRateSchedule):
            return keras.optimizers.schedules.serialize(value)
        if _is_dynamic(value):
            value = value()
        return float(np.asarray(value))

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

    def __setattr__(self, name, value):
        hypers = self.__dict__.get("_hypers")
        if hypers is not None and (name in hypers or name in ("learning_rate", "lr")):
            self._set_hyper(name, value)
        else:
            super().__setattr__(name, value)

    def __getattr__(self, name):
        hypers = self.__dict__.get("_hypers")
        if hypers is not None and name in hypers:
            return self._get_hyper(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __dir__(self):
        # tf.train.Checkpoint takes objects whose dir() lists get_slot_names for
        # Keras 2 optimizers and saves their slots a second time, which fails;
        # here slots are saved once, as ordinary optimizer variables.
        return [attr for attr in super().__dir__() if attr != "get_slot_names"]

    # ------------------------------------------------------------------- slots
    # Names of the zero-initialized slots that ``build`` creates for every
    # variable, in this order. An optimizer with other needs (conditional slots,
    # other shapes) overrides ``build``, calls ``super().build`` and adds its own.
    slots = ()

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for name in self.slots:
            for var in var_list:
                self.add_slot(var, name)

    def add_slot(self, var, slot_name, initializer="zeros", shape=None, dtype=None):
        """Create (once) the slot ``slot_name`` for ``var`` and return it.

        ``shape`` and ``dtype`` default to the variable's; ``initializer`` is a Keras
        initializer (name or object), a callable ``(shape, dtype)``, or a value.
        """
        key = self._var_key(var)
        per_var = self._slots.setdefault(key, {})
        if slot_name in per_var:
            return per_var[slot_name]
        if slot_name not in self._slot_names:
            self._slot_names.append(slot_name)
        shape = tuple(var.shape) if shape is None else tuple(shape)
        dtype = var.dtype if dtype is None else tf.as_dtype(dtype)
        if not (isinstance(initializer, str) or callable(initializer)):
            initializer = keras.initializers.Constant(np.asarray(initializer))
        colocate = var.value if isinstance(var, keras.Variable) else var
        label = _var_label(var).replace("/", "_").replace(":", "_")
        with self._distribution_strategy.extended.colocate_vars_with(colocate):
            slot = self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=f"{label}_{slot_name}")
        per_var[slot_name] = slot
        return slot

    def get_slot(self, var, slot_name):
        """The slot ``slot_name`` of ``var``; KeyError naming what exists otherwise."""
        per_var = self._slots.get(self._var_key(var), {})
        if slot_name not in per_var:
            raise KeyError(
                f"No slot {slot_name!r} for variable {_var_label(var)!r}; "
                f"slots of this optimizer: {self._slot_names}"
            )
        return per_var[slot_name]

    def get_slot_names(self):
        """Names of the slots this optimizer creates, in creation order."""
        return list(self._slot_names)

    # -------------------------------------------------------------- minimizing
    def compute_gradients(self, loss, var_list, grad_loss=None, tape=None):
        """Gradients of ``loss`` as ``(gradient, variable)`` pairs (Keras 2's ``_compute_gradients``)."""
        if not callable(loss) and tape is None:
            raise ValueError(f"`tape` is required when a Tensor loss is passed; got loss={loss!r}, tape=None")
        tape = tape if tape is not None else tf.GradientTape()
        if callable(loss):
            with tape:
                if not callable(var_list):
                    tape.watch(var_list)
                loss = loss()
        if callable(var_list):
            var_list = var_list()
        var_list = tf.nest.flatten(var_list)
        if not var_list:
            raise ValueError("var_list must name at least one variable; got an empty list")
        grads = tape.gradient(loss, var_list, grad_loss)
        return list(zip(grads, var_list))

    def minimize(self, loss, var_list, grad_loss=None, name=None, tape=None):
        """Compute the gradients of ``loss`` and apply them (Keras 2 contract).

        Args:
            loss: zero-argument callable returning the loss, or a tensor computed
                under ``tape``.
            var_list: list of variables, or a zero-argument callable returning it
                (for models whose variables are created on first call).
            grad_loss: optional gradient of the loss (``output_gradients``).
            name: optional name scope for the update.
            tape: the ``tf.GradientTape`` that recorded a tensor ``loss``.
        """
        grads_and_vars = self.compute_gradients(loss, var_list, grad_loss=grad_loss, tape=tape)
        return self.apply_gradients(grads_and_vars, name=name)

    def apply_gradients(self, grads_and_vars, name=None, experimental_aggregate_gradients=True):
        """Apply ``(gradient, variable)`` pairs.

        Under ``tf.distribute`` gradients are summed across replicas first unless
        ``experimental_aggregate_gradients=False``. Returns the iteration counter.
        """
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"name must be a string; got {type(name).__name__}. To pass gradients and "
                "variables as two lists, call apply(grads, variables)"
            )
        pairs = list(grads_and_vars)
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError(f"grads_and_vars must hold (gradient, variable) pairs; got {pair!r}")
        grads = [g for g, _ in pairs]
        variables = [v for _, v in pairs]
        self._aggregate_in_apply = check_bool("experimental_aggregate_gradients", experimental_aggregate_gradients)
        try:
            with tf.name_scope(name or self.name):
                self.apply(grads, variables)
        finally:
            self._aggregate_in_apply = True
        return self._iterations

    def apply(self, grads, trainable_variables=None):
        """Keras 3's ``apply`` with the inputs validated before any state changes.

        Gradients, variables and sparse indices are checked first; a step is
        skipped (``skip_nonfinite``) without advancing ``iterations``.
        """
        grads = list(grads)
        if trainable_variables is None:
            if not self.built:
                raise ValueError("apply(grads) without variables needs a built optimizer; pass the variables")
            variables = list(self._trainable_variables)
        else:
            variables = list(trainable_variables)
        grads = [gradient_ops.sparse_as_tensors(g) for g in grads]
        self._validate(grads, variables)
        grads = [gradient_ops.cast_like(g, v) for g, v in zip(grads, variables)]
        guards = self._check_indices(grads, variables)
        if not grads:
            return
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(variables)
            self.built = True
        self._check_variables_are_known(variables)
        with keras.name_scope(self.name, caller=self), tf.control_dependencies(guards):
            grads = [_after(guards, g) for g in grads]
            grads, variables = self._filter_empty_gradients(grads, variables)
            grads, variables = self._overwrite_variables_directly_with_gradients(grads, variables)
            applied = None
            if grads:
                if self.loss_scale_factor is not None:
                    grads = [g / self.loss_scale_factor for g in grads]
                applied = self._backend_apply_gradients(grads, variables)
                self._apply_constraints(variables, applied)
            if applied is None:
                self._iterations.assign_add(1)
            else:
                self._iterations.assign_add(tf.cast(applied, self._iterations.dtype))

    def _apply_constraints(self, variables, applied):
        constrained = [v for v in variables if getattr(v, "constraint", None) is not None]
        if not constrained:
            return

        def constrain():
            for variable in constrained:
                variable.assign(variable.constraint(variable))
            return tf.constant(True)

        if applied is None:
            constrain()
        else:
            tf.cond(applied, constrain, lambda: tf.constant(False))

    @property
    def nonfinite_steps(self):
        """How many steps ``skip_nonfinite=True`` skipped (0 when the option is off)."""
        if not self.skip_nonfinite:
            return tf.constant(0, tf.int64)
        return tf.convert_to_tensor(self._nonfinite_steps)

    def _validate(self, grads, variables):
        if len(grads) != len(variables):
            raise ValueError(
                f"grads and variables must have the same length; got {len(grads)} gradients "
                f"for {len(variables)} variables"
            )
        if variables and all(g is None for g in grads):
            names = [_var_label(v) for v in variables]
            raise ValueError(f"No gradients provided for any variable: {names}; at least one must be a tensor")
        for i, (g, v) in enumerate(zip(grads, variables)):
            if not isinstance(v, (tf.Variable, keras.Variable)):
                raise TypeError(f"variables[{i}] must be a tf.Variable or keras.Variable; got {type(v).__name__}: {v!r}")
            if g is None:
                continue
            label = _var_label(v)
            if isinstance(g, tf.IndexedSlices):
                grad_dtype, grad_shape = g.values.dtype, g.values.shape[1:]
                var_shape = v.shape[1:]
                if not g.indices.dtype.is_integer:
                    raise TypeError(f"grads[{i}] for variable {label!r} has indices of dtype {g.indices.dtype.name}; they must be integers")
            else:
                if isinstance(g, (str, bytes, bool, np.bool_)):
                    raise TypeError(f"grads[{i}] for variable {label!r} must be a tensor of dtype {tf.as_dtype(v.dtype).name}; got {g!r}")
                try:
                    g_tensor = g if isinstance(g, tf.Tensor) else tf.convert_to_tensor(g, dtype_hint=v.dtype)
                except (TypeError, ValueError) as error:
                    raise TypeError(
                        f"grads[{i}] for variable {label!r} must be a tensor of dtype {tf.as_dtype(v.dtype).name} "
                        f"and shape {tf.TensorShape(v.shape)}; got {g!r}"
                    ) from error
                grad_dtype, grad_shape, var_shape = g_tensor.dtype, g_tensor.shape, v.shape
            if tf.as_dtype(grad_dtype) != tf.as_dtype(v.dtype) and not tf.as_dtype(grad_dtype).is_floating:
                raise TypeError(
                    f"grads[{i}] for variable {label!r} has dtype {tf.as_dtype(grad_dtype).name}; "
                    f"it must be floating (it is cast to the variable's dtype {tf.as_dtype(v.dtype).name}, as Keras does)"
                )
            if not tf.TensorShape(grad_shape).is_compatible_with(var_shape):
                raise ValueError(
                    f"grads[{i}] for variable {label!r} has shape {tf.TensorShape(grad_shape)}; "
                    f"it must match the variable's shape {tf.TensorShape(var_shape)}"
                )

    @staticmethod
    def _check_indices(grads, variables):
        """Sparse gradients must index existing rows: checked now (eagerly) or first in the graph.

        Returns the graph's assertions, on which every later op of the step depends.
        """
        guards = []
        for i, (g, v) in enumerate(zip(grads, variables)):
            if not isinstance(g, tf.IndexedSlices):
                continue
            rows = tf.cast(tf.shape(v)[0], g.indices.dtype)
            message = f"grads[{i}] for variable {_var_label(v)!r} has indices outside [0, number of rows)"
            if tf.executing_eagerly():
                indices = g.indices.numpy()
                bad = indices[(indices < 0) | (indices >= int(rows))]
                if bad.size:
                    raise ValueError(f"{message}; got {bad.tolist()[:10]} for {int(rows)} rows")
            else:
                in_range = tf.reduce_all((g.indices >= 0) & (g.indices < rows))
                guards.append(tf.debugging.Assert(in_range, [message, g.indices, rows]))
        return guards

    # ------------------------------------------------- Keras 3 pipeline hooks
    def _merge(self, fn, *args):
        """``fn(strategy, *args)`` in cross-replica context: a merge call from a replica, direct otherwise."""
        if tf.distribute.in_cross_replica_context():
            return fn(self._distribution_strategy, *args)
        return tf.__internal__.distribute.interim.maybe_merge_call(fn, self._distribution_strategy, *args)

    def _backend_apply_gradients(self, grads, trainable_variables):
        """Aggregate, then (accumulate or) clip, decay and update; returns whether the step was applied."""
        pairs = list(zip(grads, trainable_variables))
        if self._aggregate_in_apply:
            pairs = list(self.gradient_aggregator(pairs))
        object.__setattr__(self, "_in_flight", [v for _, v in pairs])
        object.__setattr__(self, "_step_cache", {})  # per-apply scalars shared by all variables
        object.__setattr__(self, "_decay_deferred", False)  # see _apply_weight_decay
        grads, variables = [g for g, _ in pairs], [v for _, v in pairs]
        steps = self.gradient_accumulation_steps
        if not steps and not self.skip_nonfinite:
            super()._backend_apply_gradients(grads, variables)
            return None
        # Keras 3 accumulates with merge calls inside ``ops.cond``, which fails
        # under MirroredStrategy; here the one merge call comes first and every
        # condition (update or accumulate, finite or skipped) is taken in
        # cross-replica context.
        finite = _all_finite(grads) if self.skip_nonfinite else tf.constant(True)
        if steps:
            accumulators = [self._accumulated_gradients[self._get_variable_index(v)] for v in variables]
            update_grads = [(tf.convert_to_tensor(g) + a) / steps for g, a in zip(grads, accumulators)]
            is_update = tf.equal((self._iterations + 1) % steps, 0)
        else:
            accumulators, update_grads, is_update = [], grads, tf.constant(True)
        update_grads = self._clip_gradients(update_grads)
        self._merge(
            self._step_in_cross_replica,
            list(zip(update_grads, variables)),
            list(zip(grads, accumulators)),
            is_update,
            finite,
        )
        if self.use_ema:

            def ema():
                self._update_model_variables_moving_average(self._trainable_variables)
                if self.ema_overwrite_frequency:
                    overwrite = (self.iterations + 1) % self.ema_overwrite_frequency == 0
                    keras.ops.cond(
                        overwrite,
                        lambda: self._overwrite_model_variables_with_average_value(self._trainable_variables),
                        lambda: None,
                    )
                return tf.constant(True)

            tf.cond(finite, ema, lambda: tf.constant(False)) if self.skip_nonfinite else ema()
        return finite

    def _step_in_cross_replica(self, distribution, update_pairs, accumulate_pairs, is_update, finite):
        """Cross-replica half of a guarded step: skip it, accumulate, or update (and reset the accumulators)."""
        local = distribution.experimental_local_results
        flag = local(is_update)[0]
        finite = tf.reduce_all(tf.stack([tf.convert_to_tensor(f) for f in local(finite)]))
        variables = [v for _, v in update_pairs]

        def update():
            self._apply_weight_decay(variables)
            self._backend_update_step([g for g, _ in update_pairs], variables, self.learning_rate)
            for grad, acc in accumulate_pairs:
                distribution.extended.update(acc.value, lambda a, _: a.assign(tf.zeros_like(a)), args=(grad,), group=False)
            return tf.constant(True)

        def accumulate():
            for grad, acc in accumulate_pairs:
                distribution.extended.update(
                    acc.value, lambda a, g: a.assign_add(tf.convert_to_tensor(g)), args=(grad,), group=False
                )
            return tf.constant(False)

        def step():
            return tf.cond(flag, update, accumulate) if accumulate_pairs else update()

        def skip():
            self._nonfinite_steps.assign_add(1)
            return tf.constant(False)

        return tf.cond(finite, step, skip) if self.skip_nonfinite else step()

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        self._merge(self._distributed_tf_update_step, list(zip(grads, variables)), learning_rate)

    def _decay_and_update(self, variable, gradient, learning_rate):
        self._decay_one(variable, learning_rate)
        return self._update_one(variable, gradient, learning_rate)

    def _decay_one(self, variable, learning_rate):
        """Decoupled weight decay ``x <- x - lr * wd * x``, with ``wd`` exact in the variable's dtype."""
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = tf.constant(self.weight_decay, variable.dtype) * tf.cast(learning_rate, variable.dtype)
            variable.assign_sub(variable * decay)

    def _apply_weight_decay(self, variables):
        # Keras 3 casts the Python float through float32 (tf.cast of a float makes a
        # float32 tensor first); this keeps it exact for float64 variables.
        if self.weight_decay is None:
            return
        if not tf.distribute.has_strategy() and fast_paths.folds_weight_decay(self):
            # The update step decays each variable with its update: in the native
            # kernel's single pass, or just before the per-variable update.
            object.__setattr__(self, "_decay_deferred", True)
            return
        learning_rate = self.learning_rate

        def apply(distribution, variables):
            for variable in variables:
                variable = variable.value if isinstance(variable, keras.Variable) else variable
                distribution.extended.update(variable, self._decay_one, args=(learning_rate,), group=False)

        self._merge(apply, variables)

    def _clip_gradients(self, grads):
        """Keras 3 calls this after accumulation; optimlab runs Keras 2's order here.

        Called outside ``apply`` (as Keras's own tests do), the pairs carry no variables.
        """
        variables = self.__dict__.get("_in_flight") or []
        pairs = list(zip(grads, variables if len(variables) == len(grads) else [None] * len(grads)))
        if self.clipvalue is not None:
            pairs = gradient_ops.clip_by_value(pairs, self.clipvalue)
        if self.clipnorm is not None:
            pairs = gradient_ops.clip_by_norm(pairs, self.clipnorm)
        if self.global_clipnorm is not None:
            pairs = gradient_ops.clip_by_global_norm(pairs, self.global_clipnorm)
        for fn in self.gradient_transformers:
            pairs = list(fn(pairs))
        return [g for g, _ in pairs]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Aggregation already happened before clipping, as in Keras 2.
        return grads_and_vars

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        decay = self.__dict__.get("_decay_deferred", False)
        if not tf.distribute.has_strategy():  # one native multi-tensor op per dtype; the rest one by one
            grads_and_vars = fast_paths.apply_many(self, grads_and_vars, learning_rate, decay=decay)
        update = self._decay_and_update if decay else self._update_one
        for grad, var in grads_and_vars:
            distribution.extended.update(var, update, args=(grad, learning_rate), group=False)

    def _update_one(self, variable, gradient, learning_rate):
        if isinstance(gradient, tf.IndexedSlices):
            gradient = gradient_ops.deduplicate(gradient)
        if fast_paths.wanted(self, variable) and fast_paths.apply(self, gradient, variable, learning_rate):
            return None
        if isinstance(gradient, tf.IndexedSlices):
            return self.sparse_update_step(gradient, variable, learning_rate)
        return self.update_step(gradient, variable, learning_rate)

    def sparse_update_step(self, gradient, variable, learning_rate):
        """Update from an ``IndexedSlices`` gradient whose indices are unique.

        The default applies the dense rule to the densified gradient, which gives
        exactly the dense semantics. Optimizers with a cheaper or lazy sparse rule
        override this and declare it in the registry.
        """
        return self.update_step(tf.convert_to_tensor(gradient), variable, learning_rate)

    # ------------------------------------------------------------ serialization
    def get_config(self):
        """Keras 3's base config plus every constructor argument of the subclass."""
        config = super().get_config()
        config["learning_rate"] = self._serialize_hyperparameter("learning_rate")
        for arg in _CLIP_ARGS:
            config[arg] = getattr(self, arg)
        config["fused"] = self.fused
        config["skip_nonfinite"] = self.skip_nonfinite
        signature = inspect.signature(type(self).__init__)
        for arg, param in signature.parameters.items():
            if arg in config or arg == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            if arg in ("gradient_aggregator", "gradient_transformers"):
                continue
            if arg in self._hypers:
                config[arg] = self._serialize_hyperparameter(arg)
            elif arg in self.__dict__:
                config[arg] = self.__dict__[arg]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        for key, value in config.items():
            if isinstance(value, dict) and "class_name" in value:
                config[key] = keras.saving.deserialize_keras_object(value, custom_objects=custom_objects)
        return cls(**config)
