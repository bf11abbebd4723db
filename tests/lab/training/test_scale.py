"""The lab at scale: --jobs worker processes, a two-node Ray cluster, Optuna on PostgreSQL.

Each executor must give the records a serial run gives (timings aside), and
lose nothing when a worker or a node is killed mid-run.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest

from optimlab.lab.training import records
from optimlab.lab.training.runner import experiments

TIMING = ("started", "wall_time", "seconds")
SWEEP = dict(optimizer="adam", learning_rates=[1e-3, 1e-2, 1e-1], seeds=2)


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    return value


def _by_key(out):
    return {r["key"]: _without_timing(r) for r in records.load_all(out)}


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    runner = experiments.Runner(out, "iris", epochs=30)
    experiments.sweep(runner, **SWEEP)
    assert runner.computed == 6
    return _by_key(out)


def _kill_one_worker_after_the_first_record(runner, kill):
    state = {"killed": False}

    def on_run(record, computed):
        if computed and not state["killed"]:
            state["killed"] = True
            kill()

    runner.on_run = on_run
    return state


def test_jobs_2_gives_the_serial_records_and_survives_a_killed_worker(tmp_path, serial):
    """Issue 17 item 2: --jobs 2 records equal serial ones; a killed worker's run is computed again."""
    import multiprocessing

    runner = experiments.Runner(tmp_path, "iris", epochs=30, jobs=2)
    retried = []
    runner.on_retry = lambda: retried.append(1)

    def kill():
        children = multiprocessing.active_children()
        assert children, "no worker processes"
        os.kill(children[0].pid, signal.SIGKILL)

    state = _kill_one_worker_after_the_first_record(runner, kill)
    try:
        experiments.sweep(runner, **SWEEP)
    finally:
        runner.close()
    assert state["killed"] and runner.computed == 6
    assert _by_key(tmp_path) == serial
    assert not list(tmp_path.glob("records/*/*/*.claim")) and not list(tmp_path.glob("records/*/*/.*.tmp"))


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[test]')")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, include_dashboard=False)
    try:
        yield cluster, worker
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_two_node_ray_cluster_gives_the_serial_records_and_survives_a_lost_node(tmp_path, serial, ray_cluster):
    """Issue 17 item 3: records come back to the driver; a node removed mid-run loses nothing."""
    import ray

    cluster, worker = ray_cluster
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    runner = experiments.Runner(tmp_path, "iris", epochs=30, ray=cluster.address)
    state = _kill_one_worker_after_the_first_record(runner, lambda: cluster.remove_node(worker, allow_graceful=False))
    experiments.sweep(runner, **SWEEP)
    assert state["killed"] and runner.computed == 6
    assert _by_key(tmp_path) == serial
    again = experiments.Runner(tmp_path, "iris", epochs=30, ray=cluster.address)
    experiments.sweep(again, **SWEEP)  # resume works as locally
    assert again.computed == 0 and again.reused == 6


# ---------------------------------------------------------------- PostgreSQL
def _postgres_bin():
    for folder in [os.environ.get("PG_BIN"), *sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True),
                   "/usr/local/bin", "/usr/bin"]:
        if folder and (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 in a temporary folder (as a non-root user when run as root)."""
    pytest.importorskip("psycopg", reason="psycopg (3) is not installed (pip install -e '.[test]')")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found; install postgresql or set PG_BIN")
    folder = Path(tempfile.mkdtemp(prefix="optimlab-pg-"))
    prefix = []
    if os.geteuid() == 0:  # postgres refuses to run as root
        user = "postgres" if subprocess.run(["id", "postgres"], capture_output=True).returncode == 0 else "optimlabpg"
        if user == "optimlabpg":
            subprocess.run(["useradd", "--system", "--no-create-home", user], capture_output=True)
        shutil.chown(folder, user)
        prefix = ["runuser", "-u", user, "--"]
    data, port = folder / "data", _free_port()
    subprocess.run([*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", "optimlab", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w", "start",
                    "-o", f"-h 127.0.0.1 -p {port} -k {folder}"], check=True, capture_output=True)
    try:
        yield f"postgresql://optimlab@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_three_tune_workers_on_postgres_complete_exactly_the_trials(tmp_path, postgres):
    """Issue 17 item 3: three processes share one study on PostgreSQL and run exactly --trials trials."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "optimlab.cli", "tune", "--task", "iris", "--optimizers", "adam",
               "--trials", "7", "--sampler", "random", "--epochs", "3", "--storage", postgres]
    workers = [subprocess.Popen([*command, "--out", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env) for i in range(3)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), [out[-3000:] for out in outputs]
    study = optuna.load_study(study_name="iris-adam-random", storage=postgres)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    counted = [t for t in study.trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
    assert len(complete) == 7 and len(counted) == 7
    computed = sum(len(records.load_all(tmp_path / f"w{i}")) for i in range(3) if (tmp_path / f"w{i}").exists())
    assert computed == 7  # each trial trained once, by one worker, with no shared folder
    assert sum(bool(list((tmp_path / f"w{i}").glob("records/*/*/*.json"))) for i in range(3)) >= 2  # shared out
