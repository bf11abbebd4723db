"""convergence_test: the TF guide's table exactly, compiled == eager, criteria, optimizer kinds, errors."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab.lab import convergence_test, get_function, run_grid, run_table
from optimlab.lab.arguments import parse_numbers

# The printed results of the TensorFlow guide "Optimizers with Core APIs" (its published table), with optimlab's classes at their defaults.
SEED_TABLE = {
    ("gd", 1e-3): ("max_iters", 2000),
    ("gd", 1e-2): ("max_iters", 2000),
    ("gd", 1e-1): ("exploded", 6),
    ("momentum", 1e-3): ("max_iters", 2000),
    ("momentum", 1e-2): ("converged", 80),
    ("momentum", 1e-1): ("exploded", 6),
    ("adam", 1e-3): ("max_iters", 2000),
    ("adam", 1e-2): ("max_iters", 2000),
    ("adam", 1e-1): ("converged", 1156),
}


# ------------------------------------------------------------ the guide's code, transcribed as a reference
class SeedGradientDescent(tf.Module):
    def __init__(self, learning_rate=1e-3):
        self.learning_rate = learning_rate

    def apply_gradients(self, grads, vars):
        for grad, var in zip(grads, vars):
            var.assign_sub(self.learning_rate * grad)


class SeedMomentum(tf.Module):
    """Keeps its state in a Python attribute: cannot be compiled."""

    def __init__(self, learning_rate=1e-3, momentum=0.7):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.change = 0.0

    def apply_gradients(self, grads, vars):
        for grad, var in zip(grads, vars):
            curr_change = self.learning_rate * grad + self.momentum * self.change
            var.assign_sub(curr_change)
            self.change = curr_change


def seed_loss(x):
    return 2 * (x**4) + 3 * (x**3) + 2


def seed_convergence_test(optimizer, init_val=2.0, max_iters=2000):
    """The guide's convergence_test, returning (status, iteration, path) instead of printing."""
    x_star = tf.Variable(init_val)
    param_path = []
    for iter in range(1, max_iters + 1):
        with tf.GradientTape() as tape:
            tape.watch(x_star)
            result = seed_loss(x_star)
        x_grad = tape.gradient(result, x_star)
        if tf.math.is_nan(x_grad):
            return "exploded", iter, param_path
        x_old = x_star.numpy()
        optimizer.apply_gradients([x_grad], [x_star])
        param_path.append(x_star.numpy())
        if x_star == x_old:
            return "converged", iter, param_path
    return "max_iters", max_iters, param_path


# ------------------------------------------------------------ the guide's table
@pytest.fixture(scope="module")
def seed_table():
    return run_table("gd,momentum,adam", "quartic", [1e-3, 1e-2, 1e-1], init=2.0, max_iters=2000)


def test_seed_table_exactly(seed_table):
    got = {(r.optimizer, r.learning_rate): (r.status, r.iterations) for r in seed_table.itertuples()}
    assert got == SEED_TABLE
    assert seed_table["compiled"].all()


def test_seed_table_final_values(seed_table):
    converged = seed_table[seed_table.status == "converged"]
    assert np.all(converged.distance < 1e-5)  # at x* = -9/8
    np.testing.assert_allclose(converged.final_loss, 0.93212890625, rtol=1e-6)
    assert seed_table[seed_table.status == "exploded"].final_loss.isna().all()


@pytest.mark.parametrize("name, lr", [("gd", 0.1), ("momentum", 0.01)])
def test_compiled_path_equals_the_seeds_own_eager_loop(name, lr):
    seed_opt = SeedGradientDescent(lr) if name == "gd" else SeedMomentum(lr)
    status, iters, seed_path = seed_convergence_test(seed_opt)
    r = convergence_test(optimlab.get(name, learning_rate=lr), "quartic")
    assert (r.status, r.iterations) == (status, iters)
    np.testing.assert_array_equal(r.path[1:], np.asarray(seed_path, np.float32))


# ------------------------------------------------------------ compiled == eager
@pytest.mark.parametrize("name", ["gd", "momentum", "adam"])
@pytest.mark.parametrize("lr", [1e-2, 1e-1])
def test_compiled_equals_eager(name, lr):
    kwargs = dict(init=2.0, max_iters=150)
    compiled = convergence_test(optimlab.get(name, learning_rate=lr), "quartic", **kwargs)
    eager = convergence_test(optimlab.get(name, learning_rate=lr), "quartic", compiled=False, **kwargs)
    assert compiled.compiled and not eager.compiled
    assert (compiled.status, compiled.iterations) == (eager.status, eager.iterations)
    np.testing.assert_array_equal(compiled.path, eager.path)


def test_compiled_equals_eager_on_a_2d_function():
    kwargs = dict(init=None, max_iters=100)
    compiled = convergence_test(optimlab.Adam(0.05), "rosenbrock", **kwargs)
    eager = convergence_test(optimlab.Adam(0.05), "rosenbrock", compiled=False, **kwargs)
    np.testing.assert_array_equal(compiled.path, eager.path)
    assert compiled.path.shape == (101, 2)


@pytest.mark.slow
def test_seed_table_eager_equals_compiled(seed_table):
    eager = run_table("gd,momentum,adam", "quartic", [1e-3, 1e-2, 1e-1], compiled=False)
    assert list(eager.status) == list(seed_table.status)
    assert list(eager.iterations) == list(seed_table.iterations)
    np.testing.assert_array_equal(eager.final_loss, seed_table.final_loss)


def test_xla_compilation_runs():
    r = convergence_test(optimlab.Momentum(0.01), "quartic", jit_compile=True)
    assert r.compiled and r.status == "converged"


# ------------------------------------------------------------ optimizer kinds
def test_keras_optimizer_is_accepted_and_compiled():
    r = convergence_test(keras.optimizers.Adam(0.1, name="keras_adam"), "quartic")
    assert (r.status, r.iterations, r.compiled) == ("converged", 1093, True)
    assert r.optimizer == "keras_adam" and r.learning_rate == pytest.approx(0.1)


def test_registered_name_uses_the_defaults():
    r = convergence_test("gd", "quartic", max_iters=50)
    assert r.learning_rate == pytest.approx(1e-3) and r.status == "max_iters"


def test_seed_style_object_without_python_state_is_compiled():
    r = convergence_test(SeedGradientDescent(0.1), "quartic")
    assert (r.status, r.iterations, r.compiled, r.note) == ("exploded", 6, True, "")


def test_seed_style_object_with_python_state_runs_eagerly_with_a_note():
    opt = SeedMomentum(0.01)
    r = convergence_test(opt, "quartic")
    assert (r.status, r.iterations, r.compiled) == ("converged", 80, False)
    assert "Python attributes" in r.note
    status, iters, seed_path = seed_convergence_test(SeedMomentum(0.01))
    np.testing.assert_array_equal(r.path[1:], np.asarray(seed_path, np.float32))


# ------------------------------------------------------------ explosions
def _float32_gd_iterates(lr, steps):
    """GD on the quartic in float32 NumPy with the analytic gradient (overflow warnings silenced)."""
    x = np.float32(2.0)
    xs, grads = [x], []
    with np.errstate(all="ignore"):
        for _ in range(steps):
            g = np.float32(8) * x**3 + np.float32(9) * x**2
            grads.append(g)
            x = np.float32(x - np.float32(lr) * g)
            xs.append(x)
    return xs, grads


def test_explosion_rules_seed_vs_immediate():
    xs, grads = _float32_gd_iterates(0.1, 6)
    first_inf_grad = next(i for i, g in enumerate(grads, 1) if not np.isfinite(g))
    assert first_inf_grad == 5  # the gradient overflows at iteration 5, x becomes -inf
    seed_rule = convergence_test(optimlab.GradientDescent(0.1), "quartic")
    immediate = convergence_test(optimlab.GradientDescent(0.1), "quartic", explosion="immediate")
    assert (seed_rule.status, seed_rule.iterations) == ("exploded", first_inf_grad + 1)
    assert (immediate.status, immediate.iterations) == ("exploded", first_inf_grad)
    # the exploded iteration makes no update: paths hold the start and the updates before it
    assert len(seed_rule.path) == 6 and np.isneginf(seed_rule.path[-1])
    assert len(immediate.path) == 5 and np.all(np.isfinite(immediate.path))
    np.testing.assert_allclose(immediate.path, xs[:5], rtol=1e-5)


def test_overflow_on_the_last_iteration_is_reported_as_exploded():
    r = convergence_test(optimlab.GradientDescent(0.1), "quartic", max_iters=5)
    assert (r.status, r.iterations) == ("exploded", 5)


# ------------------------------------------------------------ tolerance criteria
def _booth_gradient_norm(x):
    a, b = x
    r1, r2 = a + 2 * b - 7, 2 * a + b - 5
    return np.hypot(2 * r1 + 4 * r2, 4 * r1 + 2 * r2)


def test_gradient_tolerance_stops_at_the_first_small_gradient():
    r = convergence_test(optimlab.GradientDescent(0.05), "booth", init=None, grad_tol=1e-2, dtype="float64")
    assert (r.status, r.criterion) == ("converged", "gradient")
    norms = [_booth_gradient_norm(x) for x in r.path[:-1]]  # norms of the gradients applied
    assert norms[-1] <= 1e-2 and min(norms[:-1]) > 1e-2


def test_step_tolerance_stops_at_the_first_small_step():
    r = convergence_test(optimlab.GradientDescent(0.05), "booth", init=None, step_tol=1e-4, dtype="float64")
    steps = np.linalg.norm(np.diff(r.path, axis=0), axis=1)
    assert (r.status, r.criterion) == ("converged", "step")
    assert steps[-1] <= 1e-4 and steps[:-1].min() > 1e-4 and r.iterations == len(steps)


def test_optimum_tolerance_stops_near_a_known_minimum():
    r = convergence_test(optimlab.Adam(0.05), "himmelblau", init=None, optimum_tol=1e-2)
    distances = [np.min(np.linalg.norm(np.asarray(get_function("himmelblau").minima) - x, axis=1)) for x in r.path]
    assert (r.status, r.criterion) == ("converged", "optimum")
    assert distances[-1] <= 1e-2 and min(distances[:-1]) > 1e-2
    assert r.distance == pytest.approx(distances[-1], rel=1e-6)


# ------------------------------------------------------------ functions, results, grids
def test_any_callable_of_the_parameter():
    r = convergence_test(optimlab.GradientDescent(0.1), lambda x: (x - 3.0) ** 2, init=0.0, max_iters=500)
    assert r.status == "converged" and r.final == pytest.approx(3.0, abs=1e-5)
    assert r.distance == np.inf and r.function == "<lambda>"


def test_result_fields():
    r = convergence_test(optimlab.Momentum(0.01), "quartic")
    assert r.path[0] == 2.0 and len(r.path) == r.iterations + 1
    assert r.path[-1] == r.path[-2]  # the guide's criterion: unchanged parameter
    assert r.final_loss == pytest.approx(float(seed_loss(np.float32(r.final))))
    assert r.distance == pytest.approx(abs(r.final + 9 / 8))
    assert r.converged and r.criterion == "step" and r.seconds > 0


def test_scalar_init_fills_every_coordinate_and_float64_works():
    r = convergence_test(optimlab.GradientDescent(1e-3), "rosenbrock", init=0.5, max_iters=3, dtype=tf.float64)
    assert r.path.dtype == np.float64 and np.all(r.path[0] == 0.5)


def test_run_grid_with_per_optimizer_rates_and_callback():
    seen = []
    results = run_grid({"gd": optimlab.GradientDescent, "adam": optimlab.Adam}, "booth",
                       {"gd": 0.05, "adam": [0.1, 0.5]}, init=None, max_iters=20,
                       on_result=lambda label, lr, r: seen.append((label, lr)))
    assert list(results) == seen == [("gd", 0.05), ("adam", 0.1), ("adam", 0.5)]


# ------------------------------------------------------------ errors
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(max_iters=0), ValueError, "max_iters must be an integer >= 1; got 0"),
        (dict(step_tol=-1.0), ValueError, "step_tol must be a finite number in"),
        (dict(explosion="soon"), ValueError, "explosion must be one of"),
        (dict(init=[1.0, 2.0]), ValueError, r"init must have shape \(\) for 'quartic'"),
        (dict(init=float("nan")), ValueError, "init must be finite"),
        (dict(dtype="int32"), ValueError, "dtype must be one of"),
        (dict(compiled="yes"), TypeError, "compiled must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        convergence_test(optimlab.Adam(0.1), "quartic", **kwargs)


def test_bad_optimizers_and_functions():
    with pytest.raises(TypeError, match="optimizer must be a registered optimizer name"):
        convergence_test(object(), "quartic")
    with pytest.raises(ValueError, match="unknown optimizer 'nope'; valid names:"):
        convergence_test("nope", "quartic")
    with pytest.raises(ValueError, match="unknown function 'nope'; valid names: quartic"):
        convergence_test(optimlab.Adam(), "nope")
    with pytest.raises(ValueError, match="optimum_tol needs a function with known minima"):
        convergence_test(optimlab.Adam(), lambda x: x**2, optimum_tol=0.1)
    used = optimlab.Adam()
    used.build([tf.Variable(1.0)])
    with pytest.raises(ValueError, match="already been built"):
        convergence_test(used, "quartic")
    with pytest.raises(ValueError, match="learning rates must be finite numbers > 0; got -1"):
        run_grid("gd", "quartic", [-1])
    with pytest.raises(ValueError, match=r"learning_rates has no rate for optimizer\(s\) \['adam'\]"):
        run_grid("gd,adam", "quartic", {"gd": 0.1})
    with pytest.raises(ValueError, match="--lr must be comma-separated numbers"):
        parse_numbers("1e-3,x", "--lr")


def test_a_standstill_far_from_a_minimum_is_not_convergence():
    """Issue 15: Prodigy(1e-2) on Rosenbrock took steps too small to change a float32 at the start and
    was reported "converged in 1"; a standstill counts only where the gradient has nearly vanished."""
    import optimlab

    r = convergence_test(optimlab.Prodigy(1e-2), "rosenbrock", max_iters=50)
    assert not (r.status == "converged" and r.distance > 0.1), (r.status, r.iterations, r.distance)


def test_run_grid_traces_once_per_optimizer_and_matches_separate_runs(monkeypatch):
    """Issue 17 item 1: one trace per optimizer class across learning rates, same paths as fresh runs
    (one run per call: the fallback of runs side by side, test_side_by_side.py)."""
    from optimlab.lab.convergence import runner as convergence

    rates = [1e-3, 1e-2, 1e-1]
    separate = {(n, lr): convergence.convergence_test(optimlab.get(n, learning_rate=lr), "quartic", max_iters=300)
                for n in ("momentum", "adam") for lr in rates}
    traced = []
    original = convergence._compiled_program
    monkeypatch.setattr(convergence, "_compiled_program", lambda *a: traced.append(1) or original(*a))
    grid = convergence.run_grid(["momentum", "adam"], "quartic", rates, max_iters=300, side_by_side=False)
    assert len(traced) == 2
    for key, result in grid.items():
        assert (result.status, result.iterations) == (separate[key].status, separate[key].iterations)
        np.testing.assert_array_equal(result.path, separate[key].path)
        assert result.learning_rate == pytest.approx(key[1])
