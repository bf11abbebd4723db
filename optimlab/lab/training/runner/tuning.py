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
their grid point and learning rate, so a resumed grid tries exactly the grid,
whatever moment the process died at: every trial names its worker from its
first RUNNING moment (:func:`_start_trial`) and every step of a resume is one
write that a later resume completes. ``storage`` takes any Optuna URL
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


def study_name(runner, optimizer, sampler, storage):
    """The name of the study of ``optimizer`` on ``runner``'s problem in ``storage``.

    ``<problem>-<optimizer>-<sampler>`` is the study of the first definition of
    the problem tuned there (the study holds its fingerprint, see
    :func:`~optimlab.lab.training.problems.fingerprint`); any other definition
    (changed data, model, loss, ...; or a study from before fingerprints) gets
    ``<problem>-<optimizer>-<sampler>-<fingerprint[:8]>``, the prefix of its
    records' names, so a changed problem never resumes an old study. (A study
    with no fingerprint and no trial was created by a process killed before it
    wrote the fingerprint: it is taken.)
    """
    plain, fingerprint = f"{runner.problem}-{optimizer}-{sampler}", runner.fingerprint()
    study = _load_study(plain, storage)
    if study is None:
        return plain
    owner = study.user_attrs.get("fingerprint")
    if owner == fingerprint or (owner is None and not study.get_trials(deepcopy=False)):
        return plain
    return f"{plain}-{fingerprint[:8]}"


def _load_study(name, storage):
    """Study ``name`` in ``storage``, or None if there is none."""

    def load():
        try:
            return optuna.load_study(study_name=name, storage=storage)
        except KeyError:  # no such study yet
            return None

    return _retry_races(load)


def finished_trials(name, storage):
    """Finished trials of study ``name`` that count toward the budget (0 if there is no such study)."""
    study = _load_study(name, storage)
    if study is None:
        return 0
    return sum(_counted(t) for t in study.get_trials(deepcopy=False) if t.state.is_finished())


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


_CLAIM = "claim "  # user attribute ``claim host:pid``: that worker tried to take this queued trial


def _owners(trial):
    """The workers that may be running ``trial``: its ``worker``, or until it has one, each that claimed it."""
    attrs = trial.user_attrs
    if "worker" in attrs:
        return [attrs["worker"]]
    return [key[len(_CLAIM):] for key in attrs if key.startswith(_CLAIM)]


def _abandoned(trial):
    """A RUNNING trial none of whose possible workers is alive on this machine.

    A RUNNING trial that names no worker at all was left by an optimlab from
    before :func:`_start_trial`, killed inside Optuna's ``ask``: abandoned too.
    """
    return trial.state == TrialState.RUNNING and not any(_alive_here(w) for w in _owners(trial))


def _unmeasured(trial):
    """A failed trial whose learning rate was not measured: interrupted or raised, not diverged or surplus."""
    attrs = trial.user_attrs
    return trial.state == TrialState.FAIL and attrs.get("outcome") != "diverged" and not attrs.get("surplus")


def _retry_interrupted(study):
    """Fail trials abandoned by dead processes and queue every interrupted trial again, once.

    A trial killed with ``kill -9`` stays RUNNING in the storage; one whose
    process raised (Ctrl-C, an error) ends FAIL without an outcome. Either
    way its learning rate was not measured: the trial is failed (and no
    longer counted) and a copy is queued (its grid point and whatever it had
    drawn, see :func:`_retry`), so a resumed grid covers the whole grid. Each
    step is one write, and a kill between two steps leaves a state this
    function completes: an interrupted trial without a queued copy gets one
    whether it is still RUNNING or already failed. Trials of other machines are
    left alone (their processes cannot be checked from here).
    """
    storage = study._storage
    trials = storage.get_all_trials(study._study_id, deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        abandoned, surplus = _abandoned(t), "surplus" in t.user_attrs
        try:
            if abandoned and not surplus:
                storage.set_trial_user_attr(t._trial_id, "outcome", "interrupted")
            if (abandoned or _unmeasured(t)) and not surplus and t.number not in retried:
                storage.create_new_trial(study._study_id, template_trial=_retry(t))
            if abandoned:
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another process resuming this study failed it first


def _retry(trial):
    """A queued copy of an interrupted ``trial``: its grid point, the parameters it had drawn, ``retry_of``.

    Written with the trial in one insert, so the copy never exists without its
    grid point (Optuna's grid sampler counts the interrupted trial's point as
    visited: only the copy covers it) or its parameters.
    """
    grid = {k: trial.system_attrs[k] for k in ("search_space", "grid_id") if k in trial.system_attrs}
    return optuna.trial.create_trial(state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
                                     system_attrs=grid, user_attrs={"retry_of": trial.number})


def _start_trial(study):
    """The id of a RUNNING trial for this worker that names its worker from its first RUNNING moment.

    The first queued trial this worker wins, else a new one. A queued trial is
    claimed (``claim host:pid``) before it turns RUNNING and gets its ``worker``
    right after, so a process killed in between leaves a trial whose every
    claimant is dead (:func:`_abandoned`); a new trial is written with its
    ``worker`` in one insert. (Optuna's own ``ask`` turns a trial RUNNING before
    anyone can say whose it is: a process killed there left it RUNNING, and
    counted, forever.)
    """
    storage = study._storage
    for t in storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            storage.set_trial_user_attr(t._trial_id, _CLAIM + _WORKER, True)
            if not storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                continue  # another worker took it
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker took it and finished it
        storage.set_trial_user_attr(t._trial_id, "worker", _WORKER)
        return t._trial_id
    template = optuna.trial.create_trial(state=TrialState.RUNNING, user_attrs={"worker": _WORKER})
    return storage.create_new_trial(study._study_id, template_trial=template)


class _Study(optuna.Study):
    """An Optuna study whose ``ask`` takes its trial from :func:`_start_trial`."""

    def __init__(self, *args, **kwargs):
        if not callable(getattr(optuna.Study, "_pop_waiting_trial_id", None)):  # never a silent fallback
            raise RuntimeError(f"optimlab's tune needs Optuna's Study._pop_waiting_trial_id, which Optuna "
                               f"{optuna.__version__} lacks: install an Optuna version that has it")
        super().__init__(*args, **kwargs)

    def _pop_waiting_trial_id(self):  # Optuna's ask: a queued trial's id, else None for a new trial
        return _start_trial(self)


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


def _create_study(study_name, storage, sampler, fingerprint):
    """``optuna.create_study`` (or load), safe beside other workers starting at once, as a :class:`_Study`
    that holds the problem's ``fingerprint`` (see :func:`study_name`)."""
    study = _retry_races(lambda: optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                                     load_if_exists=True, sampler=sampler))
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
    return _Study(study_name=study.study_name, storage=study._storage, sampler=sampler)


def _optimize(study, objective, trials):
    """Run trials until the study holds ``trials`` counted ones, safely beside other workers.

    A trial starts only if fewer than ``trials`` counted trials come before it
    (Optuna numbers trials in storage order), so concurrent workers on one
    storage complete exactly ``trials``; a surplus trial is pruned at once,
    marked, and never counted.
    """
    surplus = []

    def guarded(trial):
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

    def started():  # queued trials (retries) are not: counting them ended a resumed study before its retries ran
        return sum(_counted(t) and t.state != TrialState.WAITING for t in study.get_trials(deepcopy=False))

    while not surplus and started() < trials:
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
        study = _create_study(study_name(runner, name, sampler, storage), storage,
                              _sampler(sampler, low, high, trials, seed), runner.fingerprint())
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
