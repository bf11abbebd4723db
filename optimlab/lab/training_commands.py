"""The training lab's commands: compare, sweep, tune and diagnose, each with its one-screen summary.

Each command checks its input (names, ``--set``, learning rates, clipping)
and loads the data before it writes anything, then appends the command line
to ``OUT/commands.txt``, runs with one progress bar and prints its tables
(:mod:`optimlab.lab.tables`). The runs themselves are
:mod:`optimlab.lab.training.runner.experiments`'; optimizers are named and made
by :mod:`optimlab.lab.factory`.
"""

import math
import shlex
import sys
import warnings
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from rich.markup import escape

from optimlab._names import unknown
from optimlab.lab import factory, tables
from optimlab.lab.arguments import (
    LabError,
    check_grid,
    check_settings,
    parse_clipnorm,
    parse_grid,
    parse_list,
    parse_settings,
    user_errors,
)
from optimlab.lab.tables import fmt, percent, show
from optimlab.lab.training import analysis, problems, records
from optimlab.lab.training.analysis import budget, diagnostics, stats, verdict
from optimlab.lab.training.runner import experiments, tuning

COMMAND_LINE = None  # set by the CLI: the running command with every option spelled out


def log_command(out):
    """Append the command line to ``OUT/commands.txt`` (the report's context block shows it)."""
    line = COMMAND_LINE or shlex.join(["optimlab", *sys.argv[1:]])
    Path(out).mkdir(parents=True, exist_ok=True)  # the first write of a command: every check has passed
    with open(Path(out) / "commands.txt", "a") as f:
        f.write(line + "\n")


def print_summary(runner, keys):
    """The one-screen summary of the runs with ``keys``: ranked table, verdict, tests, counts."""
    runs = analysis.runs_table([r for r in records.load_all(runner.out) if r["key"] in keys])
    table = analysis.ranked_summary(runs)
    loss = verdict.loss_name(runs)
    metric = runner.meta["metric"]
    rows = [(str(i), r["optimizer"], r["config"], percent(r["diverged"]),
             f"{fmt(r.get('test_loss_median'))} [{fmt(r.get('test_loss_iqr'), 3)}]",
             f"{fmt(r.get('test_loss_mean'))} +/- {fmt(r.get('test_loss_std'), 3)}",
             f"{fmt(r.get('ci_low'))}..{fmt(r.get('ci_high'))}", fmt(r["test_metric"]))
            for i, (_, r) in enumerate(table.iterrows(), start=1)]
    show(f"{runner.problem}: final {loss} of each optimizer's selected configuration, best (lowest median) first",
         ("#", "optimizer", "config", "diverged", "median [IQR]", "mean +/- sd", "95% CI", metric), rows,
         numeric=("#", "diverged", "median [IQR]", "mean +/- sd", "95% CI", metric))
    rows = [(r["optimizer"], str(r["seeds"]), percent(r["reached"]), fmt(r["epochs_to_target"]),
             fmt(r["seconds_to_target"], 3)) for _, r in table.iterrows()]
    show(f"seeds and time to the target ({fmt(runner.meta['target'])})",
         ("optimizer", "seeds", "reached target", "epochs", "seconds"), rows,
         numeric=("seeds", "reached target", "epochs", "seconds"))
    tests = analysis.tests(runs)
    if len(tests):
        wilcoxon = verdict.p_texts([r.get("wilcoxon_p_holm") for _, r in tests.iterrows()])
        welch = verdict.p_texts([r.get("welch_p_holm") for _, r in tests.iterrows()])
        rows = [(r["best"], r["other"], str(r["pairs"]), w, t, fmt(r.get("cohens_d"), 3), r["note"] or "")
                for (_, r), w, t in zip(tests.iterrows(), wilcoxon, welch)]
        show("best against each other optimizer (p-values Holm-corrected)",
             ("best", "other", "pairs", "Wilcoxon p", "Welch p", "Cohen's d", "note"), rows,
             numeric=("pairs", "Wilcoxon p", "Welch p", "Cohen's d"))
    for sentence in verdict.headlines(runs):
        tables.say(sentence)
    tables.say(f"{runner.computed} runs computed, {runner.reused} reused from {runner.out}/records.")
    report_hint(runner.out)
    show_note(runner)


def show_note(runner):
    """The problem's note (Boston housing's, for one), after its results."""
    note = problems.note(runner.problem)
    if note:
        tables.say(f"Note: {note}")


def report_hint(out):
    """The command that writes the report, on its own line and never wrapped (so it copies whole)."""
    tables.console.print("Report:", highlight=False)
    tables.console.print(f"  optimlab report {shlex.quote(str(out))}", soft_wrap=True, highlight=False, markup=False)


def compare(runner, optimizers, seeds, lrs, clipnorm, settings=None):
    with user_errors():
        names = factory.names(optimizers)
    extra = parse_settings(settings)
    check_settings(names, extra)
    clip = parse_clipnorm(clipnorm)
    learning_rates = None if str(lrs).strip().lower() == "default" else \
        parse_list("--lrs", lrs, float, none_ok=False, allowed="positive numbers or 'default'")
    with user_errors():
        runner.data_split()
    seeds = choose_seeds(seeds, len(names))
    log_command(runner.out)
    # Selection runs with seed 0, then the winner's seeds; the winner's seed 0 is its selection run (one run).
    selecting = learning_rates is not None and len(learning_rates) > 1
    per_optimizer = (len(learning_rates) - 1 if selecting else 0) + seeds
    with tables.progress_for(runner, per_optimizer * len(names), "compare"), user_errors():
        with warnings.catch_warnings():  # choose_seeds told it already, in the command's words
            warnings.simplefilter("ignore", stats.DesignWarning)
            result = experiments.compare(runner, names, seeds, learning_rates, extra={**extra, "clipnorm": clip})
    print_summary(runner, {r["key"] for v in result.values() for r in v["records"]})


def choose_seeds(seeds, optimizers, alpha=0.05):
    """``compare``'s seeds: None gives :func:`stats.default_seeds`; too few to ever show a difference, a warning first.

    The warning (before any run) says why: the best optimizer is set against
    each other one with Holm's correction, whose p can never go below
    ``(optimizers - 1) * 2 / 2**seeds`` (:func:`stats.design_limit`).
    """
    if seeds is None:
        return stats.default_seeds(optimizers, alpha)
    limit = stats.design_limit(seeds, optimizers, alpha) if optimizers > 1 else None
    if limit:
        tables.say(f"warning: {limit}; the runs go ahead, their tests will say the same.")
    return seeds


def sweep(runner, optimizer, lrs, seeds, clipnorms, settings=None, grid=None):
    """Every learning rate x clipnorm x ``--grid`` combination over seeds, then the table of final losses."""
    with user_errors():
        names = factory.names(optimizer, "--optimizer")
    if len(names) != 1:
        raise LabError(f"--optimizer takes one optimizer for a sweep; {optimizer!r} names {len(names)}")
    extra = parse_settings(settings)
    check_settings(names, extra)
    learning_rates = parse_list("--lrs", lrs, float, none_ok=False, allowed="positive numbers")
    clips = parse_list("--clipnorm", clipnorms, float)
    swept = parse_grid(grid)
    check_grid(names, swept, extra, clipnorms)
    with user_errors():
        runner.data_split()
    log_command(runner.out)
    total = len(learning_rates) * len(clips) * math.prod(len(v) for v in swept.values()) * seeds
    with tables.progress_for(runner, total, "sweep"), user_errors():
        recs = experiments.sweep(runner, names[0], learning_rates, seeds, clips, extra=extra, grid=swept)
    runs = analysis.runs_table(recs)
    table = runs.groupby(["optimizer", "config"], sort=False).agg(
        seeds=("seed", "nunique"), diverged=("diverged", "mean"), train_loss=("train_loss", "median"),
        valid_loss=("valid_loss", "median"), test_loss=("test_loss", "median")).reset_index()
    rows = [(r["config"], str(r["seeds"]), percent(r["diverged"]), fmt(r["train_loss"]), fmt(r["valid_loss"]),
             fmt(r["test_loss"])) for _, r in table.iterrows()]
    show(f"{runner.problem}, {names[0]}: final losses (medians over seeds)",
         ("config", "seeds", "diverged", "train loss", "validation loss", "test loss"), rows,
         numeric=("seeds", "diverged", "train loss", "validation loss", "test loss"))
    tables.say(f"{runner.computed} runs computed, {runner.reused} reused.")
    report_hint(runner.out)
    show_note(runner)


def tune(runner, optimizers, trials, sampler, lr_low, lr_high, storage, clipnorm, settings=None, space="lr",
         pruner="none", seeds=1):
    """Tune each optimizer over ``space`` at the same budget, then (``seeds`` > 1) rerun the winners and compare."""
    with user_errors():
        names = factory.names(optimizers)
    extra = parse_settings(settings)
    check_settings(names, extra)
    clip = parse_clipnorm(clipnorm)
    if sampler not in tuning.SAMPLERS:
        raise LabError(f"--sampler: {unknown('sampler', sampler, tuning.SAMPLERS)}")
    if pruner not in tuning.PRUNERS:
        raise LabError(f"--pruner: {unknown('pruner', pruner, tuning.PRUNERS)}")
    if not 0 < lr_low < lr_high:
        raise LabError(f"--lr-low and --lr-high must satisfy 0 < low < high; got {lr_low} and {lr_high}")
    if pruner != "none" and (runner.jobs != 1 or runner.ray is not None):
        raise LabError(f"--pruner {pruner} stops runs in this process: it needs --jobs 1 and no --ray (start "
                       "several tune processes on one --storage instead)")
    with user_errors():
        chosen = tuning.check_space(space)
        tuning.search_spaces(names, chosen, sampler, (lr_low, lr_high), trials)  # one line, nothing written
        runner.data_split()
    if storage is not None:
        open_storage(storage)
    if seeds > 1:
        choose_seeds(seeds, len(names))  # the winners' comparison: a warning first where it can never show a difference
    log_command(runner.out)
    url = storage or tuning.default_storage(runner.out)
    earlier = [tuning.finished_trials(tuning.study_name(runner, n, sampler, url, chosen, pruner), url) for n in names]
    total = trials * len(names) + (seeds - 1) * len(names)
    with tables.progress_for(runner, total, "tune", done=sum(min(trials, n) for n in earlier)), user_errors():
        result = tuning.tune(runner, names, trials, sampler, (lr_low, lr_high), storage,
                             extra={**extra, "clipnorm": clip}, space=chosen, pruner=pruner)
        counts = trial_counts(result, runner, sum(earlier))
        tuning.write_summary(runner.out, runner, result, sampler, storage, pruner)
        reruns = tuning.rerun(runner, result, seeds) if seeds > 1 else {}
    fixed = set(extra) | {"clipnorm"}
    rows = [(name, analysis.config_label({k: v for k, v in (r["best"] or {}).items() if k not in fixed}) or "-",
             fmt(r["best_value"]), str(r["complete"]), str(r["diverged"]), str(r["pruned"]),
             f"{r['epochs']}/{r['budget']}") for name, r in result.items()]
    show(f"{runner.problem}: tuning {tuning.space_label(chosen)} ({sampler}, pruner {pruner}, a budget of "
         f"{trials} runs each)", ("optimizer", "best configuration", "validation loss", "complete", "diverged",
                                 "pruned", "epochs run/budget"), rows,
         numeric=("validation loss", "complete", "diverged", "pruned", "epochs run/budget"))
    tables.say(budget_text(result))
    studies = budget.read_studies(runner.out)
    for sentence in tuning_sentences(studies, {r["study"] for r in result.values()}):
        tables.say(sentence)
    tables.say(f"{counts}.")
    if reruns:
        tables.say(f"The best configuration of each optimizer, rerun on seeds 0..{seeds - 1} (seed 0 is its tuning "
                   "trial):")
        print_summary(runner, {r["key"] for recs in reruns.values() for r in recs})
    else:
        report_hint(runner.out)
    if storage is None:
        tables.console.print(f"Browse the studies: optuna-dashboard {runner.out / 'tuning.db'}", highlight=False,
                      overflow="fold")
    else:
        tables.console.print(f"Storage: {storage}", highlight=False, overflow="fold")


def budget_text(result):
    """How each optimizer spent its budget: trials, epochs run of the budget, epochs pruning saved."""
    parts = []
    for name, r in result.items():
        text = f"{name} {r['trials']} trials, {r['epochs']} of {r['budget']} epochs"
        if r["pruned"]:
            text += f" ({r['pruned']} pruned, {r['saved']} epochs saved)"
        parts.append(text)
    return "Budget (a pruned trial counts the epochs it ran): " + "; ".join(parts) + "."


def tuning_sentences(studies, names):
    """The budget-curve sentence of the studies ``names`` (one per problem, sampler, space and pruner)."""
    chosen = {k: v for k, v in studies.items() if k in names}
    return [budget.sentence(curves) for curves in budget.groups(chosen).values()]


def open_storage(url):
    """Open the Optuna storage at ``url`` once, before anything is written; LabError naming it and why not.

    (A wrong scheme, a missing driver, a refused connection or a wrong password
    would otherwise surface as a long SQLAlchemy traceback after the first files.)
    """
    try:  # workers starting together race to create Optuna's tables: retried as in the tuner
        storage = tuning._retry_races(lambda: optuna.storages.RDBStorage(url))
    except Exception as error:  # noqa: BLE001 - every failure to open it is the user's to fix, in one line
        lines = str(error).strip().splitlines() or [type(error).__name__]
        reason = " ".join(lines[0].split())
        raise LabError(f"--storage {url!r} cannot be opened: {reason}") from None
    storage.remove_session()
    storage.engine.dispose()


def trial_counts(result, runner, earlier):
    """``"3 trials: 2 runs computed, 0 reused, 1 from an earlier command"``: the parts add up to the trials.

    A trial run by this command is one run, computed or read from its record;
    ``earlier`` trials were finished before it started (an interrupted or
    shorter tune); the rest were run meanwhile by other processes sharing the storage.
    """
    total = sum(r["trials"] for r in result.values())
    others = total - runner.computed - runner.reused - earlier
    text = (f"{total} trials: {runner.computed} runs computed, {runner.reused} reused, "
            f"{earlier} from an earlier command")
    return text + (f", {others} by other processes" if others > 0 else "")


def diagnose(runner, optimizer, lr, clipnorm, seed, settings=None):
    """Train one run and print its naive baseline, diagnostics over time, per-layer update ratios and flags."""
    with user_errors():
        (name,) = factory.names(optimizer, "--optimizer")
    settings = parse_settings(settings)
    check_settings([name], settings)
    with user_errors():
        runner.data_split()
        hyper = {**settings, "clipnorm": parse_clipnorm(clipnorm),
                 "learning_rate": factory.default_learning_rate(name) if lr is None else lr}
        factory.make_optimizer(name, hyper)
        record = runner.run(name, hyper, seed)
    # The record as written (NaN and infinities become null), as the report reads it: one story per run.
    record = records.read(records.record_path(runner.out, record["spec"]))
    base = (record.get("diagnostics") or {}).get("baseline")
    if base:
        values = ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in base.items() if k != "kind")
        tables.say(f"naive baseline ({base['kind']}): {values}")
    found = diagnostics.flags(record)
    state = "finished" if record["status"] == "ok" else record["status"]
    state += f"; flags: {', '.join(f['flag'] for f in found)}" if found else "; no flags"
    headers, rows = history_rows(record["history"])
    show(f"{runner.problem}: {name} {analysis.config_label(record['spec']['hyperparameters'])} seed {seed} "
         f"({state})", headers, rows, numeric=headers)
    worst, at = diagnostics.peak(record["history"])
    if math.isfinite(worst):
        tables.console.print(f"worst epoch: training loss {fmt(worst)} at epoch {int(at)}", highlight=False)
    layers = (record.get("diagnostics") or {}).get("layers") or {}
    if layers:
        rows = []
        for layer, ratios in layers.items():
            ratios = [r for r in ratios[1:] if r is not None] or [math.nan]
            rows.append([layer, fmt(ratios[0]), fmt(float(np.median(ratios))), fmt(ratios[-1])])
        show("update / weight per layer since the previous evaluation", ["layer", "first", "median", "last"], rows,
             numeric=["first", "median", "last"])
    for f in found:
        tables.say(f"[bold]{f['flag']}[/bold] from epoch {f['epoch']}: {escape(f['detail'])}.\n  suggestion: "
                   f"{escape(f['suggestion'])}", markup=True)
    if not found:
        tables.say("no flags: no divergence, explosion, collapse or plateau")
    tables.console.print(f"record: {records.record_path(runner.out, record['spec'])}", highlight=False, overflow="fold")
    return record


def history_rows(history, shown=12):
    """Headers and about ``shown`` rows of a run's evaluations for :func:`diagnose`'s table.

    Each shown row stands for the evaluations since the previous shown row: its
    "worst epoch" is the largest training loss of any epoch among them
    (:func:`diagnostics.window_peaks`, the report's rule), so a one-epoch
    explosion between two shown rows still shows (the other columns are the
    values at that evaluation). "dead ReLU" is a share, printed as a percent.
    """
    frame = pd.DataFrame(history)
    picks = sorted(set(np.linspace(0, len(frame) - 1, min(len(frame), shown)).astype(int)))
    table = frame.iloc[picks].copy()
    if "train_loss_max" in frame:
        table["train_loss_max"] = diagnostics.window_peaks(history, picks)
    columns = {"epoch": "epoch", "train_loss": "train loss", "train_loss_max": "worst epoch",
               "grad_norm": "grad norm", "update_ratio": "update/weight", "dead_units": "dead ReLU"}
    used = [c for c in columns if c in table]
    text = {"epoch": lambda v: fmt(int(v)), "dead_units": lambda v: percent(None if v is None else float(v))}
    rows = [[text.get(c, lambda v: fmt(float(v)))(v) for c, v in zip(used, row)]
            for row in table[used].itertuples(index=False)]
    return [columns[c] for c in used], rows
