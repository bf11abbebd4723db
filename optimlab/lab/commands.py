"""The glue between the ``optimlab`` command and the library: one function per command.

The CLI (:mod:`optimlab.cli`) checks what needs no TensorFlow first
(:mod:`optimlab.lab.arguments`), then calls these. Each command checks the
rest of its input and its output paths before any work and turns bad input
into one :class:`LabError` message (the CLI prints it and exits with status 2).
Where the work is:

* the training lab's commands (compare, sweep, tune, diagnose):
  :mod:`optimlab.lab.training_commands`, on a Runner made by :func:`make_runner`;
* ``converge``: the convergence lab (:mod:`optimlab.lab.convergence`);
* ``bench``: :mod:`optimlab.bench`; ``report``: :mod:`optimlab.lab.training.report`;
* output: :mod:`optimlab.lab.tables` (tables, numbers, progress bars, listings);
* optimizer names: :mod:`optimlab.lab.factory`; Ctrl-C: :mod:`optimlab._interrupt`.
"""

import importlib.util
from pathlib import Path

from rich.progress import Progress

from optimlab import _interrupt, registry
from optimlab import bench as benchmark
from optimlab._names import unknown
from optimlab.lab import factory, tables, training_commands
from optimlab.lab.convergence import functions, plots
from optimlab.lab.convergence import runner as convergence
from optimlab.lab.convergence import tuning as function_tuning
from optimlab.lab.arguments import (
    LabError,
    check_output_file,
    check_output_folder,
    check_report_folder,
    check_writable,
    parse_numbers,
    parse_options,
    user_errors,
)
from optimlab.lab.tables import fmt, show
from optimlab.lab.training import problems, report
from optimlab.lab.training.runner import experiments
from optimlab.lab.training_commands import compare, diagnose, sweep, tune

__all__ = ["LabError", "bench", "compare", "converge", "diagnose", "list_functions", "list_optimizers",
           "make_report", "make_runner", "set_command_line", "sweep", "tune"]


def set_command_line(line):
    """The running command with every option spelled out: what ``OUT/commands.txt`` records."""
    training_commands.COMMAND_LINE = line


def _installed(module):
    return importlib.util.find_spec(module) is not None


def make_runner(out, task, data=None, epochs=None, batch_size=None, standardize=None, valid_fraction=0.2,
                target=None, tensorboard=False, eval_every=None, jobs=1, ray=None, options=None, runs_per_program=1):
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
                                    tensorboard=tensorboard, jobs=jobs, ray=ray, runs_per_program=runs_per_program,
                                    **parse_options(options),
                                    on_note=lambda text: tables.console.print(text, highlight=False, markup=False,
                                                                              soft_wrap=True))
    _interrupt.count_saved_runs(runner)  # a Ctrl-C says how many of its runs were saved
    return runner


def list_optimizers(pattern="*", details=False, markdown=False):
    if markdown:
        tables.console.print(registry.markdown_table(), soft_wrap=True)
        return
    tables.list_optimizers(pattern, details, tables.console)


def list_functions():
    tables.list_functions(tables.console)


def bench(optimizers, shapes, repeats, steps, pause, isolate, out, steps_per_call=1):
    with user_errors():
        names = factory.names(optimizers)
    sets = [s.strip() for s in shapes.split(",") if s.strip()]
    if not sets:
        raise LabError(f"--shapes must name at least one shape set; got {shapes!r}")
    for name in sets:
        if name not in benchmark.SHAPE_SETS:
            raise LabError(f"--shapes: {unknown('shape set', name, sorted(benchmark.SHAPE_SETS))}")
    folder = check_output_folder(out)
    missing = [m for m in ("torch", "optax") if not _installed(m)]
    if missing:
        tables.say(f"note: {' and '.join(missing)} not installed, so those peers are left out; "
                   "pip install 'optimlab[peers]' to include them")
    with Progress(console=tables.progress_console) as progress:
        task = progress.add_task("benchmarking", total=len(names) * len(sets))
        results, bandwidth = benchmark.run(names, sets, repeats, steps, progress=lambda *_: progress.advance(task),
                                           pause=pause, isolate=isolate, steps_per_call=steps_per_call)
    frame = benchmark.table(results, bandwidth)
    frame.to_csv(folder / "bench.csv", index=False)
    benchmark.plot(frame, folder / "bench.png")
    for set_name, bw in bandwidth.items():
        tables.console.print(f"{set_name}: measured bandwidth {bw / 1e9:.1f} GB/s", highlight=False)
    rows = [(r.optimizer, r.shapes, r.implementation, fmt(r.median_ms), f"{fmt(r.min_ms)}-{fmt(r.max_ms)}",
             fmt(r.ratio_to_best_peer, 3), fmt(r.ratio_to_bandwidth_bound, 3), fmt(r.state_bytes_per_param, 3))
            for r in frame.itertuples()]
    calls = "each step its own call" if steps_per_call == 1 else f"{steps_per_call} steps per call"
    show(f"median step time (ms) per implementation, {repeats} interleaved repeats, {calls}", (
        "optimizer", "shapes", "implementation", "ms", "min-max", "x best peer", "x bound", "state B/param"),
         rows, numeric=("ms", "x best peer", "x bound", "state B/param"))
    notes = [f"{r.optimizer} {r.shapes} {r.implementation}: {r.note}" for r in frame.itertuples() if r.note]
    for note in notes:
        tables.console.print(f"  {note}", overflow="fold", highlight=False)
    brief = benchmark.summary(frame)
    brief.to_csv(folder / "summary.csv", index=False)
    rows = [(r["optimizer"], r["shapes"], r["optimlab"], fmt(r["optimlab_ms"]), str(r.get("best_peer", "-")),
             fmt(r.get("peer_ms")), fmt(r.get("ratio"), 3)) for _, r in brief.iterrows()]
    show("best optimlab path against the best peer", ("optimizer", "shapes", "optimlab", "ms", "best peer",
                                                      "peer ms", "ratio"), rows, numeric=("ms", "peer ms", "ratio"))
    tables.console.print(f"wrote {folder / 'bench.csv'}, {folder / 'summary.csv'} and {folder / 'bench.png'}",
                  overflow="fold", highlight=False)


def make_report(out):
    report.make_report(out, tables.console)


def converge(function, optimizers, lrs, init=None, max_iters=2000, dim=None, step_tol=0.0, grad_tol=None,
             optimum_tol=None, explosion="seed", tune=False, plot=None, svg=False, eager=False):
    with user_errors():
        fn = functions.get_function(function, dim=dim)
        names = factory.names(optimizers)
        rates = parse_numbers(lrs, "--lrs")
        start = None if init is None else parse_numbers(init, "--init")
        if plot:
            check_output_file(plot, "--plot", (".png", ".svg"))
            plots.check_plot_target(fn, plot)
    options = dict(init=None if start is None else (start[0] if len(start) == 1 else start),
                   max_iters=max_iters, step_tol=step_tol, grad_tol=grad_tol, optimum_tol=optimum_tol,
                   explosion=explosion, compiled=not eager)
    with Progress(console=tables.progress_console, transient=True) as progress, user_errors():
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
    notes = {}  # one line per optimizer: why its runs ran alone or eagerly
    for (name, _), r in results.items():
        if r.note:
            notes.setdefault(name, r.note)
    for name, note in notes.items():
        tables.say(f"note: {name} {note}")
    if plot:
        with user_errors():
            for path in plots.write_convergence_plots(results, fn, plot, svg=svg, max_iters=max_iters, tuned=tune):
                tables.console.print(f"wrote {path}", highlight=False, overflow="fold")
