"""The ``optimlab`` command: one Typer app, with each command's work done in the library."""

import typer

from optimlab import registry

app = typer.Typer(
    help="optimlab: optimizers on TensorFlow/Keras 3 and a lab to test and compare them.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command("optimizers")
def optimizers_command(pattern: str = typer.Argument("*", help="wildcard, e.g. 'adam*'")):
    """List registered optimizers (name, class, paper, year, capabilities)."""
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
    out: str = typer.Option("bench", help="folder for bench.csv and bench.png"),
):
    """Time optimizer steps against Keras 3, TF fused kernels, torch.optim and Optax."""
    import pathlib

    from rich.console import Console
    from rich.progress import Progress

    from optimlab import bench

    names = [n.strip() for n in optimizers.split(",") if n.strip()]
    for n in names:
        registry.info(n)  # unknown names fail here with the list of valid ones
    sets = [s.strip() for s in shapes.split(",") if s.strip()]
    unknown = sorted(set(sets) - set(bench.SHAPE_SETS))
    if unknown:
        raise typer.BadParameter(f"unknown shape set(s) {unknown}; valid: {sorted(bench.SHAPE_SETS)}")
    with Progress() as progress:
        task = progress.add_task("benchmarking", total=len(names) * len(sets))
        results, bandwidth = bench.run(names, sets, repeats, steps, progress=lambda *_: progress.advance(task))
    frame = bench.table(results, bandwidth)
    folder = pathlib.Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    frame.to_csv(folder / "bench.csv", index=False)
    bench.plot(frame, folder / "bench.png")
    console = Console()
    for set_name, bw in bandwidth.items():
        console.print(f"[bold]{set_name}[/bold]: measured bandwidth {bw / 1e9:.1f} GB/s")
    from rich.table import Table

    shown = ["optimizer", "shapes", "implementation", "median_ms", "ratio_to_best_peer", "ratio_to_bandwidth_bound", "state_bytes_per_param", "note"]
    result_table = Table(*shown)
    for row in frame[shown].itertuples(index=False):
        result_table.add_row(*[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row])
    console.print(result_table)
    console.print(f"wrote {folder / 'bench.csv'} and {folder / 'bench.png'}")


def main():
    app()


if __name__ == "__main__":
    main()
