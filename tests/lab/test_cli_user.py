"""The command line as a new user meets it (issue 15): start-up, Ctrl-C, 80 columns, errors, defaults.

Subprocess tests run ``python -m optimlab`` with piped output, as a shell pipe
or a CI log would; the rest use Typer's runner (also piped: not a terminal).
"""

import inspect
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner

from cli_driver import last_bar_line

from optimlab import cli
from optimlab.lab import commands, tables
from optimlab.lab.training import records

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _env(**extra):
    return {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80", **extra}


def _optimlab(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "optimlab", *args], capture_output=True, text=True,
                          env=_env(), timeout=timeout, cwd=ROOT)


# ------------------------------------------------------------------ start-up
def test_help_and_version_do_not_import_tensorflow():
    code = ("import sys; sys.argv = ['optimlab', '--help']\n"
            "import optimlab.cli\n"
            "try:\n    optimlab.cli.main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', sorted(m for m in ('tensorflow', 'keras', 'optuna', 'matplotlib') if m in sys.modules))")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert "LOADED []" in done.stdout and "compare" in done.stdout
    assert time.perf_counter() - started < 20  # TensorFlow alone takes longer than this on a busy CI core
    version = _optimlab("--version", timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == "optimlab 0.1.0"
    bad = _optimlab("compare", "--seeds", "zero", timeout=60)
    assert bad.returncode == 2 and "--seeds" in bad.stderr


def test_import_optimlab_is_lazy_and_complete():
    code = ("import sys, optimlab\nassert 'tensorflow' not in sys.modules\n"
            "assert optimlab.Adam.__name__ == 'Adam' and 'tensorflow' in sys.modules\n"
            "from optimlab import SGD, registry\nassert 'Adam' in optimlab.__all__ and registry.info('adam')\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=120)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


# ------------------------------------------------------------------ Ctrl-C
def _interrupt_then_resume(args, out, expected_records):
    """Start ``args``, Ctrl-C once a run is saved, check the clean stop, then resume to the end."""
    process = subprocess.Popen([sys.executable, "-m", "optimlab", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env(), cwd=ROOT)
    deadline = time.time() + 240
    while not list(out.glob("records/*/*/*.json")):
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no run finished in time"
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    sent = time.time()
    stdout, stderr = process.communicate(timeout=60)
    stopped_in = time.time() - sent
    saved = len(list(out.glob("records/*/*/*.json")))
    assert process.returncode == 130, stderr[-3000:]
    assert f"interrupted: {saved} runs saved; rerun the same command to resume" in stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr[-3000:]
    for noise in ("absl", "oneDNN", "cuda", "cuInit", "retracing", "Trial"):  # no library log lines
        assert noise not in stderr, stderr[-3000:]
    # The stop comes at the next run boundary: a run is one compiled call (tracing included for a new
    # configuration), so the bound is one such run on a loaded 2-core machine, not the 1-2 s of a short run.
    assert stopped_in < 60, stopped_in
    assert 0 < saved < expected_records
    again = _optimlab(*args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(list(out.glob("records/*/*/*.json"))) == expected_records
    assert max(len(line) for line in again.stdout.splitlines() if not line.startswith("  optimlab ")) <= 80
    return saved, again


def test_ctrl_c_stops_compare_cleanly_and_the_rerun_completes(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--task", "iris", "--optimizers", "sgd,adam", "--lrs", "0.1", "--seeds", "6",
            "--epochs", "600", "--out", str(out)]
    saved, again = _interrupt_then_resume(args, out, 12)
    assert f"{12 - saved} runs computed, {saved} reused" in again.stdout.replace("\n", " ")


def test_ctrl_c_stops_tune_cleanly_and_the_interrupted_trial_is_rerun(tmp_path):
    import optuna

    out = tmp_path / "tune"
    args = ["tune", "--task", "iris", "--optimizers", "adam", "--trials", "3", "--sampler", "random",
            "--epochs", "600", "--out", str(out)]
    saved, again = _interrupt_then_resume(args, out, 3)
    # The closing line adds up: trials run now (computed or read from a record) plus those finished before.
    counts = re.search(r"3 trials: (\d+) runs computed, (\d+) reused, (\d+) from an earlier command\.",
                       " ".join(again.stdout.split()))
    assert counts and sum(map(int, counts.groups())) == 3 and int(counts.group(3)) <= saved, again.stdout
    assert "3/3" in again.stderr and "1/3" not in again.stderr.splitlines()[-1]  # the bar counts earlier trials
    study = optuna.load_study(study_name="iris-adam-random", storage=f"sqlite:///{out / 'tuning.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3  # the interrupted trial did not count toward --trials


# ------------------------------------------------------------------ 80 columns, piped
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def _whole(output):
    """Every line fits 80 columns, nothing is cut with an ellipsis, no number lost its exponent.

    A command to copy (``  optimlab report PATH``) is one line, never wrapped, however long.
    """
    lines = [line for line in output.splitlines() if not line.startswith("  optimlab ")]
    assert lines, "no output"
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert "…" not in output
    for line in lines:
        assert not re.search(r"\d[eE]$|\d[eE][-+]$", line.rstrip()), line
        assert not re.match(r"\s*[eE][-+]?\d", line), line


@pytest.fixture
def narrow(monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # the listings print without the library, on a console of their own
    monkeypatch.setattr(tables, "console", Console(width=80))
    monkeypatch.setattr(tables, "progress_console", Console(width=80, stderr=True))


def _invoke(*args):
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 0, result.output
    _whole(result.output)
    return result.output


def test_every_command_fits_80_columns_and_prints_whole_numbers(tmp_path, narrow):
    listing = _invoke("optimizers")
    assert len(listing.splitlines()) < 50 and "schedule_free_adamw" in listing
    assert "Kingma" in _invoke("optimizers", "adam") and "beta_1=0.9" in _invoke("optimizers", "adam")
    assert "rosenbrock" in _invoke("functions")
    assert "converged" in _invoke("converge", "--function", "quartic", "--optimizers", "gd,momentum,adam",
                                  "--lrs", "1e-2,1e-1", "--init", "2", "--max-iters", "200")
    out = tmp_path / "cmp"
    text = _invoke("compare", "--task", "iris", "--optimizers", "sgd,adam", "--lrs", "0.1", "--seeds", "2",
                   "--epochs", "5", "--out", str(out))
    # The printed means equal the records' test losses averaged here, in full.
    for name in ("sgd", "adam"):
        losses = [r["final"]["test_loss"] for r in records.load_all(out) if r["spec"]["optimizer"] == name]
        assert f"{np.mean(losses):.4g} +/- {np.std(losses, ddof=1):.3g}" in text
        q25, median, q75 = np.percentile(losses, [25, 50, 75])
        assert f"{median:.4g} [{q75 - q25:.3g}]" in text  # the median it ranks by, with its IQR
    assert text.index("median [IQR]") < text.index("mean +/- sd")  # in the ranked table, next to the mean
    assert "runs computed" in text
    sweep = _invoke("sweep", "--task", "iris", "--optimizer", "adam", "--lrs", "0.1,0.001", "--epochs", "5",
                    "--out", str(tmp_path / "sw"))
    assert "lr=0.001" in sweep and "lr=0.1" in sweep
    tune = _invoke("tune", "--task", "iris", "--optimizers", "adam", "--trials", "2", "--epochs", "5",
                   "--out", str(tmp_path / "tu"))
    assert "optuna-dashboard" in tune
    assert "report.html" in _invoke("report", str(out)).replace("\n", "")
    _invoke("report", str(tmp_path / "tu"))
    tuned = (tmp_path / "tu" / "report.html").read_text()
    assert "optuna-dashboard" in tuned and "final validation loss per trial" in tuned
    assert "naive baseline" in _invoke("diagnose", "--task", "iris", "--optimizer", "adam", "--epochs", "5",
                                       "--out", str(tmp_path / "dg"))
    bench = _invoke("bench", "--optimizers", "sgd", "--shapes", "small", "--repeats", "1", "--steps", "1",
                    "--no-isolate", "--pause", "0", "--out", str(tmp_path / "bench"))
    assert "x best peer" in bench or "x best" in bench.replace("\n", " ")
    if not all(commands._installed(m) for m in ("torch", "optax")):
        assert "pip install 'optimlab[peers]'" in " ".join(bench.split())
    assert inspect.signature(cli.bench_command).parameters["out"].default == "runs/bench"  # git-ignored


def test_a_table_too_wide_for_the_terminal_becomes_a_detail_view(narrow):
    value = "3.045690e-05"
    rows = [(f"optimizer_{i}", *(f"{value} +/- {value}" for _ in range(6))) for i in range(2)]
    headers = ("optimizer", *(f"column {i}" for i in range(6)))
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    tables.show("wide", headers, rows, numeric=headers[1:], out=console)
    text = console.export_text()
    _whole(text)
    assert text.count(f"{value} +/- {value}") == 12


# ------------------------------------------------------------------ errors and defaults
def _error(*args):
    result = runner.invoke(cli.app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return result.output.replace("\n", " ")


def test_errors_suggest_and_name_what_is_wrong(tmp_path):
    out = ["--out", str(tmp_path / "o")]
    assert "did you mean 'adam'?" in _error("compare", "--optimizers", "adma", *out)
    assert "did you mean 'diabetes'?" in _error("compare", "--task", "diabets", *out)
    message = _error("sweep", "--task", "iris", "--optimizer", "adam", "--set", "betta_1=0.8", *out)
    assert "did you mean 'beta_1'?" in message and "amsgrad" in message  # Adam's own keywords
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text('a,b\n1,"2\n')
    assert str(bad_csv) in _error("compare", "--task", "boston", "--data", str(bad_csv), *out)
    assert "--data is only read by" in _error("compare", "--task", "iris", "--data", str(bad_csv), *out)
    assert "no optimizer matches 'nothing*'" in _error("optimizers", "nothing*")
    assert not (tmp_path / "o" / "records").exists()


def test_a_refused_command_writes_nothing(tmp_path):
    """Found by a user test: errors found after TensorFlow loaded (--set, --data) left an empty output folder."""
    out = tmp_path / "o"
    for args in (["compare", "--task", "iris", "--optimizers", "adam", "--set", "betta=0.8"],
                 ["sweep", "--task", "iris", "--optimizer", "gd", "--set", "betta=0.8"],
                 ["diagnose", "--task", "iris", "--optimizer", "adam", "--set", "betta=0.8"],
                 ["diagnose", "--task", "boston", "--data", "/etc/passwd"]):
        result = runner.invoke(cli.app, [*args, "--out", str(out)])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists(), args
    assert "'/etc/passwd'" in result.output and "not a readable CSV" in result.output
    assert "; gd's own: learning_rate" in _error("sweep", "--task", "iris", "--set", "betta=0.8", "--out", str(out))


def test_a_storage_that_cannot_be_opened_is_one_line_before_any_file(tmp_path):
    """Found by a user test: --storage foo://bar or a refused connection printed a 79-line traceback, exit 1."""
    out = tmp_path / "o"
    for url, reason in (("postgresql://nobody@127.0.0.1:1/x", "cannot be opened"),
                        (f"sqlite:///{tmp_path}/no/such/folder/t.db", "cannot be opened"),
                        ("foo://bar", "unknown database 'foo'")):
        result = runner.invoke(cli.app, ["tune", "--task", "iris", "--optimizers", "adam", "--trials", "1",
                                         "--epochs", "2", "--storage", url, "--out", str(out)])
        assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1, result.output
        assert url in result.output and reason in result.output, result.output
        assert not out.exists()
    assert "sqlite, postgresql, mysql" in result.output


def test_lrs_errors_say_what_the_option_takes(tmp_path):
    """Found by a user test: compare's errors offered 'none' (refused a moment later) and an empty item passed."""
    out = ["--out", str(tmp_path / "o")]
    for bad in ("abc", "-1", "none", "1e-3,,1e-2"):
        message = _error("compare", "--task", "iris", "--optimizers", "adam", "--lrs", bad, *out)
        assert "'default'" in message and "'none'" not in message.replace(repr(bad), ""), message
    message = _error("sweep", "--task", "iris", "--optimizer", "adam", "--lrs", "1e-3,none", *out)
    assert "positive numbers" in message and "or 'none'" not in message
    assert "empty item" in _error("sweep", "--task", "iris", "--optimizer", "adam", "--clipnorm", "none,,2", *out)
    assert not (tmp_path / "o" / "records").exists()


def test_progress_bar_tells_diverged_from_retried_and_the_time_left(monkeypatch):
    """Found by a user test: diverged runs were counted as 'fail'; the README promises the time left."""
    def drive(runner):
        for status in ("ok", "diverged"):
            runner.on_start()
            runner.on_run({"status": status, "spec": {"optimizer": "sgd"}}, True)
        runner.on_start()
        runner.on_retry()

    last = last_bar_line(monkeypatch, 4, drive)
    assert "2/4" in last and "0 running, 1 diverged, 1 retried" in last, last
    assert re.search(r"(-:--:--|\d:\d\d:\d\d)\s*$", last), last  # the time left
    assert len(last.rstrip()) <= 80


def test_progress_bar_speaks_words_and_fits_80_columns_with_large_counts(monkeypatch):
    """Found by a user test: "run 0 div 4 retry 0" was cryptic; words must still fit 80 columns."""
    def drive(runner):
        for _ in range(150):
            runner.on_start()
        for _ in range(120):
            runner.on_run({"status": "diverged", "spec": {"optimizer": "schedule_free_adamw"}}, True)
        for _ in range(12):
            runner.on_retry()

    last = last_bar_line(monkeypatch, 1000, drive)
    assert "120/1000" in last and "18 running, 120 diverged, 12 retried" in last, last
    assert len(last.rstrip()) <= 80 and "…" not in last, last


def test_progress_bar_counts_pruned_trials_apart_and_grows_past_the_planned_total(monkeypatch):
    """A tuner's pruned trial is not a divergence, and the trials its saved epochs pay for never show 14/12."""
    def drive(runner):
        for status in ["ok", "pruned", "pruned", "diverged"] * 3 + ["ok", "ok"]:
            runner.on_start()
            runner.on_run({"status": status, "spec": {"optimizer": "adam"}}, True)

    last = last_bar_line(monkeypatch, 12, drive)
    assert "14/14" in last and "0 running, 3 diverged, 6 pruned" in last, last


def test_outputs_are_checked_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    started = time.perf_counter()
    message = _error("compare", "--task", "iris", "--out", str(blocker / "sub"))
    assert str(blocker / "sub") in message and "not writable" in message
    assert "is a file" in _error("compare", "--task", "iris", "--out", str(blocker))
    assert "--plot" in _error("converge", "--plot", str(blocker / "x.png"))
    assert "must end in" in _error("converge", "--plot", str(tmp_path / "x.txt"))
    assert "is a file" in _error("bench", "--out", str(blocker))
    assert time.perf_counter() - started < 60  # no training happened


def test_tensorboard_without_the_package_is_refused_before_work(tmp_path, monkeypatch):
    monkeypatch.setattr(commands, "_installed", lambda module: module != "tensorboard")
    message = _error("compare", "--task", "iris", "--tensorboard", "--out", str(tmp_path))
    assert "pip install 'optimlab[tensorboard]'" in message
    assert not (tmp_path / "records").exists()


def test_option_names_and_defaults_agree_across_commands(tmp_path, narrow, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # --lrs everywhere (--lr as an alias), --clipnorm none everywhere, report --out, wildcards in converge.
    text = _invoke("compare", "--task", "iris", "--optimizers", "adam", "--lr", "0.1", "--clipnorm", "none",
                   "--seeds", "1", "--epochs", "2")
    assert (tmp_path / "runs" / "iris" / "records").exists() and not (tmp_path / "runs" / "diabetes").exists()
    assert "1 runs computed" in text
    assert "report.html" in _invoke("report", "--out", "runs/iris").replace("\n", "")
    assert "adamax" in _invoke("converge", "--optimizers", "adam*", "--lrs", "0.1", "--max-iters", "3")
    defaults = inspect.signature(cli.compare_command).parameters
    # a Wilcoxon p < 0.05 is possible with the default (None: enough seeds for the number of optimizers)
    from optimlab.lab import training_commands

    assert defaults["seeds"].default is None and training_commands.choose_seeds(None, 3) >= 6
    assert len(defaults["lrs"].default.split(",")) >= 3  # selection from a grid, not one default rate


def test_an_optimizer_that_always_diverges_is_named_not_dropped(tmp_path, narrow):
    text = _invoke("compare", "--task", "diabetes", "--optimizers", "gd,adam", "--lrs", "100", "--seeds", "2",
                   "--epochs", "10", "--out", str(tmp_path))
    assert "all 2 runs of gd diverged" in text.replace("\n", " ")


def test_compare_counts_its_runs_once_fresh_and_rerun(tmp_path, narrow, monkeypatch):
    """Found by a user test: a fresh compare said "36 computed, 3 reused" under a "39/39" bar, its rerun "39 reused"."""
    import io

    screen = io.StringIO()
    monkeypatch.setattr(tables, "progress_console", Console(file=screen, width=80, force_terminal=True))
    out = tmp_path / "a folder with a long enough name to pass eighty columns when the command is printed"
    args = ("compare", "--task", "iris", "--optimizers", "sgd,adam", "--lrs", "0.1,0.01", "--seeds", "2",
            "--epochs", "2", "--out", str(out))
    fresh = _invoke(*args)
    bar = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue())
    assert len(records.load_all(out)) == 6 and "6/6" in bar and "/8" not in bar, bar
    assert "6 runs computed, 0 reused" in fresh.replace("\n", " ")
    assert "6 runs computed, 0 reused" not in _invoke(*args)
    assert "0 runs computed, 6 reused" in _invoke(*args).replace("\n", " ")
    command = f"  optimlab report '{out}'"
    assert command in fresh.splitlines() and len(command) > 80  # one line, never wrapped


def test_records_name_the_command_for_the_report(tmp_path, narrow):
    _invoke("compare", "--task", "iris", "--optimizers", "adam", "--lrs", "0.1", "--seeds", "1", "--epochs", "2",
            "--out", str(tmp_path))
    assert "--task iris" in (tmp_path / "commands.txt").read_text()
    assert json.loads(next(tmp_path.glob("records/*/*/*.json")).read_text())["spec"]["problem"] == "iris"


def test_bad_values_are_answered_before_tensorflow_is_imported(tmp_path):
    """Found by a user test: every error waited for the TensorFlow import (30-110 s on a busy machine)."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        (["compare", "--lrs", "abc"], "--lrs"),
        (["sweep", "--lrs", "1e-3,none"], "--lrs"),
        (["compare", "--clipnorm", "-2"], "--clipnorm"),
        (["tune", "--set", "momentum"], "--set"),
        (["compare", "--out", str(blocker / "sub")], "is not writable"),
        (["diagnose", "--data", str(tmp_path / "missing.csv")], "does not exist"),
        (["report", str(tmp_path / "nowhere")], "does not exist"),
        (["report", str(blocker)], "is a file, not a folder"),
        (["report", str(tmp_path)], "no run records under"),
        (["tune", "--storage", "foo://bar"], "unknown database 'foo'"),
        (["tune", "--storage", "postgres-ql"], "is not a database URL"),
        (["converge", "--plot", str(tmp_path / "paths.txt")], "must end in .png or .svg"),
    ]
    for args, expected in cases:
        code = (f"import sys; sys.argv = ['optimlab', *{args!r}]\n"
                "import optimlab.cli\n"
                "try:\n    optimlab.cli.main()\nexcept SystemExit as e:\n    print('EXIT', e.code)\n"
                "print('LOADED', [m for m in ('tensorflow', 'keras') if m in sys.modules])")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_env(), timeout=60,
                              cwd=tmp_path)
        assert "EXIT 2" in done.stdout and "LOADED []" in done.stdout, (args, done.stdout, done.stderr)
        assert expected in done.stderr, (args, done.stderr)
    assert list(tmp_path.iterdir()) == [blocker]  # nothing written: no runs/ folder for a bad command


def test_diagnose_shows_a_peak_between_shown_rows_and_names_its_flags(tmp_path, monkeypatch):
    """Found by a user test: a one-epoch explosion between shown rows never appeared, the title said "(ok)"."""
    import io

    from optimlab.lab.training.runner import experiments

    history = [{"epoch": e, "train_loss": 1.0, "train_loss_max": 1.0, "grad_norm": 1.0, "dead_units": 0.25}
               for e in range(40)]
    history[5]["train_loss_max"] = 5.61e13  # between the shown rows 3 and 7
    picks = sorted(set(np.linspace(0, 39, 12).astype(int)))
    assert 5 not in picks and 7 in picks

    class Runner(experiments.Runner):
        def run(self, optimizer, hyperparameters, seed):
            columns = {key: [h[key] for h in history] for key in history[0]}  # records keep columns
            spec = self.spec(optimizer, hyperparameters, seed)
            record = {"status": "ok", "spec": spec, "history": columns, "diagnostics": {}}
            records.write(records.record_path(self.out, spec), record)  # as the real run does: diagnose reads it
            return record

    screen = io.StringIO()
    monkeypatch.setattr(tables, "console", Console(file=screen, width=80))
    commands.diagnose(Runner(tmp_path / "dg", "iris", epochs=40), "gd", 0.1, "none", 0)
    text = screen.getvalue()
    rows = {int(line.split()[0]): line.split() for line in text.splitlines() if re.match(r"\s*\d+\s+1\s", line)}
    assert "5.61e+13" in rows[7] and "5.61e+13" not in rows[3] and "5.61e+13" not in rows[10], text
    assert all(row[-1] == "25%" for row in rows.values()), text
    assert re.search(r"\(finished; flags: [a-z, ]*exploding[a-z, ]*\)", " ".join(text.split())), text
    assert "(ok)" not in text
    assert len(list((tmp_path / "dg").rglob("*.json"))) == 1  # the fake run's record, which diagnose read back
