"""optimlab.legacy names its state as Keras 2 does, checked side by side with tf_keras.

Keras 2's rule (found by running tf_keras' legacy optimizers): a variable is named by the
``tf.name_scope`` where it is created, and ``apply_gradients`` creates the state inside
``tf.name_scope(optimizer.name)``:

* the step counter: ``<scope>/<optimizer>/iter:0`` (``Adam/iter:0``);
* a hyperparameter: ``<scope>/<optimizer>/<hyperparameter>:0`` (``Adam/beta_1:0``);
* a slot: ``<scope>/<optimizer>/<variable's name without ':0'>/<slot>:0``
  (``Adam/var0/m:0``, ``Adam/Variable/m:0`` for an unnamed variable,
  ``Adam/outer/inner/w/m:0`` for a variable made inside name scopes, ``Adam/dense/kernel/m:0``
  for a layer's kernel); two variables with the same name give the same slot names;
* ``<scope>`` is the ``tf.name_scope`` around that first ``apply_gradients`` (empty at top level);
* a hyperparameter read before any step is created outside that scope: ``learning_rate:0``;
* an inner optimizer's slots created by a wrapper's step are in the wrapper's scope:
  ``Lookahead/var0/m:0``.

optimlab follows it, with one exception besides the next paragraph's: Keras 3 creates the
step counter in the constructor, so the counter takes the scope around the constructor
(the tests construct and apply in the same scope, where both agree).

One difference cannot be removed: a Keras 3 layer's variable is named by its path with the
model's name first (``sequential/dense/kernel:0`` where Keras 2 had ``dense/kernel:0``), so its
slots are ``Adam/sequential/dense/kernel/m:0`` (the rule applied to the variable's own name).
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab.legacy

tf_keras = pytest.importorskip("tf_keras", reason="tf-keras (test extra) is the Keras 2 reference")

OPTIMIZERS = [
    ("Adam", {"amsgrad": True}),
    ("SGD", {"momentum": 0.9}),
    ("RMSprop", {"centered": True, "momentum": 0.5}),
    ("Nadam", {}),
    ("Ftrl", {}),
    ("Adadelta", {}),
    ("Adagrad", {"name": "custom_name"}),
]


def make_variables():
    """Named, unnamed, made inside name scopes, and two with the same name."""
    named = tf.Variable([1.0, 2.0], name="var0")
    unnamed = tf.Variable([[1.0]])
    with tf.name_scope("outer"), tf.name_scope("inner"):
        scoped = tf.Variable([3.0], name="w")
    twin = tf.Variable([4.0, 5.0], name="var0")
    return [named, unnamed, scoped, twin]


def state_names(module, name, kwargs, scope=None):
    """Names of ``variables()`` and of the hyperparameters after one ``apply_gradients``."""
    variables = make_variables()
    pairs = [(tf.ones_like(v), v) for v in variables]
    with tf.name_scope(scope or ""), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = getattr(module, name)(0.1, **kwargs)
        opt.apply_gradients(pairs)
    hypers = {key: value.name for key, value in opt._hyper.items() if hasattr(value, "name")}
    return [v.name for v in opt.variables()], hypers


@pytest.mark.parametrize("scope", [None, "train_step"])
@pytest.mark.parametrize("name, kwargs", OPTIMIZERS, ids=[c[0] for c in OPTIMIZERS])
def test_state_is_named_as_tf_keras_names_it(name, kwargs, scope):
    ours = state_names(optimlab.legacy, name, kwargs, scope)
    theirs = state_names(tf_keras.optimizers.legacy, name, kwargs, scope)
    assert ours == theirs
    prefix = f"{scope}/" if scope else ""
    assert ours[0][0] == f"{prefix}{kwargs.get('name', name)}/iter:0"


def test_a_keras3_layers_slots_follow_the_rule_on_its_own_name():
    """Keras 3 names a layer's kernel ``sequential/dense/kernel`` (Keras 2: ``dense/kernel``);
    the slot is named from the variable's name, so only the model's prefix differs."""

    def slots(module, layers):
        model = layers.Sequential([layers.Input((3,)), layers.layers.Dense(2, name="dense")], name="sequential")
        opt = module.Adam(0.1)
        opt.apply_gradients([(tf.ones_like(w), w) for w in model.trainable_weights])
        return [v.name for v in opt.variables()]

    ours = slots(optimlab.legacy, keras)
    theirs = slots(tf_keras.optimizers.legacy, tf_keras)
    assert theirs == ["Adam/iter:0", "Adam/dense/kernel/m:0", "Adam/dense/bias/m:0",
                      "Adam/dense/kernel/v:0", "Adam/dense/bias/v:0"]
    assert ours == [n.replace("Adam/dense/", "Adam/sequential/dense/") for n in theirs]


def test_keras_path_is_the_tensorflow_name_without_the_suffix():
    var = tf.Variable([1.0], name="var0")
    opt = optimlab.legacy.Adam(0.1)
    opt.apply_gradients([(tf.ones_like(var), var)])
    by_tf_name = {v.value.name: v.path for v in opt._variables}
    assert by_tf_name["Adam/var0/m:0"] == "Adam/var0/m"
    assert by_tf_name["Adam/iter:0"] == "Adam/iter"


def test_names_inside_a_tf_function_match_tf_keras():
    def names(module):
        var = tf.Variable([1.0, 2.0], name="var0")
        opt = module.SGD(0.1, momentum=0.9)

        @tf.function
        def step():
            opt.apply_gradients([(tf.ones_like(var), var)])

        step()
        return [v.name for v in opt.variables()]

    assert names(optimlab.legacy) == names(tf_keras.optimizers.legacy) == ["SGD/iter:0", "SGD/var0/momentum:0"]


def test_set_weights_by_name_between_tf_keras_and_optimlab():
    """The names line up, so a mapping by name moves Keras 2 state into optimlab's optimizer."""

    def trained(module):
        variables = make_variables()[:3]
        opt = module.Adam(0.1)
        for _ in range(2):
            opt.apply_gradients([(tf.ones_like(v) * 0.3, v) for v in variables])
        return opt

    theirs, ours = trained(tf_keras.optimizers.legacy), trained(optimlab.legacy)
    values = {v.name: v.numpy() for v in theirs.variables()}
    for var in ours.variables():
        np.testing.assert_allclose(var.numpy(), values[var.name], rtol=1e-6)


# ------------------------------------------- TFA's ConditionalGradient naming checks
def keras2_conditional_gradient_names(ord_):
    """The reference: Keras 2's rule on a slot named as TFA's ConditionalGradient names it."""

    class Reference(tf_keras.optimizers.legacy.Optimizer):
        def __init__(self, name="ConditionalGradient"):
            super().__init__(name)

        def _create_slots(self, var_list):
            for v in var_list:
                self.add_slot(v, "conditional_gradient")

        def _resource_apply_dense(self, grad, var, apply_state=None):
            return var.assign_sub(0.01 * grad)

    return run_conditional_gradient(Reference(), "minimize")


def run_conditional_gradient(opt, entry):
    var0 = tf.Variable([1.0, 2.0], dtype=tf.float32, name="var0")
    var1 = tf.Variable([3.0, 4.0], dtype=tf.float32, name="var1")
    if entry == "minimize":
        opt.minimize(lambda: tf.reduce_sum(var0 + var1), var_list=[var0, var1])
    else:
        opt.apply_gradients([(tf.ones_like(var0), var0), (tf.ones_like(var1), var1)])
    return [v.name for v in opt.variables()]


@pytest.fixture(scope="module")
def tfa():
    import tfa_harness

    if not tfa_harness.tfa_available():
        pytest.skip("tensorflow-addons==0.23.0 (test extra) is not installed")
    return tfa_harness.load_tfa(optimlab.legacy)


@pytest.mark.parametrize("entry", ["minimize", "apply_gradients"])
@pytest.mark.parametrize("ord_", ["fro", "nuclear"])
def test_tfa_conditional_gradient_variables_are_named_per_variable(tfa, ord_, entry):
    """TFA's checks (test_variables_across_graphs_{frobenius,nuclear}): three variables, the
    second named from var0, the third from var1; names equal to Keras 2's."""
    names = run_conditional_gradient(tfa.ConditionalGradient(0.01, 0.5, ord=ord_), entry)
    assert len(names) == 3
    assert names[1].startswith("ConditionalGradient/var0")
    assert names[2].startswith("ConditionalGradient/var1")
    assert names == keras2_conditional_gradient_names(ord_)


def keras2_wrapper(base):
    """A Keras 2 wrapper in TFA's Lookahead pattern: it builds its inner optimizer's state."""

    class Wrapper(base):
        def __init__(self, optimizer, name="Wrapper"):
            super().__init__(name)
            self._optimizer = optimizer

        def _create_slots(self, var_list):
            self._optimizer._create_slots(var_list=var_list)
            for var in var_list:
                self.add_slot(var, "slow", initializer=var)

        def _create_hypers(self):
            self._optimizer._create_hypers()

        def _prepare(self, var_list):
            return self._optimizer._prepare(var_list=var_list)

        def _resource_apply_dense(self, grad, var, apply_state=None):
            return self._optimizer._resource_apply_dense(grad, var, apply_state)

    return Wrapper


def test_inner_state_made_by_a_wrapper_is_named_as_tf_keras_names_it():
    """Keras 2 names the inner optimizer's slots in the wrapper's scope (``Wrapper/var0/m``).
    (The inner counter differs: Keras 2 makes it inside the wrapper's step, ``Wrapper/iter``;
    Keras 3 in the inner optimizer's constructor, ``Adam/iter``.)"""

    def names(module, base):
        var = tf.Variable([1.0, 2.0], name="var0")
        inner = module.Adam(0.1)
        wrapper = keras2_wrapper(base)(inner)
        wrapper.apply_gradients([(tf.ones_like(var), var)])
        return [v.name for v in wrapper.variables()], [v.name for v in inner.variables()]

    ours = names(optimlab.legacy, optimlab.legacy.Optimizer)
    theirs = names(tf_keras.optimizers.legacy, tf_keras.optimizers.legacy.Optimizer)
    assert ours[0] == theirs[0] == ["Wrapper/iter:0", "Wrapper/var0/slow:0"]
    slots = [[n for n in names if not n.endswith("/iter:0")] for names in (ours[1], theirs[1])]
    assert slots[0] == slots[1] == ["Wrapper/var0/m:0", "Wrapper/var0/v:0"]


def test_hyperparameters_read_before_any_step_are_named_as_in_tf_keras():
    def names(module):
        opt = module.SGD(0.1, momentum=0.9)
        opt._get_hyper("momentum")
        return sorted(v.name for v in opt._hyper.values())

    assert names(optimlab.legacy) == names(tf_keras.optimizers.legacy) == [
        "decay:0", "learning_rate:0", "momentum:0"
    ]
