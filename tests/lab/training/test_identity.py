"""Issue 22: a record's key captures what the problem is (its fingerprint), and record folders have safe names."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from optimlab.lab import Problem
from optimlab.lab.training import problems, records
from optimlab.lab.training.runner import experiments


def _arrays(seed=0, n=120):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    y = (x @ rng.normal(size=4)).astype("float32")
    return (x[:90], y[:90]), (x[90:], y[90:])


def build_net():
    return keras.Sequential([keras.layers.Dense(3, activation="tanh"), keras.layers.Dense(1)])


def build_wider():
    return keras.Sequential([keras.layers.Dense(5, activation="tanh"), keras.layers.Dense(1)])


def build_other_init():
    return keras.Sequential([keras.layers.Dense(3, activation="tanh", kernel_initializer="zeros"),
                             keras.layers.Dense(1)])


def _unnamed(**overrides):
    settings = dict(model=build_net, data=_arrays(), loss="mse", epochs=2, batch_size=30)
    return Problem(**{**settings, **overrides})


def _fingerprint(problem):
    return problems.fingerprint(problem, problems.load(problem))


def test_two_unnamed_problems_in_one_folder_keep_their_own_records(tmp_path):
    first, second = _unnamed(), _unnamed(data=_arrays(seed=1))
    assert first.name == second.name == "custom"
    results = []
    for problem in (first, second):
        runner = experiments.Runner(tmp_path, problem)
        results.append(runner.run("sgd", {"learning_rate": 0.05}, 0))
        assert runner.computed == 1 and runner.reused == 0  # the second is not the first one's record
    recs = records.load_all(tmp_path)
    assert len(recs) == 2 and len({r["key"] for r in recs}) == 2
    assert results[0]["spec"]["fingerprint"] != results[1]["spec"]["fingerprint"]
    assert results[0]["final"]["test_loss"] != results[1]["final"]["test_loss"]
    again = experiments.Runner(tmp_path, _unnamed(data=_arrays(seed=1)))  # an equal problem: its record is reused
    assert again.run("sgd", {"learning_rate": 0.05}, 0)["key"] == results[1]["key"] and again.computed == 0


def test_a_problem_changed_under_its_name_is_recomputed_with_a_one_line_note(tmp_path):
    notes = []
    experiments.Runner(tmp_path, _unnamed(name="toy")).run("sgd", {"learning_rate": 0.05}, 0)
    quiet = experiments.Runner(tmp_path, _unnamed(name="toy"), on_note=notes.append)
    quiet.run("sgd", {"learning_rate": 0.05}, 0)
    assert quiet.computed == 0 and notes == []  # the same problem: no note
    changed = experiments.Runner(tmp_path, _unnamed(name="toy", model=build_wider), on_note=notes.append)
    changed.run("sgd", {"learning_rate": 0.05}, 0)
    assert changed.computed == 1 and len(notes) == 1
    assert "'toy'" in notes[0] and "computed again" in notes[0] and "\n" not in notes[0]
    with pytest.warns(UserWarning, match="problem 'toy' is not the one of 1 earlier record"):
        experiments.Runner(tmp_path, _unnamed(name="toy")).data_split()  # no callback: a warning


@pytest.mark.parametrize("change", [
    {"data": _arrays(seed=3)},
    {"model": build_wider},
    {"model": build_other_init},
    {"loss": lambda y, out: (y - out) ** 2},
    {"metrics": ()},
    {"standardize": True},
    {"name": "other"},
])
def test_the_fingerprint_covers_what_defines_the_problem(change):
    assert _fingerprint(_unnamed(**change)) != _fingerprint(_unnamed())


def test_the_fingerprint_ignores_the_budget_options_and_keras_layer_numbering(tmp_path):
    base = _fingerprint(_unnamed())
    keras.Sequential([keras.layers.Dense(3)])  # shifts Keras's automatic layer names (dense_7 ...)
    assert _fingerprint(_unnamed(epochs=9, batch_size=10, target=0.5, description="same problem", mixup=0.2)) == base
    plain, mixed = experiments.Runner(tmp_path, _unnamed()), experiments.Runner(tmp_path, _unnamed(), mixup=0.2)
    assert plain.spec("sgd", {}, 0) != mixed.spec("sgd", {}, 0)  # an option changes the run's key, in its spec


def test_the_fingerprint_is_the_same_in_another_process():
    """What a worker or a later command computes: no memory addresses, no per-process names."""
    code = ("from optimlab.lab.training import problems; p = problems.get('iris'); "
            "print(problems.fingerprint(p, problems.load(p)))")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()[-1]
    assert other == _fingerprint(problems.get("iris"))


def test_functions_differing_only_in_their_code_differ():
    def loss_a(y, out):
        return (y - out) ** 2

    def loss_b(y, out):  # the same name after renaming: the code tells them apart
        return abs(y - out)

    loss_b.__name__ = loss_b.__qualname__ = loss_a.__qualname__
    assert _fingerprint(_unnamed(loss=loss_a)) != _fingerprint(_unnamed(loss=loss_b))


@pytest.mark.parametrize(("name", "expected"), [
    ("adam", "adam"), ("iris", "iris"), ("my_task-2.b", "my_task-2.b"),
    ("keras.optimizers:Adam", "keras.optimizers_Adam-"), ("a<b>|c?*", "a_b__c__-"), ("CON", "_CON-"),
    ("nul.txt", "_nul.txt-"), ("trailing.", "trailing-"),
])
def test_folder_names_are_valid_on_windows_and_distinct(name, expected):
    folder = records.folder_name(name)
    assert folder.startswith(expected) and not set(folder) & set('<>:"/\\|?*')
    assert (folder == name) == (expected == name)
    assert records.folder_name("a:b") != records.folder_name("a_b") != records.folder_name("a?b")


def test_record_paths_hold_no_colon_and_begin_with_the_fingerprint(tmp_path):
    spec = {"problem": "custom", "optimizer": "keras.optimizers:Adam", "fingerprint": "0123456789abcdef", "seed": 0}
    path = records.record_path(tmp_path, spec)
    relative = path.relative_to(tmp_path)
    assert ":" not in str(relative) and path.name == f"01234567-{records.run_key(spec)}.json"
    assert records.other_definitions(tmp_path, "custom", spec["fingerprint"]) == 0
    records.write(path, {"spec": spec})
    assert records.other_definitions(tmp_path, "custom", spec["fingerprint"]) == 0
    assert records.other_definitions(tmp_path, "custom", "fedcba9876543210") == 1


def test_schema_2_records_stay_readable(tmp_path):
    old = {"schema": 2, "key": "abc", "spec": {"problem": "iris", "optimizer": "adam"}, "final": {}}
    path = tmp_path / "records" / "iris" / "adam" / "abc.json"
    records.write(path, old)
    assert records.read(path)["schema"] == 2 and len(records.load_all(tmp_path)) == 1
    assert records.other_definitions(tmp_path, "iris", "0123456789abcdef") == 1  # before fingerprints: another one
    records.write(path, {**old, "schema": 1})
    with pytest.raises(records.RecordError, match="schema 1, this optimlab reads 2 and 3"):
        records.read(path)


def test_workers_file_runs_under_the_drivers_key(tmp_path):
    """Every executor computes with executors.compute: the record's key is the driver's spec's, fingerprint included."""
    from optimlab.lab.training.runner import executors

    runner = experiments.Runner(tmp_path, _unnamed())
    spec = runner.spec("sgd", {"learning_rate": 0.05}, 0)
    record = executors.compute(runner._problem, runner.data_split(), spec)
    assert record["key"] == records.run_key(spec) and record["spec"]["fingerprint"] == runner.fingerprint()
    assert record["schema"] == records.SCHEMA == 3
    assert json.loads(json.dumps(record["spec"])) == spec


TASK = '''
import keras
import numpy as np
from optimlab.lab import Problem

def task():
    rng = np.random.default_rng({seed})
    x = rng.normal(size=(60, 3)).astype("float32")
    y = x.sum(axis=1)
    return Problem(name="toy", model=lambda: keras.Sequential([keras.layers.Dense(1)]),
                   data=((x[:45], y[:45]), (x[45:], y[45:])), loss="mse", epochs=2, batch_size=15)
'''


def test_the_command_notes_a_changed_problem_in_one_line_and_computes_its_runs(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from optimlab.cli import app

    monkeypatch.syspath_prepend(str(tmp_path))
    out, outputs = tmp_path / "runs", []
    monkeypatch.setattr(sys, "dont_write_bytecode", True)  # no cached bytecode of an earlier version
    for seed in (0, 0, 11):  # the same module edited: its data changed, not its name
        (tmp_path / "toy_task.py").write_text(TASK.format(seed=seed))
        monkeypatch.delitem(sys.modules, "toy_task", raising=False)  # a new command imports it afresh
        result = CliRunner().invoke(app, ["compare", "--task", "toy_task:task", "--optimizers", "sgd",
                                          "--lrs", "0.01", "--seeds", "1", "--out", str(out)])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert "is not the one of" not in outputs[0] + outputs[1] and "0 runs computed, 1 reused" in outputs[1]
    notes = [line for line in outputs[2].splitlines() if "problem 'toy' is not the one of 1 earlier record" in line]
    assert len(notes) == 1 and "computed again" in notes[0] and "1 runs computed, 0 reused" in outputs[2]
    assert len(records.load_all(out)) == 2
