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
    together = side_by_side.SideBySide.build(fn, starts, [(optimlab.Adam(0.05), runs)], rules, 150, False)
    iterations, codes, paths = together.run()
    for i, beta in enumerate(betas):
        alone = convergence_test(optimlab.Adam(0.05, beta_1=beta), fn, init=starts[i], max_iters=150)
        assert iterations[i] == alone.iterations and alone.status == "max_iters" and codes[i] == stopping.RUNNING
        np.testing.assert_array_equal(paths[i], alone.path)


# ------------------------------------------------------------ one program for the table
def count_programs(monkeypatch):
    """Lists that grow by one per stacked program traced and per one-run program traced."""
    stacked, single = [], []
    original_stacked, original_single = side_by_side._program, runner._compiled_program
    monkeypatch.setattr(side_by_side, "_program", lambda *a: stacked.append(1) or original_stacked(*a))
    monkeypatch.setattr(runner, "_compiled_program", lambda *a: single.append(1) or original_single(*a))
    return stacked, single


def test_the_guides_table_takes_one_program(monkeypatch):
    stacked, single = count_programs(monkeypatch)
    results = run_grid(["gd", "momentum", "adam"], "quartic", RATES, init=2.0, max_iters=2000)
    assert (len(stacked), len(single)) == (1, 0)
    table = {key: (r.status, r.iterations) for key, r in results.items()}
    assert table == {
        ("gd", 1e-3): ("max_iters", 2000), ("gd", 1e-2): ("max_iters", 2000), ("gd", 1e-1): ("exploded", 6),
        ("momentum", 1e-3): ("max_iters", 2000), ("momentum", 1e-2): ("converged", 80),
        ("momentum", 1e-1): ("exploded", 6),
        ("adam", 1e-3): ("max_iters", 2000), ("adam", 1e-2): ("max_iters", 2000), ("adam", 1e-1): ("converged", 1156),
    }  # the guide's published table


def test_a_fallback_traces_one_program_for_its_runs_and_is_remembered(monkeypatch):
    stacked, single = count_programs(monkeypatch)
    side_by_side._VERDICTS.clear()
    run_grid(["lamb"], "booth", [0.01, 0.1, 0.3], init=None, max_iters=20)
    assert (len(stacked), len(single)) == (1, 1)  # the stacked trace that found the norms, then one program
    run_grid(["lamb"], "booth", [0.02, 0.2], init=None, max_iters=20)
    assert (len(stacked), len(single)) == (1, 2)  # no second attempt at stacking


MIXED = ["gd", "momentum", "adam", "rmsprop", "lamb", "adagrad", "lion", "yogi", "novograd", "lars"]


def test_a_mixed_table_runs_in_one_program_and_each_run_equals_its_run_alone(monkeypatch):
    """Several stackable optimizers and some that mix entries (LAMB, NovoGrad) in one table: one stacked
    program holds every stackable run (after one attempt that found the norms), each run equals its run alone,
    and each fallback keeps its note."""
    side_by_side._VERDICTS.clear()
    stacked, single = count_programs(monkeypatch)
    together = run_grid(MIXED, "quartic", RATES, init=2.0, max_iters=300)
    notes = {label: r.note for (label, _), r in together.items()}
    alone = sorted(label for label, note in notes.items() if note)
    assert {"lamb", "novograd"} <= set(alone) and set(alone) < set(MIXED) - {"gd", "adam"}
    assert all(notes[label].startswith("ran alone: its update mixes a variable's entries") for label in alone)
    assert (len(stacked), len(single)) == (2, len(alone))  # all groups, then the others; one per fallback
    assert_same_tables(together, alone_runs(MIXED, "quartic", RATES, init=2.0, max_iters=300))
    again = run_grid(MIXED, "quartic", RATES, init=2.0, max_iters=300)  # the verdicts are remembered
    assert len(stacked) == 3 and sorted({label for (label, _), r in again.items() if r.note}) == alone
    assert_same_tables(again, together)


def test_a_mixed_2d_table_equals_its_runs_alone():
    names = ["momentum", "adam", "lamb", "adamw", "sgd"]
    kwargs = dict(init=None, max_iters=80, explosion="immediate")
    together = run_grid(names, "rosenbrock", [0.002, 0.05, 0.2], **kwargs)
    assert_same_tables(together, alone_runs(names, "rosenbrock", [0.002, 0.05, 0.2], **kwargs))


def test_many_runs_equal_their_runs_alone():
    """18 runs of 2 entries: a gradient computed on all runs at once would take TensorFlow's vectorized pow
    (8 entries or more), which rounds differently from the one-run test's; each run's own gradient does not."""
    rates = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.3]
    together = run_grid(["adabelief", "gd"], "rosenbrock", rates, init=None, max_iters=60)
    assert {r.note for r in together.values()} == {""}
    assert_same_tables(together, alone_runs(["adabelief", "gd"], "rosenbrock", rates, init=None, max_iters=60))


class _ExpStep(optimlab.Optimizer):
    """x <- x - lr * (exp(g / 100) - 1): entry by entry, through a function with a vectorized CPU kernel."""

    def update_step(self, gradient, variable, learning_rate):
        variable.assign_sub(tf.cast(learning_rate, variable.dtype) * (tf.exp(gradient * 0.01) - 1.0))


def test_an_update_applying_a_vector_rounded_function_runs_alone(monkeypatch):
    """exp on a stack of 18 entries takes TensorFlow's vectorized kernel, which rounds differently from the
    one-run tensor's: stacked anyway (the guard switched off), some run's path differs from its run alone;
    with the guard, the runs run alone with a note saying why, equal to their runs alone."""
    rates = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.3]
    optimizers = {"exp": _ExpStep}
    kwargs = dict(init=None, max_iters=100)
    alone = alone_runs(optimizers, "rosenbrock", rates, **kwargs)
    guarded = run_grid(optimizers, "rosenbrock", rates, **kwargs)
    assert all("applies Exp to each entry" in r.note for r in guarded.values()), guarded
    assert_same_tables(guarded, alone)
    side_by_side._VERDICTS.clear()
    monkeypatch.setattr(side_by_side, "VECTOR_ROUNDED_OPS", frozenset())
    stacked = run_grid(optimizers, "rosenbrock", rates, **kwargs)
    assert {r.note for r in stacked.values()} == {""}
    assert any(not np.array_equal(stacked[key].path, alone[key].path) for key in alone)


def test_a_scalar_power_in_the_update_does_not_stop_stacking():
    """Adam's bias corrections take ``beta ** t`` of scalars, which the guard lets through."""
    together = run_grid(["adam"], "rosenbrock", RATES, init=None, max_iters=40)
    assert {r.note for r in together.values()} == {""}


def test_a_diverging_group_leaves_the_other_groups_identical():
    """gd at 0.5 and momentum at 0.1 overflow; adam's and adamax's runs beside them are those of a table
    without them, and those computed alone."""
    rates = {"gd": [1e-3, 0.5], "momentum": [1e-2, 0.1], "adam": [1e-3, 1e-2, 1e-1], "adamax": [1e-3, 1e-2]}
    with_divergers = run_grid(list(rates), "quartic", rates, max_iters=400)
    assert with_divergers[("gd", 0.5)].status == with_divergers[("momentum", 0.1)].status == "exploded"
    assert {r.note for r in with_divergers.values()} == {""}
    calm = {"adam": rates["adam"], "adamax": rates["adamax"]}
    for key, result in run_grid(list(calm), "quartic", calm, max_iters=400).items():
        assert_same_run(with_divergers[key], result)
    assert_same_tables(with_divergers, alone_runs(list(rates), "quartic", rates, max_iters=400))


def test_one_rate_and_plain_objects_run_alone_beside_the_program(monkeypatch):
    stacked, single = count_programs(monkeypatch)
    optimizers = {"gd": optimlab.GradientDescent, "adam": optimlab.Adam,
                  "keras": lambda lr: keras.optimizers.SGD(lr)}
    rates = {"gd": [1e-2, 1e-1], "adam": [0.05], "keras": [1e-2, 1e-1]}
    together = run_grid(optimizers, "quartic", rates, max_iters=50)
    assert (len(stacked), len(single)) == (1, 3)  # gd's runs; adam's one run; the Keras SGD's, one per rate
    assert together[("adam", 0.05)].note == ""
    assert all("only an optimlab optimizer" in together[("keras", lr)].note for lr in rates["keras"])
    assert_same_tables(together, alone_runs(optimizers, "quartic", rates, max_iters=50))


def test_a_program_that_fails_as_a_whole_runs_its_groups_one_by_one(monkeypatch):
    """Where the program fails to trace and no group can be named, each group tries a program of its own."""
    original = side_by_side._program

    class Failing:
        def get_concrete_function(self):
            raise RuntimeError("a trace that fails")

    def failing_with_several(fn, groups, *rest):
        return Failing() if len(groups) > 1 else original(fn, groups, *rest)

    monkeypatch.setattr(side_by_side, "_program", failing_with_several)
    together = run_grid(["gd", "adam"], "quartic", RATES, max_iters=100)
    assert {r.note for r in together.values()} == {""}
    assert_same_tables(together, alone_runs(["gd", "adam"], "quartic", RATES, max_iters=100))


def test_a_cached_program_serves_only_its_own_table(monkeypatch):
    """With one cache across calls: a table of other optimizers, another order, other per-run hyperparameters
    or another run count gets a program of its own; the same table again (other values) is reset, not retraced."""
    shared = runner.programs.ProgramCache()
    monkeypatch.setattr(runner.programs, "ProgramCache", lambda: shared)
    stacked, _ = count_programs(monkeypatch)
    quartic = get_function("quartic")  # a program is for one function object
    tables = [
        (["gd", "adam"], RATES),
        (["adam", "gd"], RATES),  # the same groups in another order
        (["gd", "momentum"], RATES),  # another optimizer
        (["gd", "adam"], RATES[:2]),  # fewer runs
        ({"gd": optimlab.GradientDescent, "adam": lambda lr: optimlab.Adam(0.05, beta_1=lr)}, [0.5, 0.8, 0.9]),
    ]
    for i, (names, rates) in enumerate(tables):
        together = run_grid(names, quartic, rates, max_iters=200)
        assert len(stacked) == i + 1
        assert_same_tables(together, alone_runs(names, "quartic", rates, max_iters=200))
    for names, rates in ([["gd", "adam"], [2e-3, 2e-2, 0.2]], [["adam", "gd"], [0.05, 0.01, 0.3]]):
        together = run_grid(names, quartic, rates, max_iters=200)  # reset, not retraced
        assert len(stacked) == len(tables)
        assert_same_tables(together, alone_runs(names, "quartic", rates, max_iters=200))


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
