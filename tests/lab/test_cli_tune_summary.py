"""The closing line of a resumed ``optimlab tune``: its counts add up to the trials in the study."""

import re

from rich.console import Console
from typer.testing import CliRunner

from optimlab import cli
from optimlab.lab import tables

runner = CliRunner()
SUMMARY = re.compile(r"(\d+) trials: (\d+) runs computed, (\d+) reused, (\d+) from an earlier command(, (\d+) by "
                     r"other processes)?\. Report")


def _tune(out, trials):
    result = runner.invoke(cli.app, ["tune", "--task", "iris", "--optimizers", "adam,sgd", "--trials", str(trials),
                                     "--sampler", "random", "--epochs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    found = SUMMARY.search(" ".join(result.output.split()))
    assert found, result.output
    total, computed, reused, earlier = map(int, found.groups()[:4])
    assert found.group(6) is None  # no other process shares this study
    assert total == computed + reused + earlier
    return total, computed, reused, earlier


def test_a_resumed_tune_says_how_many_trials_it_ran_and_how_many_it_found(tmp_path, monkeypatch):
    """Found by a user test: a resumed tune printed "N runs computed, M reused" with N + M short of the trials."""
    monkeypatch.setattr(tables, "console", Console(width=80))
    out = tmp_path / "tune"
    assert _tune(out, 1) == (2, 2, 0, 0)
    assert _tune(out, 3) == (6, 4, 0, 2)  # a larger budget: the study resumes with the trials it lacks
    assert _tune(out, 3) == (6, 0, 0, 6)  # complete: nothing to run
    assert _tune(out, 2) == (6, 0, 0, 6)  # a smaller budget runs nothing and still counts what the study holds
