"""Plots: files written, non-trivial, decodable PNGs with varied pixels; SVG on request."""

import matplotlib.image
import numpy as np
import pytest

import optimlab
from optimlab.lab import convergence_test, run_grid
from optimlab.lab.convergence import plots


def _assert_real_png(path):
    assert path.exists() and path.stat().st_size > 10_000
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].std() > 0.05  # not a blank canvas
    assert len(np.unique(pixels[..., :3].reshape(-1, 3), axis=0)) > 50


@pytest.fixture(scope="module")
def quartic_runs():
    return run_grid("gd,momentum", "quartic", [1e-2, 1e-1], max_iters=300)


def test_seed_path_plots_and_function_figure(tmp_path, quartic_runs):
    written = plots.write_convergence_plots(quartic_runs, "quartic", tmp_path / "paths.png", svg=True, max_iters=300)
    names = sorted(p.name for p in written)
    assert names == ["paths.png", "paths.svg", "paths_function.png", "paths_function.svg"]
    for path in written:
        if path.suffix == ".png":
            _assert_real_png(path)
        else:
            assert path.read_text().lstrip().startswith("<?xml") and path.stat().st_size > 10_000


def test_path_panel_draws_one_line_per_learning_rate(quartic_runs):
    runs = {lr: r for (name, lr), r in quartic_runs.items() if name == "momentum"}
    fig = plots.plot_paths(runs, "quartic", title="Momentum", max_iters=300)
    ax = fig.axes[0]
    assert ax.get_title() == "Momentum parameter paths"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["x*: learning rate=0.01", "x*: learning rate=0.1 (exploded at 6)"]
    converged_line = ax.lines[0]
    np.testing.assert_array_equal(converged_line.get_ydata(), runs[0.01].path)


def test_contour_plot_with_trajectories_of_several_optimizers(tmp_path):
    results = run_grid("gd,momentum,adam", "himmelblau", [1e-2], init=None, max_iters=100)
    written = plots.write_convergence_plots(results, "himmelblau", tmp_path / "himmelblau.png")
    assert written == [tmp_path / "himmelblau.png"]
    _assert_real_png(written[0])
    fig = plots.plot_trajectories({k[0]: r for k, r in results.items()}, "himmelblau")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [label.split(":")[0] for label in labels] == ["gd", "momentum", "adam", "start"]


def test_function_figure_for_a_2d_function(tmp_path):
    fig = plots.plot_function("rosenbrock")
    fig.savefig(tmp_path / "rosenbrock.png")
    _assert_real_png(tmp_path / "rosenbrock.png")


def test_plot_errors(tmp_path):
    r = convergence_test(optimlab.Adam(0.1), "rastrigin", init=None, max_iters=5)
    with pytest.raises(ValueError, match="plot_paths needs a 1-D function"):
        plots.plot_paths({0.1: r}, "rastrigin")
    r3 = convergence_test(optimlab.Adam(0.1), optimlab.lab.get_function("rastrigin", dim=3), init=None, max_iters=5)
    with pytest.raises(ValueError, match="can only plot 1-D and 2-D functions"):
        plots.write_convergence_plots({("adam", 0.1): r3}, optimlab.lab.get_function("rastrigin", dim=3), tmp_path / "x.png")
    with pytest.raises(ValueError, match="plot file must end in .png or .svg"):
        plots.write_convergence_plots({("adam", 0.1): r}, "rastrigin", tmp_path / "x.jpg")


def test_many_optimizers_get_distinct_colours_and_the_legend_stays_off_the_axes():
    """Issue 15: adam and yogi were both red; the legend covered the optimum."""
    import optimlab
    from optimlab.lab import convergence_test
    from optimlab.lab.convergence import plots

    assert len(set(plots._cycle(20))) == 20 and len(set(plots._cycle(20, on_dark=False))) == 20
    runs = {name: convergence_test(optimlab.get(name, learning_rate=0.01), "rosenbrock", max_iters=5)
            for name in ("adam", "yogi", "sgd", "lion", "nadam", "adamax", "adamw",
                         "lamb", "rmsprop")}
    fig = plots.plot_trajectories(runs, "rosenbrock")
    ax = fig.axes[0]
    fig.canvas.draw()
    colours = [line.get_color() for line in ax.get_legend().get_lines()[:len(runs)]]
    assert len(set(map(str, colours))) == len(runs)
    legend, axes = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert not legend.overlaps(axes)


def test_path_plot_uses_a_log_iteration_axis():
    """An explosion at 6 and a convergence at 80 stay visible beside 2000 iterations."""
    import optimlab
    from optimlab.lab import convergence_test
    from optimlab.lab.convergence import plots

    runs = {0.01: convergence_test(optimlab.Momentum(0.01), "quartic", init=2.0, max_iters=100)}
    ax = plots.plot_paths(runs, "quartic", max_iters=2000).axes[0]
    assert ax.get_xscale() == "symlog" and "log" in ax.get_xlabel()
