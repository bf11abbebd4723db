"""The work behind ``optimlab compare / sweep / tune / report / diagnose``: progress and summaries.

The CLI parses options and calls these; each turns bad input into one clear
:class:`LabError` message (the CLI prints it and exits with status 2).
"""

import contextlib
import math

import numpy as np
import pandas as pd

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from optimlab.lab.training import analysis, problems, records, report
from optimlab.lab.training.runner import experiments, tuning

console = Console()
BOSTON_NOTE = ("Note: Boston housing's b column encodes a racial statistic; it is kept only so that results "
               "compare with the literature.")


class LabError(Exception):
    """Bad input or missing data, with a message for the user."""


@contextlib.contextmanager
def user_errors():
    """Re-raise the library's argument and data errors as :class:`LabError`."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise LabError(message) from error


def parse_settings(items):
    """``["momentum=0.98", "epsilon=1e-8"]`` -> ``{"momentum": 0.98, "epsilon": 1e-8}`` (``--set``)."""
    settings = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        try:
            if not sep or not key.strip():
                raise ValueError
            settings[key.strip()] = float(value)
        except ValueError as error:
            raise LabError(f"--set takes KEY=NUMBER, e.g. --set momentum=0.98; got {item!r}") from error
    return settings


def parse_list(name, text, convert=str):
    """``"a,b"`` -> ``[a, b]`` converted; ``none`` stays None (for ``--clipnorm none,2``)."""
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise LabError(f"{name} must hold at least one value; got {text!r}")
    try:
        return [None if t.lower() == "none" else convert(t) for t in items]
    except ValueError as error:
        raise LabError(f"{name} must be a comma-separated list of numbers; got {text!r}") from error


def _value(text):
    """``"true"`` -> True, ``"1000"`` -> 1000, ``"0.1"`` -> 0.1 (``--option`` values)."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return float(text)


OPTIONS = ("batchnorm", "mixup", "label_smoothing", "schedule")


def parse_options(items):
    """``--option`` items -> Runner keywords, e.g. ``mixup=0.2``, ``schedule=CosineDecay:decay_steps=1000``."""
    out = {}
    for item in items or []:
        key, sep, value = (t.strip() for t in item.partition("="))
        if not sep or key not in OPTIONS or not value:
            raise LabError(f"--option takes KEY=VALUE with KEY in {list(OPTIONS)}, e.g. --option mixup=0.2 or "
                           f"--option schedule=CosineDecay:decay_steps=1000; got {item!r}")
        try:
            if key == "schedule":
                name, _, args = value.partition(":")
                pairs = [a.partition("=") for a in args.split(",") if a.strip()]
                if any(not p[1] for p in pairs):
                    raise ValueError
                out[key] = (name.strip(), {k.strip(): _value(v.strip()) for k, _, v in pairs})
            else:
                out[key] = _value(value)
        except ValueError as error:
            raise LabError(f"--option {key}: cannot read {value!r} (schedule=Name:arg=NUMBER,...; "
                           f"batchnorm=true|false; mixup and label_smoothing take numbers)") from error
    return out


def make_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every,
                jobs=1, ray=None, options=None):
    """A Runner from CLI options (``batch_size`` 0 = full batch, None = the problem's)."""
    with user_errors():
        problem = problems.get(task)
        batch = "problem" if batch_size is None else (None if batch_size == 0 else batch_size)
        return experiments.Runner(out, problem, data=data, epochs=epochs, batch_size=batch, eval_every=eval_every,
                                  target=target, standardize=standardize, valid_fraction=valid_fraction,
                                  tensorboard=tensorboard, jobs=jobs, ray=ray, **parse_options(options))


@contextlib.contextmanager
def progress_for(runner, total, label):
    """One progress bar for all runs (here, in worker processes or on a cluster).

    It shows runs done of the total, how many are running and how many failed
    (diverged, or lost a worker and were retried), and the time left.
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("running {task.fields[running]}, failed {task.fields[failed]}"),
               TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn())
    counts = {"running": 0, "failed": 0}
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=total, **counts)

        def on_start():
            counts["running"] += 1
            progress.update(task, **counts)

        def on_retry():
            counts["failed"] += 1
            progress.update(task, **counts)

        def on_run(record, computed):
            spec = record["spec"]
            if computed:
                counts["running"] = max(0, counts["running"] - 1)
            counts["failed"] += record["status"] != "ok"
            what = f"{spec['optimizer']} {analysis.config_label(spec['hyperparameters'])} seed {spec['seed']}"
            progress.update(task, advance=1, description=f"{label}: {what} {record['status']}", **counts)

        runner.on_run, runner.on_start, runner.on_retry = on_run, on_start, on_retry
        try:
            yield
        finally:
            runner.close()


def _fmt(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def print_frame(frame, title, columns=None):
    frame = frame if columns is None else frame[[c for c in columns if c in frame]]
    table = Table(*[str(c) for c in frame.columns], title=title)
    for row in frame.astype(object).itertuples(index=False):
        table.add_row(*[_fmt(v) for v in row])
    console.print(table)


def _pm(mean, std):
    return f"{_fmt(mean)} +/- {_fmt(std)}"


def print_summary_table(summary, metric):
    """Per optimizer: test loss mean +/- std, median [IQR], bootstrap CI, divergence, time to target."""
    problem = summary["problem"].iloc[0] if len(summary) else ""
    table = Table("optimizer", "config", "seeds", "diverged", "test loss", "median [IQR]", "95% CI", metric,
                  "to target (share reached)", title=f"{problem}: final test loss of the selected configuration")
    for _, r in summary.iterrows():
        table.add_row(r["optimizer"], r["config"], str(r["seeds"]), f"{r['diverged']:.0%}",
                      _pm(r.get("test_loss_mean"), r.get("test_loss_std")),
                      f"{_fmt(r.get('test_loss_median'))} [{_fmt(r.get('test_loss_iqr'))}]",
                      f"{_fmt(r.get('ci_low'))}..{_fmt(r.get('ci_high'))}", _fmt(r["test_metric"]),
                      f"{_fmt(r['epochs_to_target'])} ep, {_fmt(r['seconds_to_target'])} s ({r['reached']:.0%})")
    console.print(table)


def print_summary(runner, keys):
    """The one-screen summary of the runs with ``keys``: spread, tests, counts."""
    runs = analysis.runs_table([r for r in records.load_all(runner.out) if r["key"] in keys])
    print_summary_table(analysis.summary(runs), runner.meta["metric"])
    tests = analysis.tests(runs)
    if len(tests):
        print_frame(tests, "best vs others (Holm-corrected p-values)",
                    ("best", "other", "pairs", "wilcoxon_p_holm", "welch_p_holm", "cohens_d", "note"))
    console.print(f"{runner.computed} runs computed, {runner.reused} reused from {runner.out}/records. "
                  f"Report: optimlab report {runner.out}")
    if runner.problem == "boston":
        console.print(BOSTON_NOTE)


def compare(runner, optimizers, seeds, lrs, clipnorm, settings=None):
    with user_errors():
        names = experiments.check_optimizers(parse_list("optimizers", optimizers))
        learning_rates = parse_list("lrs", lrs, float) if lrs else None
        runner.data_split()
    per_optimizer = (len(learning_rates) if learning_rates and len(learning_rates) > 1 else 0) + seeds
    with progress_for(runner, per_optimizer * len(names), "compare"), user_errors():
        extra = {**parse_settings(settings), "clipnorm": clipnorm}
        result = experiments.compare(runner, names, seeds, learning_rates, extra=extra)
    print_summary(runner, {r["key"] for v in result.values() for r in v["records"]})


def sweep(runner, optimizer, lrs, seeds, clipnorms, settings=None):
    with user_errors():
        learning_rates = parse_list("lrs", lrs, float)
        clips = parse_list("clipnorm", clipnorms, float)
        runner.data_split()
    with progress_for(runner, len(learning_rates) * len(clips) * seeds, "sweep"), user_errors():
        recs = experiments.sweep(runner, optimizer, learning_rates, seeds, clips, extra=parse_settings(settings))
    runs = analysis.runs_table(recs)
    table = runs.groupby(["optimizer", "config"], sort=False).agg(
        seeds=("seed", "nunique"), diverged=("diverged", "mean"), train_loss=("train_loss", "median"),
        valid_loss=("valid_loss", "median"), test_loss=("test_loss", "median")).reset_index()
    print_frame(table, "sweep (medians over seeds of the final losses)")
    console.print(f"{runner.computed} runs computed, {runner.reused} reused. Report: optimlab report {runner.out}")
    if runner.problem == "boston":
        console.print(BOSTON_NOTE)


def tune(runner, optimizers, trials, sampler, lr_low, lr_high, storage, clipnorm):
    with user_errors():
        names = experiments.check_optimizers(parse_list("optimizers", optimizers))
        runner.data_split()
    with progress_for(runner, trials * len(names), "tune"), user_errors():
        result = tuning.tune(runner, names, trials, sampler, (lr_low, lr_high), storage, extra={"clipnorm": clipnorm})
    table = Table("optimizer", "best learning rate", "final validation loss", "trials", "study",
                  title=f"tuning ({sampler}, same budget for each)")
    for name, r in result.items():
        table.add_row(name, _fmt(r["best_learning_rate"]), _fmt(r["best_value"]), str(r["trials"]), r["study"])
    console.print(table)
    console.print(f"{runner.computed} runs computed, {runner.reused} reused. Storage: "
                  f"{storage or tuning.default_storage(runner.out)}")


def diagnose(runner, optimizer, lr, clipnorm, seed, settings=None):
    """Train one run and print its naive baseline, diagnostics over time, per-layer update ratios and flags."""
    from optimlab.lab.training.analysis import diagnostics

    with user_errors():
        name = experiments.check_optimizers([optimizer])[0]
        runner.data_split()
        hyper = {**parse_settings(settings), "clipnorm": clipnorm,
                 "learning_rate": experiments.default_learning_rate(name) if lr is None else lr}
        experiments.make_optimizer(name, hyper)
        record = runner.run(name, hyper, seed)
    base = (record.get("diagnostics") or {}).get("baseline")
    if base:
        values = ", ".join(f"{k.replace('_', ' ')} {_fmt(v)}" for k, v in base.items() if k != "kind")
        console.print(f"naive baseline ({base['kind']}): {values}")
    history = pd.DataFrame(record["history"])
    shown = history.iloc[sorted(set(np.linspace(0, len(history) - 1, min(len(history), 12)).astype(int)))]
    names = {"epoch": "epoch", "train_loss": "train loss", "train_loss_max": "worst epoch", "grad_norm": "grad norm",
             "update_ratio": "update/weight", "dead_units": "dead ReLU"}
    shown = shown[[c for c in names if c in shown]].rename(columns=names)
    print_frame(shown, f"{runner.problem}: {name} {analysis.config_label(record['spec']['hyperparameters'])} "
                       f"seed {seed} ({record['status']})")
    layers = (record.get("diagnostics") or {}).get("layers") or {}
    if layers:
        table = Table("layer", "update / weight since the last evaluation (first, median, last)")
        for layer, ratios in layers.items():
            ratios = [r for r in ratios[1:] if r is not None] or [math.nan]
            table.add_row(layer, f"{_fmt(ratios[0])}, {_fmt(float(np.median(ratios)))}, {_fmt(ratios[-1])}")
        console.print(table)
    found = diagnostics.flags(record)
    for f in found:
        console.print(f"[bold]{f['flag']}[/bold] from epoch {f['epoch']}: {f['detail']}.\n  suggestion: {f['suggestion']}")
    if not found:
        console.print("no flags: no divergence, explosion, collapse or plateau")
    console.print(f"record: {records.record_path(runner.out, record['spec'])}")
    return record


def make_report(out):
    with user_errors():
        path = report.write_report(out)
    console.print(f"wrote {path} and PNGs under {path.parent / 'figures'}")
