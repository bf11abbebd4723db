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
                 "Beat the naive baseline's test loss: gd clipnorm=2 lr=0.001, gd lr=1e-06",
                 "Did not beat it: gd lr=0.001", "boston: training loss of every configuration, explosions marked"):
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
