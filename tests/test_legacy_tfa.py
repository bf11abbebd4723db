"""TensorFlow Addons 0.23, the largest body of Keras 2 optimizer code, runs unchanged on optimlab.legacy.

TFA's optimizer modules are imported from the installed wheel with only their base
class pointed at optimlab (see ``tfa_harness.py``). The reference is the same TFA
source on the real Keras 2 base (``tf_keras``, ``TF_USE_LEGACY_KERAS=1``), run in one
subprocess for every case. Checks per optimizer:

1. 100 steps on dense variables of two shapes and an embedding updated through
   ``tf.gather`` with repeated rows, float32 and float64 together: float32
   trajectories bit-equal, float64 equal to rounding; optimizer weights likewise;
2. Keras 3 ``compile`` / ``fit``, ``model.save(".keras")``, ``keras.models.load_model``,
   further training: the resumed run equals the uninterrupted one.
"""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import tfa_harness

pytest.importorskip("tf_keras", reason="tf-keras (test extra) is the Keras 2 reference")
if not tfa_harness.tfa_available():  # its top-level import fails on Keras 3, so find it without importing
    pytest.skip("tensorflow-addons==0.23.0 (test extra) is not installed", allow_module_level=True)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import optimlab.legacy  # noqa: E402

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def tfa():
    module = tfa_harness.load_tfa(optimlab.legacy)
    assert not optimlab.legacy.installed()
    return module


@pytest.fixture(scope="module")
def keras2_reference(tmp_path_factory):
    """Every case's trajectory on the real Keras 2 base, from one subprocess."""
    path = tmp_path_factory.mktemp("keras2") / "reference.npz"
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parent), env.get("PYTHONPATH", "")])
    run = subprocess.run(
        [sys.executable, str(HERE / "tfa_harness.py"), str(path)], env=env, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stderr[-4000:]
    with np.load(path) as data:
        return dict(data)


def compare_with_keras2(result, reference, name):
    keys = sorted(k for k in reference if k.startswith(f"{name}/"))
    assert sorted(result) == keys
    for key in keys:
        if reference[key].dtype == np.float64:
            np.testing.assert_allclose(result[key], reference[key], rtol=1e-13, atol=1e-15, err_msg=key)
        else:
            np.testing.assert_array_equal(result[key], reference[key], err_msg=key)


@pytest.mark.parametrize("name", tfa_harness.TFA_OPTIMIZERS)
def test_tfa_optimizer_follows_keras2_trajectory(name, tfa, keras2_reference):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tfa_harness.trajectory(tf, tfa, optimlab.legacy, name)
    compare_with_keras2(result, keras2_reference, name)


# ------------------------------------------------------------ Keras 3 fit / save / load
def path_multi_optimizer(tfa):
    """TFA's MultiOptimizer matching variables by path ("dense_1/kernel") instead of by name:
    Keras 3 names every Dense kernel "kernel", so TFA's name matching sends each kernel to
    every optimizer (see test_multi_optimizer_name_matching_pitfall)."""

    @keras.saving.register_keras_serializable("optimlab_tests")
    class PathMultiOptimizer(tfa.MultiOptimizer):
        @classmethod
        def create_optimizer_spec(cls, optimizer, layers_or_model):
            layers = layers_or_model if isinstance(layers_or_model, list) else [layers_or_model]
            return {"optimizer": optimizer, "weights": [v.path for layer in layers for v in layer.weights]}

        def apply_gradients(self, grads_and_vars, **kwargs):
            owner = {path: spec for spec in self.optimizer_specs for path in spec["weights"]}
            groups = {id(spec): [] for spec in self.optimizer_specs}
            for grad, var in grads_and_vars:
                groups[id(owner[var.path])].append((grad, var))
            ops = [spec["optimizer"].apply_gradients(groups[id(spec)], **kwargs) for spec in self.optimizer_specs]
            with tf.control_dependencies([tf.group(ops)]):
                return self.iterations.assign_add(1)

    return PathMultiOptimizer


def make_model(sparse):
    keras.utils.set_random_seed(5)
    if not sparse:
        layers = [keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]
        return keras.Sequential(layers)
    ids = keras.Input((3,), dtype="int32")
    hidden = keras.layers.Flatten()(keras.layers.Embedding(12, 4)(ids))
    hidden = keras.layers.Dense(8, activation="tanh")(hidden)
    return keras.Model(ids, keras.layers.Dense(1)(hidden))


def model_data(sparse):
    rng = np.random.default_rng(7)
    if sparse:
        inputs = rng.integers(0, 6, size=(48, 3)).astype("int32")  # repeated rows within a batch
        return inputs, (inputs.sum(axis=1, keepdims=True) / 6.0 - 1.0).astype("float32")
    inputs = rng.normal(size=(48, 4)).astype("float32")
    return inputs, np.tanh(inputs @ np.array([[1.0], [-1.0], [0.5], [2.0]])).astype("float32")


def model_optimizer(name, tfa, model):
    if name == "MultiOptimizer":
        trainable = [layer for layer in model.layers if layer.weights]
        specs = [(optimlab.legacy.Adam(0.01), trainable[:-1]), (optimlab.legacy.SGD(0.05, momentum=0.9), trainable[-1])]
        return path_multi_optimizer(tfa)(specs)
    return tfa_harness.build(name, tfa, optimlab.legacy, [])


@pytest.mark.parametrize("name", tfa_harness.TFA_OPTIMIZERS)
def test_tfa_optimizer_fit_save_load_resumes_exactly(name, tfa, tmp_path):
    sparse = name not in tfa_harness.DENSE_ONLY
    inputs, targets = model_data(sparse)
    model = make_model(sparse)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(optimizer=model_optimizer(name, tfa, model), loss="mse")
        first = model.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        model.save(tmp_path / "m.keras")
        model.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        restored = keras.models.load_model(tmp_path / "m.keras")
        assert type(restored.optimizer) is type(model.optimizer)
        assert int(restored.optimizer.iterations) == 12
        restored.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    assert np.isfinite(first.history["loss"]).all()
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.get_weights(), restored.optimizer.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_multi_optimizer_name_matching_pitfall(tfa):
    """Unchanged, TFA's MultiOptimizer matches by ``var.name``; Keras 3 names every Dense kernel
    "kernel", so each optimizer claims every layer's kernel. Matching by path fixes it."""
    model = make_model(sparse=False)
    first, second = model.layers[0], model.layers[1]
    by_name = tfa.MultiOptimizer([(optimlab.legacy.SGD(0.1), first), (optimlab.legacy.SGD(0.2), second)])
    assert by_name.optimizer_specs[0]["weights"] == by_name.optimizer_specs[1]["weights"] == ["kernel", "bias"]

    by_path = path_multi_optimizer(tfa)([(optimlab.legacy.SGD(0.1), first), (optimlab.legacy.SGD(0.2), second)])
    before = [w.numpy() for w in model.trainable_weights]
    grads = [tf.ones_like(w) for w in model.trainable_weights]
    by_path.apply_gradients(zip(grads, model.trainable_weights))
    for lr, old, new in zip([0.1, 0.1, 0.2, 0.2], before, model.trainable_weights):
        np.testing.assert_allclose(new.numpy(), old - np.float32(lr), rtol=1e-6)


@pytest.mark.parametrize("name", tfa_harness.BUILTINS)
def test_keras2_builtin_follows_tf_keras(name, keras2_reference):
    """optimlab.legacy.{SGD, Adam, ...} against tf_keras' own legacy classes, same problem."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tfa_harness.trajectory(tf, None, optimlab.legacy, name)
    compare_with_keras2(result, keras2_reference, name)


KERAS2_CONFIG_CASES = [
    ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True, decay=0.01, clipnorm=1.0)),
    ("Adam", dict(learning_rate=0.02, beta_1=0.8, epsilon=None, amsgrad=True, name="A")),
    ("Adamax", dict(lr=0.3, beta_2=0.9)),
    ("Adagrad", dict(initial_accumulator_value=0.0, epsilon=1e-5, global_clipnorm=2.0)),
    ("Adadelta", dict(learning_rate=1.0, rho=0.9)),
    ("Ftrl", dict(lr=0.7, learning_rate_power=-0.3, l1_regularization_strength=1e-3, beta=0.1,
                  l2_shrinkage_regularization_strength=1e-3)),
    ("Nadam", dict(learning_rate=0.01, beta_1=0.7, schedule_decay=0.01)),
    ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True, clipvalue=0.5)),
]


@pytest.mark.parametrize("name, kwargs", KERAS2_CONFIG_CASES, ids=[c[0] for c in KERAS2_CONFIG_CASES])
def test_keras2_builtin_config_and_hyperparameters_match_tf_keras(name, kwargs):
    """Same constructor arguments, same ``get_config`` and hyperparameters
    as tf_keras' legacy class (Ftrl ignores the deprecated ``lr``, as Keras 2's does)."""
    import tf_keras

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = getattr(optimlab.legacy, name)(**kwargs)
        theirs = getattr(tf_keras.optimizers.legacy, name)(**kwargs)
    expected = {k: v for k, v in theirs.get_config().items() if k != "is_legacy_optimizer"}
    config = ours.get_config()
    assert sorted(config) == sorted(expected)
    for key, value in expected.items():
        assert config[key] == pytest.approx(value, rel=1e-7) if isinstance(value, float) else config[key] == value, key
    assert sorted(ours._hyper) == sorted(theirs._hyper)
    assert type(ours)._HAS_AGGREGATE_GRAD == type(theirs)._HAS_AGGREGATE_GRAD


@pytest.mark.parametrize("name", ["SGD", "Adam", "Adagrad", "Adadelta", "Adamax", "Ftrl", "Nadam", "RMSprop"])
def test_keras2_builtin_takes_weights_saved_without_the_counter_where_tf_keras_does(name):
    """Keras 2's Adagrad, Adadelta and RMSprop accept weights listed without the iteration
    counter (saved by older versions; the counter restarts at 0); the others refuse them."""
    import tf_keras

    def outcome(module):
        var = tf.Variable([1.0, 2.0])
        opt = getattr(module, name)(0.1)
        opt.apply_gradients([(tf.constant([0.5, -0.5]), var)])
        try:
            opt.set_weights(opt.get_weights()[1:])
        except ValueError:
            return None
        return opt.get_weights()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, theirs = outcome(optimlab.legacy), outcome(tf_keras.optimizers.legacy)
    assert (ours is None) == (theirs is None)
    for a, b in zip(ours or [], theirs or [], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
