"""Experiments: runs at deterministic keys, learning-rate sweeps and paired comparisons.

A :class:`Runner` fixes a problem, its budget and the output folder; ``run``
trains one (optimizer, hyperparameters, seed) unless its record already exists,
so every experiment resumes where it stopped. Seeds are paired: seed ``s``
gives every optimizer the same initial weights and the same data order.

* :func:`sweep`: every learning rate (and clipping setting) over every seed,
  e.g. seed 002's ``1e-3 ... 1e-9`` sweep of gradient descent on Boston.
* :func:`compare`: per optimizer, select the learning rate on the validation
  split with the tuning seed 0, then rerun the winner over ``seeds`` seeds.
"""

import dataclasses
import math
import time
from pathlib import Path

import keras
import tensorflow as tf

import optimlab
from optimlab import registry
from optimlab.lab.training import problems, records
from optimlab.lab.training.runner import loop

TUNING_SEED = 0


def optimizer_class(name):
    """The class behind ``package.module:Class`` (a Keras or optimlab optimizer); ValueError/TypeError otherwise."""
    from optimlab.lab.training.problems.custom import import_object

    cls = import_object(name, "optimizer")
    if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
        raise TypeError(f"optimizer {name!r} must be a keras.optimizers.Optimizer subclass (optimlab's included); "
                        f"got {cls!r}")
    return cls


def check_optimizers(optimizer_names):
    """Resolve names (aliases allowed) to registered names; ``package.module:Class`` names stay as they are."""
    if not optimizer_names:
        raise ValueError("optimizers must name at least one optimizer; got an empty list")
    out = []
    for name in optimizer_names:
        if ":" in name:
            optimizer_class(name)
            out.append(name)
        else:
            out.append(registry.info(name).name)
    return out


def make_optimizer(name, hyperparameters, schedule=None):
    """A fresh optimizer: a registered name or ``package.module:Class`` with ``hyperparameters``.

    With ``schedule = (ScheduleName, {args})``, the learning rate becomes that
    Keras or optimlab schedule started at ``hyperparameters["learning_rate"]``.
    """
    hyper = {k: v for k, v in hyperparameters.items() if v is not None}
    if schedule is not None and "learning_rate" in hyper:
        hyper["learning_rate"] = make_schedule(schedule[0], hyper["learning_rate"], schedule[1])
    if ":" in name:
        cls = optimizer_class(name)
        try:
            return cls(**hyper)
        except TypeError as error:
            raise TypeError(f"optimizer {name!r} does not take {sorted(hyper)}: {error}") from error
    return optimlab.get(name, **hyper)


def make_schedule(name, learning_rate, args):
    """``keras.optimizers.schedules.<name>`` or ``optimlab.schedules.<name>`` from ``learning_rate`` and ``args``."""
    from optimlab import schedules

    for module in (schedules, keras.optimizers.schedules):
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, keras.optimizers.schedules.LearningRateSchedule):
            try:
                return cls(learning_rate, **args)
            except TypeError as error:
                raise ValueError(f"schedule {name!r} does not take {sorted(args)} after the learning rate: {error}") from error
    known = sorted({n for m in (schedules, keras.optimizers.schedules) for n in dir(m)
                    if isinstance(getattr(m, n), type)
                    and issubclass(getattr(m, n), keras.optimizers.schedules.LearningRateSchedule)
                    and not n.startswith("_") and n != "LearningRateSchedule"})
    raise ValueError(f"schedule must be one of {known}; got {name!r}")


def default_learning_rate(optimizer):
    if ":" in optimizer:
        import inspect

        default = inspect.signature(optimizer_class(optimizer)).parameters.get("learning_rate")
        value = getattr(default, "default", None)
        return float(value) if isinstance(value, (int, float)) else 1e-3
    return float(registry.info(optimizer).defaults.get("learning_rate", 1e-3))


@dataclasses.dataclass
class Runner:
    """Runs of one problem with one budget, recorded under ``out``.

    Args:
        out: output folder (records go to ``out/records``).
        problem: a problem name, ``"package.module:attribute"`` or a
            :class:`~optimlab.lab.training.problems.Problem`.
        data: data path (Boston only).
        epochs, batch_size, eval_every, target: the budget (defaults: the problem's);
            ``batch_size=None`` is full-batch.
        standardize: standardize inputs (default: the problem's choice).
        valid_fraction: validation share of the training rows.
        tensorboard: also write TensorBoard logs under ``out/tensorboard``.
        batchnorm, mixup, label_smoothing: override the problem's options (None: keep).
        schedule: ``(name, {args})``: every run's learning rate follows this Keras
            or optimlab schedule, started at the run's learning rate.
        on_run: called as ``on_run(record, computed)`` after every run.

    Options that change a run (batchnorm, mixup, label smoothing, schedule)
    enter its spec, hence its key, only when set, so older records keep theirs.
    """

    out: Path
    problem: object
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
    on_run: object = None
    computed: int = 0
    reused: int = 0

    def __post_init__(self):
        self.out = Path(self.out)
        problem = problems.get(self.problem)
        options = {k: getattr(self, k) for k in ("batchnorm", "mixup", "label_smoothing") if getattr(self, k) is not None}
        self._problem = dataclasses.replace(problem, **options) if options else problem
        self.problem = self._problem.name
        if self.schedule is not None:
            name, args = self.schedule
            make_schedule(name, 1e-3, dict(args))  # a bad name or argument fails before any run
            self.schedule = (name, dict(args))
        self._data = None

    @property
    def meta(self):
        return self._problem.meta()

    def data_split(self):
        """The problem's data, loaded once (errors about missing data surface here)."""
        if self._data is None:
            self._data = problems.load(self._problem, self.data, self.standardize, self.valid_fraction)
        return self._data

    def spec(self, optimizer, hyperparameters, seed):
        """Everything that determines a run, with the problem's defaults filled in."""
        p = self._problem
        epochs = p.epochs if self.epochs is None else int(self.epochs)
        return {
            "problem": p.name,
            "optimizer": check_optimizers([optimizer])[0],
            "hyperparameters": {k: float(v) for k, v in sorted(hyperparameters.items()) if v is not None},
            "seed": int(seed),
            "epochs": epochs,
            "batch_size": p.batch_size if self.batch_size == "problem" else self.batch_size,
            "eval_every": self.eval_every or max(1, epochs // 100),
            "target": p.target if self.target is None else float(self.target),
            "standardize": p.standardize if self.standardize is None else bool(self.standardize),
            "valid_fraction": float(self.valid_fraction),
            **self._options(),
        }

    def _options(self):
        """The training options that differ from the defaults (absent otherwise: older keys stay valid)."""
        p, out = self._problem, {}
        if p.batchnorm:
            out["batchnorm"] = True
        if p.mixup:
            out["mixup"] = float(p.mixup)
        if p.label_smoothing:
            out["label_smoothing"] = float(p.label_smoothing)
        if self.schedule is not None:
            out["schedule"] = {"name": self.schedule[0], "args": self.schedule[1]}
        return out

    def run(self, optimizer, hyperparameters, seed):
        """The record of one run: read if it exists, else trained and written."""
        spec = self.spec(optimizer, hyperparameters, seed)
        path = records.record_path(self.out, spec)
        record = records.read(path)
        computed = record is None
        if computed:
            record = self._train(spec)
            records.write(path, record)
            self.computed += 1
        else:
            self.reused += 1
        if self.on_run is not None:
            self.on_run(record, computed)
        return record

    def _train(self, spec):
        opt = make_optimizer(spec["optimizer"], spec["hyperparameters"], self.schedule)
        started = time.time()
        result = loop.train(self._problem, self.data_split(), opt, spec["seed"], epochs=spec["epochs"],
                                batch_size=spec["batch_size"], eval_every=spec["eval_every"], target=spec["target"])
        key = records.run_key(spec)
        if self.tensorboard:
            loop.write_tensorboard(result.history, self.out / "tensorboard" / spec["problem"] / spec["optimizer"] / key)
        keras.backend.clear_session()
        return {
            "schema": records.SCHEMA,
            "key": key,
            "spec": spec,
            "problem": self.meta,
            "status": result.status,
            "final": result.final,
            "time_to_target": result.time_to_target,
            "history": result.history.to_dict(orient="list"),
            "diagnostics": result.diagnostics,
            "started": started,
            "versions": {"optimlab": optimlab.__version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        }


def selection_loss(record):
    """The final validation loss (training loss without a validation split); inf if diverged."""
    final = record["final"]
    value = final.get("valid_loss")
    value = final.get("train_loss") if value is None else value
    if record["status"] != "ok" or value is None or not math.isfinite(value):
        return math.inf
    return value


def _check_seeds(seeds):
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValueError(f"seeds must be a positive integer; got {seeds!r}")


def _check_lrs(learning_rates):
    for lr in learning_rates:
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"learning rates must be positive finite numbers; got {lr!r}")


def sweep(runner, optimizer, learning_rates, seeds=1, clipnorms=(None,), extra=None):
    """Every learning rate x clipnorm over seeds ``0 .. seeds-1``; returns the records.

    Example (seed 002, gradient descent on raw Boston features)::

        sweep(Runner("runs/sweep", "boston", standardize=False, epochs=10000, valid_fraction=0),
              "gd", [10.0 ** -i for i in range(3, 10)])
    """
    check_optimizers([optimizer])
    _check_lrs(learning_rates)
    _check_seeds(seeds)
    runner.data_split()
    make_optimizer(optimizer, extra or {})  # bad hyperparameters fail before training
    out = []
    for clipnorm in clipnorms:
        for lr in learning_rates:
            hyper = {**(extra or {}), "learning_rate": lr, "clipnorm": clipnorm}
            out.extend(runner.run(optimizer, hyper, seed) for seed in range(seeds))
    return out


def compare(runner, optimizer_names, seeds, learning_rates=None, extra=None):
    """Paired comparison of optimizers with the same budget and selection rule.

    For each optimizer, every learning rate in ``learning_rates`` (default: the
    optimizer's own default) is trained with the tuning seed 0; the one with the
    lowest final validation loss is rerun over seeds ``0 .. seeds-1``.

    Returns ``{optimizer: {"hyperparameters": ..., "records": [...]}}`` for the winners.
    ``extra`` holds hyperparameters shared by every optimizer (e.g. ``clipnorm``).
    """
    names = check_optimizers(optimizer_names)
    _check_seeds(seeds)
    if learning_rates is not None:
        _check_lrs(learning_rates)
    runner.data_split()
    for name in names:  # bad hyperparameters fail before any training
        make_optimizer(name, extra or {})
    result = {}
    for name in names:
        lrs = learning_rates or [default_learning_rate(name)]
        configs = [{**(extra or {}), "learning_rate": lr} for lr in lrs]
        if len(configs) > 1:
            scores = [selection_loss(runner.run(name, c, TUNING_SEED)) for c in configs]
            best = configs[min(range(len(configs)), key=scores.__getitem__)]
        else:
            best = configs[0]
        result[name] = {"hyperparameters": best, "records": [runner.run(name, best, s) for s in range(seeds)]}
    return result
