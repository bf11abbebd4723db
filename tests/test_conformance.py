"""One conformance suite over the registry: every registered optimizer must pass it.

Each test is parametrized over ``optimlab.entries()``; a new optimizer module is
picked up without any change here. Skips are driven by registered capabilities
(``no_bfloat16``, ``sparse``, ``lazy_sparse``, ``needs_loss``), never by names.

Problems (minimum, start):

* quadratic ``f(x) = 0.5 * sum(h * (x - c)^2)`` with ``h = (1, 4)``,
  ``c = (1, -0.5)``, started at ``(-1.5, 1)``;
* Rosenbrock ``f(x, y) = (1 - x)^2 + 100 (y - x^2)^2``, minimum ``(1, 1)``,
  started at ``(-1, 1.5)``.

Each entry's registered ``Recipe`` (constructor kwargs, steps, tolerance) must
bring the iterate within ``tol`` (max-abs distance) of the minimum.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab

ENTRIES = optimlab.entries()
IDS = [entry.name for entry in ENTRIES]
H = np.array([1.0, 4.0])
C = np.array([1.0, -0.5])


def quadratic(x):
    dtype = x.dtype
    return 0.5 * tf.reduce_sum(tf.constant(H, dtype) * tf.square(x - tf.constant(C, dtype)))


def rosenbrock(x):
    return tf.square(1.0 - x[0]) + 100.0 * tf.square(x[1] - tf.square(x[0]))


PROBLEMS = {
    "quadratic": (quadratic, [-1.5, 1.0], C),
    "rosenbrock": (rosenbrock, [-1.0, 1.5], np.array([1.0, 1.0])),
}


def minimize(entry, problem, dtype, steps=None, kwargs=None):
    """Run ``steps`` minimize calls in one traced loop; returns (final x, optimizer)."""
    loss, start, _ = PROBLEMS[problem]
    recipe = getattr(entry, problem)
    x = tf.Variable(start, dtype=dtype)
    opt = entry.cls(**(recipe.kwargs if kwargs is None else kwargs))
    opt.build([x])

    @tf.function
    def run(n):
        for _ in tf.range(n):
            opt.minimize(lambda: loss(x), [x])

    run(tf.constant(recipe.steps if steps is None else steps))
    return x, opt


def distance(x, problem):
    return float(np.max(np.abs(np.asarray(tf.cast(x, tf.float64)) - PROBLEMS[problem][2])))


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_reaches_minimum_of_quadratic(entry, dtype):
    x, _ = minimize(entry, "quadratic", dtype)
    assert x.dtype == tf.as_dtype(dtype)
    assert distance(x, "quadratic") < entry.quadratic.tol, f"{entry.name} ended at {x.numpy()}"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_reaches_minimum_of_rosenbrock(entry):
    x, _ = minimize(entry, "rosenbrock", "float32")
    assert distance(x, "rosenbrock") < entry.rosenbrock.tol, f"{entry.name} ended at {x.numpy()}"


def slots_of(opt, variable):
    """Every slot the optimizer keeps for ``variable`` (slot sets may differ between variables)."""
    found = []
    for name in opt.get_slot_names():
        try:
            found.append(opt.get_slot(variable, name))
        except KeyError:
            continue
    return found


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_keeps_dtype_and_makes_progress(entry, dtype):
    if dtype == "bfloat16" and entry.has("no_bfloat16"):
        pytest.skip(f"{entry.name} declares no_bfloat16")
    x, opt = minimize(entry, "quadratic", dtype, steps=50)
    assert x.dtype == tf.as_dtype(dtype)
    for slot in slots_of(opt, x):
        if len(slot.shape) > 0:  # per-element state; scalar bookkeeping may stay in float64
            assert tf.as_dtype(slot.dtype) == tf.as_dtype(dtype), f"slot {slot.path} is {slot.dtype}"
    start = tf.constant(PROBLEMS["quadratic"][1], tf.float64)
    final = tf.cast(x, tf.float64)
    assert np.all(np.isfinite(final.numpy()))
    assert float(quadratic(final)) < float(quadratic(start))


def halve_hyperparameters(opt):
    """Set every numeric hyperparameter (learning rate included) to half its value, where allowed."""
    for name in ["learning_rate", *opt._hypers]:
        try:
            setattr(opt, name, 0.5 * float(opt._get_hyper(name)))
        except ValueError:
            continue


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_hyperparameter_change_needs_no_retrace(entry):
    runs = []
    for change in (False, True):
        x = tf.Variable(PROBLEMS["quadratic"][1], dtype=tf.float32)
        opt = entry.cls(**entry.quadratic.kwargs)
        opt.build([x])
        step = tf.function(lambda opt=opt, x=x: opt.minimize(lambda: quadratic(x), [x]))
        step()
        step()
        if change:
            halve_hyperparameters(opt)
        step()
        step()
        assert step.experimental_get_tracing_count() == 1
        runs.append(x.numpy())
    assert not np.array_equal(runs[0], runs[1]), "changing the hyperparameters had no effect"


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_config_round_trip(entry):
    opt = entry.cls(**entry.quadratic.kwargs)
    config = opt.get_config()
    json.dumps(config)
    assert entry.cls.from_config(config).get_config() == config
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(restored) is entry.cls
    assert restored.get_config() == config


def train_twice(model, data):
    for _ in range(2):
        model.train_on_batch(*data)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_model_save_and_load_keeps_optimizer_state(entry, tmp_path):
    if entry.has("needs_loss"):
        pytest.skip(f"{entry.name} needs the loss value, which Keras's fit does not pass")
    rng = np.random.default_rng(0)
    data = (rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 2)).astype("float32"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer=entry.cls(**entry.quadratic.kwargs), loss="mse")
    train_twice(model, data)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded.optimizer) is entry.cls
    before = [v.numpy() for v in model.optimizer.variables]
    after = [v.numpy() for v in loaded.optimizer.variables]
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    train_twice(model, data)
    train_twice(loaded, data)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------- sparse path
INDICES = [0, 2, 2, 4]  # row 2 twice: its gradient rows must be summed
ROWS, COLS = 6, 3


def sparse_problem():
    rng = np.random.default_rng(1)
    table = rng.normal(size=(ROWS, COLS))
    weights = rng.normal(size=(len(INDICES), COLS))
    dense_weights = np.zeros((ROWS, COLS))
    np.add.at(dense_weights, INDICES, weights)
    counts = np.bincount(INDICES, minlength=ROWS)[:, None].astype(float)
    return table, weights, dense_weights, counts


def sparse_loss(table, weights):
    rows = tf.gather(table, INDICES)
    return tf.reduce_sum(weights * rows) + 0.5 * tf.reduce_sum(tf.square(rows))


def dense_loss(table, dense_weights, counts):
    return tf.reduce_sum(dense_weights * table) + 0.5 * tf.reduce_sum(counts * tf.square(table))


def run_both(entry, steps=5):
    """The same problem with a gathered (IndexedSlices) and with a dense gradient, float64."""
    table0, weights, dense_weights, counts = sparse_problem()
    sparse_table = tf.Variable(table0)
    dense_table = tf.Variable(table0)
    sparse_opt = entry.cls(**entry.quadratic.kwargs)
    dense_opt = entry.cls(**entry.quadratic.kwargs)
    sparse_opt.build([sparse_table])
    dense_opt.build([dense_table])
    initial_slots = [s.numpy() for s in slots_of(sparse_opt, sparse_table)]
    with tf.GradientTape() as tape:
        gradient = tape.gradient(sparse_loss(sparse_table, weights), sparse_table)
    assert isinstance(gradient, tf.IndexedSlices)
    for _ in range(steps):
        sparse_opt.minimize(lambda: sparse_loss(sparse_table, weights), [sparse_table])
        dense_opt.minimize(lambda: dense_loss(dense_table, dense_weights, counts), [dense_table])
    return table0, initial_slots, (sparse_table, sparse_opt), (dense_table, dense_opt)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_sparse_gradient_gives_the_dense_result(entry):
    if entry.has("lazy_sparse"):
        pytest.skip(f"{entry.name} declares lazy_sparse: rows without gradient keep their state")
    _, _, (sparse_table, sparse_opt), (dense_table, dense_opt) = run_both(entry)
    np.testing.assert_allclose(sparse_table.numpy(), dense_table.numpy(), rtol=1e-9, atol=1e-12)
    for s, d in zip(slots_of(sparse_opt, sparse_table), slots_of(dense_opt, dense_table)):
        np.testing.assert_allclose(s.numpy(), d.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_lazy_sparse_leaves_other_rows_alone(entry):
    if not entry.has("lazy_sparse"):
        pytest.skip(f"{entry.name} does not declare lazy_sparse")
    table0, initial_slots, (sparse_table, sparse_opt), (dense_table, dense_opt) = run_both(entry)
    touched = sorted(set(INDICES))
    untouched = [i for i in range(ROWS) if i not in touched]
    np.testing.assert_array_equal(sparse_table.numpy()[untouched], table0[untouched])
    for initial, slot in zip(initial_slots, slots_of(sparse_opt, sparse_table)):
        if slot.shape[0] == ROWS:
            np.testing.assert_array_equal(slot.numpy()[untouched], initial[untouched])
    np.testing.assert_allclose(sparse_table.numpy()[touched], dense_table.numpy()[touched], rtol=1e-9, atol=1e-12)
    assert not np.allclose(sparse_table.numpy()[touched], table0[touched])
