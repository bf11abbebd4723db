"""Ctrl-C (issue 15): the first press stops every command within a couple of seconds, not at a run's end.

A training run or a convergence test is one compiled TensorFlow call; these
tests interrupt work that would take minutes and check that the stop comes at
once, with the message and exit status 130, that nothing of the interrupted
run is saved, and that the program computes exactly as before afterwards.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from optimlab import _interrupt
from optimlab.lab.training import problems
from optimlab.lab.training.runner import loop

ROOT = Path(__file__).resolve().parents[1]
LONG = "3000000"  # epochs of iris: minutes of training on any machine


def _start_long_compare(out, *extra):
    return _claimed(out, _spawn("compare", "--task", "iris", "--optimizers", "adam", "--lrs", "0.1", "--seeds", "2",
                                "--epochs", LONG, "--out", str(out), *extra))


def _claimed(out, process):
    """Wait until ``process`` has claimed a run in ``out`` (and is 3 s into it)."""
    deadline = time.time() + 240
    while not list(out.glob("records/*/*/*.claim")):  # a run has been claimed: it is being traced or trained
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no run started in time"
        time.sleep(0.1)
    time.sleep(3)  # well inside the run
    return process


_SPAWNED = []


@pytest.fixture(autouse=True)
def _no_process_left():
    """A failed test must not leave its command (and its workers) running for minutes."""
    yield
    while _SPAWNED:
        process = _SPAWNED.pop()
        if process.poll() is None:
            for pid in _children(process):
                os.kill(pid, signal.SIGKILL)
            process.kill()
            process.communicate()


def _spawn(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    process = subprocess.Popen([sys.executable, "-m", "optimlab", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    _SPAWNED.append(process)
    return process


def _cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _working(process, cpu_seconds, pid=None):
    """Wait until ``pid`` (default: the process) has computed ``cpu_seconds``: past TensorFlow's import, working.

    CPU time, not wall time, so that a loaded machine does not make the signal come too early.
    """
    deadline = time.time() + 300
    while _cpu_seconds(pid or process.pid) < cpu_seconds:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "the command did not get going in time"
        time.sleep(0.2)
    return process


def _children(process):
    listing = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(process.pid)], capture_output=True,
                             text=True)
    return [int(line.split()[0]) for line in listing.stdout.splitlines() if "spawn_main" in line]


def _interrupt_and_check(process, out, message="interrupted: 0 runs saved; rerun the same command to resume"):
    process.send_signal(signal.SIGINT)
    sent = time.time()
    stdout, stderr = process.communicate(timeout=120)
    stopped_in = time.time() - sent
    assert process.returncode == 130, stderr[-3000:]
    assert stderr.rstrip().endswith(message), stderr[-3000:]
    for noise in ("Traceback", "Exception ignored", "absl", "oneDNN", "cuda"):
        assert noise not in stderr, stderr[-3000:]
    assert stopped_in < 20, stopped_in  # about 2 s here (most of it is the process exiting); the run takes minutes
    assert not list(out.glob("records/**/*.json")) and not list(out.glob("records/**/*.claim"))
    return stdout


def test_ctrl_c_inside_a_long_convergence_test_stops_at_once(tmp_path):
    process = _working(_spawn("converge", "--function", "rosenbrock", "--optimizers", "adam,sgd", "--lrs", "1e-5",
                              "--max-iters", "5000000", "--plot", str(tmp_path / "paths.png")), 15)
    stdout = _interrupt_and_check(process, tmp_path, message="interrupted")
    assert "converged" not in stdout and not (tmp_path / "paths.png").exists()


def test_ctrl_c_stops_bench_and_its_measuring_process_at_once(tmp_path):
    process = _spawn("bench", "--optimizers", "adam", "--shapes", "small", "--repeats", "100000",
                     "--out", str(tmp_path / "bench"))
    deadline = time.time() + 300
    while not _children(process):
        assert process.poll() is None and time.time() < deadline, "no measuring process"
        time.sleep(0.2)
    pids = _children(process)
    _working(process, 8, pid=pids[0])
    _interrupt_and_check(process, tmp_path, message="interrupted")
    assert not list((tmp_path / "bench").glob("*.csv"))
    time.sleep(1)
    assert not [pid for pid in pids if _running(pid)], "the measuring process is still running"


def test_ctrl_c_inside_a_long_run_stops_at_once(tmp_path):
    out = tmp_path / "long"
    _interrupt_and_check(_start_long_compare(out), out)


def test_ctrl_c_inside_a_long_tune_trial_stops_at_once_and_the_trial_does_not_count(tmp_path):
    import optuna

    out = tmp_path / "tune"
    process = _claimed(out, _spawn("tune", "--task", "iris", "--optimizers", "adam", "--trials", "2",
                                   "--sampler", "random", "--epochs", LONG, "--out", str(out)))
    _interrupt_and_check(process, out)
    study = optuna.load_study(study_name="iris-adam-random", storage=f"sqlite:///{out / 'tuning.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]


def test_ctrl_c_inside_long_runs_of_worker_processes_stops_them_at_once(tmp_path):
    out = tmp_path / "jobs"
    process = _start_long_compare(out, "--jobs", "2")
    pids = _children(process)
    assert len(pids) == 2, pids
    _interrupt_and_check(process, out)
    time.sleep(1)
    assert not [pid for pid in pids if _running(pid)], "worker processes still running"


def test_worker_processes_end_when_the_command_is_killed(tmp_path):
    """kill -9 of the command left its --jobs workers training for nobody (found by a user test)."""
    out = tmp_path / "killed"
    process = _start_long_compare(out, "--jobs", "2")
    pids = _children(process)
    assert len(pids) == 2, pids
    process.kill()
    process.communicate()
    deadline = time.time() + 20
    while [pid for pid in pids if _running(pid)] and time.time() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in pids if _running(pid)], "workers outlived the command"


def _running(pid):
    """Whether ``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_an_interrupted_run_is_discarded_and_the_program_computes_as_before():
    problem = problems.get("iris")
    data = problems.load(problem)

    def run(epochs):
        return loop.train_named(problem, data, "adam", {"learning_rate": 0.05}, seed=3, epochs=epochs)

    before = run(40)
    traces = loop.TRACES
    timer = threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    with _interrupt.graceful():
        timer.start()
        with pytest.raises(_interrupt.Interrupted):
            run(int(LONG))
    assert time.perf_counter() - started < 15
    after = run(40)  # the same traced program, its stop flag cleared
    assert loop.TRACES == traces  # one program served all three runs
    assert before.history.drop(columns="wall_time").equals(after.history.drop(columns="wall_time"))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
@pytest.mark.parametrize("safe_points", [True, False])
def test_the_command_line_stops_work_with_and_without_safe_points(monkeypatch, capsys, safe_points):
    """Work that checks for a stop (runs) ends at its next check; other work (a report) where it is."""
    import typer

    from optimlab import cli

    monkeypatch.setattr(cli, "_command_line", lambda ctx: "optimlab test")
    monkeypatch.setattr(_interrupt, "_saving", [])  # no runs: earlier tests in this process made some
    checked = []

    def work(_):
        deadline = time.time() + 60
        while time.time() < deadline:
            time.sleep(0.01)
            if safe_points:
                checked.append(1)
                _interrupt.check()

    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    started = time.time()
    with pytest.raises(typer.Exit) as stop:
        cli._run(None, work, safe_points=safe_points)
    assert stop.value.exit_code == 130 and time.time() - started < 10
    assert capsys.readouterr().err.strip() == _interrupt.message() == "interrupted"
    assert bool(checked) == safe_points


# ------------------------------------------------------------------ Ctrl-C during start-up (issue 22)
def _interrupt_at(seconds, tmp_path):
    """A compare, Ctrl-C after ``seconds`` (in Typer, the checks, TensorFlow's import, or its one long run)."""
    out = tmp_path / f"at-{seconds}"
    process = _spawn("compare", "--task", "iris", "--optimizers", "adam", "--lrs", "0.1", "--seeds", "1",
                     "--epochs", LONG, "--out", str(out))
    time.sleep(seconds)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=180)
    return process.returncode, stdout, stderr


def _assert_stopped(seconds, code, stdout, stderr):
    """Exit 130 with the one message and nothing else: never a swallowed Ctrl-C, a silent stop or a traceback."""
    assert code == 130, (seconds, code, stderr[-2000:])
    last = stderr.rstrip().splitlines()[-1]
    assert last in ("interrupted", "interrupted: 0 runs saved; rerun the same command to resume"), \
        (seconds, stderr[-2000:])
    for noise in ("Traceback", "Exception ignored", "Aborted"):
        assert noise not in stderr, (seconds, stderr[-2000:])


@pytest.mark.parametrize("seconds", [0.3, 1.5, 4.0])
def test_ctrl_c_during_start_up_exits_130_with_the_message(tmp_path, seconds):
    """Found by a user test: a Ctrl-C while TensorFlow loaded was lost about one time in seven (the command ran
    on and exited 0); one while Typer parsed exited 130 without a word; one in the first 0.3 s, a traceback."""
    _assert_stopped(seconds, *_interrupt_at(seconds, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [0.3, 0.5, 0.8, 1.2, 2.0, 3.0, 5.0, 7.0, 9.0, 12.0, 15.0, 20.0])
def test_ctrl_c_at_many_moments_exits_130_with_the_message(tmp_path, seconds):
    """From 0.3 s on. Earlier the interpreter itself may still be starting (importing ``site``): a Ctrl-C then
    ends Python with "Fatal Python error: init_import_site" before any of optimlab runs."""
    _assert_stopped(seconds, *_interrupt_at(seconds, tmp_path))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_a_ctrl_c_swallowed_by_a_library_import_still_stops_the_command(monkeypatch, capsys):
    """An import guarded by a bare ``except`` (common in optional-dependency code) swallows KeyboardInterrupt."""
    import typer

    from optimlab import cli

    def swallowing_import(verbose):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except:  # noqa: E722 - what such a library does
            pass

    monkeypatch.setattr(cli._quiet, "import_libraries", swallowing_import)
    monkeypatch.setattr(_interrupt, "_saving", [])
    worked = []
    previous = signal.getsignal(signal.SIGINT)
    _interrupt.start_up()
    try:
        with pytest.raises(typer.Exit) as stop:
            cli._run(None, worked.append)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stop.value.exit_code == 130 and not worked
    assert capsys.readouterr().err.strip() == "interrupted"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_main_reports_a_ctrl_c_that_never_reached_a_command(monkeypatch, capsys):
    """A press swallowed before the command's own handling (while Typer parses) ends the command with 130 too."""
    from optimlab import cli
    from optimlab.lab import arguments

    def swallowing_check(**checks):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except:  # noqa: E722
            pass

    monkeypatch.setattr(arguments, "precheck", swallowing_check)
    monkeypatch.setattr(sys, "argv", ["optimlab", "functions"])
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit) as stop:
            cli.main()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stop.value.code == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == "interrupted"


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals reach the main thread")
def test_a_ctrl_c_after_the_last_safe_point_is_not_lost():
    """A press during the closing summary (after the last run's check) stops the command at the block's end."""
    with pytest.raises(_interrupt.Interrupted):
        with _interrupt.graceful():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs; no check() follows in the block
    assert not _interrupt.requested()
