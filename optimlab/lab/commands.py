"""The work behind each ``optimlab`` command: checks first, then progress, then summaries.

The CLI parses options and calls these. Each command checks all of its input
and its output paths before any work, and turns bad input into one
:class:`LabError` message (the CLI prints it and exits with status 2).
Tables go through :func:`show`, which never cuts a value: a table wider than
the terminal (80 columns when the output is piped) is printed as one block of
``name: value`` lines per row instead.
"""

import contextlib
import inspect
import math
import shlex
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from optimlab import registry
from optimlab._names import did_you_mean, unknown
from optimlab.lab import tables
from optimlab.lab.arguments import (  # noqa: F401 - part of this module's interface
    LabError,
    check_output_file,
    check_output_folder,
    check_report_folder,
    check_writable,
    parse_clipnorm,
    parse_list,
    parse_settings,
)
from optimlab.lab.training import analysis, problems, records, report
from optimlab.lab.training.analysis import verdict
from optimlab.lab.training.runner import experiments, tuning

console = Console()
progress_console = Console(stderr=True)
BOSTON_NOTE = ("Note: Boston housing's b column encodes a racial statistic; it is kept only so that results "
               "compare with the literature.")
_session = {"runner": None}
COMMAND_LINE = None  # set by the CLI: the running command with every option spelled out


@contextlib.contextmanager
def user_errors():
    """Re-raise the library's argument and data errors as :class:`LabError`."""
    try:
        yield
    except (ValueError, TypeError, FileNotFoundError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        raise LabError(" ".join(str(message).split())) from error  # one line on the terminal


def saved_runs():
    """Runs computed and saved by this command so far (for the Ctrl-C message)."""
    runner = _session["runner"]
    return runner.computed if runner is not None else 0


def interrupted_message():
    """What a Ctrl-C tells: runs saved and how to resume for commands that save runs, else just the stop."""
    if _session["runner"] is None:  # converge, bench, report, listings: nothing to resume
        return "interrupted"
    return f"interrupted: {saved_runs()} runs saved; rerun the same command to resume"


# ------------------------------------------------------------------ checks
def resolve_optimizers(text, option="--optimizers"):
    """Registered names from ``"adam,sgd"``, wildcards (``"adam*"``) or ``"all"``; LabError otherwise."""
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise LabError(f"{option} must name at least one optimizer; got {text!r}")
    names = []
    for item in items:
        if ":" in item:  # package.module:Class, an optimizer class of one's own
            with user_errors():
                found = experiments.check_optimizers([item])
        elif item.lower() == "all":
            found = registry.names()
        elif any(c in item for c in "*?["):
            found = registry.names(item)
            if not found:
                raise LabError(f"{option}: no optimizer matches {item!r} (see optimlab optimizers)")
        else:
            with user_errors():
                found = [registry.info(item).name]
        names += [n for n in found if n not in names]
    return names


def hyperparameters_of(name):
    """Every keyword the optimizer's constructor takes, its own and its bases' (not ``name``)."""
    keys = set()
    for cls in registry.info(name).cls.__mro__:
        if "__init__" in vars(cls):
            keys |= {k for k, p in inspect.signature(cls.__init__).parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in ("self", "name")}
    return keys


def check_settings(names, settings):
    """Every ``--set`` key is a hyperparameter of every optimizer; LabError with a suggestion otherwise."""
    for name in names:
        if ":" in name:  # an own class: its constructor checks its arguments
            continue
        allowed = hyperparameters_of(name)
        for key in settings:
            if key not in allowed:
                own = sorted(set(inspect.signature(registry.info(name).cls.__init__).parameters) - {"self", "name", "kwargs"})
                raise LabError(f"--set {key}: {name} has no hyperparameter {key!r}{did_you_mean(key, allowed)} "
                               f"; {name}'s own: {', '.join(own)}")


def log_command(out):
    """Append the command line to ``OUT/commands.txt`` (the report's context block shows it)."""
    line = COMMAND_LINE or shlex.join(["optimlab", *sys.argv[1:]])
    Path(out).mkdir(parents=True, exist_ok=True)  # the first write of a command: every check has passed
    with open(Path(out) / "commands.txt", "a") as f:
        f.write(line + "\n")


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


def make_runner(out, task, data=None, epochs=None, batch_size=None, standardize=None, valid_fraction=0.2,
                target=None, tensorboard=False, eval_every=None, jobs=1, ray=None, options=None):
    """A Runner from CLI options (``batch_size`` 0 = full batch, None = the problem's), checked first."""
    with user_errors():
        problem = problems.get(task)
    if data is not None and not problem.needs_data:
        reads = ", ".join(p.name for p in problems.PROBLEMS.values() if p.needs_data)
        raise LabError(f"--data is only read by tasks with a data file ({reads}); task {task!r} has its data built in")
    if tensorboard and not _installed("tensorboard"):
        raise LabError("--tensorboard needs the tensorboard package: pip install 'optimlab[tensorboard]'")
    check_writable(out)  # created by the first write, once every check has passed: a refused command leaves nothing
    with user_errors():
        batch = "problem" if batch_size is None else (None if batch_size == 0 else batch_size)
        runner = experiments.Runner(out, problem, data=data, epochs=epochs, batch_size=batch, eval_every=eval_every,
                                    target=target, standardize=standardize, valid_fraction=valid_fraction,
                                    tensorboard=tensorboard, jobs=jobs, ray=ray, **parse_options(options))
    _session["runner"] = runner
    return runner


def _installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


# ------------------------------------------------------------------ output
def fmt(value, digits=4):
    """A number with ``digits`` significant digits; ``-`` for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


def percent(share):
    return "-" if share is None or (isinstance(share, float) and math.isnan(share)) else f"{share:.0%}"


def show(title, headers, rows, numeric=(), out=None):
    """Print a table that never cuts a value, on ``out`` (default: this module's console); see :func:`tables.show`."""
    tables.show(title, headers, rows, numeric, out or console)


def _counts(running, diverged, retried):
    """``"2 running, 1 diverged"`` (``", 1 retried"`` after a lost worker): the progress bar's counts in words."""
    text = f"{running} running, {diverged} diverged"
    return text + (f", {retried} retried" if retried else "")


@contextlib.contextmanager
def progress_for(runner, total, label, done=0):
    """One progress bar (on stderr) for all runs, here, in worker processes or on a cluster.

    It starts at ``done`` (work finished by an earlier, interrupted command) and
    shows runs done of the total, how many are running, how many diverged (a
    result, not a fault) and how many were retried after losing their worker,
    and the time left. It fits 80 columns, e.g.
    ``compare adam  ━━━━━━━━ 12/36 2 running, 1 diverged 0:00:41``.
    """
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=8), MofNCompleteColumn(),
               TextColumn("{task.fields[counts]}"), TimeRemainingColumn())
    counts = {"running": 0, "diverged": 0, "retried": 0}
    with Progress(*columns, console=progress_console, transient=False) as progress:
        task = progress.add_task(label, total=total, completed=done, counts=_counts(**counts))

        def update(**fields):
            progress.update(task, counts=_counts(**counts), **fields)

        def on_start():
            counts["running"] += 1
            update()

        def on_retry():
            counts["running"] = max(0, counts["running"] - 1)
            counts["retried"] += 1
            update()

        def on_run(record, computed):
            if computed:
                counts["running"] = max(0, counts["running"] - 1)
            counts["diverged"] += record["status"] != "ok"
            update(advance=1, description=f"{label} {record['spec']['optimizer']}"[:14])

        runner.on_run, runner.on_start, runner.on_retry = on_run, on_start, on_retry
        try:
            yield
        finally:
            runner.close()


# ------------------------------------------------------------------ library commands
def list_optimizers(pattern="*", details=False, markdown=False):
    if markdown:
        console.print(registry.markdown_table(), soft_wrap=True)
        return
    tables.list_optimizers(pattern, details, console)


def bench(optimizers, shapes, repeats, steps, pause, isolate, out):
    from optimlab import bench as benchmark

    names = resolve_optimizers(optimizers)
    sets = [s.strip() for s in shapes.split(",") if s.strip()]
    if not sets:
        raise LabError(f"--shapes must name at least one shape set; got {shapes!r}")
    for name in sets:
        if name not in benchmark.SHAPE_SETS:
            raise LabError(f"--shapes: {unknown('shape set', name, sorted(benchmark.SHAPE_SETS))}")
    folder = check_output_folder(out)
    missing = [m for m in ("torch", "optax") if not _installed(m)]
    if missing:
        console.print(f"note: {' and '.join(missing)} not installed, so those peers are left out; "
                      "pip install 'optimlab[peers]' to include them", highlight=False, markup=False)
    with Progress(console=progress_console) as progress:
        task = progress.add_task("benchmarking", total=len(names) * len(sets))
        results, bandwidth = benchmark.run(names, sets, repeats, steps, progress=lambda *_: progress.advance(task),
                                           pause=pause, isolate=isolate)
    frame = benchmark.table(results, bandwidth)
    frame.to_csv(folder / "bench.csv", index=False)
    benchmark.plot(frame, folder / "bench.png")
    for set_name, bw in bandwidth.items():
        console.print(f"{set_name}: measured bandwidth {bw / 1e9:.1f} GB/s", highlight=False)
    rows = [(r.optimizer, r.shapes, r.implementation, fmt(r.median_ms), fmt(r.ratio_to_best_peer, 3),
             fmt(r.ratio_to_bandwidth_bound, 3), fmt(r.state_bytes_per_param, 3)) for r in frame.itertuples()]
    show("median step time (ms) per implementation", ("optimizer", "shapes", "implementation", "ms",
                                                      "x best peer", "x bound", "state B/param"),
         rows, numeric=("ms", "x best peer", "x bound", "state B/param"))
    notes = [f"{r.optimizer} {r.shapes} {r.implementation}: {r.note}" for r in frame.itertuples() if r.note]
    for note in notes:
        console.print(f"  {note}", overflow="fold", highlight=False)
    brief = benchmark.summary(frame)
    brief.to_csv(folder / "summary.csv", index=False)
    rows = [(r["optimizer"], r["shapes"], r["optimlab"], fmt(r["optimlab_ms"]), str(r.get("best_peer", "-")),
             fmt(r.get("peer_ms")), fmt(r.get("ratio"), 3)) for _, r in brief.iterrows()]
    show("best optimlab path against the best peer", ("optimizer", "shapes", "optimlab", "ms", "best peer",
                                                      "peer ms", "ratio"), rows, numeric=("ms", "peer ms", "ratio"))
    console.print(f"wrote {folder / 'bench.csv'}, {folder / 'summary.csv'} and {folder / 'bench.png'}",
                  overflow="fold", highlight=False)


# ------------------------------------------------------------------ training lab
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
        console.print(sentence, highlight=False)
    console.print(f"{runner.computed} runs computed, {runner.reused} reused from {runner.out}/records.",
                  highlight=False)
    report_hint(runner.out)
    if runner.problem == "boston":
        console.print(BOSTON_NOTE)


def report_hint(out):
    """The command that writes the report, on its own line and never wrapped (so it copies whole)."""
    console.print("Report:", highlight=False)
    console.print(f"  optimlab report {shlex.quote(str(out))}", soft_wrap=True, highlight=False, markup=False)


def compare(runner, optimizers, seeds, lrs, clipnorm, settings=None):
    names = resolve_optimizers(optimizers)
    extra = parse_settings(settings)
    check_settings(names, extra)
    clip = parse_clipnorm(clipnorm)
    learning_rates = None if str(lrs).strip().lower() == "default" else \
        parse_list("--lrs", lrs, float, none_ok=False, allowed="positive numbers or 'default'")
    with user_errors():
        runner.data_split()
    log_command(runner.out)
    # Selection runs with seed 0, then the winner's seeds; the winner's seed 0 is its selection run (one run).
    selecting = learning_rates is not None and len(learning_rates) > 1
    per_optimizer = (len(learning_rates) - 1 if selecting else 0) + seeds
    with progress_for(runner, per_optimizer * len(names), "compare"), user_errors():
        result = experiments.compare(runner, names, seeds, learning_rates, extra={**extra, "clipnorm": clip})
    print_summary(runner, {r["key"] for v in result.values() for r in v["records"]})


def sweep(runner, optimizer, lrs, seeds, clipnorms, settings=None):
    names = resolve_optimizers(optimizer, "--optimizer")
    if len(names) != 1:
        raise LabError(f"--optimizer takes one optimizer for a sweep; {optimizer!r} names {len(names)}")
    extra = parse_settings(settings)
    check_settings(names, extra)
    learning_rates = parse_list("--lrs", lrs, float, none_ok=False, allowed="positive numbers")
    clips = parse_list("--clipnorm", clipnorms, float)
    with user_errors():
        runner.data_split()
    log_command(runner.out)
    with progress_for(runner, len(learning_rates) * len(clips) * seeds, "sweep"), user_errors():
        recs = experiments.sweep(runner, names[0], learning_rates, seeds, clips, extra=extra)
    runs = analysis.runs_table(recs)
    table = runs.groupby(["optimizer", "config"], sort=False).agg(
        seeds=("seed", "nunique"), diverged=("diverged", "mean"), train_loss=("train_loss", "median"),
        valid_loss=("valid_loss", "median"), test_loss=("test_loss", "median")).reset_index()
    rows = [(r["config"], str(r["seeds"]), percent(r["diverged"]), fmt(r["train_loss"]), fmt(r["valid_loss"]),
             fmt(r["test_loss"])) for _, r in table.iterrows()]
    show(f"{runner.problem}, {names[0]}: final losses (medians over seeds)",
         ("config", "seeds", "diverged", "train loss", "validation loss", "test loss"), rows,
         numeric=("seeds", "diverged", "train loss", "validation loss", "test loss"))
    console.print(f"{runner.computed} runs computed, {runner.reused} reused.", highlight=False)
    report_hint(runner.out)
    if runner.problem == "boston":
        console.print(BOSTON_NOTE)


def tune(runner, optimizers, trials, sampler, lr_low, lr_high, storage, clipnorm, settings=None):
    names = resolve_optimizers(optimizers)
    extra = parse_settings(settings)
    check_settings(names, extra)
    clip = parse_clipnorm(clipnorm)
    if sampler not in tuning.SAMPLERS:
        raise LabError(f"--sampler: {unknown('sampler', sampler, tuning.SAMPLERS)}")
    if not 0 < lr_low < lr_high:
        raise LabError(f"--lr-low and --lr-high must satisfy 0 < low < high; got {lr_low} and {lr_high}")
    with user_errors():
        runner.data_split()
    if storage is not None:
        open_storage(storage)
    log_command(runner.out)
    url = storage or tuning.default_storage(runner.out)
    earlier = [tuning.finished_trials(tuning.study_name(runner.problem, n, sampler), url) for n in names]
    with progress_for(runner, trials * len(names), "tune", done=sum(min(trials, n) for n in earlier)), user_errors():
        result = tuning.tune(runner, names, trials, sampler, (lr_low, lr_high), storage,
                             extra={**extra, "clipnorm": clip})
    rows = [(name, fmt(r["best_learning_rate"]), fmt(r["best_value"]), str(r["complete"]), str(r["diverged"]))
            for name, r in result.items()]
    show(f"{runner.problem}: tuning ({sampler}, {trials} trials each)",
         ("optimizer", "best learning rate", "validation loss", "complete trials", "diverged trials"), rows,
         numeric=("best learning rate", "validation loss", "complete trials", "diverged trials"))
    console.print(f"{trial_counts(result, runner, sum(earlier))}.", highlight=False)
    report_hint(runner.out)
    if storage is None:
        console.print(f"Browse the studies: optuna-dashboard {runner.out / 'tuning.db'}", highlight=False,
                      overflow="fold")
    else:
        console.print(f"Storage: {storage}", highlight=False, overflow="fold")


def open_storage(url):
    """Open the Optuna storage at ``url`` once, before anything is written; LabError naming it and why not.

    (A wrong scheme, a missing driver, a refused connection or a wrong password
    would otherwise surface as a long SQLAlchemy traceback after the first files.)
    """
    import optuna

    from optimlab.lab.training.runner import tuning

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
    import numpy as np

    from optimlab.lab.training.analysis import diagnostics

    (name,) = resolve_optimizers(optimizer, "--optimizer")
    settings = parse_settings(settings)
    check_settings([name], settings)
    with user_errors():
        runner.data_split()
        hyper = {**settings, "clipnorm": parse_clipnorm(clipnorm),
                 "learning_rate": experiments.default_learning_rate(name) if lr is None else lr}
        experiments.make_optimizer(name, hyper)
        record = runner.run(name, hyper, seed)
    base = (record.get("diagnostics") or {}).get("baseline")
    if base:
        values = ", ".join(f"{k.replace('_', ' ')} {fmt(v)}" for k, v in base.items() if k != "kind")
        console.print(f"naive baseline ({base['kind']}): {values}", highlight=False)
    found = diagnostics.flags(record)
    state = "finished" if record["status"] == "ok" else record["status"]
    state += f"; flags: {', '.join(f['flag'] for f in found)}" if found else "; no flags"
    headers, rows = history_rows(record["history"])
    show(f"{runner.problem}: {name} {analysis.config_label(record['spec']['hyperparameters'])} seed {seed} "
         f"({state})", headers, rows, numeric=headers)
    layers = (record.get("diagnostics") or {}).get("layers") or {}
    if layers:
        rows = []
        for layer, ratios in layers.items():
            ratios = [r for r in ratios[1:] if r is not None] or [math.nan]
            rows.append([layer, fmt(ratios[0]), fmt(float(np.median(ratios))), fmt(ratios[-1])])
        show("update / weight per layer since the previous evaluation", ["layer", "first", "median", "last"], rows,
             numeric=["first", "median", "last"])
    for f in found:
        console.print(f"[bold]{f['flag']}[/bold] from epoch {f['epoch']}: {f['detail']}.\n  suggestion: "
                      f"{f['suggestion']}", highlight=False)
    if not found:
        console.print("no flags: no divergence, explosion, collapse or plateau")
    console.print(f"record: {records.record_path(runner.out, record['spec'])}", highlight=False, overflow="fold")
    return record


def history_rows(history, shown=12):
    """Headers and about ``shown`` rows of a run's evaluations for :func:`diagnose`'s table.

    Each shown row stands for the evaluations since the previous shown row: its
    "worst epoch" is the largest training loss of any epoch among them, so a
    one-epoch explosion between two shown rows still shows (the other columns
    are the values at that evaluation). "dead ReLU" is a share, printed as a percent.
    """
    import numpy as np
    import pandas as pd

    history = pd.DataFrame(history)
    picks = sorted(set(np.linspace(0, len(history) - 1, min(len(history), shown)).astype(int)))
    table = history.iloc[picks].copy()
    if "train_loss_max" in history:
        worst = history["train_loss_max"].astype(float).to_numpy()
        starts = [0, *(p + 1 for p in picks[:-1])]
        table["train_loss_max"] = [worst[a:b + 1].max() for a, b in zip(starts, picks)]  # NaN if any is NaN
    columns = {"epoch": "epoch", "train_loss": "train loss", "train_loss_max": "worst epoch",
               "grad_norm": "grad norm", "update_ratio": "update/weight", "dead_units": "dead ReLU"}
    used = [c for c in columns if c in table]
    text = {"epoch": lambda v: fmt(int(v)), "dead_units": lambda v: percent(None if v is None else float(v))}
    rows = [[text.get(c, lambda v: fmt(float(v)))(v) for c, v in zip(used, row)]
            for row in table[used].itertuples(index=False)]
    return [columns[c] for c in used], rows


def make_report(out):
    folder = Path(out)
    check_report_folder(out)
    check_output_folder(folder)
    with user_errors():
        path = report.write_report(folder)
    console.print(f"wrote {path} and PNGs under {path.parent / 'figures'}", highlight=False, overflow="fold")


# ------------------------------------------------------------------ convergence lab
def list_functions():
    tables.list_functions(console)


def converge(function, optimizers, lrs, init=None, max_iters=2000, dim=None, step_tol=0.0, grad_tol=None,
             optimum_tol=None, explosion="seed", tune=False, plot=None, svg=False, eager=False):
    from optimlab.lab.convergence import functions, plots
    from optimlab.lab.convergence import runner as convergence
    from optimlab.lab.convergence import tuning as function_tuning

    with user_errors():
        fn = functions.get_function(function, dim=dim)
        names = resolve_optimizers(optimizers)
        rates = convergence.parse_numbers(lrs, "--lrs")
        start = None if init is None else convergence.parse_numbers(init, "--init")
        if plot:
            check_output_file(plot, "--plot", (".png", ".svg"))
            plots.check_plot_target(fn, plot)
    options = dict(init=None if start is None else (start[0] if len(start) == 1 else start),
                   max_iters=max_iters, step_tol=step_tol, grad_tol=grad_tol, optimum_tol=optimum_tol,
                   explosion=explosion, compiled=not eager)
    with Progress(console=progress_console, transient=True) as progress, user_errors():
        if tune:
            task = progress.add_task("tuning learning rates", total=len(names))
            rates = function_tuning.tune_learning_rates(names, fn, grid=rates,
                                                        on_result=lambda *_: progress.advance(task), **options)
        task = progress.add_task("convergence tests", total=len(names) * (1 if tune else len(rates)))
        results = convergence.run_grid(names, fn, rates, on_result=lambda *_: progress.advance(task), **options)
    rows = [(name, f"{rate:g}", r.status, str(r.iterations), fmt(r.final_loss, 6), fmt(r.distance, 3),
             "yes" if r.compiled else "no") for (name, rate), r in results.items()]
    show(f"{fn.name} from {options['init'] if start else fn.start}, max_iters={max_iters}",
         ("optimizer", "lr", "status", "iterations", "final loss", "distance to min", "compiled"), rows,
         numeric=("lr", "iterations", "final loss", "distance to min"))
    if plot:
        with user_errors():
            for path in plots.write_convergence_plots(results, fn, plot, svg=svg, max_iters=max_iters, tuned=tune):
                console.print(f"wrote {path}", highlight=False, overflow="fold")


__all__ = ["LabError", "bench", "compare", "converge", "interrupted_message", "list_functions", "list_optimizers",
           "make_report", "make_runner", "saved_runs", "show", "sweep", "tune"]
