"""Experiments: paired comparisons with selection on validation, sweeps, tuning, analysis."""

import math

import pytest

from optimlab.lab.training import analysis, records
from optimlab.lab.training.runner import experiments, tuning


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    runner = experiments.Runner(out, "diabetes", epochs=15)
    result = experiments.compare(runner, ["gd", "adam"], seeds=2, learning_rates=[1e-3, 0.5, 1e3])
    return out, runner, result


def test_compare_selects_on_validation_and_reruns_the_winner(compared):
    out, runner, result = compared
    runs = analysis.runs_table(records.load_all(out))
    tuning_runs = runs[runs["seed"] == experiments.TUNING_SEED]
    for name, chosen in result.items():
        mine = tuning_runs[tuning_runs["optimizer"] == name].set_index("learning_rate")["selection_loss"]
        assert chosen["hyperparameters"]["learning_rate"] == mine.idxmin()
        assert [r["spec"]["seed"] for r in chosen["records"]] == [0, 1]
    assert runner.computed == 2 * (3 + 1)  # 3 rates with seed 0, then seed 1 of the winner (seed 0 reused)
    assert runner.reused == 0  # the winner's seed 0 is its selection run: one run, counted once


def test_a_rerun_of_compare_counts_each_record_once(compared):
    """Found by a user test: a fresh compare said "3 reused", its rerun "39 reused" of 36 records."""
    out, _, _ = compared
    again = experiments.Runner(out, "diabetes", epochs=15)
    seen = []
    again.on_run = lambda record, computed: seen.append(record["key"])
    experiments.compare(again, ["gd", "adam"], seeds=2, learning_rates=[1e-3, 0.5, 1e3])
    assert again.computed == 0 and again.reused == len(records.load_all(out)) == 8
    assert len(seen) == len(set(seen)) == 8  # the progress bar advances once per run


def test_diverged_runs_are_recorded_not_raised(compared):
    out, _, _ = compared
    runs = analysis.runs_table(records.load_all(out))
    huge = runs[(runs["learning_rate"] == 1e3) & (runs["optimizer"] == "gd")]
    assert set(huge["status"]) == {"diverged"} and (huge["selection_loss"] == math.inf).all()


def test_selection_and_summary_from_records_alone(compared):
    out, _, result = compared
    runs = analysis.runs_table(records.load_all(out))
    chosen = analysis.selected(runs)
    for name, r in result.items():
        assert set(chosen[chosen["optimizer"] == name]["learning_rate"]) == {r["hyperparameters"]["learning_rate"]}
    summary = analysis.summary(runs).set_index("optimizer")
    assert summary.loc["adam", "seeds"] == 2 and summary.loc["adam", "diverged"] == 0
    tests = analysis.tests(runs)
    assert tests["wilcoxon_p"].isna().all() and "needs at least 6 seeds" in tests["note"].iloc[0]  # 2 pairs only


def test_sweep_covers_every_setting_and_resumes(tmp_path):
    runner = experiments.Runner(tmp_path, "iris", epochs=3)
    recs = experiments.sweep(runner, "gd", [1e-2, 1e-1], seeds=2, clipnorms=[None, 2.0])
    assert len(recs) == 8 and runner.computed == 8
    again = experiments.Runner(tmp_path, "iris", epochs=3)
    experiments.sweep(again, "gd", [1e-2, 1e-1], seeds=2, clipnorms=[None, 2.0])
    assert again.computed == 0 and again.reused == 8
    assert {r["spec"]["hyperparameters"].get("clipnorm") for r in recs} == {None, 2.0}


def test_tuning_resumes_an_interrupted_study(tmp_path):
    runner = experiments.Runner(tmp_path, "iris", epochs=3)
    first = tuning.tune(runner, ["adam"], trials=2, sampler="random")
    assert first["adam"]["trials"] == 2 and (tmp_path / "tuning.db").exists()
    resumed = experiments.Runner(tmp_path, "iris", epochs=3)
    second = tuning.tune(resumed, ["adam"], trials=3, sampler="random")
    assert second["adam"]["trials"] == 3 and resumed.computed == 1  # only the missing trial ran
    assert second["adam"]["best_value"] <= first["adam"]["best_value"]


def test_bad_input_fails_before_training(tmp_path):
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    with pytest.raises(ValueError, match="unknown optimizer 'nope'"):
        experiments.compare(runner, ["adam", "nope"], seeds=1)
    with pytest.raises(ValueError, match="seeds"):
        experiments.compare(runner, ["adam"], seeds=0)
    with pytest.raises(ValueError, match="learning rates"):
        experiments.sweep(runner, "gd", [-1.0])
    with pytest.raises(ValueError, match="sampler"):
        tuning.tune(runner, ["adam"], sampler="bayes")
    with pytest.raises(ValueError, match="task"):
        experiments.Runner(tmp_path, "mnist")
    assert not (tmp_path / "records").exists()


class _NoRuns(Exception):
    pass


@pytest.mark.parametrize("seeds, warned", [(6, True), (10, False)])
def test_compare_from_python_warns_before_any_run_when_the_design_can_never_show_a_difference(
        tmp_path, monkeypatch, seeds, warned):
    """Found by a user test: the command warned about 3 optimizers at 6 seeds (p >= 0.0625), the API did not."""
    import warnings

    from optimlab.lab.training.analysis import stats

    runner = experiments.Runner(tmp_path, "diabetes", epochs=15)

    def no_runs(runs):
        raise _NoRuns

    monkeypatch.setattr(runner, "run_many", no_runs)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(_NoRuns):
        warnings.simplefilter("always")
        experiments.compare(runner, ["gd", "momentum", "adam"], seeds=seeds)
    design = [w for w in caught if issubclass(w.category, stats.DesignWarning)]
    if warned:
        assert len(design) == 1 and "can never reach p < 0.05" in str(design[0].message)
        assert "0.0625" in str(design[0].message) and design[0].filename == __file__  # points at the caller
    else:
        assert design == []
