"""The ``optimlab`` command: one Typer app; each command's work is done in the library.

Only Typer and the TensorFlow-free checks (:mod:`optimlab.lab.arguments`), listings and
Ctrl-C handling are imported here: TensorFlow loads when a command starts its work
(quietly, see :mod:`optimlab._quiet`), so ``optimlab --help``, ``--version``
and option errors answer at once. Every command checks its input and its output
paths before any work; bad input is one line on stderr and exit status 2, a
Ctrl-C stops at the next safe point with exit status 130.

Example::

    optimlab compare --task iris --optimizers adam,sgd --lrs 1e-2,1e-1
"""

import atexit
import contextlib
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

from optimlab import _interrupt

# This process is the command (``optimlab ...`` or ``python -m optimlab ...``), not a program importing it: a
# Ctrl-C is watched from here on, before Typer, Rich and the checks load (a press now exits with status 130).
_IS_COMMAND = Path(sys.argv[0]).name == "optimlab" or Path(sys.argv[0]).parts[-2:] == ("optimlab", "__main__.py")
if _IS_COMMAND:
    _interrupt.start_up(exit_now=True)

import typer  # noqa: E402
from rich.console import Console  # noqa: E402

from optimlab import __version__, _quiet  # noqa: E402
from optimlab.lab import arguments, tables  # noqa: E402

# Plain (click) help: at 80 columns Rich's option panels cut option names and defaults ("--optim…") and
# Typer's panels show a type after each flag ("--svg <bool>"); the plain layout wraps every line whole.
app = typer.Typer(
    rich_markup_mode=None,
    help="optimlab: optimizers on TensorFlow/Keras 3 and a lab to test and compare them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"verbose": False}
TASKS = ("boston, diabetes, digits, breast_cancer, wine, iris, quadratic, classification, the DeepOBS ones "
         "(quadratic_deep, two_d_rosenbrock, mnist_mlp, fmnist_2c2d, cifar10_3c3d, ...), or package.module:attribute "
         "naming your own optimlab.lab.Problem")


def _version(value: bool):
    if value:
        typer.echo(f"optimlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show TensorFlow, absl and Optuna log lines")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="print the version and exit")] = False,
):
    """optimlab: optimizers on TensorFlow/Keras 3 and a lab to test and compare them."""
    _state["verbose"] = verbose


def _report():
    """The report module: it reads JSON records and draws, without TensorFlow (imported when the command runs)."""
    from optimlab.lab.training import report

    return report


def _commands():
    """The library's command glue, imported (with TensorFlow, quietly) when a command runs.

    In the command, a Ctrl-C during the import exits at once with status 130
    (nothing is written yet); elsewhere one that a library swallowed on the way
    (a bare ``except`` around an optional import) stops the command here.
    """
    with _interrupt.exit_at_once(_IS_COMMAND):  # never an exception through TensorFlow's start-up
        _quiet.import_libraries(_state["verbose"])
        from optimlab.lab import commands  # imports TensorFlow: here, after _quiet, so --help and listings stay fast

    if _interrupt.untold():
        raise KeyboardInterrupt
    return commands


def _command_line(ctx):
    """The running command with every option spelled out (defaults included), for the report."""
    words = ["optimlab", ctx.info_name]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        if value is None or value == [] or (isinstance(value, (list, tuple)) and not value):
            continue
        if param.param_type_name == "argument":
            words.append(str(value))
        elif getattr(param, "is_flag", False) and param.secondary_opts:
            words.append(param.opts[0] if value else param.secondary_opts[0])
        elif getattr(param, "is_flag", False):
            words += [param.opts[0]] if value else []
        else:
            for item in value if isinstance(value, (list, tuple)) else [value]:
                words += [param.opts[0], str(item)]
    return shlex.join(words)


def _run(ctx, work, safe_points=True, static=False, **checks):
    """Run ``work(commands)``: bad input -> one line + exit 2; Ctrl-C -> clean stop + exit 130.

    ``checks`` go to :func:`optimlab.lab.arguments.precheck` first, before TensorFlow is imported.
    With ``safe_points`` the work checks for a Ctrl-C itself (between runs, and inside
    compiled loops: :mod:`optimlab._interrupt`); without, a Ctrl-C interrupts it where it is.
    ``static`` work needs no TensorFlow (the listings, read from :mod:`optimlab.lab.catalog`, and
    the report, which reads JSON records and draws): ``work(tables, console)``.
    """
    _interrupt.count_saved_runs(None)  # until this command makes a Runner (make_runner): nothing to resume
    try:
        arguments.precheck(**checks)
        if static:
            work(tables, Console())
            return
        commands = _commands()
        commands.set_command_line(_command_line(ctx))
        with _interrupt.graceful() if safe_points else contextlib.nullcontext():
            work(commands)
    except arguments.LabError as error:  # commands.LabError is this class
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(_interrupt.stopped(), err=True)
        raise typer.Exit(130) from None


# ---------------------------------------------------------------- options
# Each option that several commands take is defined once here, with its name, type and help; a command
# lists it with its default, e.g. ``epochs: Epochs = None`` (Typer's Annotated style).
Task = Annotated[str, typer.Option("--task", metavar="TASK", help=f"problem: {TASKS}")]
Optimizers = Annotated[str, typer.Option("--optimizers", metavar="NAMES",
                                         help="comma-separated names or wildcards ('adam*', 'all'), or "
                                         "package.module:Class (your own Keras/optimlab optimizer class)")]
Clipnorm = Annotated[str, typer.Option("--clipnorm", metavar="NORM",
                                       help="clip each gradient to this L2 norm; 'none' for no clipping")]
Epochs = Annotated[Optional[int], typer.Option("--epochs", metavar="N", min=1,
                                               help="epochs per run (default: the problem's budget)")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", metavar="N", min=0,
                                                  help="minibatch size; 0 = full batch (default: the problem's)")]
Standardize = Annotated[Optional[bool], typer.Option("--standardize/--raw", help="standardize inputs, or raw features "
                                                     "as in the Boston housing chapter (default: the problem's)")]
ValidFraction = Annotated[float, typer.Option("--valid-fraction", metavar="FRACTION",
                                              help="share of training rows held out for selection (0: none)")]
Target = Annotated[Optional[float], typer.Option("--target", metavar="LOSS",
                                                 help="validation loss counted as reached (default: the problem's)")]
Data = Annotated[Optional[str], typer.Option("--data", metavar="FILE",
                                             help="Boston CSV or Keras .npz (boston only; default: "
                                             "$OPTIMLAB_BOSTON, the Keras cache, a download)")]
TensorBoard = Annotated[bool, typer.Option("--tensorboard", help="also write TensorBoard logs under OUT/tensorboard "
                                           "(needs tensorboard)")]
EvalEvery = Annotated[Optional[int], typer.Option("--eval-every", metavar="N", min=1,
                                                  help="epochs between evaluations (default: ~100 per run)")]
Settings = Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=NUMBER",
                                                       help="optimizer hyperparameter KEY=NUMBER, repeatable "
                                                       "(e.g. --set momentum=0.98)")]
Jobs = Annotated[int, typer.Option("--jobs", metavar="N", min=1,
                                   help="worker processes on this machine (see README: Running at "
                                   "scale)")]
Ray = Annotated[Optional[str], typer.Option("--ray", metavar="ADDRESS",
                                            help="run on a Ray cluster: its ADDRESS, or auto (see README: "
                                            "Running at scale)")]
RunsPerProgram = Annotated[int, typer.Option(
    "--runs-per-program", metavar="N", min=1,
    help="train up to N runs of one optimizer configuration side by side in one compiled program, e.g. 16 (records "
    "equal the runs alone; 1: one run per program; see README: Running at scale)")]
TrainingOptions = Annotated[Optional[list[str]], typer.Option(
    "--option", metavar="KEY=VALUE",
    help="training option KEY=VALUE, repeatable: batchnorm=true, mixup=ALPHA, label_smoothing=EPS, "
    "schedule=Name:arg=NUMBER,... (a Keras or optimlab schedule from each run's learning rate)")]


def _out(folder):
    """The ``--out`` option of a command whose records go to ``runs/{folder}`` by default."""
    return Annotated[Optional[str], typer.Option("--out", metavar="FOLDER",
                                                 help=f"output folder (records, report); default runs/{folder}")]


# The options that set up a training run: the keywords of optimlab.lab.commands.make_runner.
_RUNNER_OPTIONS = ("task", "data", "epochs", "batch_size", "standardize", "valid_fraction", "target", "tensorboard",
                   "eval_every", "jobs", "ray", "runs_per_program", "options")


def _runner_options(ctx):
    """The runner's keywords among the command's options (``ctx.params``); those it lacks keep make_runner's defaults."""
    return {name: ctx.params[name] for name in _RUNNER_OPTIONS if name in ctx.params}


# ---------------------------------------------------------------- library
@app.command("optimizers", short_help="List the registered optimizers, or one in full.")
def optimizers_command(
    ctx: typer.Context,
    pattern: Annotated[str, typer.Argument(metavar="PATTERN", hidden=True)] = "*",  # the help says it: no "<str>"
    details: Annotated[bool, typer.Option("--details", help="paper, link, capabilities and defaults of each match")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="print the README's table of all optimizers")] = False,
):
    """List registered optimizers (one line each; --details or one name for the full entry).

    PATTERN: a name or wildcard, e.g. 'adam*' (default: all).
    """
    if markdown:  # generated from the registry itself
        _run(ctx, lambda c: c.list_optimizers(pattern, details, markdown), safe_points=False)
        return
    _run(ctx, lambda tables, console: tables.list_optimizers(pattern, details, console), static=True, pattern=pattern)


@app.command("bench", short_help="Time optimizer steps against Keras, TF, torch and Optax.")
def bench_command(
    ctx: typer.Context,
    optimizers: Annotated[str, typer.Option(metavar="NAMES",
                                            help="comma-separated names or wildcards ('all')")] = "adam,sgd,rmsprop",
    shapes: Annotated[str, typer.Option(metavar="SETS", help="shape sets: large (ResNet-50-like, ~25M params), "
                                        "small (MLP)")] = "large,small",
    repeats: Annotated[int, typer.Option(metavar="N", min=1,
                                         help="interleaved repetitions; the median is reported")] = 7,
    steps: Annotated[int, typer.Option(metavar="N", min=1, help="calls per timed repetition, at least (each "
                                       "makes --steps-per-call steps)")] = 3,
    pause: Annotated[float, typer.Option(metavar="SECONDS", min=0.0,
                                         help="idle seconds before each timed repetition")] = 0.05,
    isolate: Annotated[bool, typer.Option(help="measure each optimizer in a fresh process (bounded memory)")] = True,
    steps_per_call: Annotated[int, typer.Option(metavar="K", min=1, help="steps per call: 1 times each step as "
                                                "its own call; K > 1 runs K steps in one compiled loop (TF, Optax; "
                                                "torch loops in Python) and reports per step")] = 1,
    out: Annotated[str, typer.Option(metavar="FOLDER",
                                     help="folder for bench.csv, summary.csv and bench.png")] = "runs/bench",
):
    """Time optimizer steps against Keras 3, TF fused kernels, torch.optim and Optax."""
    _run(ctx, lambda c: c.bench(optimizers, shapes, repeats, steps, pause, isolate, out, steps_per_call),
         optimizers=optimizers, shapes=shapes, out=out)


# ---------------------------------------------------------------- training lab
@app.command("compare", short_help="Compare optimizers over paired seeds, each at its best lr.")
def compare_command(
    ctx: typer.Context,
    task: Task = "diabetes",
    optimizers: Optimizers = "sgd,momentum,adam",
    seeds: Annotated[Optional[int], typer.Option(
        metavar="N", min=1, help="paired seeds per optimizer (default: enough for the Holm-corrected Wilcoxon test "
        "to be able to show a difference at p < 0.05: 10, more for over 26 optimizers; with fewer than 6 seeds for "
        "2 optimizers, 7 for 3 or 4, 8 for 5 to 7, it never can)")] = None,
    lrs: Annotated[str, typer.Option("--lrs", "--lr", metavar="RATES",
                                     help="learning rates to select from on the validation split; "
                                     "'default' for each optimizer's own")] = "1e-3,1e-2,1e-1",
    clipnorm: Clipnorm = "none",
    epochs: Epochs = None, batch_size: BatchSize = None, standardize: Standardize = None,
    valid_fraction: ValidFraction = 0.2, target: Target = None, data: Data = None, out: _out("TASK") = None,
    tensorboard: TensorBoard = False, eval_every: EvalEvery = None, settings: Settings = None, jobs: Jobs = 1,
    ray: Ray = None, runs_per_program: RunsPerProgram = 1, options: TrainingOptions = None,
):
    """Compare optimizers: select each one's learning rate on validation, rerun it over paired seeds."""
    folder = out or f"runs/{task}"
    _run(ctx, lambda c: c.compare(c.make_runner(folder, **_runner_options(ctx)), optimizers, seeds, lrs, clipnorm,
                                  settings),
         task=task, optimizers=optimizers, out=folder, lrs=lrs, clipnorm=clipnorm, settings=settings, data=data,
         options=options, valid_fraction=valid_fraction)


@app.command("sweep", short_help="Sweep the learning rate and any other hyperparameters of one optimizer.")
def sweep_command(
    ctx: typer.Context,
    task: Task = "diabetes",
    optimizer: Annotated[str, typer.Option("--optimizer", "--optimizers", metavar="NAME",
                                           help="registered name")] = "gd",
    lrs: Annotated[str, typer.Option("--lrs", "--lr", metavar="RATES", help="comma-separated learning rates")] = \
        "1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9",
    clipnorm: Annotated[str, typer.Option(metavar="NORMS",
                                          help="comma-separated clipnorm values, 'none' for no clipping, e.g. "
                                          "none,2")] = "none",
    grid: Annotated[Optional[list[str]], typer.Option(
        "--grid", metavar="NAME=V1,V2", help="also sweep this constructor argument (or clipnorm) over these values, "
        "repeatable; every combination is run (e.g. --grid momentum=0.9,0.99 --grid nesterov=false,true)")] = None,
    seeds: Annotated[int, typer.Option(metavar="N", min=1, help="seeds per setting")] = 1,
    epochs: Epochs = None, batch_size: BatchSize = None, standardize: Standardize = None,
    valid_fraction: ValidFraction = 0.2, target: Target = None, data: Data = None, out: _out("TASK-sweep") = None,
    tensorboard: TensorBoard = False, eval_every: EvalEvery = None, settings: Settings = None, jobs: Jobs = 1,
    ray: Ray = None, runs_per_program: RunsPerProgram = 1, options: TrainingOptions = None,
):
    """Sweep the learning rate, clipping and --grid hyperparameters (their product), e.g. 1e-3 ... 1e-9 for gradient
    descent as in the Boston housing chapter."""
    folder = out or f"runs/{task}-sweep"
    _run(ctx, lambda c: c.sweep(c.make_runner(folder, **_runner_options(ctx)), optimizer, lrs, seeds, clipnorm,
                                settings, grid),
         task=task, optimizer=optimizer, out=folder, lrs=lrs, lrs_default=False, clipnorms=clipnorm,
         settings=settings, data=data, options=options, valid_fraction=valid_fraction, grid=grid)


@app.command("tune", short_help="Tune each optimizer's learning rate with Optuna; resumable.")
def tune_command(
    ctx: typer.Context,
    task: Task = "diabetes",
    optimizers: Optimizers = "sgd,momentum,adam",
    trials: Annotated[int, typer.Option(metavar="N", min=1,
                                        help="trials per optimizer (the same budget for each)")] = 10,
    sampler: Annotated[str, typer.Option(metavar="NAME", help="grid, random, tpe (multivariate) or cmaes "
                                         "(needs the cmaes package)")] = "tpe",
    space: Annotated[str, typer.Option(metavar="NAMES", help="what to tune: lr (the learning rate), full (the "
                                       "optimizer's whole search space) or names, e.g. "
                                       "learning_rate,beta_1,epsilon")] = "lr",
    pruner: Annotated[str, typer.Option(metavar="NAME", help="stop bad trials early: none, median, halving or "
                                        "hyperband (their epochs pay for more trials)")] = "none",
    seeds: Annotated[int, typer.Option(metavar="N", min=1, help="rerun each optimizer's best configuration on N "
                                       "seeds and compare them (1: tuning only)")] = 1,
    lr_low: Annotated[float, typer.Option(metavar="RATE", help="smallest learning rate")] = 1e-5,
    lr_high: Annotated[float, typer.Option(metavar="RATE", help="largest learning rate")] = 1.0,
    storage: Annotated[Optional[str], typer.Option(metavar="URL",
                                                   help="Optuna storage URL shared by several tune processes, e.g. "
                                                   "postgresql://... (default: sqlite OUT/tuning.db)")] = None,
    clipnorm: Clipnorm = "none",
    epochs: Epochs = None, batch_size: BatchSize = None, standardize: Standardize = None,
    valid_fraction: ValidFraction = 0.2, target: Target = None, data: Data = None, out: _out("TASK-tune") = None,
    tensorboard: TensorBoard = False, eval_every: EvalEvery = None, settings: Settings = None, jobs: Jobs = 1,
    ray: Ray = None, runs_per_program: RunsPerProgram = 1, options: TrainingOptions = None,
):
    """Tune each optimizer over its search space with Optuna at an equal budget; resumable.

    Tune on one seed, then rerun each winner on --seeds seeds and compare them.
    """
    folder = out or f"runs/{task}-tune"
    _run(ctx, lambda c: c.tune(c.make_runner(folder, **_runner_options(ctx)), optimizers, trials, sampler,
                               lr_low, lr_high, storage, clipnorm, settings, space, pruner, seeds),
         task=task, optimizers=optimizers, out=folder, clipnorm=clipnorm, settings=settings, data=data,
         storage=storage, options=options, valid_fraction=valid_fraction, sampler=sampler, lr_range=(lr_low, lr_high),
         space=space, pruner=pruner)


@app.command("diagnose", short_help="Train one run briefly and explain what happened.")
def diagnose_command(
    ctx: typer.Context,
    task: Task = "diabetes",
    optimizer: Annotated[str, typer.Option("--optimizer", metavar="NAME",
                                           help="a registered name or package.module:Class")] = "gd",
    lr: Annotated[Optional[float], typer.Option("--lr", metavar="RATE",
                                                help="learning rate (default: the optimizer's)")] = None,
    clipnorm: Clipnorm = "none",
    seed: Annotated[int, typer.Option(metavar="N", min=0, help="seed (initial weights, data order)")] = 0,
    epochs: Annotated[Optional[int], typer.Option("--epochs", metavar="N", min=1,
                                                  help="epochs (default: the problem's budget, at "
                                                  "most 200)")] = None,
    batch_size: BatchSize = None, standardize: Standardize = None, valid_fraction: ValidFraction = 0.2,
    data: Data = None, out: _out("TASK-diagnose") = None, eval_every: EvalEvery = None, settings: Settings = None,
    options: TrainingOptions = None,
):
    """Train one run briefly and explain it: naive baseline, gradient norm, update ratios, dead ReLU units, flags."""
    folder = out or f"runs/{task}-diagnose"

    def work(c):
        runner = c.make_runner(folder, **_runner_options(ctx))
        if epochs is None:
            runner.epochs = min(runner.meta["epochs"], 200)
        c.diagnose(runner, optimizer, lr, clipnorm, seed, settings)

    _run(ctx, work, task=task, optimizer=optimizer, out=folder, clipnorm=clipnorm, settings=settings, data=data,
         options=options, valid_fraction=valid_fraction)


@app.command("report", short_help="Write OUT/report.html and PNG figures from the records.")
def report_command(
    ctx: typer.Context,
    folder: Annotated[Optional[str], typer.Argument(metavar="FOLDER", hidden=True)] = None,  # in the help: no "<str>"
    out: Annotated[Optional[str], typer.Option("--out", metavar="FOLDER",
                                               help="the same folder, as the other commands name it")] = None,
):
    """Write OUT/report.html (self-contained) and PNG figures from the run records.

    FOLDER: the folder written by compare, sweep or tune (or give it as --out).
    """
    if folder and out and folder != out:
        typer.echo(f"error: give the folder once: got {folder!r} and --out {out!r}", err=True)
        raise typer.Exit(2)
    if not (folder or out):
        typer.echo("error: name the folder: optimlab report runs/diabetes (or --out runs/diabetes)", err=True)
        raise typer.Exit(2)
    _run(ctx, lambda tables, console: _report().make_report(folder or out, tables.console), static=True,
         report_folder=folder or out)


# ---------------------------------------------------------------- convergence lab
@app.command("functions", short_help="List the convergence lab's analytic test functions.")
def functions_command(
    ctx: typer.Context,
):
    """List the analytic test functions (minima, start, domain) of the convergence lab."""
    _run(ctx, lambda tables, console: tables.list_functions(console), static=True)


@app.command("converge", short_help="The TF guide's convergence test per optimizer and rate.")
def converge_command(
    ctx: typer.Context,
    function: Annotated[str, typer.Option(metavar="NAME", help="test function (see `optimlab functions`)")] = "quartic",
    optimizers: Annotated[str, typer.Option(metavar="NAMES",
                                            help="comma-separated names or wildcards ('adam*', 'all')")] = \
        "gd,momentum,adam",
    lrs: Annotated[str, typer.Option("--lrs", "--lr", metavar="RATES",
                                     help="comma-separated learning rates")] = "1e-3,1e-2,1e-1",
    init: Annotated[Optional[str], typer.Option(metavar="X",
                                                help="start: a number (every coordinate) or comma-separated "
                                                "coordinates; default: the function's standard start")] = None,
    max_iters: Annotated[int, typer.Option(metavar="N", min=1, help="maximum iterations")] = 2000,
    dim: Annotated[Optional[int], typer.Option(metavar="N", help="dimension of an N-D function (default 2)")] = None,
    step_tol: Annotated[float, typer.Option(metavar="TOL", min=0.0,
                                            help="converged when the step norm is <= this (0: unchanged "
                                            "parameter, the guide's test)")] = 0.0,
    grad_tol: Annotated[Optional[float], typer.Option(metavar="TOL", min=0.0,
                                                      help="also converged when the gradient norm is <= "
                                                      "this")] = None,
    optimum_tol: Annotated[Optional[float], typer.Option(metavar="TOL", min=0.0,
                                                         help="also converged within this distance of a "
                                                         "known minimum")] = None,
    explosion: Annotated[str, typer.Option(metavar="RULE",
                                           help="seed (the guide's rule: NaN gradient or non-finite parameter) or "
                                           "immediate (any non-finite gradient)")] = "seed",
    tune: Annotated[bool, typer.Option("--tune", help="first tune each optimizer's learning rate on the function "
                                       "(the --lrs values are the grid)")] = False,
    plot: Annotated[Optional[str], typer.Option(metavar="FILE",
                                                help="write the path plots to this PNG (see README: Convergence "
                                                "lab)")] = None,
    svg: Annotated[bool, typer.Option("--svg", help="also write every plot as SVG")] = False,
    eager: Annotated[bool, typer.Option("--eager", help="run the guide's loop eagerly instead of compiled")] = False,
):
    """The convergence test of the TensorFlow guide "Optimizers with Core APIs": status and iterations per optimizer
    and learning rate."""
    options = dict(init=init, max_iters=max_iters, dim=dim, step_tol=step_tol, grad_tol=grad_tol,
                   optimum_tol=optimum_tol, explosion=explosion, tune=tune, plot=plot, svg=svg, eager=eager)
    _run(ctx, lambda c: c.converge(function, optimizers, lrs, **options), function=function, optimizers=optimizers,
         lrs=lrs, lrs_default=False, init=init, plot=plot)


def main():
    """Run the command. A Ctrl-C at any moment ends it with the message and status 130, also one pressed while
    Typer parses (which would exit 130 silently) or one a library swallowed (which would run on to exit 0)."""
    if not _IS_COMMAND:
        _interrupt.start_up()
    _interrupt.started()
    try:
        app(prog_name="optimlab")
        status = 0
    except SystemExit as stop:
        status = stop.code
    except KeyboardInterrupt:
        status = 130
    if _interrupt.untold():
        typer.echo(_interrupt.stopped(), err=True)
        status = 130
    if status == 130:  # stopped: a late second press must not turn the exit into a death by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if _IS_COMMAND:
            _exit_stopped()
    sys.exit(status)


def _exit_stopped():
    """End the stopped command with status 130: the exit handlers run, Python's finalization does not.

    A KeyboardInterrupt that passed through Python code run by a library's C
    code (and was caught later) leaves a flag with which CPython's own exit
    kills the process by SIGINT, status -2 after the message (seen about one
    time in twenty for a Ctrl-C while the command's modules load).
    """
    atexit._run_exitfuncs()  # Ray's and logging's shutdown, as a normal exit would run them
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    sys.exit(main())
