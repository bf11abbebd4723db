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

pytest.importorskip("tensorflow_addons", reason="tensorflow-addons==0.23.0 (test extra) is not installed")
pytest.importorskip("tf_keras", reason="tf-keras (test extra) is the Keras 2 reference")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import optimlab.legacy  # noqa: E402
import tfa_harness  # noqa: E402

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
