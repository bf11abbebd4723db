"""The training lab's figures: what the reader sees on the axes (limits, colours, markers)."""

import pytest

from optimlab.lab.training import plots
from optimlab.lab.training.runner import experiments


def _figure_of(monkeypatch):
    """Capture the figure a plot function saves (its axes hold what the reader sees)."""
    captured = {}

    def keep(fig, path):
        captured["fig"] = fig
        return path

    monkeypatch.setattr(plots, "_save", keep)
    return captured


def test_diverged_curves_do_not_flatten_the_finished_ones(monkeypatch, tmp_path):
    """Found by a user test: a diverged run's loss of 1e21 squeezed adam's curve into a line at the bottom."""
    import pandas as pd

    rows, runs = [], []
    for optimizer, diverged in (("adam", False), ("sgd", True)):
        for seed in (0, 1):
            for epoch in range(5):
                loss = 1e21 ** (epoch / 4) if diverged else 5000.0 - 500 * epoch
                rows.append({"problem": "p", "optimizer": optimizer, "config": "lr=0.1", "seed": seed, "epoch": epoch,
                             "train_loss": loss, "valid_loss": loss, "test_loss": loss})
            runs.append({"problem": "p", "optimizer": optimizer, "config": "lr=0.1", "seed": seed,
                         "diverged": diverged, "learning_rate": 0.1, "clipnorm": float("nan"),
                         "selection_loss": float("inf") if diverged else 3000.0, "valid_loss": 3000.0, "loss": "mse"})
    curves, runs = pd.DataFrame(rows), pd.DataFrame(runs)
    captured = _figure_of(monkeypatch)
    plots.plot_curves(curves, runs, "p", tmp_path / "c.png", runs)
    for ax in captured["fig"].axes:
        low, high = ax.get_ylim()
        assert high < 1e5 and low > 1000, (low, high)  # adam's 3000..5000 fill the axes
    plots.plot_lr_sensitivity(runs[runs["optimizer"] == "adam"], "p", tmp_path / "s.png")
    assert "diverged" not in captured["fig"].axes[0].get_title()  # nothing diverged in this plot
    plots.plot_lr_sensitivity(runs, "p", tmp_path / "s.png")
    assert "every seed diverged" in captured["fig"].axes[0].get_title()


def _rgb(color):
    from matplotlib import colors

    return colors.to_rgb(color)


def _table_of_runs(rows):
    """A runs table (the columns the figures read) from (optimizer, lr, seed, loss or None for diverged)."""
    import math

    import pandas as pd

    table = []
    for optimizer, lr, seed, loss in rows:
        table.append({"problem": "p", "optimizer": optimizer, "config": f"lr={lr:g}", "hyperparameters": f"{lr}",
                      "learning_rate": lr, "clipnorm": math.nan, "seed": seed, "status": "ok" if loss else "diverged",
                      "diverged": loss is None, "selection_loss": loss or math.inf, "valid_loss": loss or math.nan,
                      "test_loss": loss or math.nan, "train_loss": loss or math.nan, "test_metric": math.nan,
                      "metric": "mae", "loss": "mse", "epochs_to_target": math.nan, "seconds_to_target": math.nan})
    return pd.DataFrame(table)


def test_box_plot_colours_follow_the_optimizer_not_its_rank(monkeypatch, tmp_path):
    losses = {"sgd": 1.0, "momentum": 2.0, "adam": 3.0}  # ranked sgd, momentum, adam: the reverse of the names
    runs = _table_of_runs([(name, 0.1, seed, loss + seed / 10) for name, loss in losses.items() for seed in range(3)])
    captured = _figure_of(monkeypatch)
    plots.plot_boxes(runs, "p", tmp_path / "b.png", runs)
    ax = captured["fig"].axes[0]
    mapping = plots.optimizer_colors(losses)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["sgd", "momentum", "adam"]
    for dots, box, name in zip(ax.collections, ax.patches, ("sgd", "momentum", "adam")):
        assert tuple(dots.get_facecolor()[0][:3]) == _rgb(mapping[name])
        assert tuple(box.get_edgecolor()[:3]) == _rgb(mapping[name])


def test_diverged_markers_of_two_optimizers_at_one_rate_are_both_visible(monkeypatch, tmp_path):
    """sgd's x sat exactly on momentum's at lr=0.1: momentum's divergence was hidden."""
    import math

    rows = [(name, lr, seed, 100.0 * (1 + lr)) for name in ("adam", "momentum", "sgd") for lr in (0.001, 0.01)
            for seed in range(2)]
    rows += [("adam", 0.1, seed, 90.0) for seed in range(2)]
    rows += [(name, 0.1, seed, None) for name in ("momentum", "sgd") for seed in range(2)]
    captured = _figure_of(monkeypatch)
    plots.plot_lr_sensitivity(_table_of_runs(rows), "p", tmp_path / "s.png")
    fig = captured["fig"]
    fig.canvas.draw()
    ax = fig.axes[0]
    marks = {c.get_label().split(":")[0]: c for c in ax.collections if c.get_label().endswith(": diverged")}
    assert set(marks) == {"momentum", "sgd"}
    points = {name: ax.transData.transform(c.get_offsets())[0] for name, c in marks.items()}
    width = math.sqrt(80) * fig.dpi / 72  # the marker's size in pixels
    assert abs(points["momentum"][0] - points["sgd"][0]) >= width, points
    for c in marks.values():
        x = c.get_offsets()[0][0]
        assert abs(math.log10(x / 0.1)) < 0.15  # still read at lr=0.1
        assert ax.get_xlim()[0] < x < ax.get_xlim()[1]


def test_a_sweep_of_one_optimizer_tells_its_configurations_apart_by_colour():
    pairs = [("adam", f"lr={lr}") for lr in (0.001, 0.01, 0.1)]
    styles = plots._styles(pairs, plots.optimizer_colors(["adam"]))
    assert len({colour for colour, _ in styles.values()}) == 3
    mixed = plots._styles(pairs + [("sgd", "lr=0.1")], plots.optimizer_colors(["adam", "sgd"]))
    assert len({mixed[p][0] for p in pairs}) == 1 and mixed[("sgd", "lr=0.1")][0] != mixed[pairs[0]][0]


def test_tuning_history_marks_diverged_and_interrupted_trials(tmp_path, monkeypatch):
    """The diverged trials' x never showed (the plot read an attribute the tuner does not set), nor did
    interrupted ones, and the trial axis had ticks at 0.5, 1.5, ..."""
    import optuna

    from optimlab.lab.training.runner import tuning

    runner = experiments.Runner(tmp_path, "diabetes", epochs=3)

    def interrupt(record, computed):
        raise KeyboardInterrupt

    runner.on_run = interrupt
    with pytest.raises(KeyboardInterrupt):
        tuning.tune(runner, ["gd"], trials=3, sampler="grid", lr_range=(1e-2, 1e6))
    tuning.tune(experiments.Runner(tmp_path, "diabetes", epochs=3), ["gd"], trials=3, sampler="grid",
                lr_range=(1e-2, 1e6))
    study = optuna.load_study(study_name="diabetes-gd-grid", storage=tuning.default_storage(tmp_path))
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plots.plot_tuning_history(study.trials, "diabetes-gd-grid", tmp_path / "history.png")
    trials_panel, rates_panel = figures[0].axes
    labels = [h.get_label() for h in trials_panel.collections]
    assert "diverged" in labels and "interrupted" in labels
    assert all(float(t).is_integer() for t in trials_panel.get_xticks())
    assert rates_panel.get_xscale() == "log"
    diverged = next(c for c in rates_panel.collections if c.get_label() == "diverged")
    assert max(diverged.get_offsets()[:, 0]) == pytest.approx(1e6)
