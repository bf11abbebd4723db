"""Experiments: runs at deterministic keys, learning-rate sweeps and paired comparisons.

A :class:`Runner` fixes a problem, its budget and the output folder; ``run``
trains one (optimizer, hyperparameters, seed) unless its record already exists,
so every experiment resumes where it stopped. Seeds are paired: seed ``s``
gives every optimizer the same initial weights and the same data order.

* :func:`sweep`: every learning rate x clipping setting x ``grid`` combination (any
  constructor argument) over every seed, e.g. the Boston housing chapter's
  ``1e-3 ... 1e-9`` sweep of gradient descent.
* :func:`compare`: per optimizer, select the learning rate on the validation
  split with the tuning seed 0, then rerun the winner over ``seeds`` seeds.
"""

import dataclasses
import itertools
import math
import time
import warnings
from pathlib import Path

import pandas as pd

from optimlab import _interrupt, registry
from optimlab.lab import factory
from optimlab.lab.training import problems, records
from optimlab.lab.training.analysis import stats
from optimlab.lab.training.analysis.tables import selection_loss
from optimlab.lab.training.runner import executors, loop

TUNING_SEED = 0


@dataclasses.dataclass
class Runner:
    """Runs of one problem with one budget, recorded under ``out``.

    Args:
        out: output folder (records go to ``out/records``).
        problem: a problem name, ``"package.module:attribute"`` or a
            :class:`~optimlab.lab.training.problems.Problem` (with ``jobs`` > 1 or
            Ray, its model and data functions must be importable: module-level).
        data: data path (Boston only).
        epochs, batch_size, eval_every, target: the budget (defaults: the problem's);
            ``batch_size=None`` is full-batch.
        standardize: standardize inputs (default: the problem's choice).
        valid_fraction: validation share of the training rows.
        tensorboard: also write TensorBoard logs under ``out/tensorboard``.
        batchnorm, mixup, label_smoothing: override the problem's options (None: keep).
        schedule: ``(name, {args})``: every run's learning rate follows this Keras
            or optimlab schedule, started at the run's learning rate.
        jobs: worker processes on this machine (1: in this process).
        ray: address of a Ray cluster (``auto``: the one this machine belongs to) to run on instead.
        runs_per_program: with ``jobs=1``, up to this many runs of one optimizer configuration (differing in
            seed and hyperparameters held in variables) train side by side in one compiled program
            (:mod:`~optimlab.lab.training.runner.packed`; records equal the runs' alone, ``wall_time`` is a
            run's share of the pack's training seconds); 1: one run per program. Runs that cannot be packed
            (a user's subclassed model, an optimizer that is not element-wise, a schedule, a pruner, ...)
            go one per program, with a note saying why. Default 1: a runner claims as many runs at once as
            it packs, so several processes on one folder split the work less finely when packing.
        on_run: called as ``on_run(record, computed)`` after every run.
        on_start: called as ``on_start()`` when a run starts computing (progress bars).
        on_retry: called as ``on_retry()`` when a run lost its worker and is computed again.
        on_note: called as ``on_note(text)`` with a one-line note (a problem
            that changed under its name); None: a Python warning.
        on_chunk: called as ``on_chunk(epochs done, validation loss)`` at each evaluation of a run
            computed in this process (a tuner's pruner, ``jobs=1`` only); True ends the run there. Such a
            partial run (``status="pruned"``) is returned but never written as the configuration's record.

    Before anything is written, :meth:`data_split` loads the data and checks
    the problem with one step on one batch
    (:func:`~optimlab.lab.training.runner.loop.preflight`). Every run's spec
    holds the problem's :meth:`fingerprint`, so different problems (two
    unnamed ones, or one changed under its name) never share records.

    Concurrent runners (other processes, other machines on a shared folder)
    split the work: each claims a run before computing it (see
    :func:`~optimlab.lab.training.records.claim`) and waits for the records of
    runs that others claimed, so no run is computed twice.
    """

    out: Path
    problem: str
    data: str | None = None
    epochs: int | None = None
    batch_size: int | None | str = "problem"
    eval_every: int | None = None
    target: float | None = None
    standardize: bool | None = None
    valid_fraction: float = 0.2
    tensorboard: bool = False
    batchnorm: bool | None = None
    mixup: float | None = None
    label_smoothing: float | None = None
    schedule: tuple | None = None
    jobs: int = 1
    ray: str | None = None
    runs_per_program: int = 1
    on_run: object = None
    on_start: object = None
    on_retry: object = None
    on_note: object = None
    on_chunk: object = None
    computed: int = 0
    reused: int = 0
    _counted: set = dataclasses.field(default_factory=set, init=False, repr=False)  # record paths counted

    def __post_init__(self):
        self.out = Path(self.out)
        problem = problems.get(self.problem)
        options = {k: getattr(self, k) for k in ("batchnorm", "mixup", "label_smoothing") if getattr(self, k) is not None}
        self._problem = dataclasses.replace(problem, **options) if options else problem
        self.problem = self._problem.name
        if self.schedule is not None:
            name, args = self.schedule
            factory.make_schedule(name, 1e-3, dict(args))  # a bad name or argument fails before any run
            self.schedule = (name, dict(args))
        self._data = None
        if self.ray is None:
            executors.make(self.jobs)  # validates jobs before any work
        if isinstance(self.runs_per_program, bool) or not isinstance(self.runs_per_program, int) \
                or self.runs_per_program < 1:
            raise ValueError(f"runs_per_program must be a positive integer; got {self.runs_per_program!r}")
        self._noted = set()
        self._executor = None

    @property
    def meta(self):
        return self._problem.meta()

    def data_split(self):
        """The problem's data, loaded and checked once (one step on one batch): bad data or models surface here."""
        if self._data is None:
            data = problems.load(self._problem, self.data, self.standardize, self.valid_fraction)
            loop.preflight(self._problem, data)
            self._data = data
            self._note_changed()
        return self._data

    def fingerprint(self):
        """The problem's fingerprint on its loaded data (:func:`~optimlab.lab.training.problems.fingerprint`)."""
        return problems.fingerprint(self._problem, self.data_split())

    def _note_changed(self):
        """One line when ``out`` holds records of a problem of this name made by another definition of it."""
        others = records.other_definitions(self.out, self.problem, self.fingerprint())
        if others:
            text = (f"note: problem {self.problem!r} is not the one of {others} earlier record(s) under "
                    f"{self.out / 'records' / records.folder_name(self.problem)} (its data, model, loss, metrics "
                    "or options differ, or they predate problem fingerprints): its runs are computed again")
            if self.on_note is None:
                warnings.warn(text, stacklevel=3)
            else:
                self.on_note(text)

    def spec(self, optimizer, hyperparameters, seed):
        """Everything that determines a run, with the problem's defaults filled in.

        A ``"schedule"`` entry of ``hyperparameters`` (``(name, {args})``, or None for a
        constant rate) is this run's own schedule instead of the runner's (a tuner's choice).
        """
        hyperparameters = dict(hyperparameters)
        schedule = hyperparameters.pop("schedule", self.schedule)
        p = self._problem
        epochs = p.epochs if self.epochs is None else int(self.epochs)
        return {
            "problem": p.name,
            "fingerprint": self.fingerprint(),
            "optimizer": factory.canonical(optimizer),
            "hyperparameters": {k: v if isinstance(v, bool) else float(v)  # a tuned switch (amsgrad) stays one
                                for k, v in sorted(hyperparameters.items()) if v is not None},
            "seed": int(seed),
            "epochs": epochs,
            "batch_size": p.batch_size if self.batch_size == "problem" else self.batch_size,
            "eval_every": self.eval_every or max(1, epochs // 100),
            "target": p.target if self.target is None else float(self.target),
            "standardize": p.standardize if self.standardize is None else bool(self.standardize),
            "valid_fraction": float(self.valid_fraction),
            **self._options(schedule),
        }

    def _options(self, schedule=None):
        """The training options that differ from the defaults (absent otherwise: older keys stay valid)."""
        p, out = self._problem, {}
        if p.batchnorm:
            out["batchnorm"] = True
        if p.mixup:
            out["mixup"] = float(p.mixup)
        if p.label_smoothing:
            out["label_smoothing"] = float(p.label_smoothing)
        if schedule is not None:
            out["schedule"] = {"name": schedule[0], "args": dict(schedule[1])}
        return out

    def run(self, optimizer, hyperparameters, seed):
        """The record of one run: read if it exists, else trained and written."""
        return self.run_many([(optimizer, hyperparameters, seed)])[0]

    def run_many(self, runs):
        """The records of independent runs ``[(optimizer, hyperparameters, seed), ...]``, in order.

        Existing records are read; missing runs are claimed a few at a time
        (as many as the executor computes at once), computed and written as
        they finish; runs claimed by another live process are waited for, and
        taken over if that process dies.
        """
        _interrupt.check()
        specs = [self.spec(*run) for run in runs]
        paths = [records.record_path(self.out, spec) for spec in specs]
        spec_of = dict(zip(paths, specs))
        found = {}
        pending = list(dict.fromkeys(paths))
        while pending:
            mine, waiting = [], []
            for path in pending:
                record = None if len(mine) >= self._batch() else records.read(path)
                if record is not None:
                    found[path] = record
                    self._done(path, record, computed=False)
                elif len(mine) < self._batch() and records.claim(path):
                    record = records.read(path)  # another process may have finished it since we looked
                    if record is None:
                        mine.append(path)
                    else:
                        records.release(path)
                        found[path] = record
                        self._done(path, record, computed=False)
                else:
                    waiting.append(path)
            self._compute(mine, spec_of, found)
            if not mine and waiting:
                time.sleep(0.2)  # every run left is computed by another process right now
            pending = waiting
        return [found[path] for path in paths]

    def _batch(self):
        """How many runs to claim at once: what the executor computes in parallel, and a little more."""
        if self.ray is not None:
            return 1 << 30
        return self.runs_per_program if self.jobs == 1 else 2 * self.jobs

    def _compute(self, paths, spec_of, found):
        if not paths:
            return
        records.clean_stale(self.out)
        executor = self.executor()
        try:
            specs = [spec_of[p] for p in paths]
            pruner = {} if self.on_chunk is None else {"on_chunk": self.on_chunk}
            for i, record in executor.run(self._problem, self.data_split(), specs,
                                          on_start=self.on_start and (lambda *_: self.on_start()),
                                          on_retry=self.on_retry and (lambda *_: self.on_retry()), **pruner):
                if record["status"] != "pruned":  # a partial run is never the record of its configuration
                    records.write(paths[i], record)
                records.release(paths[i])
                if self.tensorboard:
                    spec = record["spec"]
                    loop.write_tensorboard(pd.DataFrame(record["history"]),
                                           self.out / "tensorboard" / records.folder_name(spec["problem"])
                                           / records.folder_name(spec["optimizer"]) / record["key"])
                found[paths[i]] = record
                self.computed += 1
                self._done(paths[i], record, computed=True)
            self._note_unpacked(getattr(executor, "notes", {}))
        finally:
            for path in paths:
                if path not in found:
                    records.release(path)

    def _note_unpacked(self, notes):
        """One line per optimizer whose runs could not share a program (``{optimizer: reason}``), once."""
        for name, why in notes.items():
            if (name, why) not in self._noted:
                self._noted.add((name, why))
                text = f"note: runs of {name} train one per program, not packed: {why}"
                if self.on_note is None:
                    warnings.warn(text, stacklevel=4)
                else:
                    self.on_note(text)

    def _done(self, path, record, computed):
        """Count a run once per runner: a record this runner computed or read before is not counted again.

        (compare's seed-0 run of a selected learning rate is its selection run:
        one run, computed once, not "computed" and then "reused".)
        """
        _interrupt.check()  # after a Ctrl-C: stop here, with this run's record written
        if path in self._counted:
            return
        self._counted.add(path)
        if not computed:
            self.reused += 1
        if self.on_run is not None:
            self.on_run(record, computed)

    def executor(self):
        """The executor (created on first use; :meth:`close` ends its workers)."""
        if self._executor is None:
            self._executor = executors.make(self.jobs, self.ray, self.runs_per_program)
        return self._executor

    def close(self):
        if self._executor is not None:
            self._executor.close()
            self._executor = None


def _check_seeds(seeds):
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")


def _check_lrs(learning_rates):
    for lr in learning_rates:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rates must be positive finite numbers; got {lr!r}")


def sweep(runner, optimizer, learning_rates, seeds=1, clipnorms=(None,), extra=None, grid=None):
    """Every learning rate x clipnorm x ``grid`` combination over seeds ``0 .. seeds-1``; returns the records.

    ``grid``: ``{argument: [values]}`` for any constructor argument of the
    optimizer and ``clipnorm`` (numbers or booleans), e.g.
    ``{"momentum": [0.9, 0.99], "nesterov": [False, True]}``; the Cartesian
    product of every list is run. The learning rate stays on
    ``learning_rates``; ``extra`` holds settings shared by every run. Every
    combination makes an optimizer before any run, so a bad name or value
    fails before anything is trained.

    Example (the Boston housing chapter: gradient descent on raw features)::

        sweep(Runner("runs/sweep", "boston", standardize=False, epochs=10000, valid_fraction=0),
              "gd", [10.0 ** -i for i in range(3, 10)])
    """
    factory.canonical(optimizer)
    _check_lrs(learning_rates)
    _check_seeds(seeds)
    combos = _grid_combinations(optimizer, grid or {}, extra or {}, clipnorms)
    runner.data_split()
    for combo in combos:  # bad hyperparameters fail before training, as the runs will hold them
        factory.make_optimizer(optimizer, {k: v if isinstance(v, bool) else float(v)
                                           for k, v in {**(extra or {}), **combo}.items() if v is not None})
    runs = [(optimizer, {**(extra or {}), "learning_rate": lr, "clipnorm": clipnorm, **combo}, seed)
            for clipnorm in clipnorms for lr in learning_rates for combo in combos for seed in range(seeds)]
    return runner.run_many(runs)


def _grid_combinations(optimizer, grid, extra, clipnorms):
    """The Cartesian product of ``grid`` as a list of dicts (``[{}]`` for no grid); ValueError on a bad entry."""
    if not isinstance(grid, dict):
        raise TypeError(f"grid must be a dict {{argument: [values]}}; got {grid!r}")
    cls = factory.optimizer_class(optimizer) if ":" in optimizer else registry.info(optimizer).cls
    allowed = set(factory.hyperparameters_of(cls)) | {"clipnorm"}
    for name, values in grid.items():
        if name == "learning_rate":
            raise ValueError("grid: the learning rate is swept by learning_rates, not grid")
        if name not in allowed:
            raise ValueError(f"grid: {factory.canonical(optimizer)} takes no argument {name!r}; "
                             f"allowed: {', '.join(sorted(allowed - {'learning_rate', 'name'}))}")
        if name in extra:
            raise ValueError(f"grid: {name!r} is both swept and set to {extra[name]!r}; give it once")
        if name == "clipnorm" and list(clipnorms) != [None]:
            raise ValueError("grid: clipnorm is swept by clipnorms already; give it once")
        if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__") or not list(values):
            raise ValueError(f"grid: {name} needs a non-empty list of values; got {values!r}")
        for value in values:
            number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
            if not (number or isinstance(value, bool) or (value is None and name == "clipnorm")):
                raise ValueError(f"grid: {name} takes finite numbers or booleans; got {value!r}")
        if len(set(map(repr, values))) != len(list(values)):
            raise ValueError(f"grid: {name} lists a value twice: {list(values)!r}")
    return [dict(zip(grid, chosen)) for chosen in itertools.product(*(list(v) for v in grid.values()))]


def compare(runner, optimizer_names, seeds, learning_rates=None, extra=None):
    """Paired comparison of optimizers with the same budget and selection rule.

    For each optimizer, every learning rate in ``learning_rates`` (default: the
    optimizer's own default) is trained with the tuning seed 0; the one with the
    lowest final validation loss is rerun over seeds ``0 .. seeds-1``.

    Too few ``seeds`` for any test to reach p < 0.05 (:func:`~optimlab.lab.training.analysis.stats.design_limit`)
    gives a :class:`~optimlab.lab.training.analysis.stats.DesignWarning` first; the runs go ahead.

    Returns ``{optimizer: {"hyperparameters": ..., "records": [...]}}`` for the winners.
    ``extra`` holds hyperparameters shared by every optimizer (e.g. ``clipnorm``).
    """
    names = factory.check_names(optimizer_names)
    _check_seeds(seeds)
    if learning_rates is not None:
        _check_lrs(learning_rates)
    runner.data_split()
    for name in names:  # bad hyperparameters fail before any training
        factory.make_optimizer(name, extra or {})
    limit = stats.design_limit(seeds, len(names)) if len(names) > 1 else None
    if limit:  # before any run, as the command says it
        warnings.warn(f"{limit}; the runs go ahead, their tests will say the same", stats.DesignWarning, stacklevel=2)
    configs = {name: [{**(extra or {}), "learning_rate": lr} for lr in learning_rates or [factory.default_learning_rate(name)]]
               for name in names}
    # Two batches of independent runs (selection, then the winners' seeds), so workers share them out.
    selection = [(name, c, TUNING_SEED) for name in names if len(configs[name]) > 1 for c in configs[name]]
    scores = dict(zip(((r[0], id(r[1])) for r in selection), map(selection_loss, runner.run_many(selection))))
    best = {name: min(configs[name], key=lambda c, name=name: scores.get((name, id(c)), 0.0)) for name in names}
    winners = runner.run_many([(name, best[name], s) for name in names for s in range(seeds)])
    return {name: {"hyperparameters": best[name], "records": winners[i * seeds:(i + 1) * seeds]}
            for i, name in enumerate(names)}
