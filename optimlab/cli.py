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


def main():
    app()


if __name__ == "__main__":
    main()
