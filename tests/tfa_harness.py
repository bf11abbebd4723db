"""TensorFlow Addons 0.23's optimizers, loaded from the installed wheel, on a chosen Keras 2 base.

``load_tfa`` is :func:`optimlab.legacy.tfa.load` (what users call as
``optimlab.legacy.tensorflow_addons()``): ``load_tfa(legacy)`` imports ``tensorflow_addons.optimizers`` from the wheel with
``tensorflow_addons.optimizers.constants.KerasLegacyOptimizer`` set to
``legacy.Optimizer`` and ``optimlab.legacy.install()`` in effect while its modules
are imported (so that ``LazyAdam``, ``AdamW`` and ``SGDW`` subclass optimlab's
``Adam`` / ``SGD``); ``load_tfa(None)`` imports it unchanged, which on
``TF_USE_LEGACY_KERAS=1`` gives the real Keras 2 base (the reference). No TFA code
is copied: the import machinery reads the wheel's files.

TFA also imports three Keras 2 internals by the name ``keras``
(``keras.src.engine.keras_tensor`` in ``utils/types.py``, ``keras.src.utils.tf_utils``
and ``keras.src.backend`` in ``discriminative_layer_training.py``) that Keras 3 does
not have; on both sides they are pointed at ``tf_keras``' modules while TFA's modules
are imported. TFA's top-level package (which imports layers, image ops and custom ops)
is replaced by a bare package; only ``tensorflow_addons.optimizers`` is loaded.

Run as a script (``python tests/tfa_harness.py OUT.npz`` with ``TF_USE_LEGACY_KERAS=1``)
it writes the Keras 2 trajectories of every case in ``CASES`` for the test to compare.
"""

import importlib.util
import sys
import time

import numpy as np

from optimlab.legacy.tfa import load as load_tfa  # noqa: F401 - the tests' entry point

STEPS = 100
TFA_OPTIMIZERS = (
    "AdaBelief",
    "AdamW",
    "SGDW",
    "COCOB",
    "ConditionalGradient",
    "LAMB",
    "LazyAdam",
    "NovoGrad",
    "ProximalAdagrad",
    "RectifiedAdam",
    "Yogi",
    "Lookahead",
    "MovingAverage",
    "SWA",
    "MultiOptimizer",
    "CyclicalLearningRate",
)
# Wrappers whose inner optimizer is ``legacy.Adam`` / ``legacy.SGD``: run again with Keras 3's
# (tests/test_legacy_keras3_inner.py) against these Keras 2 trajectories.
KERAS3_INNER = ("MovingAverage", "SWA", "MultiOptimizer", "Lookahead_Adam")
BUILTINS = ("SGD", "SGD_nesterov", "Adam", "Adam_amsgrad", "Adagrad", "Adadelta", "Adamax", "Ftrl", "Nadam", "RMSprop", "RMSprop_centered")
SHAPES = {"vec": (3,), "mat": (4, 5)}
EMBEDDING = (10, 4)
IDS = [1, 3, 1, 7, 3, 3, 0]  # repeated rows: the gradient is IndexedSlices with duplicates
DENSE_ONLY = {"COCOB"}  # no sparse rule in TFA (it raises NotImplementedError on Keras 2 too)
FLOAT32_ONLY = {"SWA"}  # TFA's SWA mixes a float32 snapshot count into the average (fails on float64 on Keras 2)


def tfa_available():
    return importlib.util.find_spec("tensorflow_addons") is not None


# ---------------------------------------------------------------- the problem
def make_variables(tf, dtype):
    rng = np.random.default_rng(0)
    shapes = dict(SHAPES, emb=EMBEDDING)
    return [tf.Variable(rng.normal(size=shape).astype(dtype), name=f"{name}_{dtype}") for name, shape in shapes.items()]


def loss(tf, variables):
    """Quadratic plus a sine per dense variable; squared error of gathered (repeated) embedding rows."""
    rng = np.random.default_rng(1)
    *dense, table = variables
    dtype = table.dtype
    total = tf.constant(0.0, dtype)
    for var in dense:
        scale = tf.constant(rng.uniform(0.5, 2.0, size=var.shape), dtype)
        total += tf.reduce_sum(0.5 * scale * var**2 + 0.3 * tf.sin(3.0 * var))
    target = tf.constant(rng.normal(size=(len(IDS), EMBEDDING[1])), dtype)
    return total + tf.reduce_sum(0.5 * (tf.gather(table, IDS) - target) ** 2)


def build(name, tfa, legacy, variables):
    """The optimizer of case ``name``; ``legacy`` provides Keras 2's SGD and Adam."""
    by_kind = {}
    for var in variables:
        by_kind.setdefault(var.name.split("_")[0], []).append(var.name)
    makers = {
        "AdaBelief": lambda: tfa.AdaBelief(
            learning_rate=0.02, amsgrad=True, weight_decay=0.01, total_steps=STEPS, warmup_proportion=0.1, min_lr=1e-4
        ),
        "AdamW": lambda: tfa.AdamW(weight_decay=1e-3, learning_rate=0.01),
        "SGDW": lambda: tfa.SGDW(weight_decay=1e-3, learning_rate=0.05, momentum=0.9, nesterov=True),
        "COCOB": lambda: tfa.COCOB(alpha=100.0),
        "ConditionalGradient": lambda: tfa.ConditionalGradient(learning_rate=0.1, lambda_=0.5),
        "LAMB": lambda: tfa.LAMB(learning_rate=0.01, weight_decay=0.01, exclude_from_layer_adaptation=["vec"]),
        "LazyAdam": lambda: tfa.LazyAdam(learning_rate=0.02),
        "NovoGrad": lambda: tfa.NovoGrad(learning_rate=0.01, weight_decay=0.01, grad_averaging=True),
        "ProximalAdagrad": lambda: tfa.ProximalAdagrad(
            learning_rate=0.1, l1_regularization_strength=1e-3, l2_regularization_strength=1e-3
        ),
        "RectifiedAdam": lambda: tfa.RectifiedAdam(
            learning_rate=0.01, total_steps=STEPS, warmup_proportion=0.1, min_lr=1e-4, weight_decay=1e-3
        ),
        "Yogi": lambda: tfa.Yogi(learning_rate=0.05, l1_regularization_strength=1e-4, l2_regularization_strength=1e-4),
        "Lookahead": lambda: tfa.Lookahead(tfa.RectifiedAdam(learning_rate=0.01), sync_period=5, slow_step_size=0.5),
        "Lookahead_Adam": lambda: tfa.Lookahead(legacy.Adam(0.01), sync_period=5, slow_step_size=0.5),
        "MovingAverage": lambda: tfa.MovingAverage(legacy.Adam(0.01), average_decay=0.9, dynamic_decay=True),
        "SWA": lambda: tfa.SWA(legacy.SGD(0.05, momentum=0.5), start_averaging=10, average_period=5),
        "MultiOptimizer": lambda: tfa.MultiOptimizer(
            optimizer_specs=[
                {"optimizer": legacy.Adam(0.01), "weights": by_kind["vec"] + by_kind["emb"]},
                {"optimizer": legacy.SGD(0.05, momentum=0.9), "weights": by_kind["mat"]},
            ]
        ),
        "CyclicalLearningRate": lambda: legacy.SGD(
            learning_rate=tfa.Triangular2CyclicalLearningRate(1e-3, 0.05, step_size=10), momentum=0.5
        ),
        "SGD": lambda: legacy.SGD(0.05, momentum=0.9, decay=0.01),
        "SGD_nesterov": lambda: legacy.SGD(0.05, momentum=0.9, nesterov=True),
        "Adam": lambda: legacy.Adam(0.02, beta_1=0.8),
        "Adam_amsgrad": lambda: legacy.Adam(0.02, amsgrad=True),
        "Adagrad": lambda: legacy.Adagrad(0.1),
        "Adadelta": lambda: legacy.Adadelta(1.0, rho=0.9),
        "Adamax": lambda: legacy.Adamax(0.02),
        "Ftrl": lambda: legacy.Ftrl(0.1, l1_regularization_strength=1e-3, l2_shrinkage_regularization_strength=1e-3, beta=0.1),
        "Nadam": lambda: legacy.Nadam(0.01),
        "RMSprop": lambda: legacy.RMSprop(0.01, momentum=0.5),
        "RMSprop_centered": lambda: legacy.RMSprop(0.01, centered=True),
    }
    return makers[name]()


def trajectory(tf, tfa, legacy, name):
    """Every variable after every step (float32 and float64 copies updated by one optimizer),
    then the averages where the optimizer keeps them, and the optimizer's weights."""
    v32 = make_variables(tf, "float32")
    v64 = [] if name in FLOAT32_ONLY else make_variables(tf, "float64")
    variables = v32 + v64
    opt = build(name, tfa, legacy, variables)
    history = [[var.numpy()] for var in variables]

    @tf.function
    def gradients():  # the same graph on both sides: identical gradients
        with tf.GradientTape(persistent=True) as tape:
            losses = [loss(tf, v32)] + ([loss(tf, v64)] if v64 else [])
        return [g for value, vs in zip(losses, (v32, v64)) for g in tape.gradient(value, vs)]

    for _ in range(STEPS):
        grads = gradients()
        if name in DENSE_ONLY:
            grads = [tf.convert_to_tensor(g) for g in grads]
        opt.apply_gradients(zip(grads, variables))
        for record, var in zip(history, variables):
            record.append(var.numpy())
    out = {f"{name}/{var.name}": np.stack(record) for record, var in zip(history, variables)}
    if hasattr(opt, "assign_average_vars"):
        opt.assign_average_vars(variables)
        out.update({f"{name}/average/{var.name}": var.numpy() for var in variables})
    out.update({f"{name}/weight{i}": np.asarray(w) for i, w in enumerate(opt.get_weights())})
    return out


def main(path):
    import tensorflow as tf

    assert tf.keras.__name__.startswith("tf_keras"), "run with TF_USE_LEGACY_KERAS=1"
    tfa = load_tfa(None)
    results = {}
    for name in dict.fromkeys(TFA_OPTIMIZERS + KERAS3_INNER + BUILTINS):
        start = time.process_time()
        results.update(trajectory(tf, tfa, tf.keras.optimizers.legacy, name))
        print(f"{name}: {time.process_time() - start:.1f}s CPU", flush=True)
    np.savez(path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
