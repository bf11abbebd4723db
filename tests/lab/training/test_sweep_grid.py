"""sweep over any hyperparameters (grid=...): the product over seeds, one record per configuration, checks
before any run, and the report's sensitivity panels and heat map."""

import json
import math

import numpy as np
import pytest

from optimlab.lab.training import analysis, plots, records, report
from optimlab.lab.training.runner import experiments


@pytest.fixture(scope="module")
def two_d(tmp_path_factory):
    """sgd on iris: 2 learning rates x 3 momenta, 2 seeds (12 runs of 3 epochs)."""
    out = tmp_path_factory.mktemp("grid2d")
    runner = experiments.Runner(out, "iris", epochs=3)
    recs = experiments.sweep(runner, "sgd", [0.01, 0.3], seeds=2, grid={"momentum": [0.0, 0.5, 0.9]})
    return out, runner, recs


def test_the_grid_runs_the_cartesian_product_over_seeds(two_d):
    out, runner, recs = two_d
    assert runner.computed == 12 and len(records.load_all(out)) == 12
    seen = sorted((r["spec"]["hyperparameters"]["learning_rate"], r["spec"]["hyperparameters"]["momentum"],
                   r["spec"]["seed"]) for r in recs)
    assert seen == sorted((lr, m, s) for lr in (0.01, 0.3) for m in (0.0, 0.5, 0.9) for s in (0, 1))
    again = experiments.Runner(out, "iris", epochs=3)
    experiments.sweep(again, "sgd", [0.01, 0.3], seeds=2, grid={"momentum": [0.0, 0.5, 0.9]})
    assert again.computed == 0 and again.reused == 12


def test_runs_differing_only_in_a_swept_value_never_share_a_record(two_d):
    out, runner, recs = two_d
    assert len({r["key"] for r in recs}) == len(recs) == 12
    # The swept value reaches the optimizer: same rate and seed, momentum 0 and 0.9 train differently.
    by_setting = {(r["spec"]["hyperparameters"]["learning_rate"], r["spec"]["hyperparameters"]["momentum"],
                   r["spec"]["seed"]): r["final"]["train_loss"] for r in recs}
    assert by_setting[(0.01, 0.0, 0)] != by_setting[(0.01, 0.9, 0)]
    # The key of a spec differing in one hyperparameter only (a float, a switch, clipnorm) differs.
    base = {"learning_rate": 0.01, "beta_2": 0.999, "amsgrad": False, "clipnorm": 1.0}
    paths = {records.record_path(out, runner.spec("adam", {**base, **change}, 0))
             for change in ({}, {"beta_2": 0.99}, {"amsgrad": True}, {"clipnorm": 2.0}, {"beta_2": 0.9990001})}
    assert len(paths) == 5


def test_bools_and_clipnorm_are_swept_too(tmp_path):
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    recs = experiments.sweep(runner, "sgd", [0.1], grid={"nesterov": [False, True], "clipnorm": [None, 1.0]},
                             extra={"momentum": 0.9})
    settings = sorted((r["spec"]["hyperparameters"]["nesterov"], r["spec"]["hyperparameters"].get("clipnorm", -1.0))
                      for r in recs)
    assert settings == [(False, -1.0), (False, 1.0), (True, -1.0), (True, 1.0)]
    assert all(r["spec"]["hyperparameters"]["momentum"] == 0.9 for r in recs)
    assert all(isinstance(r["spec"]["hyperparameters"]["nesterov"], bool) for r in recs)


@pytest.mark.parametrize("grid, clipnorms, extra, message", [
    ({"momentun": [0.9]}, (None,), None, "sgd takes no argument 'momentun'; allowed: .*momentum"),
    ({"learning_rate": [0.1]}, (None,), None, "swept by learning_rates"),
    ({"momentum": []}, (None,), None, "momentum needs a non-empty list"),
    ({"momentum": "0.9"}, (None,), None, "momentum needs a non-empty list"),
    ({"momentum": [0.9, "fast"]}, (None,), None, "momentum takes finite numbers or booleans; got 'fast'"),
    ({"momentum": [0.9, math.nan]}, (None,), None, "takes finite numbers"),
    ({"momentum": [0.9, 0.9]}, (None,), None, "lists a value twice"),
    ({"momentum": [0.9]}, (None,), {"momentum": 0.5}, "both swept and set"),
    ({"clipnorm": [1.0]}, (None, 2.0), None, "clipnorm is swept by clipnorms already"),
    ({"momentum": [0.5, 1.5]}, (None,), None, "momentum"),  # the constructor's own check, before any run
])
def test_a_bad_grid_fails_before_any_run(tmp_path, grid, clipnorms, extra, message):
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    with pytest.raises(ValueError, match=message):
        experiments.sweep(runner, "sgd", [0.1], clipnorms=clipnorms, extra=extra, grid=grid)
    assert not (tmp_path / "records").exists() or not records.load_all(tmp_path)
    assert runner.computed == 0


def _figures(monkeypatch):
    """Capture each saved figure (by file name) before it is closed."""
    kept, save = {}, plots._save

    def keep(fig, path):
        kept[str(path).rsplit("/", 1)[-1]] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return kept


def test_a_two_dimensional_sweep_reports_a_heat_map_and_one_panel_per_dimension(two_d, monkeypatch):
    out, _, recs = two_d
    kept = _figures(monkeypatch)
    text = report.write_report(out).read_text()
    assert {"iris_sgd_sensitivity.png", "iris_sgd_heatmap.png"} <= set(kept)
    assert "iris_lr_sensitivity.png" not in kept  # it would pool the momenta at each rate
    panels = [ax for ax in kept["iris_sgd_sensitivity.png"].axes]
    assert [ax.get_title().split("\n")[0] for ax in panels] == ["learning_rate", "momentum"]
    assert panels[0].get_xscale() == "log"  # the learning rate's declared scale
    assert panels[1].get_xscale() == "log" and panels[1].get_xlabel().startswith("1 - momentum")  # log1m
    assert "over the grid of learning_rate and momentum" in text
    assert "holds the other swept hyperparameters at the best configuration" in text
    # The heat map's cells: the median final validation loss over seeds, read here from the records directly.
    heat = kept["iris_sgd_heatmap.png"].axes[0]
    cells = heat.get_images()[0].get_array()
    checked = 0
    for i, lr in enumerate((0.01, 0.3)):
        for j, momentum in enumerate((0.0, 0.5, 0.9)):
            losses = [r["final"]["valid_loss"] for r in recs if r["status"] == "ok"
                      and r["spec"]["hyperparameters"]["learning_rate"] == lr
                      and r["spec"]["hyperparameters"]["momentum"] == momentum]
            if len(losses) == 2:
                assert cells[i, j] == pytest.approx(float(np.median(losses)), rel=1e-12)
                checked += 1
    assert checked >= 4
    # Each panel is a slice through the best configuration: the momentum panel's line at the best rate.
    runs = analysis.runs_table(recs)
    medians = runs.groupby("hyperparameters")["selection_loss"].median()
    best = json.loads(medians.idxmin())
    x, y = panels[1].get_lines()[0].get_data()
    at_best_rate = runs[runs["learning_rate"] == best["learning_rate"]]
    momentum = at_best_rate["hyperparameters"].map(lambda h: json.loads(h)["momentum"])
    expected = [float(at_best_rate[momentum == m]["selection_loss"].median()) for m in (0.0, 0.5, 0.9)]
    finite = [(1 - m, v) for m, v in zip((0.0, 0.5, 0.9), expected) if math.isfinite(v)]
    np.testing.assert_allclose(x, [p for p, _ in finite])
    np.testing.assert_allclose(y, [v for _, v in finite], rtol=1e-12)


def test_a_one_dimensional_sweep_has_panels_but_no_heat_map(tmp_path, monkeypatch):
    runner = experiments.Runner(tmp_path, "iris", epochs=2)
    experiments.sweep(runner, "adam", [0.01], grid={"beta_2": [0.9, 0.99, 0.999]})
    kept = _figures(monkeypatch)
    text = report.write_report(tmp_path).read_text()
    assert "iris_adam_sensitivity.png" in kept and not any("heatmap" in name for name in kept)
    assert "over the grid" not in text
    (panel,) = kept["iris_adam_sensitivity.png"].axes
    assert panel.get_xlabel() == "1 - beta_2 (log scale)"
    np.testing.assert_allclose(sorted(panel.get_lines()[0].get_xdata()), [0.001, 0.01, 0.1], rtol=1e-9)


def test_a_learning_rate_sweep_alone_keeps_its_one_figure(tmp_path, monkeypatch):
    experiments.sweep(experiments.Runner(tmp_path, "iris", epochs=2), "sgd", [0.01, 0.1])
    kept = _figures(monkeypatch)
    report.write_report(tmp_path)
    assert "iris_lr_sensitivity.png" in kept
    assert not any("sensitivity" in name and name != "iris_lr_sensitivity.png" for name in kept)


# Each case: the sweep command's arguments, the start of its one-line error (after "error: ").
BAD_GRIDS = [
    (["--optimizer", "sgd", "--grid", "momentun=0.9"],
     "--grid momentun: sgd has no hyperparameter 'momentun'; did you mean 'momentum'?; allowed: momentum, nesterov, "
     "clipnorm"),
    (["--optimizer", "adam", "--grid", "amsgrad=0.5"], "--grid amsgrad: adam's amsgrad takes true or false; got 0.5"),
    (["--optimizer", "adam", "--grid", "beta_2=true"], "--grid beta_2: adam's beta_2 takes numbers; got True"),
    (["--grid", "momentum"], "--grid takes NAME=V1,V2,..."),
    (["--grid", "learning_rate=0.1"], "--grid learning_rate: the learning rate is swept by --lrs"),
    (["--optimizer", "sgd", "--grid", "momentum=0.9,fast"], "--grid momentum: 'fast' is not a value; allowed: finite"),
    (["--optimizer", "sgd", "--grid", "momentum=0.9", "--grid", "momentum=0.5"], "--grid momentum: given twice"),
    (["--optimizer", "sgd", "--set", "momentum=0.9", "--grid", "momentum=0.5"], "--grid momentum: also set by --set"),
    (["--clipnorm", "none,1", "--grid", "clipnorm=2"], "--grid clipnorm: --clipnorm sweeps it already"),
    (["--optimizer", "sgd", "--grid", "clipnorm=none,inf"], "--grid clipnorm: 'inf' is not a value; allowed: finite "
                                                            "numbers, true or false or none"),
]


def test_a_bad_grid_is_one_line_before_tensorflow_loads(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/lab: the CLI tests' driver
    from cli_driver import drive

    report = drive([["sweep", "--task", "iris", *args] for args, _ in BAD_GRIDS], tmp_path)
    assert report["loaded"] == []
    for (args, expected), result in zip(BAD_GRIDS, report["results"]):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1, (args, result)
        assert lines[0].startswith(f"error: {expected}"), (args, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_the_sweep_command_runs_the_grid(tmp_path, capsys):
    from optimlab.lab import commands

    runner = commands.make_runner(str(tmp_path), task="iris", epochs=2)
    commands.sweep(runner, "sgd", "0.1", 1, "none", ["weight_decay=0.001"], ["momentum=0,0.9", "clipnorm=none,1"])
    recs = records.load_all(tmp_path)
    assert sorted((r["spec"]["hyperparameters"]["momentum"], r["spec"]["hyperparameters"].get("clipnorm", -1.0))
                  for r in recs) == [(0.0, -1.0), (0.0, 1.0), (0.9, -1.0), (0.9, 1.0)]
    assert all(r["spec"]["hyperparameters"]["weight_decay"] == 0.001 for r in recs)
    out = capsys.readouterr().out
    assert "momentum=0.9" in out and "clipnorm=1" in out and "4 runs computed" in out


def test_an_integer_argument_is_swept_and_its_records_stay_floats(tmp_path):
    """Records store every number as a float; the optimizer still gets an int (Muon's ns_steps refuses 5.0)."""
    from optimlab.lab import factory

    assert type(factory.make_optimizer("muon", {"ns_steps": 5.0}).ns_steps) is int
    recs = experiments.sweep(experiments.Runner(tmp_path, "iris", epochs=1), "muon", [0.02], grid={"ns_steps": [1, 3]})
    assert sorted(r["spec"]["hyperparameters"]["ns_steps"] for r in recs) == [1.0, 3.0]
    assert all(r["status"] == "ok" for r in recs)
    with pytest.raises(TypeError, match="ns_steps must be an integer"):  # 2.5 steps: the constructor's check, before any run
        experiments.sweep(experiments.Runner(tmp_path / "bad", "iris", epochs=1), "muon", [0.02],
                          grid={"ns_steps": [2.5]})
