"""Keras parity: optimlab with Keras's conventions against ``keras.optimizers.X`` (issue 14, item 6).

For every optimizer Keras 3 also ships, 200 steps on four shapes, dense and sparse
gradients (rows 0, 2, 4, ... of the first axis, unique indices), Keras's defaults
in float32 and two other settings in float32 and float64. The other settings use
float32-exact hyperparameters (powers of two, 0.875, ...) because Keras casts
Python floats through float32 (``tf.cast(0.9, "float64")`` is 0.89999998) and keeps
its learning rate in a float32 variable. Every step of every run of one optimizer
and dtype happens inside one ``tf.function`` loop, where users train.

``EXACTNESS`` states per optimizer and dtype what holds: ``"bit"`` (bit-equal),
``"bit-dense"`` (bit-equal for dense gradients, round-off for sparse ones) or
``"roundoff"`` (float32: ``rtol=2e-5, atol=2e-6`` after 200 steps; float64:
``rtol=1e-12, atol=1e-13`` unless stated), with the reason. ScheduleFreeAdamW is the one
optimizer where Keras departs from the paper; its test shows the reference it
departs from (``test_keras_schedule_free_adamw_departs_from_the_reference``).
"""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab

SHAPES = ((7,), (5, 3), (2, 3, 4), (12, 5))
STEPS = 200


@dataclasses.dataclass(frozen=True)
class Parity:
    """How optimlab's ``cls`` reproduces ``keras.optimizers.cls``.

    ``ours`` are the Keras-convention arguments added on optimlab's side;
    ``settings`` the two non-default settings (float32-exact), given to both;
    ``translate`` maps a Keras setting to optimlab's argument names where they differ.
    """

    ours: dict
    settings: tuple
    exactness: tuple  # (float32, float64): "bit", "bit-dense" (round-off for sparse gradients) or "roundoff"
    why: str = ""
    sparse: bool = True
    translate: object = None
    float64_tol: tuple = (1e-12, 1e-13)  # (rtol, atol) of "roundoff" in float64


def _adafactor_args(keras_kwargs):
    """Keras 3.15's Adafactor takes the relative step whatever ``relative_step`` says; so does optimlab's with True."""
    return dict(keras_kwargs, relative_step=True)


def _muon_args(keras_kwargs):
    """keras.optimizers.Muon's names: its ``epsilon`` is Adam's, its Newton-Schulz epsilon is 1e-7."""
    ours = dict(keras_kwargs)
    if "epsilon" in ours:
        ours["adam_epsilon"] = ours.pop("epsilon")
    ours.setdefault("learning_rate", 0.001)
    ours.setdefault("weight_decay", 0.004)
    ours.setdefault("adam_weight_decay", 0.004)
    ours.setdefault("rms_rate", 0.2)
    ours.setdefault("adam_epsilon", 1e-7)
    return ours


B1, B2 = {"beta_1": 0.875, "beta_2": 0.9375, "epsilon": 2.0**-20}, {"beta_1": 0.5, "beta_2": 0.75, "epsilon": 2.0**-10}

EXACTNESS = {
    "Adadelta": Parity({}, ({"learning_rate": 1.0, "rho": 0.875, "epsilon": 2.0**-20},
                            {"learning_rate": 0.5, "rho": 0.5, "epsilon": 2.0**-10, "weight_decay": 2.0**-5}),
                       ("bit-dense", "bit-dense"), "sparse: Keras updates its accumulators through scatter ops"),
    "Adafactor": Parity({}, ({"learning_rate": 2.0**-5, "beta_2_decay": -0.5, "epsilon_1": 2.0**-100, "epsilon_2": 2.0**-10},
                             {"learning_rate": 2.0**-6, "beta_2_decay": -0.75, "epsilon_1": 2.0**-60, "epsilon_2": 2.0**-8,
                              "clip_threshold": 0.5, "relative_step": False, "weight_decay": 2.0**-6}),
                        ("roundoff", "roundoff"), "the same formulas, grouped differently (factored second moments); "
                        "Keras's relative_step=False still takes the relative step, which is optimlab's relative_step=True",
                        translate=_adafactor_args),
    "Adagrad": Parity({}, ({"learning_rate": 2.0**-4, "initial_accumulator_value": 0.5, "epsilon": 2.0**-20},
                           {"learning_rate": 2.0**-3, "initial_accumulator_value": 0.0, "epsilon": 2.0**-10, "weight_decay": 2.0**-5}),
                      ("roundoff", "roundoff"), "inside tf.function Grappler turns Keras's g / sqrt(a + eps) into g * rsqrt(a + eps)"),
    "Adam": Parity({"epsilon_hat": True}, (dict(B1, learning_rate=2.0**-6), dict(B2, learning_rate=2.0**-5, amsgrad=True, weight_decay=2.0**-6)),
                   ("bit", "bit")),
    "Adamax": Parity({}, (dict(B1, learning_rate=2.0**-6), dict(B2, learning_rate=2.0**-5, weight_decay=2.0**-6)),
                     ("roundoff", "roundoff"), "lr / (1 - beta_1^t) is applied in another order"),
    "AdamW": Parity({"epsilon_hat": True}, (dict(B1, learning_rate=2.0**-6, weight_decay=2.0**-4),
                                            dict(B2, learning_rate=2.0**-5, weight_decay=2.0**-6, amsgrad=True)),
                    ("bit", "bit")),
    "Ftrl": Parity({"lazy_sparse": False},
                   ({"learning_rate": 0.25, "initial_accumulator_value": 0.5, "l1_regularization_strength": 2.0**-6,
                     "l2_regularization_strength": 2.0**-5, "beta": 0.5},
                    {"learning_rate": 0.5, "learning_rate_power": -0.25, "initial_accumulator_value": 0.125,
                     "l2_regularization_strength": 2.0**-4, "l2_shrinkage_regularization_strength": 2.0**-5}),
                   ("roundoff", "roundoff"), "the power n^p of a general learning_rate_power rounds differently"),
    "Lamb": Parity({}, (dict(B1, learning_rate=2.0**-6), dict(B2, learning_rate=2.0**-5, weight_decay=2.0**-6)),
                   ("roundoff", "roundoff"), "the trust ratio's norms are summed in another order"),
    "Lion": Parity({}, ({"learning_rate": 2.0**-8, "beta_1": 0.875, "beta_2": 0.9375},
                        {"learning_rate": 2.0**-7, "beta_1": 0.5, "beta_2": 0.75, "weight_decay": 2.0**-4}),
                   ("bit", "bit")),
    "Muon": Parity({"momentum_form": "sum", "flatten_higher_rank": False, "adam_lr_ratio": 1.0, "adam_beta_2": 0.999,
                    "adam_epsilon_hat": True},
                   ({"learning_rate": 2.0**-6, "momentum": 0.9375, "adam_beta_1": 0.875, "adam_beta_2": 1 - 2.0**-10,
                     "epsilon": 2.0**-20, "weight_decay": 2.0**-8, "adam_weight_decay": 2.0**-8, "rms_rate": None},
                    {"learning_rate": 2.0**-5, "momentum": 0.5, "nesterov": False, "adam_beta_1": 0.5, "adam_beta_2": 0.75,
                     "epsilon": 2.0**-10, "weight_decay": 2.0**-6, "adam_weight_decay": 2.0**-5, "rms_rate": None}),
                   ("roundoff", "roundoff"), "Keras scales lr * update after the Newton-Schulz iteration, optimlab lr * scale",
                   sparse=False, translate=_muon_args),
    "Nadam": Parity({}, (dict(B1, learning_rate=2.0**-6), dict(B2, learning_rate=2.0**-5, weight_decay=2.0**-6)),
                    ("roundoff", "roundoff"), "the momentum schedule's product is kept in float64 here; in float64 "
                    "Keras rounds its fixed decay 0.96 through float32", float64_tol=(1e-6, 1e-8)),
    "RMSprop": Parity({}, ({"learning_rate": 2.0**-6, "rho": 0.875, "momentum": 0.5, "epsilon": 2.0**-20},
                           {"learning_rate": 2.0**-7, "rho": 0.75, "centered": True, "epsilon": 2.0**-10, "weight_decay": 2.0**-6}),
                      ("roundoff", "roundoff"), "inside tf.function Grappler turns Keras's g / sqrt(v + eps) into g * rsqrt(v + eps)"),
    "SGD": Parity({}, ({"learning_rate": 2.0**-4, "momentum": 0.875},
                       {"learning_rate": 2.0**-5, "momentum": 0.5, "nesterov": True, "weight_decay": 2.0**-5}),
                  ("bit", "bit")),
}


def _problem(dtype):
    rng = np.random.default_rng(14)
    x0 = [rng.normal(size=s) for s in SHAPES]
    grads = [rng.normal(size=(STEPS,) + s) * rng.uniform(0.1, 3.0, size=(STEPS,) + (1,) * len(s)) for s in SHAPES]
    return x0, [tf.constant(g, dtype) for g in grads]


def _sparse(g):
    rows = tf.range(0, g.shape[0], 2)
    return tf.IndexedSlices(tf.gather(g, rows), rows, tf.shape(g))


def _run_all(optimizers, x0, grads, dtype):
    """Each ``(optimizer, sparse)`` gets its own copy of ``x0``; all take 200 steps in one traced loop."""
    runs = [(opt, sparse, [keras.Variable(x, dtype=dtype) for x in x0]) for opt, sparse in optimizers]
    for opt, _, variables in runs:
        opt.build(variables)  # eagerly: Keras's ScheduleFreeAdamW copies the variables into its state here

    @tf.function
    def train():
        for t in tf.range(STEPS):
            for opt, sparse, variables in runs:
                step = [_sparse(g[t]) if sparse else g[t] for g in grads]
                opt.apply_gradients(zip(step, variables))

    train()
    return [[np.asarray(v.numpy(), np.float64) for v in variables] for _, _, variables in runs]


def _assert_parity(ours, theirs, x0, exact, tol, label):
    for o, k in zip(ours, theirs):
        if exact:
            np.testing.assert_array_equal(o, k, err_msg=label)
        else:
            np.testing.assert_allclose(o, k, rtol=tol[0], atol=tol[1], err_msg=label)
    return max(np.abs(k - x).max() for k, x in zip(theirs, x0))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("name", sorted(EXACTNESS))
def test_keras_parity(name, dtype):
    spec = EXACTNESS[name]
    translate = spec.translate or (lambda kwargs: kwargs)
    settings = list(spec.settings) if dtype == "float64" else [{}] + list(spec.settings)
    if dtype == "float64" and name == "Muon":
        # Keras's rms_rate scale multiplies by a float32 tensor, which fails for float64 variables.
        settings = [dict(s, rms_rate=None) for s in settings]
    elif name == "Muon":
        settings = [settings[0]] + [dict(s, rms_rate=0.25) for s in settings[1:]]
    modes = (False, True) if spec.sparse else (False,)
    exactness = spec.exactness[0 if dtype == "float32" else 1]
    tol = (2e-5, 2e-6) if dtype == "float32" else spec.float64_tol
    pairs, checks = [], []
    for i, setting in enumerate(settings):
        for sparse in modes:
            pairs.append((getattr(optimlab, name)(**dict(spec.ours, **translate(setting))), sparse))
            pairs.append((getattr(keras.optimizers, name)(**setting), sparse))
            exact = exactness == "bit" or (exactness == "bit-dense" and not sparse)
            checks.append((exact, f"{name} {dtype} setting {i} {'sparse' if sparse else 'dense'}"))
    x0, grads = _problem(dtype)
    results = _run_all(pairs, x0, grads, dtype)
    moved = [_assert_parity(results[2 * j], results[2 * j + 1], x0, exact, tol, label) for j, (exact, label) in enumerate(checks)]
    assert max(moved) > 0.05, f"{name}: the runs moved at most {max(moved):g}; the comparison would be vacuous"


def test_every_keras_optimizer_has_a_parity_entry():
    """Optimizers Keras ships that optimlab has too: each is in EXACTNESS (or is ScheduleFreeAdamW)."""
    shared = {
        n for n in dir(keras.optimizers)
        if isinstance(getattr(keras.optimizers, n), type) and issubclass(getattr(keras.optimizers, n), keras.optimizers.Optimizer)
        and hasattr(optimlab, n) and n != "Optimizer"
    }
    assert shared == set(EXACTNESS) | {"ScheduleFreeAdamW"}


# ------------------------------------------------------------------ Schedule-Free AdamW
def _schedule_free_numpy(x0, grads, lr, beta_1, beta_2, epsilon, keras_reading):
    """The reference algorithm (Defazio et al., 2024, constant lr, no warm-up: ``c_t = 1 / t``).

    ``y`` is the point the gradient is taken at, ``z`` the SGD sequence, ``x`` the average;
    the variable holds ``y`` and ``x`` is recovered as ``(y - (1 - beta_1) z) / beta_1``
    with ``z`` from before this step's update. ``keras_reading=True`` recovers it with the
    updated ``z`` instead, which is what keras.optimizers.ScheduleFreeAdamW does.
    """
    out = []
    for y, g_all in zip(x0, grads):
        y, z, v = y.copy(), y.copy(), np.zeros_like(y)
        for t in range(1, STEPS + 1):
            g = g_all[t - 1]
            v = v + (g * g - v) * (1 - beta_2)
            z_old = z
            z = z - lr * g / (np.sqrt(v / (1 - beta_2**t)) + epsilon)
            x_old = (y - (1 - beta_1) * (z if keras_reading else z_old)) / beta_1
            x = (1 - 1 / t) * x_old + (1 / t) * z
            y = (1 - beta_1) * z + beta_1 * x
        out.append(y)
    return out


def test_keras_schedule_free_adamw_departs_from_the_reference():
    """optimlab follows the reference; Keras follows it but for reading ``z`` after updating it.

    Keras's ``momentum_old = momentum.value`` is the variable itself, read only after
    ``assign_sub``, so ``x_old`` uses the new ``z``. A NumPy transcription of the reference
    (float64, 200 steps) matches optimlab; the same transcription with that one change
    matches Keras; the two readings end far apart.
    """
    x0, grads = _problem("float64")
    g = [np.asarray(a) for a in grads]
    args = {"learning_rate": 2.0**-5, "beta_1": 0.875, "beta_2": 0.9375, "epsilon": 2.0**-20}
    reference = _schedule_free_numpy(x0, g, 2.0**-5, 0.875, 0.9375, 2.0**-20, keras_reading=False)
    keras_reading = _schedule_free_numpy(x0, g, 2.0**-5, 0.875, 0.9375, 2.0**-20, keras_reading=True)
    ours, theirs = _run_all(
        [(optimlab.ScheduleFreeAdamW(**args), False), (keras.optimizers.ScheduleFreeAdamW(**args), False)], x0, grads, "float64"
    )
    for o, k, r, kr in zip(ours, theirs, reference, keras_reading):
        np.testing.assert_allclose(o, r, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(k, kr, rtol=1e-10, atol=1e-12)
    assert max(np.abs(r - kr).max() for r, kr in zip(reference, keras_reading)) > 1e-2


@pytest.mark.parametrize("name, kwargs", [("Adagrad", {}), ("RMSprop", {"momentum": 0.5, "centered": True})])
def test_square_root_divisions_are_bit_equal_to_keras_eagerly(name, kwargs):
    """Outside tf.function Grappler does not rewrite Keras's ``g / sqrt(.)``: there the two are bit-equal."""
    rng = np.random.default_rng(3)
    ours, theirs = tf.Variable(rng.normal(size=(40, 30)), dtype="float32"), tf.Variable(np.zeros((40, 30)), dtype="float32")
    theirs.assign(ours)
    opt, ref = getattr(optimlab, name)(learning_rate=0.01, **kwargs), getattr(keras.optimizers, name)(learning_rate=0.01, **kwargs)
    for _ in range(30):
        g = tf.constant(rng.normal(size=(40, 30)), "float32")
        opt.apply_gradients([(g, ours)])
        ref.apply_gradients([(g, theirs)])
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
