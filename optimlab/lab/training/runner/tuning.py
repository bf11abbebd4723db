"""Hyperparameter tuning with Optuna: the same budget for every optimizer.

Each optimizer gets its own study of ``trials`` trials over the learning rate
(log scale), with the grid, random or TPE sampler. A trial is a run of the
:class:`~optimlab.lab.training.runner.experiments.Runner` with the tuning seed, so its record
lands under the output folder like any other run, and its objective is the
final validation loss; a diverged run is stored as a failed trial, so
samplers steer away from it.

Studies live in SQLite at ``OUT/tuning.db`` by default: an interrupted study
resumes with the trials it still lacks. ``storage`` takes any Optuna URL
(e.g. ``postgresql://...``) so that several processes or machines share one
study.
"""

import math
from pathlib import Path

import numpy as np
import optuna

from optimlab.lab.training.runner.experiments import TUNING_SEED, check_optimizers, selection_loss

SAMPLERS = ("grid", "random", "tpe")


def _sampler(kind, low, high, trials, seed):
    if kind == "grid":
        grid = [float(v) for v in np.geomspace(low, high, trials)]
        return optuna.samplers.GridSampler({"learning_rate": grid}, seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    raise ValueError(f"sampler must be one of {list(SAMPLERS)}; got {kind!r}")


def counted(trial):
    """A trial that counts toward ``trials``: complete, or failed because its run diverged.

    A trial stopped by Ctrl-C (or a crash) fails without the ``diverged`` mark and
    does not count, so a resumed study runs it again.
    """
    return trial.state == optuna.trial.TrialState.COMPLETE or (
        trial.state == optuna.trial.TrialState.FAIL and trial.user_attrs.get("diverged", False))


def study_name(problem, optimizer, sampler):
    return f"{problem}-{optimizer}-{sampler}"


def finished_trials(name, storage):
    """How many trials of study ``name`` count toward the budget (0 if there is no such study)."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:  # no such study yet
        return 0
    return sum(counted(t) for t in study.trials)


def default_storage(out):
    return f"sqlite:///{(Path(out) / 'tuning.db').resolve()}"


def tune(runner, optimizer_names, trials=10, sampler="tpe", lr_range=(1e-5, 1.0), storage=None, seed=0,
         extra=None):
    """Tune the learning rate of each optimizer with ``trials`` runs; return a summary per optimizer.

    Args:
        runner: an :class:`~optimlab.lab.training.runner.experiments.Runner` (problem, budget, folder).
        optimizer_names: registered names.
        trials: trials per optimizer (the same budget for all).
        sampler: ``grid`` (``trials`` log-spaced rates), ``random`` or ``tpe``.
        lr_range: ``(low, high)`` of the learning rate, searched on a log scale.
        storage: Optuna storage URL (default: SQLite ``OUT/tuning.db``).
        seed: the sampler's seed.
        extra: hyperparameters fixed for every trial (e.g. ``{"clipnorm": 2}``).

    Returns ``{optimizer: {"best_learning_rate", "best_value", "trials", "complete", "diverged",
    "study"}}`` (``trials`` counts complete and diverged trials).
    """
    names = check_optimizers(optimizer_names)
    if not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer; got {trials!r}")
    low, high = (float(v) for v in lr_range)
    if not 0 < low < high:
        raise ValueError(f"lr_range must satisfy 0 < low < high; got {lr_range!r}")
    _sampler(sampler, low, high, trials, seed)  # validates the name before any work
    runner.data_split()
    runner.out.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(runner.out)
    optuna.logging.set_verbosity(max(optuna.logging.get_verbosity(), optuna.logging.WARNING))  # never louder
    results = {}
    for name in names:
        name_of_study = study_name(runner.problem, name, sampler)
        done = finished_trials(name_of_study, storage)
        # A resumed study gets a sampler seeded past the trials it has, so it does not replay them.
        study = optuna.create_study(study_name=name_of_study, storage=storage,
                                    sampler=_sampler(sampler, low, high, trials, seed + done),
                                    direction="minimize", load_if_exists=True)

        def objective(trial, name=name):
            lr = trial.suggest_float("learning_rate", low, high, log=True)
            value = selection_loss(runner.run(name, {**(extra or {}), "learning_rate": lr}, TUNING_SEED))
            if not math.isfinite(value):
                trial.set_user_attr("diverged", True)
                return float("nan")  # nan: a failed trial, which counts toward the budget
            return value

        remaining = trials - done
        if remaining > 0:
            study.optimize(objective, n_trials=remaining, catch=())
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        best = min(complete, key=lambda t: t.value) if complete else None
        results[name] = {"best_learning_rate": best.params["learning_rate"] if best else None,
                         "best_value": best.value if best else math.inf,
                         "trials": sum(counted(t) for t in study.trials), "complete": len(complete),
                         "diverged": sum(counted(t) for t in study.trials) - len(complete),
                         "study": study.study_name}
    return results
