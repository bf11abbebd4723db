"""Figures of the convergence lab (matplotlib, headless: no pyplot, no display).

* ``plot_function``: the loss and gradient figure of the TensorFlow guide
  "Optimizers with Core APIs" (1-D), or the function's log-loss contours (2-D).
* ``plot_paths``: the guide's path plot: the parameter against the iteration,
  over the log-loss heat map, one line per run (1-D functions).
* ``plot_trajectories``: 2-D contours with the trajectories of several runs.
* ``write_convergence_plots``: the CLI's figures for a grid of runs, as PNG (and SVG).

Example:
    >>> import optimlab
    >>> from optimlab.lab import convergence_test
    >>> from optimlab.lab.convergence import plots
    >>> runs = {0.01: convergence_test(optimlab.Momentum(0.01), "quartic")}
    >>> fig = plots.plot_paths(runs, "quartic", title="Momentum")
    >>> fig.savefig("/tmp/momentum_paths.png")
"""

import math
import pathlib

import numpy as np
import tensorflow as tf
from matplotlib import colormaps
from matplotlib.figure import Figure

from optimlab.lab.convergence.functions import as_function

COLORS = ("r", "w", "c", "m", "y", "lime", "orange", "tab:blue")


def _format_lr(lr):
    return f"{lr:g}" if isinstance(lr, (int, float)) else str(lr)


def _log_scale(values, min_value):
    """Log of the loss as the guide plots it, shifted to stay finite where the loss can be <= 0."""
    values = np.asarray(values, dtype=np.float64)
    if np.all(values > 0):
        return np.log(values)
    floor = min_value if math.isfinite(min_value) else np.nanmin(values)
    return np.log1p(np.maximum(values - floor, 0.0))


def _evaluate_grid(fn, grid):
    """``fn`` at every point of ``grid`` (shape ``(n, dim)``), as a float64 array of length n."""
    points = tf.constant(grid, tf.float64)
    values = tf.vectorized_map(fn.fn, points, fallback_to_while_loop=True)
    return np.asarray(values, dtype=np.float64)


def _one_dimensional_values(fn, x_vals):
    x = tf.constant(x_vals, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = fn.fn(x)
    return np.asarray(loss, np.float64), np.asarray(tape.gradient(loss, x), np.float64)


def _domain(fn, results=()):
    """The plotting box: the function's usual domain, or the span of the paths."""
    if fn.domain:
        return fn.domain
    finite = [r.path[np.all(np.isfinite(r.path.reshape(len(r.path), -1)), axis=1)] for r in results]
    points = np.concatenate([p.reshape(len(p), -1) for p in finite if len(p)] or [np.zeros((1, 1))])
    low, high = points.min(axis=0), points.max(axis=0)
    pad = np.maximum(0.1 * (high - low), 0.5)
    return tuple(zip(low - pad, high + pad))


def _dimension(fn, results):
    if fn.dim >= 0:
        return max(fn.dim, 1)
    return int(np.prod(next(iter(results)).path.shape[1:], dtype=int)) if results else 1


# ---------------------------------------------------------------- figures
def plot_function(function, ax=None):
    """The guide's loss/gradient figure for a 1-D function, log-loss contours for a 2-D one."""
    fn = as_function(function)
    fig, ax = _figure(ax)
    if _dimension(fn, ()) == 1:
        (low, high), = _domain(fn)
        x_vals = np.linspace(low, high, 201)
        loss, grad = _one_dimensional_values(fn, x_vals)
        ax.plot(x_vals, loss, c="k", label="Loss function")
        ax.plot(x_vals, grad, c="tab:blue", label="Gradient function")
        for point in fn.saddles:
            ax.plot(point[0], float(fn(point[0])), marker="o", c="g", label="Inflection point")
        for point in fn.minima:
            ax.plot(point[0], float(fn(point[0])), marker="o", c="r", label="Global minimum")
        if fn.name == "quartic":
            ax.set_ylim(0, 5)  # the guide's view of the plateau and the minimum
        ax.set_xlabel("x")
        ax.set_ylabel("loss")
        ax.legend()
        ax.set_title(f"{fn.name}: loss function and gradient")
    else:
        _contours(fn, ax, _domain(fn))
        ax.set_title(f"{fn.name}: log loss")
    return fig


def plot_paths(runs, function, title="", max_iters=None, ax=None):
    """The guide's path plot: parameter against iteration over the log-loss heat map.

    Args:
        runs: ``{learning_rate or label: ConvergenceResult}`` for a 1-D function.
        function: the function the runs minimized (name, TestFunction or callable).
        title: the optimizer's name, shown as "<title> parameter paths".
        max_iters: the right edge of the heat map (default: the longest run).
        ax: draw into this Axes (default: a new 9x6 figure).
    """
    fn = as_function(function)
    fig, ax = _figure(ax)
    results = list(runs.values())
    if _dimension(fn, results) != 1:
        raise ValueError(f"plot_paths needs a 1-D function; {fn.name!r} has dimension {fn.dim}; use plot_trajectories")
    longest = max((len(r.path) for r in results), default=1)
    t_max = (max_iters or longest) + 100
    (low, high), = _domain(fn, results)
    x_vals = np.linspace(low, high, 201)
    loss, _ = _one_dimensional_values(fn, x_vals)
    shade = _log_scale(loss, fn.min_value)[:, None]
    ts = np.unique(np.concatenate([[0], np.geomspace(1, t_max, 200)]))
    image = ax.pcolormesh(ts, x_vals, np.repeat(shade, len(ts), axis=1), shading="auto", vmin=0)
    fig.colorbar(image, ax=ax, label="log loss")
    for color, (key, result) in zip(_cycle(len(runs)), runs.items()):
        path = np.reshape(result.path, -1)
        steps = np.arange(len(path))
        finite = np.isfinite(path)
        ax.plot(steps[finite], path[finite], c=color)
        label = f"x*: learning rate={_format_lr(key)}"
        if result.status == "exploded":
            last = steps[finite][-1] if finite.any() else 0
            ax.plot(last, np.clip(path[finite][-1] if finite.any() else 0, low, high), marker="x", c=color,
                    markersize=9, zorder=5, label=f"{label} (exploded at {result.iterations})")
        else:
            ax.plot(len(path) - 1, path[-1], marker="o", c=color, zorder=5, label=label)
    # Log-scaled iterations (linear below 1): an explosion at 6 and convergence at 80 stay visible next to 2000.
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(0, t_max)
    ax.set_ylim(low, high)
    ax.set_xlabel("iteration (log scale)")
    ax.set_ylabel("parameter value")
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.14), fontsize="small", ncol=2, facecolor="0.6")
    ax.set_title(f"{title} parameter paths".strip())
    return fig


def plot_trajectories(runs, function, title="", ax=None):
    """Log-loss contours of a 2-D function with each run's trajectory, start and end.

    Args:
        runs: ``{label: ConvergenceResult}`` on the same 2-D function.
        function: the function (name, TestFunction or callable).
        title: the panel's title (default: the function's name).
        ax: draw into this Axes (default: a new figure).
    """
    fn = as_function(function)
    fig, ax = _figure(ax, size=(7, 6))
    results = list(runs.values())
    if _dimension(fn, results) != 2:
        raise ValueError(f"plot_trajectories needs a 2-D function; {fn.name!r} has dimension {fn.dim}")
    box = _domain(fn, results)
    _contours(fn, ax, box)
    for color, (label, result) in zip(_cycle(len(runs), on_dark=False), runs.items()):
        path = result.path.reshape(len(result.path), 2)
        path = path[np.all(np.isfinite(path), axis=1)]
        ax.plot(path[:, 0], path[:, 1], c=color, lw=1.2, marker=".", markersize=2,
                label=f"{label}: {result.status} ({result.iterations})")
        ax.plot(path[-1, 0], path[-1, 1], marker="o", c=color, markeredgecolor="k")
    if results:
        start = results[0].path.reshape(-1, 2)[0]
        ax.plot(start[0], start[1], marker="s", c="k", label="start")
    for m in fn.minima:
        ax.plot(m[0], m[1], marker="*", c="gold", markersize=14, markeredgecolor="k")
    ax.set_xlim(*box[0])
    ax.set_ylim(*box[1])
    ax.set_xlabel("x[0]")
    ax.set_ylabel("x[1]")
    # Below the axes, so the legend never covers the optimum or a trajectory.
    ax.legend(loc="upper left", bbox_to_anchor=(0, -0.1), fontsize="small", ncol=2, frameon=False)
    ax.set_title(title or fn.name)
    return fig


# ---------------------------------------------------------------- the CLI's figures
def write_convergence_plots(results, function, file, svg=False, max_iters=None, tuned=False):
    """Write the figures for a grid of runs ``{(optimizer, learning_rate): ConvergenceResult}``.

    For a 1-D function, ``file`` gets one guide-style path panel per optimizer
    (one line per learning rate) and ``<stem>_function.png`` the loss/gradient
    figure. For a 2-D function, ``file`` gets one contour panel per learning
    rate with every optimizer's trajectory (one panel in all with ``tuned=True``,
    when each optimizer ran at its own tuned rate). Other dimensions cannot be
    drawn (ValueError).
    With ``svg=True`` each figure is also written as SVG. Returns the written paths.
    """
    fn = as_function(function)
    file = pathlib.Path(file)
    dim = check_plot_target(fn, file, list(results.values()))
    if dim == 1:
        figure = _path_grid(results, fn, max_iters)
        extra = {file.with_name(f"{file.stem}_function.png"): plot_function(fn)}
    else:
        figure = _trajectory_grid(results, fn, tuned)
        extra = {}
    written = []
    for target, fig in {file: figure, **extra}.items():
        written += _save(fig, target, svg)
    return written


def check_plot_target(function, file, results=()):
    """The function's dimension (1 or 2) if ``file`` can receive its plots; ValueError otherwise."""
    fn = as_function(function)
    if pathlib.Path(file).suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"plot file must end in .png or .svg; got {str(file)!r}")
    dim = _dimension(fn, results)
    if dim not in (1, 2):
        raise ValueError(f"can only plot 1-D and 2-D functions; {fn.name!r} has dimension {dim}")
    return dim


def _path_grid(results, fn, max_iters):
    by_optimizer = {}
    for (label, lr), result in results.items():
        by_optimizer.setdefault(label, {})[lr] = result
    fig, axes = _panels(len(by_optimizer), (9, 6))
    for ax, (label, runs) in zip(axes, by_optimizer.items()):
        plot_paths(runs, fn, title=label, max_iters=max_iters, ax=ax)
    return fig


def _trajectory_grid(results, fn, tuned):
    rates = sorted({lr for _, lr in results})
    if tuned or len(rates) == 1:
        groups = {"": {f"{label} (lr={_format_lr(lr)})": r for (label, lr), r in results.items()}}
    else:
        groups = {lr: {label: r for (label, r_lr), r in results.items() if r_lr == lr} for lr in rates}
    fig, axes = _panels(len(groups), (7, 6))
    for ax, (lr, runs) in zip(axes, groups.items()):
        title = f"{fn.name}" + (f", learning rate={_format_lr(lr)}" if lr != "" else "")
        plot_trajectories(runs, fn, title=title, ax=ax)
    return fig


def _contours(fn, ax, box):
    (x_low, x_high), (y_low, y_high) = box
    xs, ys = np.linspace(x_low, x_high, 160), np.linspace(y_low, y_high, 160)
    gx, gy = np.meshgrid(xs, ys)
    values = _evaluate_grid(fn, np.stack([gx.ravel(), gy.ravel()], axis=1)).reshape(gx.shape)
    shade = _log_scale(values, fn.min_value)
    filled = ax.contourf(gx, gy, shade, levels=30, cmap="viridis")
    ax.contour(gx, gy, shade, levels=15, colors="k", linewidths=0.3, alpha=0.5)
    ax.figure.colorbar(filled, ax=ax, label="log loss")


def _figure(ax, size=(9, 6)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots()


def _panels(n, size):
    columns = min(n, 3)
    rows = math.ceil(n / columns)
    fig = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns)).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _cycle(n, on_dark=True):
    """``n`` colours, all different while ``n`` <= 28 (the guide's first, then tab20's)."""
    first = COLORS if on_dark else ("r", "k", "c", "m", "orange", "lime", "tab:blue", "y")
    colors = list(first) + [c for c in colormaps["tab20"].colors]
    return [colors[i % len(colors)] for i in range(n)]


def _save(fig, target, svg):
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=100)
    written = [target]
    if svg and target.suffix.lower() != ".svg":
        fig.savefig(target.with_suffix(".svg"))
        written.append(target.with_suffix(".svg"))
    return written
