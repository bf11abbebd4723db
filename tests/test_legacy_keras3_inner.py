"""Keras 3 optimizers inside Keras 2 wrappers (optimlab.legacy.keras3.as_legacy).

On TensorFlow >= 2.16 ``tf.keras.optimizers.Adam`` is Keras 3's. TensorFlow Addons'
``Lookahead``, ``MovingAverage``, ``SWA`` and ``MultiOptimizer`` (loaded through
``optimlab.legacy.tensorflow_addons()``, their code unchanged) take one as their inner
optimizer. The reference is the same TFA wrapper code on the real Keras 2 (tf_keras,
``TF_USE_LEGACY_KERAS=1``) holding Keras 2's legacy Adam / SGD, on the problem of
``tfa_harness`` (dense variables and an embedding with repeated rows, float32 and float64,
100 steps): Keras 3's Adam and SGD compute the same maths in another order of operations,
so the trajectories agree to float rounding, not bit for bit; in float64 too, because Keras 2
keeps ``beta_1`` etc. in float32 variables (0.8999999761...) where Keras 3 uses the Python float.
"""

import importlib.util
import os
import types
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
import optimlab.legacy
import tfa_harness
from test_legacy_tfa import keras2_reference, tfa  # noqa: F401 - shared module fixtures

INNER = {
    "keras": types.SimpleNamespace(Adam=keras.optimizers.Adam, SGD=keras.optimizers.SGD),
    "optimlab": types.SimpleNamespace(Adam=optimlab.Adam, SGD=optimlab.SGD),
}


def close_to_keras2(result, reference, name):
    keys = sorted(k for k in reference if k.startswith(f"{name}/") and "/weight" not in k)
    assert keys and set(keys) <= set(result)
    for key in keys:
        np.testing.assert_allclose(result[key], reference[key], rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("inner", sorted(INNER))
@pytest.mark.parametrize("name", tfa_harness.KERAS3_INNER)
def test_tfa_wrapper_with_a_keras3_inner_optimizer_follows_keras2(name, inner, tfa, keras2_reference):  # noqa: F811
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = tfa_harness.trajectory(tf, tfa, INNER[inner], name)
    close_to_keras2(result, keras2_reference, name)


def test_wrapper_shares_its_step_counter_with_the_keras3_optimizer(tfa):  # noqa: F811
    """Adam's bias correction counts the wrapper's steps (Keras 2 wrappers assign their counter)."""
    var = tf.Variable([1.0, 2.0])
    inner = keras.optimizers.Adam(0.1)
    wrapper = tfa.MovingAverage(inner)
    for _ in range(3):
        wrapper.apply_gradients([(tf.constant([0.5, -0.5]), var)])
    assert int(wrapper.iterations) == 3
    assert inner.iterations is wrapper.iterations
    reference = tf.Variable([1.0, 2.0])
    plain = keras.optimizers.Adam(0.1)
    for _ in range(3):
        plain.apply_gradients([(tf.constant([0.5, -0.5]), reference)])
    np.testing.assert_allclose(var.numpy(), reference.numpy(), rtol=1e-6)


def test_as_legacy_keeps_legacy_optimizers_and_wraps_keras3_ones():
    legacy = optimlab.legacy.Adam(0.1)
    assert optimlab.legacy.as_legacy(legacy) is legacy
    adapted = optimlab.legacy.as_legacy(keras.optimizers.SGD(0.25))
    assert isinstance(adapted, optimlab.legacy.Optimizer)
    assert float(adapted._get_hyper("learning_rate")) == 0.25
    adapted.learning_rate = 0.5
    assert float(adapted.inner_optimizer.learning_rate) == 0.5
    restored = optimlab.legacy.Keras3Optimizer.from_config(adapted.get_config())
    assert isinstance(restored.inner_optimizer, keras.optimizers.SGD)
    assert float(restored.inner_optimizer.learning_rate) == 0.5


def test_keras3_inner_state_is_listed_in_the_wrappers_weights(tfa):  # noqa: F811
    var = tf.Variable([1.0, 2.0], name="w")
    wrapper = tfa.Lookahead(keras.optimizers.Adam(0.1))
    wrapper.apply_gradients([(tf.constant([0.5, -0.5]), var)])
    shapes = [tuple(w.shape) for w in wrapper.weights]
    # Lookahead: its counter and slow copy, then Adam's two moments (no Keras 3 counter or learning rate).
    assert shapes == [(), (2,), (2,), (2,)]
    assert len(wrapper.get_weights()) == 4


def test_tensorflow_addons_loads_again():
    """A second ``tensorflow_addons()`` (another test module, a notebook cell run twice) works."""
    first = optimlab.legacy.tensorflow_addons()
    second = optimlab.legacy.tensorflow_addons()
    assert second.Lookahead is not first.Lookahead
    assert isinstance(second.Lookahead(keras.optimizers.SGD(0.1)), optimlab.legacy.Optimizer)


def test_tensorflow_addons_package_keeps_its_spec():
    """Found by CI: the loaded package had no ``__spec__``, so a later ``importlib.util.find_spec``
    (a skip condition, a user's check that TFA is installed) raised ValueError instead of finding it."""
    optimlab.legacy.tensorflow_addons()
    spec = importlib.util.find_spec("tensorflow_addons")
    assert spec is not None and spec.origin.endswith(os.path.join("tensorflow_addons", "__init__.py"))
    assert importlib.util.find_spec("tensorflow_addons.optimizers") is not None


def test_wrapper_holding_a_keras3_optimizer_fits_saves_and_resumes_exactly(tfa, tmp_path):  # noqa: F811
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(32, 4)).astype("float32")
    targets = inputs.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(optimizer=tfa.Lookahead(keras.optimizers.Adam(0.01), sync_period=3), loss="mse")
        model.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        model.save(tmp_path / "m.keras")
        model.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        restored = keras.models.load_model(tmp_path / "m.keras")
        assert isinstance(restored.optimizer._optimizer.inner_optimizer, keras.optimizers.Adam)
        restored.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.get_weights(), restored.optimizer.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
