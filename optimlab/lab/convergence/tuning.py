"""Learning-rate tuning per optimizer and test function, for fair comparisons.

Each optimizer gets the learning rate that works best for it on the function
before the trajectories are compared, as the torch optimizer galleries do: a
log grid by default (deterministic, one compiled run per point), or an Optuna
TPE search. A run is scored by its final loss (or its distance to the nearest
minimum); exploded runs score infinity; ties go to the run that stopped first.

Example:
    >>> from optimlab.lab.convergence.tuning import tune_learning_rates
    >>> best = tune_learning_rates("gd,adam", "booth", grid=[1e-3, 1e-2, 1e-1], max_iters=200)
    >>> sorted(best)
    ['adam', 'gd']
"""

import dataclasses
import math

import numpy as np
import pandas as pd

from optimlab._checks import check_choice, check_positive
from optimlab.lab.convergence.functions import as_function
from optimlab.lab.convergence.runner import convergence_test
from optimlab.lab.factory import factories

DEFAULT_GRID = tuple(float(v) for v in np.logspace(-4, 0, 9))
OBJECTIVES = ("final_loss", "distance")
METHODS = ("grid", "optuna")


@dataclasses.dataclass
class Tuning:
    """The tuned learning rate of one optimizer on one function.

    Attributes:
        learning_rate: the best learning rate found.
        result: the ConvergenceResult of the best run.
        trials: a DataFrame of every tried learning rate with its score.
    """

    learning_rate: float
    result: object
    trials: pd.DataFrame


def score(result, objective="final_loss"):
    """``(value, iterations)``, lower is better; exploded or non-finite runs score infinity."""
    value = result.final_loss if objective == "final_loss" else result.distance
    if result.status == "exploded" or not math.isfinite(value):
        return (math.inf, result.iterations)
    return (value, result.iterations)


def tune_learning_rate(
    factory, function, *, method="grid", grid=DEFAULT_GRID, n_trials=12, low=1e-4, high=1.0,
    objective="final_loss", seed=0, **test_kwargs,
):
    """Find the best learning rate of one optimizer on ``function``.

    Args:
        factory: a callable ``factory(learning_rate)`` returning a new optimizer,
            or a registered optimizer name.
        function: a registered function name, TestFunction or callable.
        method: ``"grid"`` (default) tries every rate of ``grid``; ``"optuna"``
            runs ``n_trials`` TPE trials on a log scale in ``[low, high]``.
        grid: learning rates for the grid (default ``1e-4 ... 1``, 9 points).
        n_trials, low, high, seed: the Optuna search (defaults 12, 1e-4, 1.0, 0).
        objective: ``"final_loss"`` (default) or ``"distance"`` to the nearest minimum.
        **test_kwargs: passed to ``convergence_test`` (``init``, ``max_iters``, ...).

    Returns:
        A ``Tuning``.
    """
    check_choice("method", method, METHODS)
    check_choice("objective", objective, OBJECTIVES)
    if isinstance(factory, str):
        factory = factories([factory])[factory.strip()]
    if objective == "distance" and not as_function(function).minima:
        raise ValueError(f"objective 'distance' needs a function with known minima; got {function!r}")
    runs = {}

    def run(lr):
        runs[lr] = convergence_test(factory(lr), function, **test_kwargs)
        return runs[lr]

    if method == "grid":
        rates = [float(v) for v in grid]
        if not rates:
            raise ValueError(f"grid must hold at least one learning rate; got {grid!r}")
        for lr in rates:
            check_positive("grid", lr)
            run(lr)
    else:
        _optuna_search(run, n_trials, low, high, objective, seed)
    best = min(runs, key=lambda lr: score(runs[lr], objective))
    trials = pd.DataFrame(
        [{"learning_rate": lr, "status": r.status, "iterations": r.iterations, "score": score(r, objective)[0]}
         for lr, r in runs.items()]
    )
    return Tuning(best, runs[best], trials)


def _optuna_search(run, n_trials, low, high, objective, seed):
    import optuna  # only for method="optuna": the converge command's grid stays off its second of import

    check_positive("low", low)
    check_positive("high", high)
    if not low < high:
        raise ValueError(f"low must be below high; got low={low}, high={high}")
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise ValueError(f"n_trials must be an integer >= 1; got {n_trials!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(
        lambda trial: score(run(trial.suggest_float("learning_rate", low, high, log=True)), objective)[0],
        n_trials=n_trials,
    )


def tune_learning_rates(optimizers, function, on_result=None, **kwargs):
    """``{label: best learning rate}`` for several optimizers (names or ``{label: factory}``).

    ``on_result(label, tuning)`` is called after each optimizer; other keyword
    arguments go to ``tune_learning_rate``.
    """
    best = {}
    for label, factory in factories(optimizers).items():
        tuning = tune_learning_rate(factory, function, **kwargs)
        best[label] = tuning.learning_rate
        if on_result is not None:
            on_result(label, tuning)
    return best
