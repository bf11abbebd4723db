"""Ctrl-C inside a long run (issue 15): the first press stops within a couple of seconds, not at the run's end.

A run is one compiled TensorFlow call; these tests interrupt runs that would
take minutes and check that the stop comes at once, that nothing of the
interrupted run is saved, and that the program computes exactly as before
afterwards.
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

ROOT = Path(__file__).resolve().parents[3]
LONG = "3000000"  # epochs of iris: minutes of training on any machine


def _start_long_compare(out, *extra):
    return _start(out, "compare", "--task", "iris", "--optimizers", "adam", "--lrs", "0.1", "--seeds", "2",
                  "--epochs", LONG, "--out", str(out), *extra)


def _start(out, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    process = subprocess.Popen([sys.executable, "-m", "optimlab", *args], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.time() + 240
    while not list(out.glob("records/*/*/*.claim")):  # a run has been claimed: it is being traced or trained
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no run started in time"
        time.sleep(0.1)
    time.sleep(3)  # well inside the run
    return process


def _interrupt_and_check(process, out):
    process.send_signal(signal.SIGINT)
    sent = time.time()
    stdout, stderr = process.communicate(timeout=120)
    stopped_in = time.time() - sent
    assert process.returncode == 130, stderr[-3000:]
    assert "interrupted: 0 runs saved; rerun the same command to resume" in stderr
    for noise in ("Traceback", "Exception ignored", "absl", "oneDNN", "cuda"):
        assert noise not in stderr, stderr[-3000:]
    assert stopped_in < 20, stopped_in  # about 2 s here (most of it is the process exiting); the run takes minutes
    assert not list(out.glob("records/**/*.json")) and not list(out.glob("records/**/*.claim"))


def test_ctrl_c_inside_a_long_run_stops_at_once(tmp_path):
    out = tmp_path / "long"
    _interrupt_and_check(_start_long_compare(out), out)


def test_ctrl_c_inside_a_long_tune_trial_stops_at_once_and_the_trial_does_not_count(tmp_path):
    import optuna

    out = tmp_path / "tune"
    process = _start(out, "tune", "--task", "iris", "--optimizers", "adam", "--trials", "2", "--sampler", "random",
                     "--epochs", LONG, "--out", str(out))
    _interrupt_and_check(process, out)
    study = optuna.load_study(study_name="iris-adam-random", storage=f"sqlite:///{out / 'tuning.db'}")
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL]


def test_ctrl_c_inside_long_runs_of_worker_processes_stops_them_at_once(tmp_path):
    out = tmp_path / "jobs"
    process = _start_long_compare(out, "--jobs", "2")
    workers = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(process.pid)], capture_output=True, text=True)
    pids = [int(line.split()[0]) for line in workers.stdout.splitlines() if "spawn_main" in line]
    assert len(pids) == 2, workers.stdout
    _interrupt_and_check(process, out)
    time.sleep(1)
    assert not [pid for pid in pids if _running(pid)], "worker processes still running"


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
