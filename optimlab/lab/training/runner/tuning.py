"""Hyperparameter tuning with Optuna: the same budget for every optimizer.

Each optimizer gets its own study of ``trials`` trials over the learning rate
(log scale), with the grid, random or TPE sampler. A trial is a run of the
:class:`~optimlab.lab.training.runner.experiments.Runner` with the tuning seed, so its record
lands under the output folder like any other run, and its objective is the
final validation loss; a diverged run is stored as a failed trial, so
samplers steer away from it.

Studies live in SQLite at ``OUT/tuning.db`` by default: an interrupted study
resumes with the trials it still lacks. Trials interrupted by Ctrl-C or left
RUNNING by a killed process are failed, never counted, and queued again with
their learning rate, so a resumed grid tries exactly the grid. ``storage`` takes any Optuna URL
(e.g. ``postgresql://...``) so that several processes or machines share one
study.
"""

import math
import os
import random
import socket
import time
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from optimlab.lab import factory
from optimlab.lab.training.analysis.tables import selection_loss
from optimlab.lab.training.runner.experiments import TUNING_SEED

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


def study_name(problem, optimizer, sampler):
    return f"{problem}-{optimizer}-{sampler}"


def finished_trials(name, storage):
    """Finished trials of study ``name`` that count toward the budget (0 if there is no such study)."""

    def count():
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # no such study yet
            return 0
        return sum(_counted(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished())

    return _retry_races(count)


def default_storage(out):
    return f"sqlite:///{(Path(out) / 'tuning.db').resolve()}"


_WORKER = f"{socket.gethostname()}:{os.getpid()}"


def _alive_here(worker):
    """False when ``worker`` (``host:pid``) is a process of this machine that no longer exists."""
    host, _, pid = str(worker).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _counted(trial):
    """A trial that counts towards the budget: complete, diverged, or running or queued for it."""
    attrs = trial.user_attrs
    if trial.state == TrialState.COMPLETE or attrs.get("outcome") == "diverged":
        return True
    return trial.state in (TrialState.RUNNING, TrialState.WAITING) and not attrs.get("surplus")


def _retry_interrupted(study):
    """Fail trials left RUNNING by dead processes and queue every interrupted trial again, once.

    A trial killed with ``kill -9`` stays RUNNING in the storage; one whose
    process raised (Ctrl-C, an error) ends FAIL without an outcome. Either
    way its learning rate was not measured: the trial is failed (and no
    longer counted) and its parameters are queued, so a resumed grid covers
    the whole grid. Trials of other machines are left to Optuna's heartbeat.
    """
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.RUNNING and not _alive_here(t.user_attrs.get("worker")):
            study._storage.set_trial_user_attr(t._trial_id, "outcome", "interrupted")
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        elif not (t.state == TrialState.FAIL and "outcome" not in t.user_attrs and "surplus" not in t.user_attrs):
            continue
        if t.number not in retried and t.params:
            study.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)


def _give_grid_point(study, trial):
    """A queued retry of a grid trial takes over the grid point of the trial it repeats.

    Optuna's grid sampler reads the grid point of every finished trial, and a
    queued trial has none (a KeyError after it, once one grid point is left).
    """
    retry_of = trial.user_attrs.get("retry_of")
    if retry_of is None or not isinstance(study.sampler, optuna.samplers.GridSampler):
        return
    storage = study._storage
    if "grid_id" in storage.get_trial_system_attrs(trial._trial_id):
        return
    original = storage.get_trial_system_attrs(study.get_trials(deepcopy=False)[retry_of]._trial_id)
    for key in ("search_space", "grid_id"):
        if key in original:
            storage.set_trial_system_attr(trial._trial_id, key, original[key])


def _retry_races(call, attempts=6):
    """``call()``, retried a few times when it loses a race on a shared database.

    Workers started together on an empty database race to create Optuna's
    tables (opening the storage does that) and the study; the losers get an
    integrity or programming error, and a moment later find both in place.
    """
    import sqlalchemy.exc

    races = (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError, optuna.exceptions.DuplicatedStudyError)
    for attempt in range(attempts):
        try:
            return call()
        except races:
            if attempt == attempts - 1:
                raise
            time.sleep(0.1 + random.random() * 0.4 * (attempt + 1))


def _create_study(study_name, storage, sampler):
    """``optuna.create_study`` (or load), safe beside other workers starting at once."""
    return _retry_races(lambda: optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                                    load_if_exists=True, sampler=sampler))


def _optimize(study, objective, trials):
    """Run trials until the study holds ``trials`` counted ones, safely beside other workers.

    A trial starts only if fewer than ``trials`` counted trials come before it
    (Optuna numbers trials in storage order), so concurrent workers on one
    storage complete exactly ``trials``; a surplus trial is pruned at once,
    marked, and never counted.
    """
    surplus = []

    def guarded(trial):
        trial.set_user_attr("worker", _WORKER)
        _give_grid_point(study, trial)
        before = sum(_counted(t) for t in study.get_trials(deepcopy=False) if t.number < trial.number)
        if before >= trials:
            trial.set_user_attr("surplus", True)
            surplus.append(trial.number)
            raise optuna.TrialPruned()
        value = objective(trial)
        if not math.isfinite(value):
            trial.set_user_attr("outcome", "diverged")
            return math.nan  # a failed trial: samplers steer away from it
        return value

    while not surplus and sum(_counted(t) for t in study.get_trials(deepcopy=False)) < trials:
        study.optimize(guarded, n_trials=1, catch=())


def tune(runner, optimizer_names, trials=10, sampler="tpe", lr_range=(1e-5, 1.0), storage=None, seed=0,
         extra=None):
    """Tune the learning rate of each optimizer with ``trials`` runs; return a summary per optimizer.

    Args:
        runner: an :class:`~optimlab.lab.training.runner.experiments.Runner` (problem, budget, folder).
        optimizer_names: registered names.
        trials: trials per optimizer (the same budget for all).
        sampler: ``grid`` (``trials`` log-spaced rates), ``random`` or ``tpe``.
        lr_range: ``(low, high)`` of the learning rate, searched on a log scale.
        storage: Optuna storage URL (default: SQLite ``OUT/tuning.db``); several
            processes or machines given the same URL (e.g. ``postgresql://...``)
            share each study and together run exactly ``trials`` trials.
        seed: the sampler's seed.
        extra: hyperparameters fixed for every trial (e.g. ``{"clipnorm": 2}``).

    Returns ``{optimizer: {"best_learning_rate", "best_value", "trials", "study"}}``;
    ``trials`` counts complete and diverged trials (not interrupted or surplus ones).
    """
    names = factory.check_names(optimizer_names)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
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
        study = _create_study(study_name(runner.problem, name, sampler), storage, _sampler(sampler, low, high, trials, seed))
        _retry_interrupted(study)
        if sampler != "grid":
            # A resumed random or TPE study gets a sampler seeded past every trial it holds (interrupted
            # ones included: their draws were made too), so it does not replay earlier draws; the grid
            # sampler keeps its seed and picks the grid points not yet tried.
            study.sampler = _sampler(sampler, low, high, trials, seed + len(study.get_trials(deepcopy=False)))

        def objective(trial, name=name):
            lr = trial.suggest_float("learning_rate", low, high, log=True)
            return selection_loss(runner.run(name, {**(extra or {}), "learning_rate": lr}, TUNING_SEED))

        _optimize(study, objective, trials)
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and _counted(t)]
        complete = [t for t in finished if t.state == TrialState.COMPLETE]
        best = min(complete, key=lambda t: t.value) if complete else None
        results[name] = {"best_learning_rate": best.params["learning_rate"] if best else None,
                         "best_value": best.value if best else math.inf,
                         "trials": len(finished), "complete": len(complete),
                         "diverged": len(finished) - len(complete), "study": study.study_name}
    return results
