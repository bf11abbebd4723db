"""Runs side by side in one program: each run equals the run computed alone; the fallback; one program per optimizer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import registry
from optimlab.lab import convergence_test, run_grid
from optimlab.lab.convergence import runner, side_by_side, stopping
from optimlab.lab.convergence.functions import get_function

RATES = [1e-3, 1e-2, 1e-1]


def assert_same_run(together, alone):
    """Status, iteration, criterion and the whole path, bit for bit."""
    assert (together.status, together.iterations, together.criterion) == \
        (alone.status, alone.iterations, alone.criterion)
    assert together.path.shape == alone.path.shape
    np.testing.assert_array_equal(together.path, alone.path)
    np.testing.assert_array_equal(together.final_loss, alone.final_loss)


def assert_same_tables(together, alone):
    assert list(together) == list(alone)
    for key in alone:
        assert_same_run(together[key], alone[key])


def alone_runs(names, function, rates, **kwargs):
    """Each run computed alone: a program of its own per run (one trace per optimizer, reset between runs)."""
    return run_grid(names, function, rates, side_by_side=False, **kwargs)


# ------------------------------------------------------------ every registered optimizer
@pytest.mark.parametrize("name", registry.names())
def test_every_registered_optimizer_equals_its_runs_alone_or_falls_back(name):
    together = run_grid([name], "quartic", RATES, init=2.0, max_iters=40)
    assert_same_tables(together, alone_runs([name], "quartic", RATES, init=2.0, max_iters=40))
    notes = {r.note for r in together.values()}
    assert notes == {""} or (len(notes) == 1 and notes.pop().startswith("ran alone: ")), notes


@pytest.mark.slow
@pytest.mark.parametrize("name", registry.names())
def test_every_registered_optimizer_on_a_2d_function(name):
    together = run_grid([name], "rosenbrock", RATES, init=None, max_iters=60, explosion="immediate")
    assert_same_tables(together, alone_runs([name], "rosenbrock", RATES, init=None, max_iters=60,
                                            explosion="immediate"))


@pytest.mark.parametrize("name", ["adam", "rmsprop", "momentum"])
def test_a_2d_function_side_by_side(name):
    together = run_grid([name], "rosenbrock", RATES, init=None, max_iters=80)
    assert {r.note for r in together.values()} == {""} or name == "rmsprop"
    assert_same_tables(together, alone_runs([name], "rosenbrock", RATES, init=None, max_iters=80))


# ------------------------------------------------------------ which updates may be stacked
class _NormalizedStep(optimlab.Optimizer):
    """x <- x - lr * g / |g|: the step of every entry depends on all entries (a norm)."""

    def update_step(self, gradient, variable, learning_rate):
        variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient / (tf.norm(gradient) + 1e-12))


class _SignStep(optimlab.Optimizer):
    """x <- x - lr * sign(g): entry by entry."""

    def update_step(self, gradient, variable, learning_rate):
        variable.assign_sub(tf.cast(learning_rate, variable.dtype) * tf.sign(gradient))


def test_an_update_with_a_norm_falls_back_and_an_entrywise_one_does_not():
    rates = [0.01, 0.05]
    mixing = run_grid({"normalized": _NormalizedStep}, "booth", rates, init=None, max_iters=50)
    assert all("mixes a variable's entries (" in r.note and "Sum" in r.note for r in mixing.values())
    assert_same_tables(mixing, alone_runs({"normalized": _NormalizedStep}, "booth", rates, init=None, max_iters=50))
    entrywise = run_grid({"sign": _SignStep}, "booth", rates, init=None, max_iters=50)
    assert {r.note for r in entrywise.values()} == {""}
    assert_same_tables(entrywise, alone_runs({"sign": _SignStep}, "booth", rates, init=None, max_iters=50))


def test_a_norm_clip_falls_back_and_a_value_clip_does_not():
    def clipped(**clip):
        return {"adam": lambda lr: optimlab.Adam(lr, **clip)}

    by_norm = run_grid(clipped(clipnorm=1.0), "booth", [0.1, 0.5], init=None, max_iters=30)
    assert all(r.note.startswith("ran alone: its update mixes") for r in by_norm.values())
    by_value = run_grid(clipped(clipvalue=1.0), "booth", [0.1, 0.5], init=None, max_iters=30)
    assert {r.note for r in by_value.values()} == {""}
    assert_same_tables(by_value, alone_runs(clipped(clipvalue=1.0), "booth", [0.1, 0.5], init=None, max_iters=30))


def test_a_keras_optimizer_runs_alone_with_a_note():
    results = run_grid({"keras": lambda lr: keras.optimizers.SGD(lr)}, "quartic", [1e-2, 1e-1], max_iters=30)
    assert all("only an optimlab optimizer" in r.note and r.compiled for r in results.values())


# ------------------------------------------------------------ per-run stopping
def test_diverging_runs_leave_their_neighbours_identical():
    """gd at 0.1 and 0.5 overflows within a few iterations; the runs beside them are those computed alone and
    those of a table without the diverging runs."""
    with_divergers = run_grid(["gd", "momentum"], "quartic", [1e-3, 0.1, 1e-2, 0.5], max_iters=300)
    without = run_grid(["gd", "momentum"], "quartic", [1e-3, 1e-2], max_iters=300)
    alone = alone_runs(["gd", "momentum"], "quartic", [1e-3, 0.1, 1e-2, 0.5], max_iters=300)
    assert_same_tables(with_divergers, alone)
    assert with_divergers[("gd", 0.1)].status == with_divergers[("gd", 0.5)].status == "exploded"
    for key, result in without.items():
        assert_same_run(with_divergers[key], result)


@pytest.mark.parametrize("explosion", ["seed", "immediate"])
def test_explosion_rules_per_run(explosion):
    rates = [0.002, 0.05, 0.2]  # rosenbrock from (-1.2, 1): gd at 0.05 and 0.2 overflow to inf and NaN
    together = run_grid(["gd"], "rosenbrock", rates, init=None, max_iters=200, explosion=explosion)
    assert [r.status for r in together.values()].count("exploded") == 2
    assert_same_tables(together, alone_runs(["gd"], "rosenbrock", rates, init=None, max_iters=200,
                                            explosion=explosion))


@pytest.mark.parametrize("criterion, kwargs, function", [
    ("step", dict(step_tol=1e-4, dtype="float64"), "booth"),
    ("gradient", dict(grad_tol=1e-2, dtype="float64"), "booth"),
    ("optimum", dict(optimum_tol=1e-2), "himmelblau"),
])
def test_each_run_stops_by_its_own_criteria(criterion, kwargs, function):
    rates = [0.01, 0.03, 0.05]
    together = run_grid(["gd", "adam"], function, rates, init=None, max_iters=400, **kwargs)
    assert {r.criterion for r in together.values() if r.converged} == {criterion}
    assert len({r.iterations for r in together.values()}) > 2  # the runs stop at different iterations
    assert_same_tables(together, alone_runs(["gd", "adam"], function, rates, init=None, max_iters=400, **kwargs))


def test_start_points_and_other_hyperparameters_per_run():
    """Runs may differ in start point and in any hyperparameter held in a variable (here beta_1)."""
    fn = get_function("himmelblau")
    rules = stopping.Rules(0.0, None, None, "seed", fn.minima)
    starts = np.array([[0.0, 0.0], [1.0, -2.0], [-3.0, 2.5]], np.float32)
    betas = [0.5, 0.9, 0.99]
    runs = [optimlab.Adam(0.05, beta_1=b) for b in betas]
    assert side_by_side.per_run_names(runs) == ["beta_1"]
    together = side_by_side.SideBySide.build(fn, starts, optimlab.Adam(0.05), runs, rules, 150, False)
    iterations, codes, paths = together.run()
    for i, beta in enumerate(betas):
        alone = convergence_test(optimlab.Adam(0.05, beta_1=beta), fn, init=starts[i], max_iters=150)
        assert iterations[i] == alone.iterations and alone.status == "max_iters" and codes[i] == stopping.RUNNING
        np.testing.assert_array_equal(paths[i], alone.path)


# ------------------------------------------------------------ one program per optimizer
def test_the_guides_table_takes_one_program_per_optimizer(monkeypatch):
    stacked, single = [], []
    original_stacked, original_single = side_by_side._program, runner._compiled_program
    monkeypatch.setattr(side_by_side, "_program", lambda *a: stacked.append(1) or original_stacked(*a))
    monkeypatch.setattr(runner, "_compiled_program", lambda *a: single.append(1) or original_single(*a))
    results = run_grid(["gd", "momentum", "adam"], "quartic", RATES, init=2.0, max_iters=2000)
    assert (len(stacked), len(single)) == (3, 0)
    table = {key: (r.status, r.iterations) for key, r in results.items()}
    assert table == {
        ("gd", 1e-3): ("max_iters", 2000), ("gd", 1e-2): ("max_iters", 2000), ("gd", 1e-1): ("exploded", 6),
        ("momentum", 1e-3): ("max_iters", 2000), ("momentum", 1e-2): ("converged", 80),
        ("momentum", 1e-1): ("exploded", 6),
        ("adam", 1e-3): ("max_iters", 2000), ("adam", 1e-2): ("max_iters", 2000), ("adam", 1e-1): ("converged", 1156),
    }  # the guide's published table


def test_a_fallback_traces_one_program_for_its_runs_and_is_remembered(monkeypatch):
    stacked, single = [], []
    original_stacked, original_single = side_by_side._program, runner._compiled_program
    monkeypatch.setattr(side_by_side, "_program", lambda *a: stacked.append(1) or original_stacked(*a))
    monkeypatch.setattr(runner, "_compiled_program", lambda *a: single.append(1) or original_single(*a))
    side_by_side._VERDICTS.clear()
    run_grid(["lamb"], "booth", [0.01, 0.1, 0.3], init=None, max_iters=20)
    assert (len(stacked), len(single)) == (1, 1)  # the stacked trace that found the norms, then one program
    run_grid(["lamb"], "booth", [0.02, 0.2], init=None, max_iters=20)
    assert (len(stacked), len(single)) == (1, 2)  # no second attempt at stacking


def test_side_by_side_false_and_eager_runs_take_no_stacked_program(monkeypatch):
    stacked = []
    monkeypatch.setattr(side_by_side, "_program", lambda *a: stacked.append(1))
    eager = run_grid(["gd"], "quartic", [1e-2, 1e-1], max_iters=20, compiled=False)
    alone = run_grid(["gd"], "quartic", [1e-2, 1e-1], max_iters=20, side_by_side=False)
    assert not stacked and not any(r.compiled for r in eager.values())
    assert_same_tables(eager, alone)
    with pytest.raises(TypeError, match="side_by_side must be True or False"):
        run_grid(["gd"], "quartic", [1e-2], side_by_side="yes")


# ------------------------------------------------------------ the stopping norms of a stack
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_norms_equal_the_one_run_norms(dtype):
    """Bit for bit up to 1000 coordinates; beyond, the row reduction may round differently in the last bit
    (within 4 units in the last place), which only matters for a norm within that of a tolerance."""
    rng = np.random.default_rng(0)
    for dim in (1, 2, 3, 17, 64, 300, 1000, 4097, 20000):
        stack = tf.constant(rng.normal(size=(4, dim)).astype(dtype))
        rows = stopping.norm(stack, rows=True).numpy()
        alone = np.array([tf.norm(row).numpy() for row in tf.unstack(stack)])
        if dim <= 1000:
            np.testing.assert_array_equal(rows, alone)
        else:
            np.testing.assert_allclose(rows, alone, rtol=4 * np.finfo(dtype).eps, atol=0)
    scalars = tf.constant(rng.normal(size=4).astype(dtype))  # a scalar parameter: the norm is |x|, exactly
    np.testing.assert_array_equal(stopping.norm(scalars, rows=True).numpy(), np.abs(scalars.numpy()))
