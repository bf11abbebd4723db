"""`optimlab converge` and `optimlab functions`: the TF guide's table, plots, clean errors."""

import re

import matplotlib.image
import pytest
from typer.testing import CliRunner

from optimlab.cli import app
from optimlab.lab.convergence.functions import function_names

runner = CliRunner()
WIDE = {"COLUMNS": "200"}
SEED_ROWS = {
    ("gd", "0.001"): ("max_iters", "2000"),
    ("gd", "0.01"): ("max_iters", "2000"),
    ("gd", "0.1"): ("exploded", "6"),
    ("momentum", "0.001"): ("max_iters", "2000"),
    ("momentum", "0.01"): ("converged", "80"),
    ("momentum", "0.1"): ("exploded", "6"),
    ("adam", "0.001"): ("max_iters", "2000"),
    ("adam", "0.01"): ("max_iters", "2000"),
    ("adam", "0.1"): ("converged", "1156"),
}


def _rows(output):
    """(optimizer, learning rate) -> (status, iterations) from the rich table's body rows."""
    rows = {}
    for line in output.splitlines():
        cells = line.split()
        if len(cells) == 7 and cells[3].isdigit():
            rows[(cells[0], cells[1])] = (cells[2], cells[3])
    return rows


def test_converge_prints_the_seed_table_and_writes_plots(tmp_path):
    plot = tmp_path / "paths.png"
    args = ["converge", "--function", "quartic", "--optimizers", "gd,momentum,adam", "--lr", "1e-3,1e-2,1e-1",
            "--init", "2", "--max-iters", "2000", "--plot", str(plot)]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    assert _rows(result.output) == SEED_ROWS
    for path in (plot, tmp_path / "paths_function.png"):
        assert f"wrote {path}" in result.output.replace("\n", "")
        assert path.stat().st_size > 10_000 and matplotlib.image.imread(path).std() > 0.05


def test_converge_says_once_per_optimizer_why_its_runs_ran_alone():
    """Runs of an optimizer whose update mixes a variable's entries (LAMB's norms) cannot share one program."""
    args = ["converge", "--function", "rosenbrock", "--optimizers", "lamb,adam", "--lr", "1e-3,1e-2",
            "--max-iters", "20"]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())  # a note wraps at words at the console's width
    note = "note: lamb ran alone: its update mixes a variable's entries (Sum), so runs cannot be stacked"
    assert text.count("note:") == 1 and note in text, result.output
    assert _rows(result.output).keys() == {
        ("lamb", "0.001"), ("lamb", "0.01"), ("adam", "0.001"), ("adam", "0.01")}


def test_converge_on_a_2d_function_with_tuning_and_svg(tmp_path):
    plot = tmp_path / "booth.png"
    args = ["converge", "--function", "booth", "--optimizers", "gd,adam", "--lr", "1e-2,5e-2",
            "--max-iters", "100", "--tune", "--plot", str(plot), "--svg"]
    result = runner.invoke(app, args, env=WIDE)
    assert result.exit_code == 0, result.output
    rows = _rows(result.output)
    assert [name for name, _ in rows] == ["gd", "adam"]  # one tuned rate per optimizer
    assert rows[("gd", "0.05")][0] in ("converged", "max_iters")
    assert plot.stat().st_size > 10_000 and plot.with_suffix(".svg").exists()


def test_functions_lists_every_function():
    result = runner.invoke(app, ["functions"], env=WIDE)
    assert result.exit_code == 0
    for name in function_names():
        assert name in result.output


@pytest.mark.parametrize(
    "args, message",
    [
        (["--function", "nope"], "unknown function 'nope'; valid names: quartic, rosenbrock"),
        (["--optimizers", "gd,nope"], "unknown optimizer 'nope'; valid names:"),
        (["--optimizers", "gd,adma"], "unknown optimizer 'adma'; did you mean 'adam'?"),
        (["--optimizers", "nothing*"], "no optimizer matches 'nothing*'"),
        (["--lr", "fast"], "--lrs must be a comma-separated list of positive numbers; got 'fast'"),
        (["--lr", "-1"], "--lrs values must be positive numbers; got '-1'"),
        (["--function", "beale", "--init", "1,2,3"], "init must have shape (2,) for 'beale'"),
        (["--function", "rastrigin", "--dim", "3", "--plot", "x.png", "--max-iters", "2"], "can only plot 1-D and 2-D"),
    ],
)
def test_bad_input_is_one_clean_error_with_exit_code_2(args, message):
    result = runner.invoke(app, ["converge", *args], env=WIDE)
    assert result.exit_code == 2
    assert message in result.output.replace("\n", " ")
    assert "Traceback" not in result.output
