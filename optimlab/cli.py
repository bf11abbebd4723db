"""The ``optimlab`` command: one Typer app, with each command's work done in the library."""

import typer

from optimlab import registry

app = typer.Typer(
    help="optimlab: optimizers on TensorFlow/Keras 3 and a lab to test and compare them.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("optimizers")
def optimizers_command(
    pattern: str = typer.Argument("*", help="wildcard, e.g. 'adam*'"),
    markdown: bool = typer.Option(False, "--markdown", help="print the README's table of all optimizers"),
):
    """List registered optimizers (name, class, paper, year, capabilities)."""
    if markdown:
        typer.echo(registry.markdown_table())
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "class", "paper", "year", "capabilities")
    for e in registry.entries(pattern):
        table.add_row(e.name, e.cls.__name__, e.paper, str(e.year), ", ".join(sorted(e.capabilities)))
    Console().print(table)


@app.command("bench")
def bench_command(
    optimizers: str = typer.Option("adam,sgd,rmsprop", help="comma-separated registered names"),
    shapes: str = typer.Option("large,small", help="shape sets: large (ResNet-50-like, ~25M params), small (MLP)"),
    repeats: int = typer.Option(7, min=1, help="interleaved repetitions; the median is reported"),
    steps: int = typer.Option(3, min=1, help="optimizer steps per timed repetition"),
    pause: float = typer.Option(0.05, min=0.0, help="idle seconds before each timed repetition (lets other libraries' spinning threads sleep)"),
    isolate: bool = typer.Option(True, help="measure each optimizer in a fresh process (bounded memory on long lists)"),
    out: str = typer.Option("bench", help="folder for bench.csv and bench.png"),
):
    """Time optimizer steps against Keras 3, TF fused kernels, torch.optim and Optax."""
    import pathlib

    from rich.console import Console
    from rich.progress import Progress

    from optimlab import bench

    names = [n.strip() for n in optimizers.split(",") if n.strip()]
    for n in names:
        try:
            registry.info(n)
        except ValueError as error:  # unknown name: the message lists the valid ones
            raise typer.BadParameter(str(error)) from None
    sets = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = sorted(set(sets) - set(bench.SHAPE_SETS))
    if unknown:
        raise typer.BadParameter(f"unknown shape set(s) {unknown}; valid: {sorted(bench.SHAPE_SETS)}")
    with Progress() as progress:
        task = progress.add_task("benchmarking", total=len(names) * len(sets))
        results, bandwidth = bench.run(names, sets, repeats, steps, progress=lambda *_: progress.advance(task), pause=pause, isolate=isolate)
    frame = bench.table(results, bandwidth)
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "bench.csv", index=False)
    bench.plot(frame, folder / "bench.png")
    console = Console(width=200)
    for set_name, bw in bandwidth.items():
        console.print(f"[bold]{set_name}[/bold]: measured bandwidth {bw / 1e9:.1f} GB/s")
    from rich.table import Table

    shown = ["optimizer", "shapes", "implementation", "median_ms", "ratio_to_best_peer", "ratio_to_bandwidth_bound", "state_bytes_per_param", "note"]
    result_table = Table(*shown)
    for row in frame[shown].itertuples(index=False):
        result_table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    console.print(result_table)
    brief = bench.summary(frame)
    brief.to_csv(folder / "summary.csv", index=False)
    summary_table = Table(*brief.columns)
    for row in brief.itertuples(index=False):
        summary_table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    console.print(summary_table)
    console.print(f"wrote {folder / 'bench.csv'} and {folder / 'bench.png'}")


# ---------------------------------------------------------------- training lab
_TASK = typer.Option("diabetes", "--task", help="problem: boston, diabetes, digits, breast_cancer, wine, iris, quadratic, classification, the DeepOBS ones (quadratic_deep, mnist_mlp, ...), or package.module:attribute naming your own optimlab.lab.Problem")
_OUT = typer.Option("runs/diabetes", "--out", help="output folder (records, report)")
_DATA = typer.Option(None, "--data", help="Boston CSV or Keras .npz (default: $OPTIMLAB_BOSTON, the Keras cache, a download)")
_EPOCHS = typer.Option(None, "--epochs", min=1, help="epochs per run (default: the problem's budget)")
_BATCH = typer.Option(None, "--batch-size", min=0, help="minibatch size; 0 = full batch (default: the problem's)")
_STD = typer.Option(None, "--standardize/--raw", help="standardize inputs, or raw features as in seed 002 (default: the problem's)")
_VALID = typer.Option(0.2, "--valid-fraction", help="share of training rows held out for selection (0: none)")
_TARGET = typer.Option(None, "--target", help="validation loss counted as reached (default: the problem's)")
_CLIP = typer.Option(None, "--clipnorm", help="clip each gradient to this L2 norm")
_SET = typer.Option(None, "--set", help="optimizer hyperparameter KEY=NUMBER, repeatable (e.g. --set momentum=0.98)")
_TB = typer.Option(False, "--tensorboard", help="also write TensorBoard logs under OUT/tensorboard")
_EVAL = typer.Option(None, "--eval-every", min=1, help="epochs between evaluations (default: ~100 per run)")
_OPTION = typer.Option(None, "--option", help="training option KEY=VALUE, repeatable: batchnorm=true, mixup=ALPHA, label_smoothing=EPS, schedule=Name:arg=NUMBER,... (a Keras or optimlab schedule from the run's learning rate)")
_JOBS = typer.Option(1, "--jobs", min=1, help="worker processes on this machine (see README: Running at scale)")
_RAY = typer.Option(None, "--ray", help="run on a Ray cluster: its ADDRESS, or auto (see README: Running at scale)")


def _lab_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard, eval_every,
                jobs=1, ray=None, options=None):
    from optimlab.lab import commands

    return commands.make_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target,
                                tensorboard, eval_every, jobs, ray, options)


def _lab(call, *args):
    """Run a training-lab command; bad input becomes one message and exit status 2."""
    from optimlab.lab import commands

    try:
        call(*args)
    except commands.LabError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


@app.command("compare")
def compare_command(
    task: str = _TASK, optimizers: str = typer.Option("sgd,momentum,adam", help="comma-separated registered names or package.module:Class (your own Keras/optimlab optimizer class)"),
    seeds: int = typer.Option(5, min=1, help="paired seeds per optimizer"),
    lrs: str = typer.Option(None, help="learning rates to select from on the validation split (default: each optimizer's default)"),
    clipnorm: float = _CLIP, epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD,
    valid_fraction: float = _VALID, target: float = _TARGET, data: str = _DATA, out: str = _OUT,
    tensorboard: bool = _TB, eval_every: int = _EVAL, settings: list[str] = _SET, jobs: int = _JOBS, ray: str = _RAY,
    options: list[str] = _OPTION,
):
    """Compare optimizers: select each one's learning rate on validation, rerun it over paired seeds."""
    from optimlab.lab import commands

    def work():
        runner = _lab_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard,
                             eval_every, jobs, ray, options)
        commands.compare(runner, optimizers, seeds, lrs, clipnorm, settings)

    _lab(work)


@app.command("sweep")
def sweep_command(
    task: str = _TASK, optimizer: str = typer.Option("gd", help="registered name"),
    lrs: str = typer.Option("1e-3,1e-4,1e-5,1e-6,1e-7,1e-8,1e-9", help="comma-separated learning rates"),
    clipnorm: str = typer.Option("none", help="comma-separated clipnorm values, 'none' for no clipping, e.g. none,2"),
    seeds: int = typer.Option(1, min=1, help="seeds per setting"),
    epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD, valid_fraction: float = _VALID,
    target: float = _TARGET, data: str = _DATA, out: str = typer.Option("runs/sweep", "--out", help="output folder"),
    tensorboard: bool = _TB, eval_every: int = _EVAL, settings: list[str] = _SET, jobs: int = _JOBS, ray: str = _RAY,
    options: list[str] = _OPTION,
):
    """Learning-rate (and clipping) sweep, e.g. seed 002's 1e-3 ... 1e-9 for gradient descent."""
    from optimlab.lab import commands

    def work():
        runner = _lab_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard,
                             eval_every, jobs, ray, options)
        commands.sweep(runner, optimizer, lrs, seeds, clipnorm, settings)

    _lab(work)


@app.command("tune")
def tune_command(
    task: str = _TASK, optimizers: str = typer.Option("sgd,momentum,adam", help="comma-separated registered names or package.module:Class (your own Keras/optimlab optimizer class)"),
    trials: int = typer.Option(10, min=1, help="trials per optimizer (the same budget for each)"),
    sampler: str = typer.Option("tpe", help="grid, random or tpe"),
    lr_low: float = typer.Option(1e-5, help="smallest learning rate"), lr_high: float = typer.Option(1.0, help="largest learning rate"),
    storage: str = typer.Option(None, help="Optuna storage URL shared by several tune processes, e.g. postgresql://... (default: sqlite OUT/tuning.db)"),
    clipnorm: float = _CLIP, epochs: int = _EPOCHS, batch_size: int = _BATCH, standardize: bool = _STD,
    valid_fraction: float = _VALID, target: float = _TARGET, data: str = _DATA,
    out: str = typer.Option("runs/tune", "--out", help="output folder"), tensorboard: bool = _TB, eval_every: int = _EVAL,
    options: list[str] = _OPTION,
):
    """Tune each optimizer's learning rate with Optuna (grid, random, TPE); resumable."""
    from optimlab.lab import commands

    def work():
        runner = _lab_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, target, tensorboard,
                             eval_every, options=options)
        commands.tune(runner, optimizers, trials, sampler, lr_low, lr_high, storage, clipnorm)

    _lab(work)


@app.command("diagnose")
def diagnose_command(
    task: str = _TASK, optimizer: str = typer.Option("gd", help="a registered name or package.module:Class"),
    lr: float = typer.Option(None, "--lr", help="learning rate (default: the optimizer's)"),
    clipnorm: float = _CLIP, seed: int = typer.Option(0, min=0, help="seed (initial weights, data order)"),
    epochs: int = typer.Option(None, "--epochs", min=1, help="epochs (default: the problem's budget, at most 200)"),
    batch_size: int = _BATCH, standardize: bool = _STD, valid_fraction: float = _VALID, data: str = _DATA,
    out: str = typer.Option("runs/diagnose", "--out", help="output folder (the run's record)"),
    eval_every: int = _EVAL, settings: list[str] = _SET, options: list[str] = _OPTION,
):
    """Train one run briefly and explain it: naive baseline, gradient norm, update ratios, dead ReLU units, flags."""
    from optimlab.lab import commands

    def work():
        runner = _lab_runner(out, task, data, epochs, batch_size, standardize, valid_fraction, None, False, eval_every,
                             options=options)
        if epochs is None:
            runner.epochs = min(runner.meta["epochs"], 200)
        commands.diagnose(runner, optimizer, lr, clipnorm, seed, settings)

    _lab(work)


@app.command("report")
def report_command(out: str = typer.Argument(..., help="folder written by compare, sweep or tune")):
    """Write OUT/report.html (self-contained) and PNG figures from the run records."""
    from optimlab.lab import commands

    _lab(commands.make_report, out)


# ---------------------------------------------------------------- convergence lab
@app.command("functions")
def functions_command():
    """List the analytic test functions (minima, start, domain) of the convergence lab."""
    from rich.console import Console
    from rich.table import Table

    from optimlab.lab.convergence.functions import describe_functions

    rows = describe_functions()
    table = Table(*rows[0])
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)


@app.command("converge")
def converge_command(
    function: str = typer.Option("quartic", help="test function (see `optimlab functions`)"),
    optimizers: str = typer.Option("gd,momentum,adam", help="comma-separated registered names"),
    lr: str = typer.Option("1e-3,1e-2,1e-1", "--lr", help="comma-separated learning rates"),
    init: str = typer.Option(None, help="start: a number (every coordinate) or comma-separated coordinates; default: the function's standard start"),
    max_iters: int = typer.Option(2000, min=1, help="maximum iterations"),
    dim: int = typer.Option(None, help="dimension of an N-D function (default 2)"),
    step_tol: float = typer.Option(0.0, min=0.0, help="converged when the step norm is <= this (0: unchanged parameter, the seed's test)"),
    grad_tol: float = typer.Option(None, min=0.0, help="also converged when the gradient norm is <= this"),
    optimum_tol: float = typer.Option(None, min=0.0, help="also converged within this distance of a known minimum"),
    explosion: str = typer.Option("seed", help="seed (NaN gradient or non-finite parameter) or immediate (any non-finite gradient)"),
    tune: bool = typer.Option(False, "--tune", help="first tune each optimizer's learning rate on the function (the --lr values are the grid)"),
    plot: str = typer.Option(None, help="write the path plots to this PNG (see README: Convergence lab)"),
    svg: bool = typer.Option(False, "--svg", help="also write every plot as SVG"),
    eager: bool = typer.Option(False, "--eager", help="run the seed's loop eagerly instead of compiled"),
):
    """Seed 000's convergence test: status and iterations per optimizer and learning rate."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from optimlab.lab.convergence import functions, plots
    from optimlab.lab.convergence import runner as convergence
    from optimlab.lab.convergence import tuning as function_tuning

    console = Console()
    try:
        fn = functions.get_function(function, dim=dim)
        names = list(convergence.optimizer_factories(optimizers))
        rates = convergence.parse_numbers(lr, "--lr")
        start = None if init is None else convergence.parse_numbers(init, "--init")
        if plot and fn.dim >= 0:
            plots.check_plot_target(fn, plot)
        options = dict(init=None if start is None else (start[0] if len(start) == 1 else start),
                       max_iters=max_iters, step_tol=step_tol, grad_tol=grad_tol, optimum_tol=optimum_tol,
                       explosion=explosion, compiled=not eager)
        with Progress(console=console, transient=True) as progress:
            if tune:
                task = progress.add_task("tuning learning rates", total=len(names))
                rates = function_tuning.tune_learning_rates(
                    names, fn, grid=rates, on_result=lambda *_: progress.advance(task), **options)
            task = progress.add_task("convergence tests", total=len(names) * (1 if tune else len(rates)))
            results = convergence.run_grid(names, fn, rates, on_result=lambda *_: progress.advance(task), **options)
        table = Table("optimizer", "learning rate", "status", "iterations", "final loss", "distance to minimum", "compiled",
                      title=f"{fn.name} from {options['init'] if start else fn.start}, max_iters={max_iters}")
        for (name, rate), r in results.items():
            table.add_row(name, f"{rate:g}", r.status, str(r.iterations), f"{r.final_loss:.6g}",
                          f"{r.distance:.3g}", "yes" if r.compiled else "no")
        console.print(table)
        if plot:
            for path in plots.write_convergence_plots(results, fn, plot, svg=svg, max_iters=max_iters, tuned=tune):
                console.print(f"wrote {path}")
    except (ValueError, TypeError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None


def main():
    app()


if __name__ == "__main__":
    main()
