"""Issue 22: a tune killed at any moment of a trial's life resumes to a complete study.

A kill is injected deterministically at the N-th *point*: just before or just
after each write to Optuna's storage (each write is one transaction, so these
points reach every state a kill inside Optuna's calls can leave) and each
record write. In-process, the kill raises :class:`Killed` there and at every
later point (a dead process writes nothing more), and the killed "process" is
a worker whose pid is dead; one test kills a real process with ``os._exit``.
The runner is a stub that trains nothing, so every point is tried in seconds.
"""

import json
import math
import os
import random
import socket
import subprocess
import sys
import textwrap

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from optimlab.lab.training.runner import tuning

# every write of Optuna's SQL storage (the underscored two are what the public ones and Optuna's cache call)
WRITES = ("create_new_study", "_create_new_trial", "_set_trial_param", "set_trial_state_values", "set_trial_user_attr",
          "set_trial_system_attr", "set_study_user_attr", "set_study_system_attr", "set_trial_intermediate_value")
LR_RANGE = (1e-4, 1e-1)


class Killed(BaseException):
    """A ``kill -9`` here (a BaseException: Optuna's ``except Exception`` does not tell the trial)."""


class Points:
    """Counts kill points; at point ``kill_at`` and every one after it, the process is dead."""

    def __init__(self, kill_at=None):
        self.kill_at, self.count = kill_at, 0

    @property
    def killed(self):
        return self.kill_at is not None and self.count >= self.kill_at

    def hit(self):
        self.count += 1
        if self.killed:
            raise Killed(self.count)


class StubRunner:
    """What :func:`tuning.tune` needs of a Runner: one JSON record per learning rate, no training."""

    def __init__(self, out, points, problem="stub", fingerprint="0123456789abcdef"):
        self.out, self.points, self.problem, self.computed = out, points, problem, 0
        self._fingerprint = fingerprint

    def data_split(self):
        return None

    def fingerprint(self):
        return self._fingerprint

    def spec(self, optimizer, hyperparameters, seed):
        return {"epochs": 1}

    def run(self, optimizer, hyperparameters, seed):
        lr = hyperparameters["learning_rate"]
        path = self.out / "records" / f"{_file_name(hyperparameters)}.json"
        if path.exists():
            return json.loads(path.read_text())
        others = [v for k, v in hyperparameters.items() if k != "learning_rate"]
        loss = (math.log10(lr) + 2.5) ** 2 + sum((v - 0.5) ** 2 for v in others)
        record = {"status": "ok", "learning_rate": lr, "final": {"valid_loss": loss}}
        self.points.hit()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        self.computed += 1
        self.points.hit()
        return record


def _file_name(hyperparameters):
    """``0.001`` for the learning rate alone, ``beta_1=0.9,learning_rate=0.001`` for more (the stub's record names)."""
    if list(hyperparameters) == ["learning_rate"]:
        return repr(hyperparameters["learning_rate"])
    return ",".join(f"{k}={v!r}" for k, v in sorted(hyperparameters.items()))


def _measured(path):
    """The configuration a stub record's name holds (the inverse of :func:`_file_name`)."""
    if "=" not in path.stem:
        return (float(path.stem),)
    return tuple(float(item.split("=")[1]) for item in path.stem.split(","))


def _dead_worker():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return f"{socket.gethostname()}:{child.pid}"


@pytest.fixture
def hooks(monkeypatch):
    """``hooks(points)``: every storage write passes two kill points of ``points``."""
    current = {}

    def wrap(name):
        real = getattr(optuna.storages.RDBStorage, name)

        def write(self, *args, **kwargs):
            current["points"].hit()
            result = real(self, *args, **kwargs)
            current["points"].hit()
            return result

        monkeypatch.setattr(optuna.storages.RDBStorage, name, write)

    for name in WRITES:
        wrap(name)

    def use(points):
        current["points"] = points
        return points

    return use


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    """One SQLite storage for a test's many studies (a new engine per study compiles its queries anew: slow)."""
    return optuna.storages.RDBStorage(tuning.default_storage(tmp_path_factory.mktemp("storage")))


def _tune(out, points, sampler, trials, storage, worker=None, space="learning_rate"):
    """One ``tune`` process of the study of problem ``str(out)``, named ``worker`` (a dead pid if it may be killed); False if
    it was killed."""
    alive = tuning._WORKER
    tuning._WORKER = worker or alive
    try:
        tuning.tune(StubRunner(out, points, str(out)), ["adam"], trials=trials, sampler=sampler, lr_range=LR_RANGE,
                    storage=storage, space=space)
    except (Killed, Exception):  # noqa: BLE001 - once killed, Optuna's cleanup may fail on what it lacks
        if not points.killed:
            raise
        return False
    finally:
        tuning._WORKER = alive
    return True


def _check_complete(out, sampler, trials, storage, space="learning_rate"):
    """The study finished: no trial RUNNING or queued, ``trials`` counted, the grid tried exactly once each."""
    name = f"{out}-adam-{sampler}" + ("" if space == "learning_rate" else f"-space={','.join(space)}")
    study = optuna.load_study(study_name=name, storage=storage)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    counted = [t for t in study.trials if tuning._counted(t)]
    assert len(counted) == trials, [(t.number, t.state, t.user_attrs) for t in study.trials]
    if space == "learning_rate":
        measured = sorted((t.params["learning_rate"],) for t in counted)
        if sampler == "grid":
            # the grid is optimlab.spaces' log scale (exp of evenly spaced logs): equal to NumPy's to rounding
            np.testing.assert_allclose([m[0] for m in measured], np.geomspace(*LR_RANGE, trials), rtol=1e-10)
    else:  # two dimensions, learning rate and beta_1 (a log1m scale: Optuna holds 1 - beta_1)
        measured = sorted((1 - t.params["one_minus_beta_1"], t.params["learning_rate"]) for t in counted)
        if sampler == "grid":  # a 2 x 2 grid: the ends of both ranges (adam's beta_1 spans [0, 0.999])
            expected = sorted((b, lr) for b in (0.0, 0.999) for lr in LR_RANGE)
            np.testing.assert_allclose(measured, expected, rtol=1e-12, atol=1e-12)
    assert len(set(measured)) == trials
    tried = sorted(_measured(p) for p in (out / "records").glob("*.json"))
    assert tried == measured


def _kill_everywhere(tmp_path, hooks, storage, sampler, trials, space="learning_rate"):
    """Kill the first tune at each point in turn, resume, check; returns how many points there were."""
    total = hooks(Points())
    assert _tune(tmp_path / "whole", total, sampler, trials, storage, space=space)
    _check_complete(tmp_path / "whole", sampler, trials, storage, space)
    dead = _dead_worker()
    for kill_at in range(1, total.count + 1):
        out = tmp_path / f"killed-at-{kill_at}"
        assert not _tune(out, hooks(Points(kill_at)), sampler, trials, storage, dead, space)
        assert _tune(out, hooks(Points()), sampler, trials, storage, space=space), kill_at
        _check_complete(out, sampler, trials, storage, space)
    return total.count


def test_a_grid_tune_killed_at_any_point_resumes_to_the_whole_grid(tmp_path, hooks, storage):
    """The user's report: after kills, 11 of 12 grid points and one trial RUNNING forever (killed between
    Optuna turning a trial RUNNING and optimlab naming its worker: counted as running, never retried)."""
    assert _kill_everywhere(tmp_path, hooks, storage, "grid", 2) >= 16


@pytest.mark.slow
def test_a_two_dimensional_grid_tune_killed_at_any_point_resumes_to_the_whole_grid(tmp_path, hooks, storage):
    """Issue 23: a grid over the learning rate and beta_1 (2 x 2) resumes to every point once, after a kill anywhere."""
    assert _kill_everywhere(tmp_path, hooks, storage, "grid", 4, ("learning_rate", "beta_1")) >= 32


@pytest.mark.slow
def test_a_two_dimensional_tpe_tune_killed_at_any_point_resumes_to_exactly_its_trials(tmp_path, hooks, storage):
    """Issue 23: multivariate TPE over two dimensions, killed anywhere, resumes to exactly its trials."""
    assert _kill_everywhere(tmp_path, hooks, storage, "tpe", 2, ("learning_rate", "beta_1")) >= 10


@pytest.mark.slow
def test_a_longer_grid_tune_killed_at_any_point_resumes_to_the_whole_grid(tmp_path, hooks, storage):
    assert _kill_everywhere(tmp_path, hooks, storage, "grid", 3) >= 24


@pytest.mark.slow
def test_a_random_tune_killed_at_any_point_resumes_to_exactly_its_trials(tmp_path, hooks, storage):
    assert _kill_everywhere(tmp_path, hooks, storage, "random", 2) >= 10


@pytest.mark.slow
def test_a_grid_tune_killed_again_and_again_while_resuming_completes(tmp_path, hooks, storage):
    """Six kills at random points of the first tune and of each resume (the retries' own lives included)."""
    rng = random.Random(22)
    out = tmp_path / "study"
    kills = 0
    while kills < 6:
        kills += not _tune(out, hooks(Points(rng.randint(1, 40))), "grid", 12, storage, _dead_worker())
    assert _tune(out, hooks(Points()), "grid", 12, storage)
    _check_complete(out, "grid", 12, storage)


def test_a_trial_claimed_by_a_live_worker_is_left_to_it(tmp_path):
    """A RUNNING trial not yet named by its worker is abandoned only when every worker that claimed it is dead."""
    storage = tuning.default_storage(tmp_path)
    study = optuna.create_study(study_name="s", storage=storage)
    study.enqueue_trial({"learning_rate": 0.01})
    (queued,) = study.get_trials(deepcopy=False)
    study._storage.set_trial_user_attr(queued._trial_id, tuning._CLAIM + _dead_worker(), True)
    study._storage.set_trial_user_attr(queued._trial_id, tuning._CLAIM + tuning._WORKER, True)
    study._storage.set_trial_state_values(queued._trial_id, TrialState.RUNNING)
    (running,) = study.get_trials(deepcopy=False)
    assert not tuning._abandoned(running)  # this process, alive, may be the one that took it
    tuning._retry_interrupted(study)
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TrialState.RUNNING]
    study._storage.set_trial_user_attr(queued._trial_id, "worker", _dead_worker())
    (named,) = study.get_trials(deepcopy=False)
    assert tuning._abandoned(named)  # once named, only its worker counts


KILLED_PROCESS = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import optuna
    sys.path.insert(0, sys.argv[3])
    import test_tune_resume as t
    from optimlab.lab.training.runner import tuning
    kill_at, calls = int(sys.argv[2]), [0]
    real = optuna.storages.RDBStorage._create_new_trial

    def create_new_trial(self, *args, **kwargs):
        trial_id = real(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] == kill_at:
            os._exit(9)  # a kill -9 just after a trial turned RUNNING
        return trial_id

    optuna.storages.RDBStorage._create_new_trial = create_new_trial
    out, space = Path(sys.argv[1]), sys.argv[4].split(",")
    trials = 3 if space == ["learning_rate"] else 4
    tuning.tune(t.StubRunner(out, t.Points(), str(out)), ["adam"], trials=trials, sampler=sys.argv[5],
                lr_range=t.LR_RANGE, space=space)
""")


def _killed_process(out, kill_at, space=("learning_rate",), sampler="grid"):
    here = os.path.dirname(__file__)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, "-c", KILLED_PROCESS, str(out), str(kill_at), here, ",".join(space),
                           sampler], env=env, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 9, done.stderr


def test_a_tune_process_killed_as_a_trial_starts_resumes_to_the_whole_grid(tmp_path):
    """A real process (``os._exit``) dies as its second trial turns RUNNING; the next tune completes the grid."""
    _killed_process(tmp_path, 2)
    assert _tune(tmp_path, Points(), "grid", 3, tuning.default_storage(tmp_path))
    _check_complete(tmp_path, "grid", 3, tuning.default_storage(tmp_path))


@pytest.mark.parametrize("sampler", ["grid", pytest.param("tpe", marks=pytest.mark.slow)])
def test_a_two_dimensional_tune_process_killed_as_a_trial_starts_resumes_to_its_whole_budget(tmp_path, sampler):
    """Issue 23: a real process over the learning rate and beta_1 dies (``os._exit``, as ``kill -9``) as its third
    trial turns RUNNING; the next tune leaves no trial RUNNING, loses and doubles none (a grid: each point once)."""
    space = ("learning_rate", "beta_1")
    _killed_process(tmp_path, 3, space, sampler)
    storage = tuning.default_storage(tmp_path)
    assert _tune(tmp_path, Points(), sampler, 4, storage, space=space)
    _check_complete(tmp_path, sampler, 4, storage, space)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 3])
def test_a_tune_process_killed_as_other_trials_start_resumes_to_the_whole_grid(tmp_path, kill_at):
    _killed_process(tmp_path, kill_at)
    assert _tune(tmp_path, Points(), "grid", 3, tuning.default_storage(tmp_path))
    _check_complete(tmp_path, "grid", 3, tuning.default_storage(tmp_path))


def test_a_changed_problem_does_not_resume_the_study_of_the_old_one(tmp_path):
    """Issue 22: the study is the problem's: another definition under the same name starts its own study."""
    storage = tuning.default_storage(tmp_path)
    first = StubRunner(tmp_path / "first", Points(), "p", fingerprint="aaaaaaaaaaaaaaaa")
    done = tuning.tune(first, ["adam"], trials=2, sampler="grid", lr_range=LR_RANGE, storage=storage)
    assert done["adam"]["study"] == "p-adam-grid" and first.computed == 2
    changed = StubRunner(tmp_path / "changed", Points(), "p", fingerprint="bbbbbbbbbbbbbbbb")
    assert tuning.study_name(changed, "adam", "grid", storage) == "p-adam-grid-bbbbbbbb"
    result = tuning.tune(changed, ["adam"], trials=3, sampler="grid", lr_range=LR_RANGE, storage=storage)
    assert result["adam"]["study"] == "p-adam-grid-bbbbbbbb" and result["adam"]["trials"] == 3
    assert changed.computed == 3  # none of the old problem's trials was taken for its own
    again = StubRunner(tmp_path / "first", Points(), "p", fingerprint="aaaaaaaaaaaaaaaa")
    assert tuning.tune(again, ["adam"], trials=2, sampler="grid", lr_range=LR_RANGE,
                       storage=storage)["adam"]["study"] == "p-adam-grid"
    assert again.computed == 0  # the first definition resumes its own, complete, study
    old = optuna.create_study(study_name="q-adam-grid", storage=storage)  # a study from before fingerprints
    assert tuning.study_name(StubRunner(tmp_path, Points(), "q"), "adam", "grid", storage) == "q-adam-grid"  # empty
    old.optimize(lambda trial: trial.suggest_float("learning_rate", *LR_RANGE), n_trials=1)
    assert tuning.study_name(StubRunner(tmp_path, Points(), "q"), "adam", "grid", storage) == "q-adam-grid-01234567"


def test_an_optuna_without_the_hook_tune_relies_on_is_refused_not_used_silently(tmp_path, monkeypatch):
    monkeypatch.delattr(optuna.Study, "_pop_waiting_trial_id")
    with pytest.raises(RuntimeError, match="_pop_waiting_trial_id"):
        tuning.tune(StubRunner(tmp_path, Points()), ["adam"], trials=1, sampler="grid", lr_range=LR_RANGE)
