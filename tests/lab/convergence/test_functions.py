"""Analytic test functions: gradients, minima, domains, starts, lookup errors."""

from fractions import Fraction

import numpy as np
import pytest
import tensorflow as tf

from optimlab.lab.convergence.functions import TestFunction, as_function, describe_functions, function_names, get_function

DETERMINISTIC = [n for n in function_names() if n != "noisy_quadratic"]


def _value(f, x):
    return float(f(tf.constant(x, tf.float64)))


def _tape_gradient(f, x):
    x = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = f.fn(x)
    return np.asarray(tape.gradient(loss, x))


def _finite_differences(f, x, h=1e-6):
    """Central differences in float64, coordinate by coordinate (independent of autodiff)."""
    x = np.asarray(x, np.float64)
    if x.ndim == 0:
        return np.asarray((_value(f, x + h) - _value(f, x - h)) / (2 * h))
    grad = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (_value(f, x + e) - _value(f, x - e)) / (2 * h)
    return grad


def _random_points(f, n, seed):
    rng = np.random.default_rng(seed)
    low, high = np.array(f.domain, np.float64).T
    points = rng.uniform(low, high, size=(n, len(f.domain)))
    return points[:, 0] if f.dim == 0 else points


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_tape_gradient_matches_finite_differences(name):
    f = get_function(name)
    for x in _random_points(f, 5, seed=1):
        np.testing.assert_allclose(_tape_gradient(f, x), _finite_differences(f, x), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in function_names() if get_function(n).gradient is not None])
def test_analytic_gradient_matches_tape(name):
    f = get_function(name)
    for x in _random_points(f, 20, seed=2):
        analytic = np.asarray(f.gradient(tf.constant(x, tf.float64)))
        np.testing.assert_allclose(analytic, _tape_gradient(f, x), rtol=1e-10, atol=1e-9)


def test_quartic_is_the_seeds_function_with_its_stationary_points():
    f = get_function("quartic")
    for x in (-1.7, 0.3, 2.0):
        assert _value(f, x) == pytest.approx(2 * x**4 + 3 * x**3 + 2, rel=1e-14)
    # dL/dx = 8x^3 + 9x^2 = x^2 (8x + 9): zero at 0 (saddle) and -9/8 (minimum)
    assert f.minima == ((-9 / 8,),) and f.saddles == ((0.0,),)
    exact_min = 2 * Fraction(-9, 8) ** 4 + 3 * Fraction(-9, 8) ** 3 + 2
    assert f.min_value == pytest.approx(float(exact_min), abs=0)
    assert _tape_gradient(f, -9 / 8) == pytest.approx(0.0, abs=1e-12)
    assert _tape_gradient(f, 0.0) == 0.0
    assert f.start == 2.0 and f.shape == ()


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_minima_have_the_stated_value_zero_gradient_and_are_local_minima(name):
    f = get_function(name)
    rng = np.random.default_rng(3)
    for m in f.minima:
        point = np.asarray(m[0] if f.dim == 0 else m, np.float64)
        assert _value(f, point) == pytest.approx(f.min_value, abs=1e-8)
        assert np.max(np.abs(_tape_gradient(f, point))) < 1e-3  # Himmelblau's minima are given to 6 decimals
        for _ in range(10):
            nearby = point + rng.normal(scale=1e-2, size=point.shape)
            assert _value(f, nearby) >= f.min_value - 1e-9


@pytest.mark.parametrize("name", function_names())
def test_minima_and_start_lie_in_the_domain(name):
    f = get_function(name)
    low, high = np.array(f.domain).T
    for point in list(f.minima) + [np.atleast_1d(f.start)]:
        assert np.all(low <= np.asarray(point)) and np.all(np.asarray(point) <= high)
    assert len(f.domain) == max(f.dim, 1)
    assert _value(f, np.asarray(f.start)) > f.min_value + 1e-3  # the start is not already optimal


@pytest.mark.parametrize("name", ["rosenbrock", "rastrigin", "ackley", "quadratic"])
def test_n_dimensional_functions_take_a_dimension(name):
    f = get_function(name, dim=5)
    assert f.dim == 5 and len(f.start) == 5 and len(f.domain) == 5
    assert _value(f, np.asarray(f.minima[0])) == pytest.approx(0.0, abs=1e-12)
    x = _random_points(f, 1, seed=4)[0]
    np.testing.assert_allclose(_tape_gradient(f, x), _finite_differences(f, x), rtol=1e-5, atol=1e-4)


def test_quadratic_condition_number_is_100():
    f = get_function("quadratic", dim=4)
    hessian = np.stack([_tape_gradient(f, e) for e in np.eye(4)])
    eig = np.linalg.eigvalsh(hessian)
    assert eig.max() / eig.min() == pytest.approx(100.0)


def test_ackley_gradient_is_finite_at_its_minimum():
    f = get_function("ackley")
    assert np.all(_tape_gradient(f, [0.0, 0.0]) == 0.0)


def test_noisy_quadratic_gradient_is_x_plus_standard_gaussian_noise():
    f = get_function("noisy_quadratic", dim=2)
    rng = np.random.default_rng(5)
    points = rng.uniform(-2, 2, size=(2000, 2))

    @tf.function
    def gradients(batch):
        def one(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = f.fn(x)
            return tape.gradient(loss, x)

        return tf.map_fn(one, batch)

    noise = (np.asarray(gradients(tf.constant(points))) - points) / 0.1
    assert np.all(np.abs(noise.mean(axis=0)) < 0.1)
    assert np.all(np.abs(noise.std(axis=0) - 1.0) < 0.1)
    # the same point always sees the same noise (eager and compiled runs agree)
    np.testing.assert_array_equal(_tape_gradient(f, points[0]), _tape_gradient(f, points[0]))


def test_unknown_names_and_bad_dims_are_rejected_with_the_valid_choices():
    with pytest.raises(ValueError, match="unknown function 'nope'; valid names: quartic, rosenbrock"):
        get_function("nope")
    with pytest.raises(ValueError, match="dim can only be set for .*got dim=3 for 'beale'"):
        get_function("beale", dim=3)
    with pytest.raises(ValueError, match="dim must be an integer >= 2; got 1"):
        get_function("rastrigin", dim=1)
    with pytest.raises(TypeError, match="function must be a registered name"):
        as_function(3.0)


def test_as_function_wraps_callables_and_describe_lists_every_function():
    f = as_function(lambda x: (x - 1.0) ** 2)
    assert isinstance(f, TestFunction) and f.minima == () and f.distance_to_minimum(0.0) == np.inf
    assert get_function("himmelblau").distance_to_minimum([3.0, 2.5]) == pytest.approx(0.5)
    assert [row["name"] for row in describe_functions()] == function_names()
