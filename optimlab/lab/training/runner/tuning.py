"""Hyperparameter tuning with Optuna: every optimizer searched over its space at the same budget.

Each optimizer gets its own study over a search space of
:mod:`optimlab.spaces` (the learning rate alone by default, the registry's
whole space with ``space="full"``, or the names given) with the grid, random,
TPE (multivariate) or CMA-ES sampler. A trial is a run of the
:class:`~optimlab.lab.training.runner.experiments.Runner` with the tuning
seed, so its record lands under the output folder like any other run, and its
objective is the final validation loss; a diverged run is stored as a failed
trial, so samplers steer away from it.

The budget is counted in epochs, the same for every optimizer: ``trials``
whole runs. With a pruner (``median``, ``halving``, ``hyperband``) each
evaluation of a run is reported to its trial and a bad trial is stopped at the
next chunk boundary; it is stored PRUNED, costs the epochs it ran, and the
epochs it saved pay for further trials (a grid keeps its points: a pruned grid
saves its epochs). A pruned run is partial: it is never written as the record
of its configuration. After tuning, :func:`rerun` trains each optimizer's best
configuration on more seeds (tune on one seed, rerun the winner on many: the
protocol of DeepOBS and Schmidt et al. 2021), and :func:`write_summary` keeps
the trials of every study in ``OUT/tuning.json`` for the report's budget curves.

Studies live in SQLite at ``OUT/tuning.db`` by default: an interrupted study
resumes with the trials it still lacks. Trials interrupted by Ctrl-C or left
RUNNING by a killed process are failed, never counted, and queued again with
their grid point and parameters, so a resumed grid tries exactly the grid,
whatever moment the process died at: every trial names its worker from its
first RUNNING moment (:func:`_start_trial`) and every step of a resume is one
write that a later resume completes. ``storage`` takes any Optuna URL
(e.g. ``postgresql://...``) so that several processes or machines share one
study.
"""

import json
import math
import os
import random
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState

from optimlab import spaces
from optimlab.lab import factory
from optimlab.lab.training.analysis import budget
from optimlab.lab.training.analysis.tables import selection_loss
from optimlab.lab.training.runner.experiments import TUNING_SEED

SAMPLERS = ("grid", "random", "tpe", "cmaes")
PRUNERS = ("none", "median", "halving", "hyperband")
LEARNING_RATE_SOURCE = "the learning-rate range given to tune (lr_range, --lr-low/--lr-high)"
# The schedule as a dimension (``--space learning_rate,schedule``): each choice starts or peaks at the trial's rate.
SCHEDULES = ("constant", "cosine", "warmup_cosine")
SCHEDULE = spaces.Dimension("schedule", None, None, "choice", "constant",
                            "optimlab's tuner: a constant rate, cosine decay to 0 over the run, or a linear warm-up "
                            "over the first 5% of the steps then cosine decay to 0", choices=SCHEDULES)
WARMUP = 0.05  # warm_cosine's share of the run's steps spent warming up


def schedule_of(choice, steps):
    """The run's schedule ``(name, {args})`` (None: constant) for a schedule ``choice`` of a run of ``steps`` steps."""
    if choice == "constant":
        return None
    if choice == "cosine":
        return "CosineDecay", {"decay_steps": max(1, steps)}
    if choice == "warmup_cosine":
        warmup = max(1, round(WARMUP * steps))
        return "WarmupDecay", {"warmup_steps": warmup, "decay_steps": max(1, steps - warmup)}
    raise ValueError(f"schedule must be one of {list(SCHEDULES)}; got {choice!r}")


def _steps(runner, name):
    """Optimizer steps of one whole run of ``runner``: epochs x minibatches per epoch (one per epoch full-batch)."""
    spec = runner.spec(name, {}, TUNING_SEED)
    rows = len(runner.data_split().x_train)
    return spec["epochs"] * (1 if spec["batch_size"] is None else rows // spec["batch_size"])


def run_config(runner, name, config):
    """``config`` as a run takes it: a schedule choice (see :data:`SCHEDULE`) becomes the run's own schedule."""
    if "schedule" not in config:
        return config
    return {**config, "schedule": schedule_of(config["schedule"], _steps(runner, name))}


def search_space(name, space="learning_rate", lr_range=(1e-5, 1.0)):
    """``{name: Dimension}`` of optimizer ``name`` to tune: ``space`` is ``"learning_rate"``, ``"full"`` or a list.

    The learning rate, where the space holds it, spans ``lr_range`` (log scale).
    """
    low, high = (float(v) for v in lr_range)
    rate = spaces.Dimension("learning_rate", low, high, "log", factory.default_learning_rate(name),
                            LEARNING_RATE_SOURCE)
    names = None if space == "full" else [space] if isinstance(space, str) else list(space)
    own = None if names is None else [n for n in names if n != "schedule"]
    owner = factory.optimizer_class(name) if ":" in name else name
    found = spaces.space(owner, own, overrides={"learning_rate": rate} if own is None or "learning_rate" in own
                         else None) if own != [] else {}
    if names is not None and "schedule" in names:
        found = {n: SCHEDULE if n == "schedule" else found[n] for n in names}
    if not found:
        raise ValueError(f"space: {name} has no hyperparameter to tune")
    return found


def _grid(dimensions, trials):
    """Optuna's grid of ``dimensions`` with at most about ``trials`` points (every choice; numbers shared out)."""
    numeric = [d for d in dimensions.values() if d.scale != "choice"]
    choices = math.prod(len(d.choices) for d in dimensions.values() if d.scale == "choice")
    per = max(1, trials // choices)
    k = max(1, int(per ** (1 / len(numeric)) + 1e-9)) if numeric else 1
    if len(numeric) == 1:
        k = per
    grid = {}
    for d in dimensions.values():
        values = d.grid(k)
        grid[d.optuna_name] = [1 - v for v in values] if d.scale == "log1m" else values
    return grid


def _sampler(kind, dimensions, trials, seed):
    if kind == "grid":
        return optuna.samplers.GridSampler(_grid(dimensions, trials), seed=seed)
    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if kind == "tpe":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(seed=seed, multivariate=True)
    if kind == "cmaes":
        try:
            import cmaes  # noqa: F401 - Optuna's CMA-ES sampler needs it
        except ImportError:
            raise ValueError("sampler cmaes needs the cmaes package: pip install 'optimlab[tuning]' "
                             "(or cmaes)") from None
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    raise ValueError(f"sampler must be one of {list(SAMPLERS)}; got {kind!r}")


def _pruner(kind, epochs):
    """Optuna's pruner ``kind`` for runs of ``epochs`` epochs (the step of a report is the epochs done)."""
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if kind == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, epochs // 27), reduction_factor=3)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, epochs // 27), max_resource=epochs,
                                              reduction_factor=3)
    raise ValueError(f"pruner must be one of {list(PRUNERS)}; got {kind!r}")


def space_label(space):
    """``learning_rate``, ``full`` or ``beta_1,epsilon,...``: how a summary names a space."""
    return space if isinstance(space, str) else ",".join(space)


def study_name(runner, optimizer, sampler, storage, space="learning_rate", pruner="none"):
    """The name of the study of ``optimizer`` on ``runner``'s problem in ``storage``.

    ``<problem>-<optimizer>-<sampler>`` (followed by ``-space=<names>`` for a
    space other than the learning rate and ``-pruner=<kind>`` with a pruner:
    such studies never resume one another) is the study of the first definition of
    the problem tuned there (the study holds its fingerprint, see
    :func:`~optimlab.lab.training.problems.fingerprint`); any other definition
    (changed data, model, loss, ...; or a study from before fingerprints) gets
    ``<problem>-<optimizer>-<sampler>-<fingerprint[:8]>``, the prefix of its
    records' names, so a changed problem never resumes an old study. (A study
    with no fingerprint and no trial was created by a process killed before it
    wrote the fingerprint: it is taken.)
    """
    plain, fingerprint = f"{runner.problem}-{optimizer}-{sampler}", runner.fingerprint()
    if space != "learning_rate":
        plain += f"-space={space_label(space)}"
    if pruner != "none":
        plain += f"-pruner={pruner}"
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
    """A trial that counts towards the budget: complete, diverged, pruned, or running or queued for it."""
    attrs = trial.user_attrs
    if trial.state == TrialState.COMPLETE or attrs.get("outcome") in ("diverged", "pruned"):
        return True
    return trial.state in (TrialState.RUNNING, TrialState.WAITING) and not attrs.get("surplus")


def _cost(trial, epochs):
    """The epochs ``trial`` takes from the budget: those a pruned trial ran, else a whole run's ``epochs``."""
    if trial.user_attrs.get("outcome") == "pruned":
        return int(trial.user_attrs.get("epochs", epochs))
    return epochs


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
    """A failed trial whose configuration was not measured: interrupted or raised, not diverged or surplus.

    (A trial that raised while being pruned, a kill between its last report and its end, is FAIL too.)
    """
    attrs = trial.user_attrs
    return trial.state == TrialState.FAIL and attrs.get("outcome") not in ("diverged", "pruned") \
        and not attrs.get("surplus")


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


def _create_study(study_name, storage, sampler, fingerprint, pruner=None):
    """``optuna.create_study`` (or load), safe beside other workers starting at once, as a :class:`_Study`
    that holds the problem's ``fingerprint`` (see :func:`study_name`)."""
    study = _retry_races(lambda: optuna.create_study(study_name=study_name, storage=storage, direction="minimize",
                                                     load_if_exists=True, sampler=sampler))
    if "fingerprint" not in study.user_attrs:
        study.set_user_attr("fingerprint", fingerprint)
    return _Study(study_name=study.study_name, storage=study._storage, sampler=sampler, pruner=pruner)


def _optimize(study, objective, trials, epochs=1, pruning=False):
    """Run trials until the study's counted trials have spent the budget, safely beside other workers.

    The budget is ``trials`` whole runs of ``epochs`` epochs. A trial starts
    only if a whole run still fits after the trials before it (Optuna numbers
    trials in storage order; a running or queued one reserves a whole run, a
    pruned one costs the epochs it ran), so concurrent workers on one storage
    spend exactly the budget; a surplus trial is pruned at once, marked, and
    never counted. Without ``pruning`` every trial costs a whole run: exactly
    ``trials`` trials (a grid of fewer points ends with its grid).
    """
    surplus, budget = [], trials * epochs

    def cost(t):
        return _cost(t, epochs) if pruning else epochs

    def guarded(trial):
        before = sum(cost(t) for t in study.get_trials(deepcopy=False) if t.number < trial.number and _counted(t))
        if before + epochs > budget:
            trial.set_user_attr("surplus", True)
            surplus.append(trial.number)
            raise optuna.TrialPruned()
        value = objective(trial)
        if not math.isfinite(value):
            trial.set_user_attr("outcome", "diverged")
            return math.nan  # a failed trial: samplers steer away from it
        return value

    def started():  # queued trials (retries) are not: counting them ended a resumed study before its retries ran
        return sum(cost(t) for t in study.get_trials(deepcopy=False) if _counted(t) and t.state != TrialState.WAITING)

    def exhausted():  # a grid that has every point measured (or queued again) ends, whatever budget is left
        if not isinstance(study.sampler, optuna.samplers.GridSampler):
            return False
        trials_ = study.get_trials(deepcopy=False)
        points = {t.system_attrs.get("grid_id") for t in trials_ if _counted(t) and t.state != TrialState.WAITING}
        waiting = any(t.state == TrialState.WAITING for t in trials_)
        return not waiting and len(points - {None}) >= study.sampler._n_min_trials

    while not surplus and started() + epochs <= budget and not exhausted():
        study.optimize(guarded, n_trials=1, catch=())


def search_spaces(names, space, sampler, lr_range, trials):
    """``{optimizer: {name: Dimension}}`` to tune; ValueError before any work on a name a space lacks, or a
    sampler that cannot sample it (CMA-ES without its package)."""
    dimensions = {name: search_space(name, space, lr_range) for name in names}
    for name in names:
        _sampler(sampler, dimensions[name], trials, 0)
    return dimensions


def check_space(space):
    """``"learning_rate"``, ``"full"`` or a tuple of names, from what a caller gave (``"lr"`` is the learning rate)."""
    if space in (None, "lr", "learning_rate"):
        return "learning_rate"
    if space == "full":
        return "full"
    names = [n.strip() for n in space.split(",")] if isinstance(space, str) else list(space)
    names = ["learning_rate" if n == "lr" else n for n in names]
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"space must be 'learning_rate', 'full' or distinct hyperparameter names; got {space!r}")
    return "learning_rate" if names == ["learning_rate"] else tuple(names)


def _full_epochs(runner, name):
    """The epochs of one whole run of ``runner`` (its spec's)."""
    return int(runner.spec(name, {}, TUNING_SEED)["epochs"])


def _reporter(trial):
    """``on_chunk`` for a trial's run: each finite validation loss reported at its epoch; True: prune here."""

    def on_chunk(done, value):
        if not math.isfinite(value):
            return False
        trial.report(value, done)
        return trial.should_prune()

    return on_chunk


def config_of(dimensions, params, extra=None):
    """The hyperparameters of a trial from its Optuna ``params`` (``extra`` fixed ones first)."""
    return {**(extra or {}), **{n: d.from_params(params) for n, d in dimensions.items()}}


def tune(runner, optimizer_names, trials=10, sampler="tpe", lr_range=(1e-5, 1.0), storage=None, seed=0,
         extra=None, space="learning_rate", pruner="none"):
    """Tune each optimizer over its search space at the same budget; return a summary per optimizer.

    Args:
        runner: an :class:`~optimlab.lab.training.runner.experiments.Runner` (problem, budget, folder).
        optimizer_names: registered names.
        trials: the budget per optimizer, in whole runs (``trials`` x the runner's epochs).
        sampler: ``grid`` (about ``trials`` points: every choice, the numeric dimensions
            evenly on their scales), ``random``, ``tpe`` (multivariate) or ``cmaes``.
        lr_range: ``(low, high)`` of the learning rate, searched on a log scale.
        storage: Optuna storage URL (default: SQLite ``OUT/tuning.db``); several
            processes or machines given the same URL (e.g. ``postgresql://...``)
            share each study and together spend exactly the budget.
        seed: the sampler's seed.
        extra: hyperparameters fixed for every trial (e.g. ``{"clipnorm": 2}``).
        space: ``"learning_rate"``, ``"full"`` (the optimizer's whole space,
            :func:`optimlab.spaces.space`) or a list of its names; ``"schedule"`` among them
            makes the schedule a dimension (:data:`SCHEDULE`: constant, cosine, warm-up then cosine),
            each trial's run following its choice (its record's ``schedule``).
        pruner: ``none``, ``median``, ``halving`` or ``hyperband``: stop bad trials at a chunk
            boundary (runs in this process only: ``jobs=1``, no Ray).

    Returns ``{optimizer: {"best", "best_learning_rate", "best_value", "trials", "complete", "diverged",
    "pruned", "epochs", "budget", "saved", "study"}}``: ``best`` the best configuration (None if no
    trial completed), ``trials`` counts complete, diverged and pruned trials (not interrupted or
    surplus ones), ``epochs`` the epochs they ran, ``budget`` the epochs allowed, ``saved`` the
    epochs pruning saved.
    """
    names = factory.check_names(optimizer_names)
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise ValueError(f"trials must be a positive integer; got {trials!r}")
    low, high = (float(v) for v in lr_range)
    if not 0 < low < high:
        raise ValueError(f"lr_range must satisfy 0 < low < high; got {lr_range!r}")
    space = check_space(space)
    _pruner(pruner, 1)  # validates the name before any work
    if pruner != "none" and (getattr(runner, "jobs", 1) != 1 or getattr(runner, "ray", None) is not None):
        raise ValueError(f"pruner {pruner!r} stops runs in this process: it needs jobs=1 and no Ray "
                         "(run several tune processes on one storage instead)")
    dimensions = search_spaces(names, space, sampler, (low, high), trials)
    runner.data_split()
    runner.out.mkdir(parents=True, exist_ok=True)
    storage = storage or default_storage(runner.out)
    optuna.logging.set_verbosity(max(optuna.logging.get_verbosity(), optuna.logging.WARNING))  # never louder
    results = {}
    for name in names:
        dims, epochs = dimensions[name], _full_epochs(runner, name)
        study = _create_study(study_name(runner, name, sampler, storage, space, pruner), storage,
                              _sampler(sampler, dims, trials, seed), runner.fingerprint(), _pruner(pruner, epochs))
        _retry_interrupted(study)
        if sampler != "grid":
            # A resumed random, TPE or CMA-ES study gets a sampler seeded past every trial it holds (interrupted
            # ones included: their draws were made too), so it does not replay earlier draws; the grid
            # sampler keeps its seed and picks the grid points not yet tried.
            study.sampler = _sampler(sampler, dims, trials, seed + len(study.get_trials(deepcopy=False)))

        def objective(trial, name=name, dims=dims):
            config = {**(extra or {}), **{n: d.suggest(trial) for n, d in dims.items()}}
            runner.on_chunk = _reporter(trial) if pruner != "none" else None
            try:
                record = runner.run(name, run_config(runner, name, config), TUNING_SEED)
            finally:
                runner.on_chunk = None
            trial.set_user_attr("epochs", int(record["final"].get("epochs_run", epochs)))
            if record["status"] == "pruned":
                trial.set_user_attr("outcome", "pruned")
                raise optuna.TrialPruned()
            return selection_loss(record)

        _optimize(study, objective, trials, epochs, pruning=pruner != "none")
        results[name] = {**_summary(study, dims, extra, trials, epochs), "space_label": space_label(space)}
    return results


def _summary(study, dims, extra, trials, epochs):
    """What :func:`tune` returns for one study."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished() and _counted(t)]
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    pruned = [t for t in finished if t.user_attrs.get("outcome") == "pruned"]
    best = min(complete, key=lambda t: t.value) if complete else None
    config = config_of(dims, best.params, extra) if best else None
    spent = sum(_cost(t, epochs) for t in finished)
    return {"best": config, "best_learning_rate": (config or {}).get("learning_rate"),
            "best_value": best.value if best else math.inf, "trials": len(finished), "complete": len(complete),
            "diverged": len(finished) - len(complete) - len(pruned), "pruned": len(pruned),
            "epochs": spent, "budget": trials * epochs, "epochs_per_run": epochs,
            "saved": sum(epochs - _cost(t, epochs) for t in pruned), "space": list(dims), "study": study.study_name}


def rerun(runner, results, seeds):
    """Train each optimizer's best configuration on seeds ``0 .. seeds-1``: ``{optimizer: [records]}``.

    Seed 0 is the tuning seed: the winner's own trial, read back from its record.
    Optimizers with no complete trial are left out.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")
    names = [n for n, r in results.items() if r["best"] is not None]
    found = runner.run_many([(n, run_config(runner, n, results[n]["best"]), s) for n in names for s in range(seeds)])
    return {n: found[i * seeds:(i + 1) * seeds] for i, n in enumerate(names)}


def trials_of(study, epochs):
    """The budget curve's data of ``study``: per counted finished trial, in order, its state, value, the epochs
    it ran and its ``cost``, the epochs it took from the budget (a whole run of ``epochs`` unless pruned)."""
    out = []
    for t in study.get_trials(deepcopy=False):
        if not (t.state.is_finished() and _counted(t)):
            continue
        state = "pruned" if t.user_attrs.get("outcome") == "pruned" else (
            "complete" if t.state == TrialState.COMPLETE else "diverged")
        out.append({"number": t.number, "state": state, "value": t.value if state == "complete" else None,
                    "epochs": t.user_attrs.get("epochs"), "cost": _cost(t, epochs), "params": dict(t.params)})
    return out


def write_summary(out, runner, results, sampler, storage=None, pruner="none"):
    """Keep every study of ``results`` in ``OUT/tuning.json`` (merged with the studies already there).

    Each entry: problem, optimizer, sampler, space, pruner, budget and the
    trials (:func:`trials_of`), so the report draws budget curves without Optuna's storage.
    """
    path = Path(out) / budget.SUMMARY
    found = budget.read_studies(out)
    storage = storage or default_storage(out)
    for name, r in results.items():
        study = _load_study(r["study"], storage)
        found[r["study"]] = {"problem": runner.problem, "optimizer": name, "sampler": sampler,
                             "space": r["space_label"], "dimensions": r["space"], "pruner": pruner,
                             "budget": r["budget"], "epochs_per_run": r["epochs_per_run"],
                             "trials": trials_of(study, r["epochs_per_run"]) if study is not None else []}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(found, indent=1, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)
    return path
