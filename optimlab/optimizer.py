"""``optimlab.Optimizer``: Keras 3's optimizer base plus the contract Keras 3 dropped.

Keras 3 already does schedules, decoupled weight decay, EMA, gradient
accumulation, loss scaling, saving and ``tf.distribute`` updates; this class
keeps all of that and adds what Keras 2's optimizer contract
(``tf.keras.optimizers.legacy.Optimizer``, ``OptimizerV2``) offered:

* ``minimize(loss, var_list, grad_loss=None, name=None, tape=None)``;
* ``apply_gradients(grads_and_vars, name=None, experimental_aggregate_gradients=True)``;
* gradient processing in Keras 2's order: aggregate across replicas (sum, or a
  ``gradient_aggregator``), then ``clipvalue``, ``clipnorm``, ``global_clipnorm``,
  then ``gradient_transformers`` (:mod:`optimlab.gradients`);
* named slots (``add_slot`` / ``get_slot`` / ``get_slot_names``);
* hyperparameters that may be numbers, tensors, zero-argument callables or
  ``LearningRateSchedule`` objects, stored in variables so that
  ``opt.beta_1 = 0.5`` takes effect inside an already traced ``tf.function``
  (:mod:`optimlab.hyperparameters`);
* a sparse update path for ``tf.IndexedSlices`` with duplicate indices summed;
* validation of constructor arguments and of every apply, before any state
  changes (:mod:`optimlab._validation`).

A subclass implements ``build(var_list)`` (create slots), ``update_step(gradient,
variable, learning_rate)`` and, optionally, ``sparse_update_step``. Its
``get_config`` is derived from its constructor signature.
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from optimlab import _validation as checks
from optimlab import fused as fast_paths
from optimlab import gradients as gradient_ops
from optimlab._checks import check_bool
from optimlab._validation import CLIP_ARGS, KERAS_BASE_ARGS  # noqa: F401 - KERAS_BASE_ARGS: optimlab.optimizer's name
from optimlab.hyperparameters import Float64Hyperparameters, exact


class Optimizer(Float64Hyperparameters, keras.optimizers.Optimizer):
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

    # ------------------------------------------------------------ construction
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
        transformers = checks.check_constructor_args(
            type(self).__name__, kwargs, learning_rate=learning_rate, clips=(clipvalue, clipnorm, global_clipnorm),
            gradient_aggregator=gradient_aggregator, gradient_transformers=gradient_transformers, fused=fused,
            name=name, skip_nonfinite=skip_nonfinite,
        )
        # Keras creates its own float32 learning-rate variable for numbers; a
        # placeholder callable stops that so that optimlab can keep it in float64.
        super().__init__(learning_rate=lambda: 0.0, name=name, **kwargs)
        self._init_hyperparameters()
        self._slots = {}
        self._slot_names = []
        self._aggregate_in_apply = True
        self.fused = fused
        self.skip_nonfinite = skip_nonfinite
        if skip_nonfinite:
            self._nonfinite_steps = self.add_variable(
                shape=(), initializer="zeros", dtype="int64", name="nonfinite_steps", aggregation="only_first_replica"
            )
        self._init_learning_rate(learning_rate)
        self.gradient_aggregator = gradient_aggregator or gradient_ops.all_reduce_sum
        self.gradient_transformers = transformers
        self.clipnorm = clipnorm
        self.global_clipnorm = global_clipnorm  # raises when clipnorm is set too
        self.clipvalue = clipvalue

    def _init_learning_rate(self, learning_rate):
        """Set the ``learning_rate`` hyperparameter (the legacy base leaves it to its subclass)."""
        self._set_hyper("learning_rate", learning_rate)

    # Clipping options stay settable after construction, checked on each assignment.
    def _set_clip(self, arg, value):
        checks.check_clip(arg, value, getattr(self, "gradient_transformers", None))
        if arg == "clipnorm":
            checks.check_one_norm_clip(value, self.global_clipnorm)
        elif arg == "global_clipnorm":
            checks.check_one_norm_clip(self.clipnorm, value)
        self.__dict__["_" + arg] = value

    clipnorm = property(lambda self: self.__dict__.get("_clipnorm"), lambda self, v: self._set_clip("clipnorm", v))
    global_clipnorm = property(
        lambda self: self.__dict__.get("_global_clipnorm"), lambda self, v: self._set_clip("global_clipnorm", v)
    )
    clipvalue = property(lambda self: self.__dict__.get("_clipvalue"), lambda self, v: self._set_clip("clipvalue", v))

    # --------------------------------------------------------- hyperparameters
    # The store (``_set_hyper``, ``_get_hyper``, ``_serialize_hyperparameter``,
    # ``variable_hyperparameters()``, attribute access ``opt.beta_1``) is
    # :class:`optimlab.hyperparameters.Float64Hyperparameters`.
    @property
    def learning_rate(self):
        return exact(self._get_current_learning_rate())

    @learning_rate.setter
    def learning_rate(self, value):
        self._set_hyper("learning_rate", value)

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
        label = checks.var_label(var).replace("/", "_").replace(":", "_")
        with self._distribution_strategy.extended.colocate_vars_with(colocate):
            slot = self.add_variable(shape=shape, initializer=initializer, dtype=dtype, name=f"{label}_{slot_name}")
        per_var[slot_name] = slot
        return slot

    def get_slot(self, var, slot_name):
        """The slot ``slot_name`` of ``var``; KeyError naming what exists otherwise."""
        per_var = self._slots.get(self._var_key(var), {})
        if slot_name not in per_var:
            raise KeyError(
                f"No slot {slot_name!r} for variable {checks.var_label(var)!r}; "
                f"slots of this optimizer: {self._slot_names}"
            )
        return per_var[slot_name]

    def get_slot_names(self):
        """Names of the slots this optimizer creates, in creation order."""
        return list(self._slot_names)

    def __dir__(self):
        # tf.train.Checkpoint takes objects whose dir() lists get_slot_names for
        # Keras 2 optimizers and saves their slots a second time, which fails;
        # here slots are saved once, as ordinary optimizer variables.
        return [attr for attr in super().__dir__() if attr != "get_slot_names"]

    # ------------------------------------------------------------------- apply
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
        pairs = checks.check_grads_and_vars(grads_and_vars, name)
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
        checks.check_apply_inputs(grads, variables)
        grads = [gradient_ops.cast_like(g, v) for g, v in zip(grads, variables)]
        guards = checks.check_indices(grads, variables)
        if not grads:
            return
        if not self.built:
            with keras.name_scope(self.name, caller=self):
                self.build(variables)
            self.built = True
        self._check_variables_are_known(variables)
        with keras.name_scope(self.name, caller=self), tf.control_dependencies(guards):
            grads = [checks.after(guards, g) for g in grads]
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

    # Keras 3's pipeline hooks, in the order a step runs them.
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
        finite = checks.all_finite(grads) if self.skip_nonfinite else tf.constant(True)
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
            tf.cond(finite, self._ema_step, lambda: tf.constant(False)) if self.skip_nonfinite else self._ema_step()
        return finite

    def _ema_step(self):
        """Keras 3's EMA of the weights (and its periodic overwrite) after an applied step."""
        self._update_model_variables_moving_average(self._trainable_variables)
        if self.ema_overwrite_frequency:
            overwrite = (self.iterations + 1) % self.ema_overwrite_frequency == 0
            keras.ops.cond(
                overwrite,
                lambda: self._overwrite_model_variables_with_average_value(self._trainable_variables),
                lambda: None,
            )
        return tf.constant(True)

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

    def _clip_gradients(self, grads):
        """Keras 3 calls this after accumulation; optimlab runs Keras 2's order here.

        Called outside ``apply`` (as Keras's own tests do), the pairs carry no variables.
        """
        variables = self.__dict__.get("_in_flight") or []
        pairs = list(zip(grads, variables if len(variables) == len(grads) else [None] * len(grads)))
        pairs = gradient_ops.clip_and_transform(
            pairs, self.clipvalue, self.clipnorm, self.global_clipnorm, self.gradient_transformers
        )
        return [g for g, _ in pairs]

    def _all_reduce_sum_gradients(self, grads_and_vars):
        # Aggregation already happened before clipping, as in Keras 2.
        return grads_and_vars

    def _apply_weight_decay(self, variables):
        # Keras 3 casts the Python float through float32 (tf.cast of a float makes a
        # float32 tensor first); this keeps it exact for float64 variables.
        if not self._decays_weights():
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

    def _decays_weights(self):  # whether _apply_weight_decay has work (Muon: also adam_weight_decay)
        return self.weight_decay is not None

    def _decay_one(self, variable, learning_rate):
        """Decoupled weight decay ``x <- x - lr * wd * x``, with ``wd`` exact in the variable's dtype."""
        if self.weight_decay is not None and self._use_weight_decay(variable):
            decay = tf.constant(self.weight_decay, variable.dtype) * tf.cast(learning_rate, variable.dtype)
            variable.assign_sub(variable * decay)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        self._merge(self._distributed_tf_update_step, list(zip(grads, variables)), learning_rate)

    def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
        decay = self.__dict__.get("_decay_deferred", False)
        if not tf.distribute.has_strategy():  # one native multi-tensor op per dtype; the rest one by one
            grads_and_vars = fast_paths.apply_many(self, grads_and_vars, learning_rate, decay=decay)
        update = self._decay_and_update if decay else self._update_one
        for grad, var in grads_and_vars:
            distribution.extended.update(var, update, args=(grad, learning_rate), group=False)

    def _decay_and_update(self, variable, gradient, learning_rate):
        self._decay_one(variable, learning_rate)
        return self._update_one(variable, gradient, learning_rate)

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

    # ------------------------------------------------------------------ config
    def get_config(self):
        """Keras 3's base config plus every constructor argument of the subclass."""
        config = super().get_config()
        config["learning_rate"] = self._serialize_hyperparameter("learning_rate")
        for arg in CLIP_ARGS:
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
