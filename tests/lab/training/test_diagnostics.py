"""Diagnostics: baseline, gradient norm, update ratios and dead units against NumPy; flags; the Boston story."""

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import optimlab
from optimlab.cli import app
from optimlab.lab.training import problems, records, report
from optimlab.lab.training.analysis import diagnostics
from optimlab.lab.training.problems import models
from optimlab.lab.training.runner import experiments, loop, probes

BOSTON_CSV = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "boston_housing.csv"
needs_boston = pytest.mark.skipif(not BOSTON_CSV.exists(), reason=f"the Boston housing CSV not found at {BOSTON_CSV}")


def test_naive_baseline_is_the_constant_predictor_in_numpy():
    for name in ("diabetes", "wine"):
        problem = problems.get(name)
        data = problems.load(problem)
        result = loop.train(problem, data, optimlab.get("adam", learning_rate=0.01), seed=0, epochs=2)
        base = result.diagnostics["baseline"]
        if problem.loss == "mse":
            mean = data.y_train.astype(np.float64).mean()
            assert base["test_loss"] == pytest.approx(np.mean((data.y_test - mean) ** 2), rel=1e-5)
            assert base["test_mae"] == pytest.approx(np.mean(np.abs(data.y_test - mean)), rel=1e-5)
        else:
            freq = np.bincount(data.y_train, minlength=3) / len(data.y_train)
            assert base["test_loss"] == pytest.approx(-np.mean(np.log(freq[data.y_test])), rel=1e-5)
            assert base["test_accuracy"] == pytest.approx(np.mean(data.y_test == freq.argmax()))


def test_probe_gradient_norm_update_ratio_and_dead_units_match_numpy():
    problem = problems.Problem(name="relu", model="mlp", hidden=(5,), loss="mse", metrics=("mae",))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    model = models.build(problem, (3,), seed=1)
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    b1[:2] = -100.0  # two of the five hidden units can never fire
    model.set_weights([w1, b1, w2, b2])
    probe = probes.Probe(model, loop.loss_fn("mse"), x, y)
    before = probe.snapshot()
    new_w2 = w2 * 1.5  # the "update" since the probe's snapshot: only the output layer moves
    model.set_weights([w1, b1, new_w2, b2])
    h = np.maximum(x @ w1 + b1, 0)  # float64 forward and backward pass at the current weights
    g_out = 2 * (h @ new_w2 + b2 - y) / len(x)
    g_w2, g_b2 = h.T @ g_out, g_out.sum(0)
    g_h = (g_out @ new_w2.T) * (h > 0)
    g_w1, g_b1 = x.T @ g_h, g_h.sum(0)
    norm = np.sqrt(sum(np.sum(g**2) for g in (g_w1, g_b1, g_w2, g_b2)))
    with probe.recording():
        measured, per_layer = probe.measure(before)
    values = dict(zip(probe.COLUMNS, measured.numpy()))
    ratios = dict(zip(probe.layers, per_layer.numpy()))
    assert values["grad_norm"] == pytest.approx(norm, rel=1e-4)
    assert values["dead_units"] == pytest.approx(np.mean(h.max(axis=0) <= 0))
    assert values["dead_units"] >= 0.4
    output_layer = [name for name in ratios if ratios[name] > 0]
    assert len(output_layer) == 1
    expected = np.linalg.norm(new_w2 - w2) / np.sqrt(np.sum(w2**2) + np.sum(b2**2))
    assert ratios[output_layer[0]] == pytest.approx(expected, rel=1e-5)
    assert values["update_ratio"] == pytest.approx(expected, rel=1e-5)


def _record(train_loss, status="ok", baseline=None, **columns):
    epochs = list(range(0, 10 * len(train_loss), 10))
    history = {"epoch": epochs, "train_loss": train_loss, **columns}
    return {"status": status, "history": history, "diagnostics": {"baseline": baseline}}


def test_flags_name_what_happened_and_when():
    healthy = _record([100.0 / (1 + i) for i in range(10)], baseline={"train_loss": 80.0})
    assert diagnostics.flags(healthy) == []
    diverged = _record([100.0, 50.0, float("nan")], status="diverged")
    assert [(f["flag"], f["epoch"]) for f in diagnostics.flags(diverged)] == [("diverged", 20)]
    exploding = _record([100.0, 90.0, 80.0, 70.0], train_loss_max=[100.0, 2e6, 80.0, 70.0], peak_epoch=[0, 3, 20, 30])
    assert [(f["flag"], f["epoch"]) for f in diagnostics.flags(exploding)] == [("exploding", 3)]
    collapsed = _record([600.0, 200.0, 85.0, 84.7, 84.62], baseline={"train_loss": 84.62},
                        dead_units=[0.0, 0.5, 1.0, 1.0, 1.0])
    (flag,) = diagnostics.flags(collapsed)
    assert (flag["flag"], flag["epoch"]) == ("collapsed to a constant", 20)
    assert "84.62" in flag["detail"] and "100% of ReLU units dead" in flag["detail"]
    plateau = _record([100.0, 50.0, 40.0, 39.9, 39.8, 39.8, 39.9, 39.8, 39.7, 39.8])
    assert [(f["flag"], f["epoch"]) for f in diagnostics.flags(plateau)] == [("plateau", 20)]
    assert all(f["suggestion"] for r in (exploding, collapsed, plateau) for f in diagnostics.flags(r))


def test_diagnose_command_prints_baseline_and_flags(tmp_path):
    result = CliRunner().invoke(app, ["diagnose", "--task", "diabetes", "--optimizer", "gd", "--lr", "5",
                                      "--epochs", "30", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "naive baseline (mean of the training targets)" in result.output
    assert "diverged" in result.output and "suggestion: lower the learning rate" in result.output
    assert len(records.load_all(tmp_path)) == 1


@needs_boston
def test_boston_chapter_story_is_named_in_the_report(tmp_path):
    """Gradient descent on raw Boston features: lr 1e-3 explodes and collapses, lr 1e-6 and clipping beat the
    naive baseline (the story of the book chapter on Boston housing regression, on a shorter budget than the
    README's 10000 epochs)."""
    runner = experiments.Runner(tmp_path, "boston", data=str(BOSTON_CSV), standardize=False, valid_fraction=0,
                                epochs=2000)
    experiments.sweep(runner, "gd", [1e-3, 1e-6])
    experiments.sweep(runner, "gd", [1e-3], clipnorms=(2.0,))
    recs = records.load_all(tmp_path)
    by_config = {(r["spec"]["hyperparameters"].get("clipnorm"), r["spec"]["hyperparameters"]["learning_rate"]): r
                 for r in recs}
    collapsed = diagnostics.flags(by_config[(None, 1e-3)])
    assert [f["flag"] for f in collapsed] == ["exploding", "collapsed to a constant"]
    assert collapsed[0]["epoch"] <= 5  # the first steps explode
    base = by_config[(None, 1e-3)]["diagnostics"]["baseline"]
    assert base["train_loss"] == pytest.approx(84.62, abs=0.01) and base["test_loss"] == pytest.approx(83.71, abs=0.01)
    for key in ((None, 1e-6), (2.0, 1e-3)):
        assert by_config[key]["final"]["test_loss"] < base["test_loss"]
        assert diagnostics.flags(by_config[key]) == []
    html = report.write_report(tmp_path).read_text()
    for text in ("Naive baseline (mean of the training targets)", "exploding", "collapsed to a constant",
                 "Beat the naive baseline's test loss: gd clipnorm=2 lr=0.001 (1 seed), gd lr=1e-06 (1 seed)",
                 "Did not beat it: gd lr=0.001 (1 seed)",
                 "boston: training loss of every configuration, explosions marked",
                 "standardize the inputs (--standardize)"):
        assert text in html
    assert (tmp_path / "figures" / "boston_all_curves.png").exists()


@pytest.mark.slow
@needs_boston
def test_boston_chapter_collapse_ends_at_the_mean_predictor(tmp_path):
    """The README's 10000 epochs: lr 1e-3 ends at exactly the mean predictor's loss (84.62 / 83.71)."""
    runner = experiments.Runner(tmp_path, "boston", data=str(BOSTON_CSV), standardize=False, valid_fraction=0,
                                epochs=10000)
    (record,) = experiments.sweep(runner, "gd", [1e-3])
    base = record["diagnostics"]["baseline"]
    assert record["final"]["train_loss"] == pytest.approx(base["train_loss"], rel=1e-3)
    assert record["final"]["test_loss"] == pytest.approx(base["test_loss"], rel=1e-3)


# ------------------------------------------------ one story per run (issue 22)

def _spec(**changes):
    spec = {"problem": "diabetes", "optimizer": "gd", "hyperparameters": {"learning_rate": 0.5}, "seed": 0,
            "epochs": 40, "batch_size": None, "eval_every": 10, "target": None, "standardize": True,
            "valid_fraction": 0.2}
    return {**spec, **changes}


def test_suggestions_follow_the_runs_settings():
    """Found by a user: "standardize the inputs" on a run whose inputs were standardized."""
    exploding = dict(train_loss=[100.0, 90.0, 80.0, 70.0], train_loss_max=[100.0, 2e6, 80.0, 70.0],
                     peak_epoch=[0, 3, 20, 30])
    standardized = {**_record(**exploding), "spec": _spec()}
    (flag,) = diagnostics.flags(standardized)
    assert "standardize" not in flag["suggestion"] and "--clipnorm)" in flag["suggestion"]
    assert "below 0.5" in flag["suggestion"]
    raw_clipped = {**_record(**exploding), "spec": _spec(standardize=False,
                                                         hyperparameters={"learning_rate": 0.5, "clipnorm": 2.0})}
    (flag,) = diagnostics.flags(raw_clipped)
    assert "standardize the inputs (--standardize)" in flag["suggestion"]
    assert "harder (--clipnorm below 2)" in flag["suggestion"]
    scheduled = {**_record(**exploding), "spec": _spec(schedule={"name": "CosineDecay", "args": {}})}
    assert "warm the learning rate up" not in diagnostics.flags(scheduled)[0]["suggestion"]


def test_one_rule_for_the_worst_epoch_in_the_report_the_flags_and_diagnose():
    """The peak, the explosion flag's peak and diagnose's windows agree, also where a row was not measured."""
    from optimlab.lab.tables import fmt
    from optimlab.lab.training_commands import history_rows

    history = {"epoch": [0, 10, 20, 30, 40], "train_loss": [50.0, 40.0, 9e4, 30.0, 20.0],
               "train_loss_max": [50.0, 60.0, None, 7e3, 25.0], "peak_epoch": [0, 3, None, 24, 31],
               "grad_norm": [1.0, 1.0, 1.0, 1.0, 1.0]}
    # row 20 has no train_loss_max: its own training loss (9e4, epoch 20) is the worst there
    assert diagnostics.peak(history) == (9e4, 20.0)
    (flag,) = diagnostics.flags(_record(**{k: v for k, v in history.items() if k != "epoch"}))
    assert (flag["peak"], flag["peak_epoch"], flag["epoch"]) == (9e4, 20.0, 20)
    assert diagnostics.window_peaks(history, [0, 3, 4]) == [50.0, 9e4, 25.0]
    headers, rows = history_rows(history, shown=3)  # rows 0, 2 and 4 shown: windows [0], [1, 2], [3, 4]
    worst = [row[headers.index("worst epoch")] for row in rows]
    assert worst == [fmt(50.0), fmt(9e4), fmt(7e3)]


def test_diagnose_and_the_report_read_the_same_record(tmp_path, monkeypatch):
    """Found by a user: diagnose (the record in memory, with infinities) flagged what the report (the record
    on disk, infinities written as null) did not. Here the record in memory differs from the one on disk."""
    import math

    computed = experiments.Runner.run

    def in_memory(self, *args):
        record = computed(self, *args)
        record["history"]["grad_norm"][1] = math.inf  # on disk: a finite norm
        return record

    monkeypatch.setattr(experiments.Runner, "run", in_memory)
    result = CliRunner().invoke(app, ["diagnose", "--task", "diabetes", "--optimizer", "adam", "--lr", "0.01",
                                      "--epochs", "12", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    (record,) = records.load_all(tmp_path)
    found = diagnostics.flags(record)
    assert "exploding" not in {f["flag"] for f in found} and "exploding" not in result.output
    for f in found:
        assert f"{f['flag']} from epoch {f['epoch']}" in result.output
    worst, at = diagnostics.peak(record["history"])
    assert f"worst epoch: training loss" in result.output and f"at epoch {int(at)}" in result.output
    html = report.write_report(tmp_path).read_text()
    assert diagnostics.flag_text(diagnostics.flags(record)) in html
    assert "standardize" not in html.split('id="diagnostics"')[1]  # diabetes is standardized by default


def test_beat_the_baseline_is_decided_by_the_median_and_counts_the_seeds():
    """Found by a user: a configuration listed under both "beat the naive baseline" and "did not beat it"."""
    import pandas as pd

    rows = pd.DataFrame([{"optimizer": "gd", "config": "lr=0.1", "seed": s, "status": "ok", "test_loss": v}
                         for s, v in enumerate([1.0, 2.0, 3.0, 4.0, 9.0])]
                        + [{"optimizer": "sgd", "config": "lr=1", "seed": s, "status": st, "test_loss": v}
                           for s, (st, v) in enumerate([("ok", 1.0), ("diverged", float("nan")),
                                                        ("diverged", float("nan"))])])
    verdicts = {v["optimizer"]: v for v in diagnostics.against_baseline(rows, {"test_loss": 3.5})}
    assert verdicts["gd"]["beat"] and verdicts["gd"]["seeds_beat"] == 3 and verdicts["gd"]["median"] == 3.0
    assert not verdicts["sgd"]["beat"] and verdicts["sgd"]["seeds_beat"] == 1 and verdicts["sgd"]["diverged"] == 2
    parts = "".join(report._baseline_paragraphs({"kind": "mean", "test_loss": 3.5}, rows))
    assert "Beat the naive baseline's test loss: gd lr=0.1 (median over 5 seeds; 3 of 5 seeds did)." in parts
    assert "Did not beat it (diverged): sgd lr=1 (2 of 3 seeds diverged)." in parts
    assert parts.count("gd lr=0.1") == 1
