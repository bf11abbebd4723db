"""Faults where features meet (issue 13, items 2-10): each test reproduces one.

Distribution (item 1) is in test_distribute.py; the registry-wide combinations
are in test_combinations.py and the bad-input sweep in test_bad_input.py.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

import optimlab
from optimlab.wrappers import Lookahead, PerVariableOptimizer, SWA


def state(opt, variables):
    """Every value a step may change: the variables and all of the optimizer's variables."""
    return [v.numpy().copy() for v in list(variables) + list(opt.variables)]


def assert_same_state(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ item 2
# Keras keeps hyperparameters in float32: values exact in float32 compare exactly.
@pytest.mark.parametrize("compiled", [False, True])
def test_accumulation_runs_nadams_own_step_like_keras(compiled):
    def run(opt):
        x = tf.Variable([1.0, 2.0, -0.5], dtype=tf.float64)
        step = tf.function(opt.apply_gradients) if compiled else opt.apply_gradients
        for n in range(8):
            step([(tf.constant([0.5, -0.25, 0.125], tf.float64) * (n % 3 + 1), x)])
        return x.numpy()

    kwargs = dict(learning_rate=0.0625, beta_1=0.875, beta_2=0.9921875, epsilon=2.0**-20, gradient_accumulation_steps=2)
    ours, keras_result = run(optimlab.Nadam(**kwargs)), run(keras.optimizers.Nadam(**kwargs))
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(ours, keras_result, rtol=1e-6)


def test_accumulation_works_for_prodigy():
    opt, x = optimlab.registry.get("prodigy", gradient_accumulation_steps=2), tf.Variable([1.0, 2.0])
    for _ in range(4):
        opt.apply_gradients([(tf.constant([0.5, -0.5]), x)])
    assert np.all(np.isfinite(x.numpy())) and int(opt.iterations) == 2


# ------------------------------------------------------------------ item 3
SELF_DECAYING = [
    ("lars", {"weight_decay": 0.25, "exclude_vectors": False}),
    ("muon", {"weight_decay": 0.25}),
    ("novograd", {"weight_decay": 0.25}),
    ("schedule_free_sgd", {"weight_decay": 0.25}),
    ("schedule_free_adamw", {"weight_decay": 0.25}),
    ("lamb", {"weight_decay": 0.25, "decay_in_trust_ratio": True}),
    ("adan", {"weight_decay": 0.25, "proximal": True}),
    ("adamw", {"weight_decay": 0.25}),
]


@pytest.mark.parametrize("name,kwargs", SELF_DECAYING, ids=[n for n, _ in SELF_DECAYING])
def test_accumulation_decays_exactly_once(name, kwargs):
    """k accumulated micro-steps == one step on their mean, for optimizers that decay inside their step."""
    x0 = np.linspace(-1.0, 1.0, 6).reshape(2, 3)
    micro = [np.cos(x0 * (i + 1)) for i in range(6)]
    accumulated = tf.Variable(x0)
    opt = optimlab.registry.get(name, learning_rate=0.01, gradient_accumulation_steps=3, **kwargs)
    for g in micro:
        opt.apply_gradients([(tf.constant(g), accumulated)])
    averaged = tf.Variable(x0)
    reference = optimlab.registry.get(name, learning_rate=0.01, **kwargs)
    for i in (0, 3):
        reference.apply_gradients([(tf.constant(np.mean(micro[i : i + 3], axis=0)), averaged)])
    np.testing.assert_allclose(accumulated.numpy(), averaged.numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ item 4
@pytest.mark.parametrize("name", ["novograd", "sgd", "adam", "adamw", "lion", "adabelief", "schedule_free_sgd"])
def test_float64_weight_decay_is_not_rounded_through_float32(name):
    x = tf.Variable([1.0], dtype=tf.float64)
    opt = optimlab.registry.get(name, learning_rate=1.0, weight_decay=0.1)
    opt.apply_gradients([(tf.constant([0.0], tf.float64), x)])
    assert x.numpy()[0] == 1.0 - 1.0 * 0.1


# ------------------------------------------------------------------ item 5
@pytest.mark.parametrize("name", ["schedule_free_sgd", "schedule_free_adamw"])
def test_schedule_free_warmup_inside_tf_function_matches_eager(name):
    results = []
    for compiled in (False, True):
        x, opt = tf.Variable([1.0, -2.0]), optimlab.registry.get(name, learning_rate=0.5, warmup_steps=3)
        step = tf.function(opt.apply_gradients) if compiled else opt.apply_gradients
        for _ in range(5):
            step([(2.0 * tf.convert_to_tensor(x), x)])
        results.append(x.numpy())
    np.testing.assert_array_equal(results[0], results[1])
    # warm-up: the first step moves by lr / 3 times the gradient
    assert not np.array_equal(results[0], [1.0, -2.0])


def test_schedule_free_warmup_in_fit():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimlab.registry.get("schedule_free_adamw", learning_rate=0.01, warmup_steps=4), "mse")
    history = model.fit(np.ones((8, 2)), np.ones((8, 1)), batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0]) and int(model.optimizer.iterations) == 4


# ------------------------------------------------------------------ item 6
def _sparse_case():
    table, other = tf.Variable(np.ones((3, 2), np.float32)), tf.Variable([1.0])
    opt = optimlab.Adam(0.1)
    good = tf.IndexedSlices(tf.ones((1, 2)), tf.constant([1]), tf.constant([3, 2]))
    opt.apply_gradients([(tf.constant([1.0]), other), (good, table)])  # built, one step made
    return table, other, opt


@pytest.mark.parametrize("index", [5, -1])
def test_out_of_range_sparse_index_changes_nothing_eager(index):
    table, other, opt = _sparse_case()
    before = state(opt, [table, other])
    bad = tf.IndexedSlices(tf.ones((1, 2)), tf.constant([index]), tf.constant([3, 2]))
    with pytest.raises(ValueError, match=rf"grads\[1\] for variable .* indices outside .*{index}.* 3 rows"):
        opt.apply_gradients([(tf.constant([1.0]), other), (bad, table)])
    assert_same_state(before, state(opt, [table, other]))


def test_out_of_range_sparse_index_changes_nothing_in_tf_function():
    table, other, opt = _sparse_case()

    @tf.function
    def step(indices):
        grad = tf.IndexedSlices(tf.ones((1, 2)), indices, tf.constant([3, 2]))
        opt.apply_gradients([(tf.constant([1.0]), other), (grad, table)])

    step(tf.constant([2]))
    before = state(opt, [table, other])
    with pytest.raises(tf.errors.InvalidArgumentError, match="grads\\[1\\] for variable .* indices outside"):
        step(tf.constant([7]))
    assert_same_state(before, state(opt, [table, other]))


# ------------------------------------------------------------------ item 7
def test_per_variable_optimizer_validates_like_the_base():
    x, y = tf.Variable([1.0]), tf.Variable([2.0])
    opt = PerVariableOptimizer(optimlab.SGD(0.1))
    with pytest.raises(ValueError, match="same length; got 1 gradients for 2 variables"):
        opt.apply([tf.constant([1.0])], [x, y])
    with pytest.raises(ValueError, match="No gradients provided"):
        opt.apply([None, None], [x, y])
    with pytest.raises(TypeError, match="dtype"):
        opt.apply([tf.constant([1], tf.int32), None], [x, y])
    assert int(opt.iterations) == 0 and x.numpy()[0] == 1.0 and y.numpy()[0] == 2.0


# ------------------------------------------------------------------ item 8
BAD_BASE_ARGS = [
    ({"loss_scale_factor": float("nan")}, ValueError, r"loss_scale_factor must be .*\(0, inf\).*nan"),
    ({"loss_scale_factor": -1.0}, ValueError, "loss_scale_factor.*-1.0"),
    ({"loss_scale_factor": float("inf")}, ValueError, "loss_scale_factor.*inf"),
    ({"use_ema": True, "ema_momentum": float("nan")}, ValueError, r"ema_momentum must be .*\[0, 1\].*nan"),
    ({"ema_momentum": "0.9"}, TypeError, "ema_momentum.*'0.9'"),
    ({"ema_momentum": [0.9]}, TypeError, r"ema_momentum.*\[0.9\]"),
    ({"use_ema": "yes"}, TypeError, "use_ema.*'yes'"),
    ({"ema_overwrite_frequency": 0}, ValueError, "ema_overwrite_frequency.*>= 1.*0"),
    ({"gradient_accumulation_steps": "2"}, TypeError, "gradient_accumulation_steps.*'2'"),
    ({"gradient_accumulation_steps": [2]}, TypeError, r"gradient_accumulation_steps.*\[2\]"),
    ({"gradient_accumulation_steps": float("inf")}, TypeError, "gradient_accumulation_steps.*inf"),
    ({"gradient_accumulation_steps": 1}, ValueError, "gradient_accumulation_steps.*>= 2.*1"),
    ({"gradient_accumulation_steps": True}, TypeError, "gradient_accumulation_steps.*True"),
    ({"beta_1": True}, TypeError, "beta_1.*bool.*True"),
    ({"beta_1": np.array(1.5)}, ValueError, r"beta_1 must be .*\[0, 1\).*1.5"),
    ({"beta_1": np.array([0.9, 0.9])}, TypeError, "beta_1.*shape"),
    ({"learning_rate": np.array(float("nan"))}, ValueError, "learning_rate.*nan"),
    ({"epsilon": None}, TypeError, "epsilon.*None"),
    ({"skip_nonfinite": 1}, TypeError, "skip_nonfinite.*True or False.*1"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_BASE_ARGS)
def test_keras_base_arguments_are_checked(kwargs, error, message):
    with pytest.raises(error, match=message):
        optimlab.Adam(**kwargs)


def test_zero_d_arrays_are_numbers():
    opt = optimlab.Adam(learning_rate=np.array(0.5), beta_1=np.array(0.25))
    assert float(opt.learning_rate) == 0.5 and float(opt.beta_1) == 0.25


# ------------------------------------------------------------------ item 9
def _apply_sequence(opt, grads, compiled=False):
    x = tf.Variable([1.0, -1.0])
    step = tf.function(opt.apply_gradients) if compiled else opt.apply_gradients
    for g in grads:
        step([(tf.constant(g, tf.float32), x)])
    return x


GRADS = [[0.5, 1.0], [np.nan, 1.0], [0.25, -0.5], [np.inf, 0.0], [-0.5, 0.75], [0.125, 0.5]]
FINITE = [g for g in GRADS if np.all(np.isfinite(g))]


@pytest.mark.parametrize("compiled", [False, True])
@pytest.mark.parametrize("extra", [{}, {"gradient_accumulation_steps": 2}, {"use_ema": True, "weight_decay": 0.1}], ids=["plain", "accumulation", "ema-decay"])
def test_skip_nonfinite_equals_the_run_without_the_bad_steps(compiled, extra):
    skipping = optimlab.Adam(0.1, skip_nonfinite=True, **extra)
    x = _apply_sequence(skipping, GRADS, compiled)
    reference = optimlab.Adam(0.1, **extra)
    expected = _apply_sequence(reference, FINITE, compiled)
    np.testing.assert_array_equal(x.numpy(), expected.numpy())
    assert int(skipping.nonfinite_steps) == 2
    assert int(skipping.iterations) == int(reference.iterations)
    # slots, accumulators and EMA: the same as the run that never saw the bad steps
    ours = [v.numpy() for v in skipping.variables if "nonfinite" not in v.path]
    for a, b in zip(ours, [v.numpy() for v in reference.variables]):
        np.testing.assert_array_equal(a, b)


def test_without_skip_nonfinite_nan_reaches_the_weights():
    x = _apply_sequence(optimlab.Adam(0.1), GRADS[:2])
    assert np.isnan(x.numpy()[0])


def test_skip_nonfinite_in_fit():
    inputs = np.linspace(-1, 1, 16).reshape(8, 2).astype("float32")
    targets = inputs.sum(axis=1, keepdims=True)
    poisoned = inputs.copy()
    poisoned[2:4] = np.nan  # the second batch of two

    def train(x, y, skip):
        keras.utils.set_random_seed(1)
        model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        model.compile(optimlab.SGD(0.1, skip_nonfinite=skip), "mse")
        model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
        return model

    skipped = train(poisoned, targets, True)
    clean = train(np.delete(inputs, [2, 3], axis=0), np.delete(targets, [2, 3], axis=0), False)
    for a, b in zip(skipped.get_weights(), clean.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    assert int(skipped.optimizer.nonfinite_steps) == 1 and int(skipped.optimizer.iterations) == 3


def test_skip_nonfinite_survives_save_and_load(tmp_path):
    opt = optimlab.Adam(0.1, skip_nonfinite=True)
    clone = optimlab.Adam.from_config(opt.get_config())
    assert clone.skip_nonfinite is True


# ------------------------------------------------------------------ item 10
@pytest.mark.parametrize("wrap", [lambda: Lookahead(optimlab.Adam(0.01)), lambda: SWA(optimlab.SGD(0.01), average_period=1)], ids=["lookahead", "swa"])
def test_saving_changes_no_wrapper_variable_and_round_trips_bit_exact(wrap, tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(wrap(), "mse")
    model.fit(np.ones((4, 2)), np.ones((4, 1)), batch_size=2, verbose=0)
    before = [v.numpy().copy() for v in model.optimizer.variables]
    model.save(tmp_path / "m.keras")
    assert_same_state(before, [v.numpy() for v in model.optimizer.variables])
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert_same_state(before, [v.numpy() for v in loaded.optimizer.variables])


# ------------------------------------------- wrappers with accumulation / skipping
@pytest.mark.parametrize("wrap", [lambda o: SWA(o, average_period=2), lambda o: Lookahead(o, sync_period=2)], ids=["swa", "lookahead"])
def test_wrappers_act_only_on_applied_inner_steps(wrap):
    """Accumulation micro-steps and skipped non-finite steps must not average or sync again."""
    grads = [[0.5, 1.0], [0.25, -0.5], [-0.5, 0.75], [0.125, 0.5], [1.0, -1.0], [0.5, 0.25], [-0.25, 0.5], [0.75, 0.125]]
    means = [np.mean(grads[i : i + 2], axis=0) for i in range(0, 8, 2)]
    runs = {}
    for label, inner, sequence in [
        ("reference", optimlab.SGD(0.1, momentum=0.5), means),
        ("accumulated", optimlab.SGD(0.1, momentum=0.5, gradient_accumulation_steps=2), grads),
        # a NaN step after each good one
        ("skipping", optimlab.SGD(0.1, momentum=0.5, skip_nonfinite=True), [g for m in means for g in (m, [np.nan, 0.0])]),
    ]:
        opt, x = wrap(inner), tf.Variable([1.0, -1.0])
        for g in sequence:
            opt.apply_gradients([(tf.constant(g, tf.float32), x)])
        runs[label] = [x.numpy()] + [v.numpy() for v in opt.variables if not any(k in v.path for k in ("nonfinite", "accumulator", "iteration"))]
        assert int(opt.iterations) == len(means), label
    for label in ("accumulated", "skipping"):
        for a, b in zip(runs[label], runs["reference"]):
            np.testing.assert_allclose(a, b, rtol=1e-6, err_msg=label)


def test_skip_nonfinite_on_a_legacy_optimizer():
    """Keras 2 style optimizers take the option too (it was refused as an unknown keyword)."""
    from optimlab import legacy

    skipping = legacy.Adam(0.1, skip_nonfinite=True)
    x = _apply_sequence(skipping, GRADS, compiled=False)
    expected = _apply_sequence(legacy.Adam(0.1), FINITE, compiled=False)
    np.testing.assert_array_equal(x.numpy(), expected.numpy())
    assert int(skipping.nonfinite_steps) == 2
