"""Learning-rate tuning per function: the grid picks the analytically best rate; Optuna stays in range."""

import dataclasses
import math

import pytest

import optimlab
from optimlab.lab.convergence.runner import convergence_test
from optimlab.lab.convergence.tuning import score, tune_learning_rate, tune_learning_rates


def test_grid_picks_the_fastest_stable_rate_for_gradient_descent_on_booth():
    # Booth's Hessian has eigenvalues 2 and 18: GD diverges for lr > 2/18, and among
    # the stable rates the largest contracts fastest (factor max|1 - lr * h|).
    tuning = tune_learning_rate("gd", "booth", grid=[1e-3, 1e-2, 0.05, 0.2], init=None, max_iters=200)
    assert tuning.learning_rate == 0.05
    trials = tuning.trials.set_index("learning_rate")
    assert trials.loc[0.2, "status"] == "exploded" and math.isinf(trials.loc[0.2, "score"])
    assert list(trials.score.loc[[1e-3, 1e-2, 0.05]]) == sorted(trials.score.loc[[1e-3, 1e-2, 0.05]], reverse=True)


def test_ties_go_to_the_run_that_stopped_first():
    run = convergence_test(optimlab.GradientDescent(0.05), "booth", init=None, max_iters=50)
    early = dataclasses.replace(run, final_loss=0.0, iterations=10)
    late = dataclasses.replace(run, final_loss=0.0, iterations=40)
    exploded = dataclasses.replace(run, status="exploded", final_loss=0.0, iterations=3)
    assert score(early) < score(late) < score(exploded)
    assert score(late, "distance")[0] == run.distance


def test_optuna_search_stays_in_range():
    pytest.importorskip("optuna")
    tuning = tune_learning_rate("adam", "booth", method="optuna", n_trials=4, low=1e-3, high=0.5,
                                init=None, max_iters=50)
    assert len(tuning.trials) == 4
    assert tuning.trials.learning_rate.between(1e-3, 0.5).all()
    assert tuning.learning_rate in set(tuning.trials.learning_rate)


def test_tune_several_optimizers_and_errors():
    best = tune_learning_rates("gd,momentum", "booth", grid=[1e-2, 0.05], init=None, max_iters=100)
    assert set(best) == {"gd", "momentum"} and set(best.values()) <= {1e-2, 0.05}
    with pytest.raises(ValueError, match="method must be one of"):
        tune_learning_rate("gd", "booth", method="bayes")
    with pytest.raises(ValueError, match="grid must be a finite number in"):
        tune_learning_rate("gd", "booth", grid=[0.0])
    with pytest.raises(ValueError, match="objective 'distance' needs a function with known minima"):
        tune_learning_rate("gd", lambda x: x**2, objective="distance", init=1.0)
