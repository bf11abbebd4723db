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
