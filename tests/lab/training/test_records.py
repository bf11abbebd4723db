"""Records: deterministic keys, atomic writes, and resume after kill -9."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from optimlab.lab.training import records
from optimlab.lab.training.runner import experiments

SPEC = {"problem": "iris", "optimizer": "adam", "hyperparameters": {"learning_rate": 0.01}, "seed": 0, "epochs": 5}


def test_key_is_deterministic_and_ignores_key_order():
    reordered = dict(reversed(list(SPEC.items())))
    assert records.run_key(SPEC) == records.run_key(reordered)
    assert records.run_key(SPEC) != records.run_key({**SPEC, "seed": 1})
    path = records.record_path("out", SPEC)
    assert path.parts[-4:-1] == ("records", "iris", "adam") and path.stem == records.run_key(SPEC)


def test_write_is_atomic_and_strict_json(tmp_path):
    path = tmp_path / "a" / "b.json"
    records.write(path, {"loss": float("nan"), "curve": [1.0, float("inf")]})
    assert records.read(path) == {"loss": None, "curve": [1.0, None]}
    assert json.loads(path.read_text())["checksum"] == records.checksum({"loss": None, "curve": [1.0, None]})
    with pytest.raises(TypeError):
        records.write(path, {"bad": object()})  # fails while serializing: the old record stays whole
    assert records.read(path)["loss"] is None
    assert [p.name for p in path.parent.iterdir()] == ["b.json"]  # no temporary file left behind


def test_load_all_ignores_temporary_files(tmp_path):
    path = records.record_path(tmp_path, SPEC)
    records.write(path, {"key": "x"})
    (path.parent / ".half-written.tmp").write_text('{"key": ')
    assert records.load_all(tmp_path) == [{"key": "x"}]


def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "optimlab.cli", "compare", "--task", "iris", "--optimizers", "gd,adam",
               "--seeds", "6", "--epochs", "20", "--lrs", "default", "--out", str(out)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 240
    try:
        while len(list(out.glob("records/*/*/*.json"))) < 3:
            assert process.poll() is None, "compare finished before it could be killed"
            assert time.time() < deadline, "no records written in time"
            time.sleep(0.05)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    before = {p: p.stat().st_mtime_ns for p in out.glob("records/*/*/*.json")}
    assert 3 <= len(before) < 12
    for p in before:
        json.loads(p.read_text())  # every record that exists is complete

    runner = experiments.Runner(out, "iris", epochs=20)
    result = experiments.compare(runner, ["gd", "adam"], seeds=6)
    assert runner.reused == len(before) and runner.computed == 12 - len(before)
    assert {p: p.stat().st_mtime_ns for p in before} == before  # finished runs were not recomputed
    assert sum(len(v["records"]) for v in result.values()) == 12
    assert len(records.load_all(out)) == 12


def test_configuration_labels_spell_switches_as_words_and_numbers_short():
    """Found by a sweep of nesterov: the summary's config column said ``nesterov=1``."""
    from optimlab.lab.training.analysis.tables import config_label

    assert config_label({"learning_rate": 0.001, "nesterov": True, "amsgrad": False, "clipnorm": 2.0}) == \
        "amsgrad=false clipnorm=2 lr=0.001 nesterov=true"
    assert config_label({"learning_rate": 1e-7, "schedule": "CosineDecay"}) == "lr=1e-07 schedule=CosineDecay"
