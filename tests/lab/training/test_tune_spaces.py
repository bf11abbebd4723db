"""Issue 23: tune over search spaces, with samplers, equal budgets in epochs, pruners and budget curves."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from optimlab import spaces
from optimlab.lab.training import records
from optimlab.lab.training.analysis import budget
from optimlab.lab.training.runner import experiments, tuning

sys.path.insert(0, str(Path(__file__).parent))
from test_scale import postgres  # noqa: E402, F401 - the PostgreSQL server fixture
from test_tune_resume import LR_RANGE, Points, StubRunner  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1]))
from cli_driver import drive  # noqa: E402


def test_the_grid_of_three_dimensions_is_every_combination_of_their_scales():
    """2 points per dimension for 8 trials: ends of the learning rate (log), beta_1 (1 - beta_1 log), epsilon (log)."""
    dims = tuning.search_space("adam", ("learning_rate", "beta_1", "epsilon"), LR_RANGE)
    grid = tuning._grid(dims, 8)
    assert grid["learning_rate"] == pytest.approx(list(LR_RANGE), rel=1e-12)
    assert grid["one_minus_beta_1"] == pytest.approx([1.0, 1e-3], rel=1e-9)  # beta_1 from 0 to 0.999
    assert grid["epsilon"] == pytest.approx([1e-10, 1.0], rel=1e-12)
    nine = tuning._grid(tuning.search_space("adam", ("learning_rate", "epsilon"), LR_RANGE), 9)
    np.testing.assert_allclose(nine["learning_rate"], np.geomspace(*LR_RANGE, 3), rtol=1e-10)
    np.testing.assert_allclose(nine["epsilon"], np.geomspace(1e-10, 1.0, 3), rtol=1e-10)


def test_the_learning_rate_alone_keeps_the_grid_of_trials_rates():
    grid = tuning._grid(tuning.search_space("adam", "learning_rate", LR_RANGE), 7)
    np.testing.assert_allclose(grid["learning_rate"], np.geomspace(*LR_RANGE, 7), rtol=1e-10)


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes"])
def test_a_full_space_tune_draws_every_hyperparameter_inside_its_range(tmp_path, sampler):
    runner = StubRunner(tmp_path, Points(), "full")
    result = tuning.tune(runner, ["adam"], trials=5, sampler=sampler, lr_range=LR_RANGE, space="full")["adam"]
    dims = spaces.space("adam")
    assert result["trials"] == result["complete"] == 5 == runner.computed
    assert result["study"] == f"full-adam-{sampler}-space=full"
    study = optuna.load_study(study_name=result["study"], storage=tuning.default_storage(tmp_path))
    for trial in study.trials:
        config = tuning.config_of(tuning.search_space("adam", "full", LR_RANGE), trial.params)
        assert set(config) == set(dims)
        for name, value in config.items():
            low, high = (LR_RANGE if name == "learning_rate" else (dims[name].low, dims[name].high))
            assert dims[name].scale == "choice" or low <= value <= high, (name, value)
    best = min(study.trials, key=lambda t: t.value)
    assert result["best"] == tuning.config_of(tuning.search_space("adam", "full", LR_RANGE), best.params)
    assert result["best_value"] == best.value


def test_a_space_name_the_optimizer_lacks_is_refused_before_any_trial(tmp_path):
    runner = StubRunner(tmp_path, Points(), "bad")
    with pytest.raises(ValueError, match="'beta_3' is not in adam's search space"):
        tuning.tune(runner, ["adam"], trials=2, sampler="random", space="learning_rate,beta_3")
    assert runner.computed == 0 and not (tmp_path / "tuning.db").exists()


def test_the_command_checks_space_and_pruner_before_tensorflow(tmp_path):
    cases = [["tune", "--optimizers", "sgd,adam", "--space", "beta_1"],
             ["tune", "--pruner", "medain"],
             ["tune", "--space", "lr,lr"]]
    report = drive(cases, tmp_path)
    assert report["loaded"] == []
    expected = ["--space 'beta_1': 'beta_1' is not in sgd's search space; its names: learning_rate, momentum, "
                "nesterov",
                "--pruner: unknown pruner 'medain'; did you mean 'median'?; valid names: none, median, halving, "
                "hyperband",
                "--space 'lr,lr' names a hyperparameter twice"]
    for result, text in zip(report["results"], expected):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2 and lines == [f"error: {text}"], result
    assert not any(tmp_path.iterdir())


class EveryOtherTrial(optuna.pruners.BasePruner):
    """Prunes odd-numbered trials at their second report: deterministic, whatever the losses."""

    def prune(self, study, trial):
        return trial.number % 2 == 1 and len(trial.intermediate_values) >= 2


@pytest.fixture(scope="module")
def pruned(tmp_path_factory):
    """A real tune of adam on diabetes (12 epochs, an evaluation every 2) whose odd trials are pruned at epoch 4."""
    out = tmp_path_factory.mktemp("pruned")
    real = tuning._pruner
    tuning._pruner = lambda kind, epochs: EveryOtherTrial() if kind == "median" else real(kind, epochs)
    try:
        runner = experiments.Runner(out, "diabetes", epochs=12, eval_every=2)
        result = tuning.tune(runner, ["adam"], trials=4, sampler="random", lr_range=(1e-3, 1e-1), pruner="median")
    finally:
        tuning._pruner = real
    study = optuna.load_study(study_name=result["adam"]["study"], storage=tuning.default_storage(out))
    return out, runner, result["adam"], study


def test_pruned_trials_are_stored_pruned_and_pay_for_more_trials(pruned):
    _, _, result, study = pruned
    states = [t.state for t in study.trials]
    assert states == [TrialState.COMPLETE, TrialState.PRUNED, TrialState.COMPLETE, TrialState.PRUNED,
                      TrialState.COMPLETE], states
    for t in study.trials:
        if t.state == TrialState.PRUNED:
            assert t.user_attrs == {"worker": tuning._WORKER, "epochs": 4, "outcome": "pruned"}
            assert sorted(t.intermediate_values) == [2, 4]
        else:
            assert t.user_attrs["epochs"] == 12 and sorted(t.intermediate_values) == [2, 4, 6, 8, 10]
    # A budget of 4 whole runs of 12 epochs (48): the two pruned trials ran 4 epochs each, so a fifth trial fit
    # (44 epochs), and a sixth (12 more) would pass the budget.
    assert (result["trials"], result["complete"], result["pruned"], result["diverged"]) == (5, 3, 2, 0)
    assert (result["epochs"], result["budget"], result["saved"]) == (44, 48, 16)


def test_the_budget_is_never_passed(pruned):
    _, _, result, _ = pruned
    assert result["epochs"] <= result["budget"] == 48


def test_a_pruned_run_is_never_stored_as_its_configurations_record(pruned):
    """A silent wrong answer: a later sweep of a pruned configuration must train it whole, not reuse 4 epochs."""
    out, _, _, study = pruned
    for path in (out / "records").rglob("*.json"):
        record = records.read(path)
        assert record["status"] == "ok" and record["final"]["epochs_run"] == 12, path
    cut = next(t for t in study.trials if t.state == TrialState.PRUNED)
    later = experiments.Runner(out, "diabetes", epochs=12, eval_every=2)
    (record,) = experiments.sweep(later, "adam", [cut.params["learning_rate"]])
    assert later.computed == 1 and later.reused == 0
    assert record["status"] == "ok" and record["final"]["epochs_run"] == 12 and len(record["history"]["epoch"]) == 7
    complete = next(t for t in study.trials if t.state == TrialState.COMPLETE)
    (again,) = experiments.sweep(later, "adam", [complete.params["learning_rate"]])
    assert later.reused == 1 and again["final"]["valid_loss"] == pytest.approx(complete.value)


def test_the_winner_is_rerun_on_more_seeds_its_trial_being_seed_zero(pruned):
    out, runner, result, study = pruned
    reruns = tuning.rerun(runner, {"adam": result}, 3)["adam"]
    assert [r["spec"]["seed"] for r in reruns] == [0, 1, 2]
    assert all(r["spec"]["hyperparameters"]["learning_rate"] == result["best_learning_rate"] for r in reruns)
    assert reruns[0]["final"]["valid_loss"] == pytest.approx(study.best_value)


def test_the_summary_file_holds_each_trials_cost(pruned):
    out, runner, result, _ = pruned
    tuning.write_summary(out, runner, {"adam": result}, "random", pruner="median")
    (entry,) = budget.read_studies(out).values()
    assert entry["pruner"] == "median" and entry["space"] == "learning_rate" and entry["budget"] == 48
    assert [t["state"] for t in entry["trials"]] == ["complete", "pruned", "complete", "pruned", "complete"]
    assert [t["cost"] for t in entry["trials"]] == [12, 4, 12, 4, 12]
    assert json.loads((out / "tuning.json").read_text()) == budget.read_studies(out)


def test_a_pruner_needs_the_runs_in_this_process(tmp_path):
    runner = experiments.Runner(tmp_path, "diabetes", epochs=2, jobs=2)
    with pytest.raises(ValueError, match="needs jobs=1"):
        tuning.tune(runner, ["adam"], trials=2, pruner="hyperband")


def _trials(*items):
    return [{"state": "complete" if v is not None else "pruned", "value": v, "cost": c} for v, c in items]


def test_the_budget_sentence_says_when_the_winner_was_decided_and_that_the_ranking_changed():
    """sgd finds 1.0 at once; adam needs 3 trials to find 0.5: sgd led until 30 epochs, adam after."""
    curves = {"adam": budget.curve(_trials((2.0, 10), (1.5, 10), (0.5, 10))),
              "sgd": budget.curve(_trials((1.0, 10), (1.2, 10), (1.1, 10)))}
    assert curves["adam"] == [(1, 10, 2.0), (2, 20, 1.5), (3, 30, 0.5)]
    text = budget.sentence(curves)
    assert text.startswith("adam is best at the whole budget (30 epochs per optimizer at most) and has led since "
                           "30 epochs (3 of its trials)")
    assert "the ranking changed with the budget: at 20 epochs it was sgd, adam, at the end adam, sgd" in text


def test_the_budget_sentence_says_when_the_ranking_held():
    curves = {"adam": budget.curve(_trials((0.5, 10), (None, 3), (0.4, 10))),
              "sgd": budget.curve(_trials((1.0, 10), (0.9, 10)))}
    assert curves["adam"][1] == (2, 13, 0.5)  # a pruned trial costs what it ran, finds nothing
    text = budget.sentence(curves)
    assert "adam is best" in text and "has led since 10 epochs (1 of its trials)" in text
    assert text.endswith("the ranking was the same at every budget where every optimizer had a complete trial.")


def test_the_report_shows_the_budget_curves_without_tensorflow(tmp_path):
    import subprocess

    (tmp_path / "tuning.json").write_text(json.dumps({
        "p-adam": {"problem": "p", "optimizer": "adam", "sampler": "tpe", "space": "full", "pruner": "median",
                   "budget": 30, "epochs_per_run": 10, "trials": _trials((2.0, 10), (None, 4), (0.5, 10))},
        "p-sgd": {"problem": "p", "optimizer": "sgd", "sampler": "tpe", "space": "full", "pruner": "median",
                  "budget": 30, "epochs_per_run": 10, "trials": _trials((1.0, 10), (1.1, 10), (1.2, 10))}}))
    code = ("import sys; from pathlib import Path; from optimlab.lab.training import report; "
            "ctx = report.Context(Path(sys.argv[1]), [], None, None, None, Path(sys.argv[1])); "
            "print(report.section_budget(ctx)); print([m for m in ('tensorflow', 'keras') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True)
    html, loaded = done.stdout.strip().rsplit("\n", 1)
    assert loaded == "[]"
    assert "adam is best at the whole budget" in html and (tmp_path / "budget_0.png").stat().st_size > 1000
    assert "<td>adam</td><td class=\"num\">3</td><td class=\"num\">2</td><td class=\"num\">0</td>" \
           "<td class=\"num\">1</td><td>24/30</td><td class=\"num\">6</td>" in html
    assert math.isfinite(budget.best_at(budget.curve(_trials((2.0, 10))), 10))


@pytest.mark.slow
def test_two_tune_workers_on_postgres_share_a_pruned_two_dimensional_study(tmp_path, postgres):
    """Two processes tune adam's learning rate and beta_1 with TPE and the median pruner on one PostgreSQL study:
    together they spend at most the budget, leave no trial RUNNING and write no pruned run as a record."""
    import os
    import subprocess

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [sys.executable, "-m", "optimlab.cli", "tune", "--task", "iris", "--optimizers", "adam", "--trials", "6",
               "--sampler", "tpe", "--space", "learning_rate,beta_1", "--pruner", "median", "--epochs", "8",
               "--eval-every", "2", "--storage", postgres]
    workers = [subprocess.Popen([*command, "--out", str(tmp_path / f"w{i}")], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env) for i in range(2)]
    outputs = [w.communicate(timeout=400)[0] for w in workers]
    assert all(w.returncode == 0 for w in workers), [out[-3000:] for out in outputs]
    study = optuna.load_study(study_name="iris-adam-tpe-space=learning_rate,beta_1-pruner=median", storage=postgres)
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states
    counted = [t for t in study.trials if tuning._counted(t)]
    assert sum(tuning._cost(t, 8) for t in counted) <= 6 * 8
    assert sum(t.state == TrialState.COMPLETE for t in counted) >= 1
    for path in tmp_path.rglob("records/*/*/*.json"):
        assert records.read(path)["final"]["epochs_run"] == 8, path


def test_the_schedule_choices_span_the_run():
    assert tuning.schedule_of("constant", 100) is None
    assert tuning.schedule_of("cosine", 100) == ("CosineDecay", {"decay_steps": 100})
    assert tuning.schedule_of("warmup_cosine", 100) == ("WarmupDecay", {"warmup_steps": 5, "decay_steps": 95})
    with pytest.raises(ValueError, match="schedule must be one of"):
        tuning.schedule_of("linear", 100)


def test_a_schedule_is_a_dimension_each_run_following_its_choice(tmp_path):
    """A grid over the learning rate and the schedule: each trial's record is the record a runner with that
    schedule makes (the same key), the winner is rerun with its schedule, and the analysis keeps schedules apart."""
    from optimlab.lab.training import analysis

    runner = experiments.Runner(tmp_path, "iris", epochs=6)
    result = tuning.tune(runner, ["sgd"], trials=6, sampler="grid", lr_range=(1e-3, 0.5),
                         space="learning_rate,schedule")["sgd"]
    assert result["trials"] == 6 and set(result["best"]) == {"learning_rate", "schedule"}
    recs = records.load_all(tmp_path)
    assert len(recs) == 6
    batch = runner.spec("sgd", {}, 0)["batch_size"]
    steps = 6 * (len(runner.data_split().x_train) // batch if batch else 1)  # iris: full batch, a step per epoch
    for choice in tuning.SCHEDULES:
        for lr in (1e-3, 0.5):
            alone = experiments.Runner(tmp_path, "iris", epochs=6, schedule=tuning.schedule_of(choice, steps))
            key = records.run_key(alone.spec("sgd", {"learning_rate": lr}, 0))
            assert sum(r["key"] == key for r in recs) == 1, (choice, lr)
    runs = analysis.runs_table(recs)
    assert set(runs["problem"]) == {"iris"} and runs["config"].nunique() == 6
    (winner,) = tuning.rerun(runner, {"sgd": result}, 1)["sgd"]
    assert winner["spec"].get("schedule") == (None if result["best"]["schedule"] == "constant" else {
        "name": tuning.schedule_of(result["best"]["schedule"], steps)[0],
        "args": tuning.schedule_of(result["best"]["schedule"], steps)[1]})


def test_the_schedule_passes_the_commands_early_check_for_every_optimizer():
    from optimlab.lab import arguments

    arguments.check_tuning("tpe", (1e-5, 1.0), "learning_rate,schedule", "none", ["sgd", "adam", "gd"])
    with pytest.raises(arguments.LabError, match="'schedul' is not in adam's search space"):
        arguments.check_tuning("tpe", (1e-5, 1.0), "learning_rate,schedul", "none", ["adam"])


def test_the_command_refuses_a_pruner_with_worker_processes_before_writing(tmp_path):
    from typer.testing import CliRunner

    from optimlab.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["tune", "--task", "iris", "--pruner", "median", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 2 and result.output.strip().splitlines() == [
        "error: --pruner median stops runs in this process: it needs --jobs 1 and no --ray (start several tune "
        "processes on one --storage instead)"], result.output
    assert not out.exists()
