"""Test-wide setup: split the CPU into two logical devices.

``tf.distribute.MirroredStrategy`` tests need two devices, and devices can only
be configured before TensorFlow initializes them, so this runs at import time.
Every other test runs under the same configuration; ops still default to the
first logical CPU, so single-device behaviour is unchanged.
"""

import tensorflow as tf

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:  # devices already initialized (e.g. by a plugin): tests that need two skip
    pass

import functools  # noqa: E402

import pytest  # noqa: E402


@functools.cache
def _mirrored_strategy():
    devices = tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]]) if len(devices) >= 2 else None


@pytest.fixture
def mirrored():
    """One MirroredStrategy over two logical CPUs for the whole session.

    Several MirroredStrategy objects in one process can collide on the instance
    keys of their collectives, so every test shares this one.
    """
    if _mirrored_strategy() is None:
        pytest.skip("needs two logical CPUs (conftest.py configures them before TensorFlow starts)")
    return _mirrored_strategy()
