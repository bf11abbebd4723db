"""The ``optimlab`` command: one Typer app; each command's work is done in the library.

Only Typer is imported here: TensorFlow loads when a command starts its work
(quietly, see :mod:`optimlab._quiet`), so ``optimlab --help``, ``--version``
and option errors answer at once. Every command checks its input and its output
paths before any work; bad input is one line on stderr and exit status 2, a
Ctrl-C stops at the next safe point with exit status 130.

Example::

    optimlab compare --task iris --optimizers adam,sgd --lrs 1e-2,1e-1
"""

import contextlib
import sys

import typer

app = typer.Typer(
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
        from optimlab import __version__

        typer.echo(f"optimlab {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="show TensorFlow, absl and Optuna log lines"),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
):
    """optimlab: optimizers on TensorFlow/Keras 3 and a lab to test and compare them."""
    _state["verbose"] = verbose


def _commands():
    """The library's command glue, imported (with TensorFlow, quietly) when a command runs."""
    from optimlab import _quiet

    _quiet.import_libraries(_state["verbose"])
    from optimlab.lab import commands

    return commands


def _command_line(ctx):
    """The running command with every option spelled out (defaults included), for the report."""
    import shlex

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


def _run(ctx, work, safe_points=True, **checks):
    """Run ``work(commands)``: bad input -> one line + exit 2; Ctrl-C -> clean stop + exit 130.

    ``checks`` go to :func:`optimlab.lab.arguments.precheck` first, before TensorFlow is imported.
    With ``safe_points`` the work checks for a Ctrl-C itself (between runs, and inside
    compiled loops: :mod:`optimlab._interrupt`); without, a Ctrl-C interrupts it where it is.
    """
    from optimlab.lab import arguments

    try:
        arguments.precheck(**checks)
    except arguments.LabError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    commands = _commands()
    commands.COMMAND_LINE = _command_line(ctx)
    from optimlab import _interrupt

    try:
        with _interrupt.graceful() if safe_points else contextlib.nullcontext():
            work(commands)
    except commands.LabError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        typer.echo(commands.interrupted_message(), err=True)
        raise typer.Exit(130) from None


# ---------------------------------------------------------------- library
@app.command("optimizers")
def optimizers_command(
    ctx: typer.Context,
    pattern: str = typer.Argument("*", help="name or wildcard, e.g. 'adam*'"),
    details: bool = typer.Option(False, "--details", help="paper, link, capabilities and defaults of each match"),
    markdown: bool = typer.Option(False, "--markdown", help="print the README's table of all optimizers"),
):
    """List registered optimizers (one line each; --details or one name for the full entry)."""
    _run(ctx, lambda c: c.list_optimizers(pattern, details, markdown), safe_points=False)


@app.command("bench")
def bench_command(
    ctx: typer.Context,
    optimizers: str = typer.Option("adam,sgd,rmsprop", help="comma-separated names or wildcards ('all')"),
    shapes: str = typer.Option("large,small", help="shape sets: large (ResNet-50-like, ~25M params), small (MLP)"),
    repeats: int = typer.Option(7, min=1, help="interleaved repetitions; the median is reported"),
    steps: int = typer.Option(3, min=1, help="optimizer steps per timed repetition"),
    pause: float = typer.Option(0.05, min=0.0, help="idle seconds before each timed repetition"),
    isolate: bool = typer.Option(True, help="measure each optimizer in a fresh process (bounded memory)"),
    out: str = typer.Option("runs/bench", help="folder for bench.csv, summary.csv and bench.png"),
):
    """Time optimizer steps against Keras 3, TF fused kernels, torch.optim and Optax."""
    _run(ctx, lambda c: c.bench(optimizers, shapes, repeats, steps, pause, isolate, out), out=out)


# ---------------------------------------------------------------- training lab
_TASK = typer.Option("diabetes", "--task", help=f"problem: {TASKS}")
_OPTIMIZERS = typer.Option("sgd,momentum,adam", "--optimizers", help="comma-separated names or wildcards ('adam*', 'all'), or package.module:Class (your own Keras/optimlab optimizer class)")
_OPTION = typer.Option(None, "--option", help="training option KEY=VALUE, repeatable: batchnorm=true, mixup=ALPHA, label_smoothing=EPS, schedule=Name:arg=NUMBER,... (a Keras or optimlab schedule from each run's learning rate)")
_OUT_HELP = "output folder (records, report); default runs/{}"
_DATA = typer.Option(None, "--data", help="Boston CSV or Keras .npz (boston only; default: $OPTIMLAB_BOSTON, the Keras cache, a download)")
_EPOCHS = typer.Option(None, "--epochs", min=1, help="epochs per run (default: the problem's budget)")
_BATCH = typer.Option(None, "--batch-size", min=0, help="minibatch size; 0 = full batch (default: the problem's)")
_STD = typer.Option(None, "--standardize/--raw", help="standardize inputs, or raw features as in seed 002 (default: the problem's)")
_VALID = typer.Option(0.2, "--valid-fraction", help="share of training rows held out for selection (0: none)")
_TARGET = typer.Option(None, "--target", help="validation loss counted as reached (default: the problem's)")
_CLIP = typer.Option("none", "--clipnorm", help="clip each gradient to this L2 norm; 'none' for no clipping")
_SET = typer.Option(None, "--set", help="optimizer hyperparameter KEY=NUMBER, repeatable (e.g. --set momentum=0.98)")
_TB = typer.Option(False, "--tensorboard", help="also write TensorBoard logs under OUT/tensorboard (needs tensorboard)")
_EVAL = typer.Option(None, "--eval-every", min=1, help="epochs between evaluations (default: ~100 per run)")
_JOBS = typer.Option(1, "--jobs", min=1, help="worker processes on this machine (see README: Running at scale)")
_RAY = typer.Option(None, "--ray", help="run on a Ray cluster: its ADDRESS, or auto (see README: Running at scale)")


def _budget(task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every, jobs=1,
            ray=None, options=None):
    return dict(task=task, data=data, epochs=epochs, batch_size=batch_size, standardize=standardize,
                valid_fraction=valid_fraction, target=target, tensorboard=tensorboard, eval_every=eval_every,
                jobs=jobs, ray=ray, options=options)


@app.command("compare")
def compare_command(
    ctx: typer.Context,
    task: str = _TASK, optimizers: str = _OPTIMIZERS,
    seeds: int = typer.Option(10, min=1, help="paired seeds per optimizer (at least 6 for a Wilcoxon p < 0.05)"),
    lrs: str = typer.Option("1e-3,1e-2,1e-1", "--lrs", "--lr", help="learning rates to select from on the validation split; 'default' for each optimizer's own"),
    clipnorm: str = _CLIP, epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD,
    valid_fraction: float = _VALID, target: float = _TARGET, data: str = _DATA,
    out: str = typer.Option(None, "--out", help=_OUT_HELP.format("TASK")),
    tensorboard: bool = _TB, eval_every: int = _EVAL, settings: list[str] = _SET, jobs: int = _JOBS, ray: str = _RAY,
    options: list[str] = _OPTION,
):
    """Compare optimizers: select each one's learning rate on validation, rerun it over paired seeds."""
    budget = _budget(task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every,
                     jobs, ray, options)
    _run(ctx, lambda c: c.compare(c.make_runner(out or f"runs/{task}", **budget), optimizers, seeds, lrs, clipnorm, settings),
         out=out or f"runs/{task}", lrs=lrs, clipnorm=clipnorm, settings=settings, data=data)


@app.command("sweep")
def sweep_command(
    ctx: typer.Context,
    task: str = _TASK,
    optimizer: str = typer.Option("gd", "--optimizer", "--optimizers", help="registered name"),
    lrs: str = typer.Option("1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9", "--lrs", "--lr", help="comma-separated learning rates"),
    clipnorm: str = typer.Option("none", help="comma-separated clipnorm values, 'none' for no clipping, e.g. none,2"),
    seeds: int = typer.Option(1, min=1, help="seeds per setting"),
    epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD, valid_fraction: float = _VALID,
    target: float = _TARGET, data: str = _DATA,
    out: str = typer.Option(None, "--out", help=_OUT_HELP.format("TASK-sweep")),
    tensorboard: bool = _TB, eval_every: int = _EVAL, settings: list[str] = _SET, jobs: int = _JOBS, ray: str = _RAY,
    options: list[str] = _OPTION,
):
    """Learning-rate (and clipping) sweep, e.g. seed 002's 1e-3 ... 1e-9 for gradient descent."""
    budget = _budget(task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every,
                     jobs, ray, options)
    _run(ctx, lambda c: c.sweep(c.make_runner(out or f"runs/{task}-sweep", **budget), optimizer, lrs, seeds, clipnorm, settings),
         out=out or f"runs/{task}-sweep", lrs=lrs, lrs_default=False, clipnorms=clipnorm, settings=settings, data=data)


@app.command("tune")
def tune_command(
    ctx: typer.Context,
    task: str = _TASK, optimizers: str = _OPTIMIZERS,
    trials: int = typer.Option(10, min=1, help="trials per optimizer (the same budget for each)"),
    sampler: str = typer.Option("tpe", help="grid, random or tpe"),
    lr_low: float = typer.Option(1e-5, help="smallest learning rate"), lr_high: float = typer.Option(1.0, help="largest learning rate"),
    storage: str = typer.Option(None, help="Optuna storage URL shared by several tune processes, e.g. postgresql://... (default: sqlite OUT/tuning.db)"),
    clipnorm: str = _CLIP, epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD,
    valid_fraction: float = _VALID, target: float = _TARGET, data: str = _DATA,
    out: str = typer.Option(None, "--out", help=_OUT_HELP.format("TASK-tune")),
    tensorboard: bool = _TB, eval_every: int = _EVAL, settings: list[str] = _SET, options: list[str] = _OPTION,
):
    """Tune each optimizer's learning rate with Optuna (grid, random, TPE); resumable."""
    budget = _budget(task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every,
                     options=options)
    _run(ctx, lambda c: c.tune(c.make_runner(out or f"runs/{task}-tune", **budget), optimizers, trials, sampler,
                          lr_low, lr_high, storage, clipnorm, settings),
         out=out or f"runs/{task}-tune", clipnorm=clipnorm, settings=settings, data=data)


@app.command("diagnose")
def diagnose_command(
    ctx: typer.Context,
    task: str = _TASK, optimizer: str = typer.Option("gd", "--optimizer", help="a registered name or package.module:Class"),
    lr: float = typer.Option(None, "--lr", help="learning rate (default: the optimizer's)"),
    clipnorm: str = _CLIP, seed: int = typer.Option(0, min=0, help="seed (initial weights, data order)"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="epochs (default: the problem's budget, at most 200)"),
    batch_size: int = _BATCH, standardize: bool = _STD, valid_fraction: float = _VALID, data: str = _DATA,
    out: str = typer.Option(None, "--out", help=_OUT_HELP.format("TASK-diagnose")),
    eval_every: int = _EVAL, settings: list[str] = _SET, options: list[str] = _OPTION,
):
    """Train one run briefly and explain it: naive baseline, gradient norm, update ratios, dead ReLU units, flags."""
    budget = _budget(task, data, epochs, batch_size, standardize, valid_fraction, None, False, eval_every,
                     options=options)

    def work(c):
        runner = c.make_runner(out or f"runs/{task}-diagnose", **budget)
        if epochs is None:
            runner.epochs = min(runner.meta["epochs"], 200)
        c.diagnose(runner, optimizer, lr, clipnorm, seed, settings)

    _run(ctx, work, out=out or f"runs/{task}-diagnose", clipnorm=clipnorm, settings=settings, data=data)


@app.command("report")
def report_command(
    ctx: typer.Context,
    folder: str = typer.Argument(None, help="folder written by compare, sweep or tune (or use --out)"),
    out: str = typer.Option(None, "--out", help="the same folder, as the other commands name it"),
):
    """Write OUT/report.html (self-contained) and PNG figures from the run records."""
    if folder and out and folder != out:
        typer.echo(f"error: give the folder once: got {folder!r} and --out {out!r}", err=True)
        raise typer.Exit(2)
    if not (folder or out):
        typer.echo("error: name the folder: optimlab report runs/diabetes (or --out runs/diabetes)", err=True)
        raise typer.Exit(2)
    _run(ctx, lambda c: c.make_report(folder or out), safe_points=False, report_folder=folder or out)


# ---------------------------------------------------------------- convergence lab
@app.command("functions")
def functions_command(
    ctx: typer.Context,
):
    """List the analytic test functions (minima, start, domain) of the convergence lab."""
    _run(ctx, lambda c: c.list_functions(), safe_points=False)


@app.command("converge")
def converge_command(
    ctx: typer.Context,
    function: str = typer.Option("quartic", help="test function (see `optimlab functions`)"),
    optimizers: str = typer.Option("gd,momentum,adam", help="comma-separated names or wildcards ('adam*', 'all')"),
    lrs: str = typer.Option("1e-3,1e-2,1e-1", "--lrs", "--lr", help="comma-separated learning rates"),
    init: str = typer.Option(None, help="start: a number (every coordinate) or comma-separated coordinates; default: the function's standard start"),
    max_iters: int = typer.Option(2000, min=1, help="maximum iterations"),
    dim: int = typer.Option(None, help="dimension of an N-D function (default 2)"),
    step_tol: float = typer.Option(0.0, min=0.0, help="converged when the step norm is <= this (0: unchanged parameter, the seed's test)"),
    grad_tol: float = typer.Option(None, min=0.0, help="also converged when the gradient norm is <= this"),
    optimum_tol: float = typer.Option(None, min=0.0, help="also converged within this distance of a known minimum"),
    explosion: str = typer.Option("seed", help="seed (NaN gradient or non-finite parameter) or immediate (any non-finite gradient)"),
    tune: bool = typer.Option(False, "--tune", help="first tune each optimizer's learning rate on the function (the --lrs values are the grid)"),
    plot: str = typer.Option(None, help="write the path plots to this PNG (see README: Convergence lab)"),
    svg: bool = typer.Option(False, "--svg", help="also write every plot as SVG"),
    eager: bool = typer.Option(False, "--eager", help="run the seed's loop eagerly instead of compiled"),
):
    """Seed 000's convergence test: status and iterations per optimizer and learning rate."""
    options = dict(init=init, max_iters=max_iters, dim=dim, step_tol=step_tol, grad_tol=grad_tol,
                   optimum_tol=optimum_tol, explosion=explosion, tune=tune, plot=plot, svg=svg, eager=eager)
    _run(ctx, lambda c: c.converge(function, optimizers, lrs, **options), plot=plot)


def main():
    app(prog_name="optimlab")


if __name__ == "__main__":
    sys.exit(main())
