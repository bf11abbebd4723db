"""What test_distribute.py and multiworker_job.py (test_multiworker.py's worker) both train:
one optimizer per code path, a small regression model and its data.

TensorFlow, Keras and optimlab are imported inside the functions: multiworker_job.py
sets ``TF_CONFIG`` before TensorFlow starts. Example::

    makers = dict(distribute_families.families(), accumulation=lambda: optimlab.Adam(0.05, gradient_accumulation_steps=2))
    inputs, targets = distribute_families.data(seed=3)
"""

import numpy as np


def _seed_adam():
    from test_legacy import BookAdam  # a Keras 2 style optimizer on optimlab.legacy

    return BookAdam(learning_rate=0.05)


def families():
    """``{family: make_optimizer}`` for the code paths both tests cover; each adds its own
    accumulation and skip_nonfinite cases."""
    import optimlab

    return {
        "native-kernel": lambda: optimlab.Adam(0.05, fused=True),
        "tf-kernel": lambda: optimlab.registry.get("adamax", learning_rate=0.05, fused=True),
        "plain": lambda: optimlab.registry.get("adabelief", learning_rate=0.05),
        "legacy-style": _seed_adam,
        "wrapper": lambda: optimlab.wrappers.Lookahead(optimlab.SGD(0.1, momentum=0.5), sync_period=2),
        "sam": lambda: optimlab.SGD(0.1),
        "ema": lambda: optimlab.SGD(0.1, use_ema=True, ema_momentum=0.5),
    }


def data(seed):
    """32 rows of ``y = x . [1, -1, 2] + 0.5`` with ``x`` standard normal (float32)."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(32, 3)).astype("float32")
    targets = (inputs @ np.array([[1.0], [-1.0], [2.0]]) + 0.5).astype("float32")
    return inputs, targets


def model():
    """A 3-4-1 tanh network, the same initial weights every time."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
