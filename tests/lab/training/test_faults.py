"""The lab under faults: damaged records, permissions, leftovers, concurrent processes, budgets, tuning resumes."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest

from optimlab.lab import commands
from optimlab.lab.training import analysis, records, report
from optimlab.lab.training.runner import experiments, tuning

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults")
    runner = experiments.Runner(out, "iris", epochs=2)
    experiments.compare(runner, ["gd", "adam"], seeds=2)
    return out


def test_damaged_records_name_the_file_and_what_to_do(folder, tmp_path):
    """Issue 13 item 13: truncated, empty, ``{}`` and hand-edited records."""
    source = sorted(folder.glob("records/*/*/*.json"))[0]
    text = source.read_text()
    edited = json.loads(text)
    edited["final"]["test_loss"] = 1e9
    cases = {"truncated": text[: len(text) // 2], "empty": "", "braces": "{}", "edited": json.dumps(edited)}
    for name, damaged in cases.items():
        out = tmp_path / name
        target = out / source.relative_to(folder)
        target.parent.mkdir(parents=True)
        target.write_text(damaged)
        with pytest.raises(records.RecordError) as error:
            records.load_all(out)
        assert str(target) in str(error.value) and "delete it" in str(error.value), (name, error.value)
        with pytest.raises(commands.LabError, match="delete it"):
            commands.make_report(out)
        with pytest.raises(records.RecordError, match=str(target)):  # a resumed compare stops at it too
            experiments.compare(experiments.Runner(out, "iris", epochs=2), ["gd", "adam"], seeds=2)
    intact = records.read(source)  # the intact record reads back, from where its spec puts it
    assert records.record_path(folder, intact["spec"]) == source and source.stem.endswith(intact["key"])


def test_records_follow_the_umask_and_stale_temporary_files_go(tmp_path):
    """Issue 13 item 16: records readable by a team; no ``.tmp`` left by killed writers."""
    before = os.umask(0o022)
    try:
        records.write(tmp_path / "a" / "r.json", {"x": 1})
        os.umask(0o002)
        records.write(tmp_path / "a" / "s.json", {"x": 2})
    finally:
        os.umask(before)
    assert (tmp_path / "a" / "r.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "a" / "s.json").stat().st_mode & 0o777 == 0o664

    folder = tmp_path / "records" / "iris" / "gd"
    folder.mkdir(parents=True)
    dead = folder / f".0123456789abcdef.{_dead_pid()}-{records._HOST}.00ff00ff.tmp"
    live = folder / f".0123456789abcdef.{os.getpid()}-{records._HOST}.00ff00ff.tmp"
    for path in (dead, live):
        path.write_text('{"half": ')
    assert records.clean_stale(tmp_path) == 1
    assert not dead.exists() and live.exists()  # a live writer's file is left alone
    live.unlink()
    runner = experiments.Runner(tmp_path, "iris", epochs=1)
    dead.write_text("{")
    runner.run("gd", {"learning_rate": 0.1}, 0)  # a run cleans the folder it writes to
    assert not list(tmp_path.glob("records/*/*/.*.tmp"))


def test_claims_are_taken_over_from_dead_processes_only(tmp_path):
    path = tmp_path / "records" / "p" / "o" / "k.json"
    assert records.claim(path) and not records.claimed_by_other(path)
    records.claim_path(path).write_text(f"{os.getppid()}-{records._HOST}")  # a live process holds it
    assert not records.claim(path) and records.claimed_by_other(path)
    records.claim_path(path).write_text(f"{_dead_pid()}-{records._HOST}")
    assert not records.claimed_by_other(path) and records.claim(path)
    records.release(path)
    assert not records.claim_path(path).exists()


SPLIT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from optimlab.lab.training.runner import experiments
    out, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    runner = experiments.Runner(out, "iris", epochs=40)
    runner.data_split()
    (out / me).touch()
    while not (out / other).exists():
        time.sleep(0.01)
    experiments.sweep(runner, "adam", [1e-3, 3e-3, 1e-2, 3e-2], seeds=3)
    print("computed", runner.computed)
""")


def test_two_processes_on_one_folder_split_the_runs(tmp_path):
    """Issue 13 item 15: concurrent processes claim runs; none is computed twice."""
    procs = [subprocess.Popen([sys.executable, "-c", SPLIT, str(tmp_path), me, other], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=ENV, text=True)
             for me, other in (("a", "b"), ("b", "a"))]
    computed = []
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0
        computed.append(int(out.split()[-1]))
    assert sum(computed) == 12 and len(records.load_all(tmp_path)) == 12
    assert min(computed) > 0  # the work was split, not done by one while the other waited
    assert not list(tmp_path.glob("records/*/*/*.claim"))


def test_report_keeps_two_budgets_apart(tmp_path):
    """Issue 13 item 14: one folder, runs of two budgets: no crash, no pooling."""
    for epochs in (2, 3):
        experiments.compare(experiments.Runner(tmp_path, "iris", epochs=epochs), ["gd", "adam"], seeds=2)
    runs = analysis.runs_table(records.load_all(tmp_path))
    summary = analysis.summary(runs)
    assert sorted(summary["problem"].unique()) == ["iris [epochs=2 eval_every=1]", "iris [epochs=3 eval_every=1]"] \
        or sorted(summary["problem"].unique()) == ["iris [epochs=2]", "iris [epochs=3]"]
    assert len(summary) == 4 and (summary["seeds"] == 2).all()
    assert report.write_report(tmp_path).exists()


def _tried_rates(out):
    return sorted(r["spec"]["hyperparameters"]["learning_rate"] for r in records.load_all(out))


def test_resumed_grid_tune_tries_exactly_the_grid(tmp_path):
    """Issue 13 item 11: interrupted after 3 of 6 grid points, then resumed."""
    runner = experiments.Runner(tmp_path, "iris", epochs=2)

    def interrupt(record, computed):
        if runner.computed == 3:
            raise KeyboardInterrupt

    runner.on_run = interrupt
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(runner, ["adam"], trials=6, sampler="grid", lr_range=(1e-4, 1e-1))
    resumed = experiments.Runner(tmp_path, "iris", epochs=2)
    result = tuning.tune(resumed, ["adam"], trials=6, sampler="grid", lr_range=(1e-4, 1e-1))
    grid = np.geomspace(1e-4, 1e-1, 6)
    np.testing.assert_allclose(_tried_rates(tmp_path), grid, rtol=1e-10)  # spaces' grid: 12 digits
    assert result["adam"]["trials"] == 6 and resumed.computed == 3


def test_resumed_grid_tune_with_one_grid_point_left_after_the_retry(tmp_path):
    """Ctrl-C in the 2nd of 3 grid points: the resumed tune stopped with "error: grid_id" (Optuna's grid
    sampler looked up the grid point of the queued retry, which had none) and only a third call finished."""
    runner = experiments.Runner(tmp_path, "iris", epochs=2)

    def interrupt(record, computed):
        if runner.computed == 2:
            raise KeyboardInterrupt

    runner.on_run = interrupt
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(runner, ["adam"], trials=3, sampler="grid", lr_range=(1e-4, 1e-1))
    resumed = experiments.Runner(tmp_path, "iris", epochs=2)
    result = tuning.tune(resumed, ["adam"], trials=3, sampler="grid", lr_range=(1e-4, 1e-1))
    assert result["adam"]["trials"] == 3 and resumed.computed == 1
    np.testing.assert_allclose(_tried_rates(tmp_path), np.geomspace(1e-4, 1e-1, 3), rtol=1e-10)


def test_resumed_random_tune_does_not_replay_the_interrupted_first_draw(tmp_path):
    """Ctrl-C during the first trial, after its run was saved: the resumed study must not draw that
    learning rate again (it did: reseeded with the same seed, 2 records for 3 trials)."""
    runner = experiments.Runner(tmp_path, "iris", epochs=2)

    def interrupt(record, computed):
        raise KeyboardInterrupt

    runner.on_run = interrupt
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(runner, ["adam"], trials=3, sampler="random")
    resumed = experiments.Runner(tmp_path, "iris", epochs=2)
    result = tuning.tune(resumed, ["adam"], trials=3, sampler="random")
    assert result["adam"]["trials"] == 3
    assert len(set(_tried_rates(tmp_path))) == 3 and resumed.computed == 2


KILLED = textwrap.dedent("""
    import os, signal, socket, sys
    import optuna
    study = optuna.create_study(study_name="iris-adam-random", storage=sys.argv[1], load_if_exists=True)
    study.set_user_attr("fingerprint", sys.argv[2])  # as tune's study of this problem
    trial = study.ask()
    trial.suggest_float("learning_rate", 1e-5, 1.0, log=True)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)  # as a tune killed mid-trial
""")


def test_trials_left_running_by_kill_9_are_retried_not_counted(tmp_path):
    """Issue 13 item 12: a killed tune leaves a RUNNING trial; the next tune fails and reruns it."""
    storage = tuning.default_storage(tmp_path)
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    killed = subprocess.run([sys.executable, "-c", KILLED, storage, runner.fingerprint()], env=ENV)
    assert killed.returncode == -signal.SIGKILL
    study = optuna.load_study(study_name="iris-adam-random", storage=storage)
    (stale,) = study.trials
    assert stale.state == optuna.trial.TrialState.RUNNING
    result = tuning.tune(runner, ["adam"], trials=3, sampler="random")
    assert result["adam"]["trials"] == 3 and runner.computed == 3
    trials = optuna.load_study(study_name="iris-adam-random", storage=storage).trials
    assert trials[0].state == optuna.trial.TrialState.FAIL
    assert stale.params["learning_rate"] in _tried_rates(tmp_path)  # the interrupted rate was measured
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials) == 3


def test_a_run_another_process_finishes_while_we_claim_it_is_not_computed_again(tmp_path, monkeypatch):
    """The race behind a rare 13-for-12 in the two-process test: the record appears between our
    look and our claim (the other process wrote it and released its claim)."""
    experiments.sweep(experiments.Runner(tmp_path, "iris", epochs=2), "adam", [1e-3], seeds=1)
    (path,) = tmp_path.glob("records/*/*/*.json")
    content = path.read_text()
    path.unlink()
    real_claim = records.claim

    def claim_just_after_the_other_finished(target):
        path.write_text(content)
        return real_claim(target)

    monkeypatch.setattr(records, "claim", claim_just_after_the_other_finished)
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    experiments.sweep(runner, "adam", [1e-3], seeds=1)
    assert runner.computed == 0 and runner.reused == 1
    assert not list(tmp_path.glob("records/*/*/*.claim"))
