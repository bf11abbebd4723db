"""Figures of the training lab, drawn from the tables of :mod:`optimlab.lab.training.analysis` and the records.

Each ``plot_*`` function draws one figure, saves it as a PNG at ``path`` and
returns the path; :mod:`optimlab.lab.training.report` embeds them in the HTML.

* :func:`plot_curves`: training and validation (or test) loss per epoch of
  each shown configuration (median over seeds, interquartile band);
* :func:`plot_lr_sensitivity`: final loss against the learning rate;
* :func:`plot_sensitivity`, :func:`plot_heatmap`: final loss against each swept
  hyperparameter of one optimizer, and over the grid of two;
* :func:`plot_boxes`: final test loss per seed of each optimizer's selected configuration;
* :func:`plot_all_curves`: the diagnostics' figure: every configuration's
  training curve, explosions marked, the naive baseline dashed;
* :func:`plot_profile`: performance profiles across problems;
* :func:`plot_tuning_history`: an Optuna study's trials;
* :func:`plot_budget_curves`: per optimizer, the best validation loss found against the tuning budget spent.

Every figure gives an optimizer the same colour (:func:`optimizer_colors`,
built once from the sorted names); its configurations differ by line style.

Example::

    from optimlab.lab.training import analysis, plots, records
    runs = analysis.runs_table(records.load_all("runs/iris"))
    plots.plot_lr_sensitivity(runs, "iris", "iris_lr.png")
"""

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.colors  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from optimlab import spaces  # noqa: E402
from optimlab.lab.training import analysis  # noqa: E402
from optimlab.lab.training.analysis import diagnostics, stats, verdict  # noqa: E402
from optimlab.lab.training.analysis.tables import value_label  # noqa: E402

COLORS = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))
SPLITS = {"train": "training", "valid": "validation", "test": "test"}
CLIP = 10.0  # the diagnostics curves' y axis stops at CLIP times the largest starting loss


def _save(fig, path):
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path



def _loss_label(runs, problem, split):
    """``"validation MSE"``: the split and the loss of ``problem``'s runs."""
    return f"{SPLITS[split]} {verdict.loss_kinds(runs[runs['problem'] == problem])}"



def optimizer_colors(names):
    """``{optimizer: colour}``, one colour per optimizer for every figure of a report.

    Built once from the sorted names, so adam is the same blue in the curves,
    the learning-rate sensitivity, the box plot, the diagnostics and the
    profiles, whatever its rank. Example: ``optimizer_colors(["sgd", "adam"])["adam"] == COLORS[0]``.
    """
    return {name: COLORS[i % len(COLORS)] for i, name in enumerate(sorted(set(names)))}


def _styles(pairs, colors):
    """``{(optimizer, variant): (colour, linestyle)}``: the optimizer's colour; its variants told apart by line style.

    A figure of one optimizer only (a sweep) gives each variant a colour of its own instead.
    """
    pairs = list(pairs)
    if len({optimizer for optimizer, _ in pairs}) == 1:
        return {pair: (COLORS[i % len(COLORS)], LINESTYLES[0]) for i, pair in enumerate(pairs)}
    styles, seen = {}, {}
    for optimizer, variant in pairs:
        index = seen.setdefault(optimizer, 0)
        seen[optimizer] += 1
        styles[(optimizer, variant)] = (colors[optimizer], LINESTYLES[index % len(LINESTYLES)])
    return styles


def curve_columns(curves):
    """The two panels' columns: training loss, and validation loss (test loss when there is no validation)."""
    return ("train_loss", "valid_loss" if curves["valid_loss"].notna().any() else "test_loss")


def shown_configs(shown, problem):
    """The (optimizer, configuration) pairs drawn for ``problem``, in order."""
    return list(shown[shown["problem"] == problem].groupby(["optimizer", "config"]).groups)


def plot_curves(curves, shown, problem, path, runs, colors=None):
    """Training and validation (else test) loss per epoch of each shown configuration.

    Lines are the median over seeds, bands the interquartile range (never
    below zero, so they do not collapse on the log axis); an x marks where a
    configuration's runs diverged.
    """
    data = curves[curves["problem"] == problem]
    second = curve_columns(data)[1]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    configs = shown_configs(shown, problem)
    styles = _styles(configs, colors or optimizer_colors(runs["optimizer"]))
    for ax, column in zip(axes, ("train_loss", second)):
        for optimizer, config in configs:
            seeds = shown[(shown["problem"] == problem) & (shown["optimizer"] == optimizer)
                          & (shown["config"] == config)]["seed"]
            sub = data[(data["optimizer"] == optimizer) & (data["config"] == config) & data["seed"].isin(seeds)]
            finite = sub[np.isfinite(sub[column])]
            per_epoch = finite.groupby("epoch")[column].quantile([0.25, 0.5, 0.75]).unstack()
            if per_epoch.empty:
                continue
            color, linestyle = styles[(optimizer, config)]
            ax.plot(per_epoch.index, per_epoch[0.5], color=color, linestyle=linestyle,
                    label=f"{optimizer} {config} ({seeds.nunique()} seed{'s' if seeds.nunique() > 1 else ''})")
            if seeds.nunique() > 1:
                ax.fill_between(per_epoch.index, per_epoch[0.25], per_epoch[0.75], color=color, alpha=0.2)
            last_epoch = sub.groupby("seed")["epoch"].max()
            diverged_seeds = set(runs[(runs["problem"] == problem) & (runs["optimizer"] == optimizer)
                                      & (runs["config"] == config) & runs["diverged"]]["seed"])
            for seed in diverged_seeds & set(last_epoch.index):
                seed_rows = finite[finite["seed"] == seed]
                if len(seed_rows):
                    ax.scatter(seed_rows["epoch"].iloc[-1], seed_rows[column].iloc[-1], marker="x", s=70,
                               color=color, zorder=5, linewidths=2)
        positive = data[column][np.isfinite(data[column])]
        if len(positive) and (positive > 0).all():
            ax.set_yscale("log")
        _focus_on_finished(ax, data, runs, problem, column)
        split = column.split("_")[0]
        ax.set(xlabel="epoch", ylabel=_loss_label(runs, problem, split) + (" (log scale)" if ax.get_yscale() == "log" else ""),
               title=f"{problem}: {SPLITS[split]} loss")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(3, len(labels)), fontsize=8)
    return _save(fig, path)


def _focus_on_finished(ax, data, runs, problem, column):
    """Keep the y range on the runs that finished: a diverged run's climb to 1e21 would flatten them.

    Diverged curves then leave the top of the axes; their x markers are drawn where they left.
    """
    done = runs[(runs["problem"] == problem) & ~runs["diverged"]]
    finished = data.merge(done[["optimizer", "config", "seed"]], on=["optimizer", "config", "seed"])[column]
    finished = finished[np.isfinite(finished)]
    if len(finished) == 0 or len(finished) == np.isfinite(data[column]).sum():
        return
    low, high = float(finished.min()), float(finished.max())
    if ax.get_yscale() == "log":
        ax.set_ylim(low / 1.5, high * 3)
    else:
        ax.set_ylim(low - 0.1 * (high - low), high + 0.5 * (high - low) + 1e-12)


def plot_lr_sensitivity(runs, problem, path, colors=None):
    """Median final selection loss per learning rate; an x above the curve where every seed diverged.

    The x markers of different optimizers at one learning rate are shifted
    apart along the (log) axis, a few hundredths of a decade each, so that
    one optimizer's divergence never hides under another's.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    data = runs[runs["problem"] == problem]
    groups = list(data.groupby(["optimizer", data["clipnorm"].fillna(-1)]))
    styles = _styles([k for k, _ in groups], colors or optimizer_colors(runs["optimizer"]))
    finite_all = data["selection_loss"][np.isfinite(data["selection_loss"])]
    ceiling = float(finite_all.max()) * 1.5 if len(finite_all) else 1.0
    rates = data["learning_rate"][data["learning_rate"] > 0]
    span = math.log10(rates.max() / rates.min()) if len(rates) else 0.0
    step = 0.04 * max(span, 1.0)  # decades between neighbouring groups' x markers: about 20 pixels
    any_failed = False
    for index, ((optimizer, clipnorm), group) in enumerate(groups):
        per_lr = group.groupby("learning_rate")["selection_loss"].median().sort_index()
        label = optimizer if clipnorm < 0 else f"{optimizer} clipnorm={clipnorm:g}"
        finite = per_lr[np.isfinite(per_lr)]
        color, linestyle = styles[(optimizer, clipnorm)]
        ax.plot(finite.index, finite.values, marker="o", color=color, linestyle=linestyle, label=label)
        failed = per_lr[~np.isfinite(per_lr)]
        if len(failed):
            any_failed = True
            shift = 10 ** (step * (index - (len(groups) - 1) / 2))
            ax.scatter(failed.index.to_numpy() * shift, [ceiling] * len(failed), marker="x", s=80, color=color,
                       zorder=5, linewidths=2, label=f"{label}: diverged")
    selection = "validation" if data["valid_loss"].notna().any() else "training"
    ax.set(xscale="log", yscale="log", xlabel="learning rate (log scale)",
           ylabel=f"final {selection} loss, median over seeds (log scale)",
           title=f"{problem}: learning-rate sensitivity" + (" (x: every seed diverged)" if any_failed else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def swept_dimensions(runs):
    """The hyperparameters whose value differs between the configurations of ``runs`` (one optimizer's), sorted.

    A hyperparameter missing from some configurations counts as set to None
    there (``clipnorm`` none, or the constructor's default).
    """
    configs = [json.loads(h) for h in runs["hyperparameters"].unique()]
    names = sorted({k for c in configs for k in c})
    return [k for k in names if len({json.dumps(c.get(k)) for c in configs}) > 1]


def sensitivity_scale(optimizer, name, values):
    """How to draw a swept hyperparameter's axis: ``"log"``, ``"log1m"`` (1 - x on a log axis), ``"linear"`` or ``"choice"``.

    The optimizer's declared search space says it (:func:`optimlab.spaces.listed`,
    no TensorFlow); otherwise booleans and None make categories, positive
    numbers spanning a factor of 10 or more a log axis, the rest a linear one.
    A log axis that would have to show zero or a negative value becomes linear.
    """
    try:
        declared = spaces.listed(optimizer).get(name)
    except ValueError:  # a class of one's own: not in the catalog
        declared = None
    numeric = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if len(numeric) < len(values) or (declared is not None and declared.scale == "choice"):
        return "choice"
    scale = declared.scale if declared is not None else (
        "log" if min(numeric) > 0 and max(numeric) >= 10 * min(numeric) else "linear")
    if scale == "log" and min(numeric) <= 0 or scale == "log1m" and max(numeric) >= 1:
        return "linear"
    return "linear" if scale == "int" else scale


def _per_config(runs):
    """``[(hyperparameters dict, median selection loss over seeds)]`` of each configuration of ``runs``."""
    medians = runs.groupby("hyperparameters")["selection_loss"].median()
    return [(json.loads(h), float(v)) for h, v in medians.items()]


def _best(configs):
    """The configuration with the lowest finite median (the first one when every configuration diverged)."""
    finite = [c for c in configs if math.isfinite(c[1])]
    return min(finite, key=lambda c: c[1])[0] if finite else configs[0][0]


def _sorted_values(values):
    """Distinct values in order: numbers ascending, then booleans, then None."""
    unique = {json.dumps(v): v for v in values}.values()
    return sorted(unique, key=lambda v: (v is None, isinstance(v, bool), v if isinstance(v, (int, float)) else 0))


def plot_sensitivity(runs, problem, optimizer, path, colors=None):
    """One panel per swept hyperparameter of ``optimizer``: median final selection loss against its value.

    Each panel is a slice through the best configuration (lowest median final
    validation loss, training loss without a validation split): the other
    swept hyperparameters are held at its values. The axis follows the
    hyperparameter's scale (:func:`sensitivity_scale`; a beta or momentum is
    drawn as 1 - x on a log axis); an x at the top marks a value where every
    seed diverged, a star the best configuration.
    """
    data = runs[(runs["problem"] == problem) & (runs["optimizer"] == optimizer)]
    dims = swept_dimensions(data)
    configs = _per_config(data)
    best = _best(configs)
    color = (colors or optimizer_colors(runs["optimizer"]))[optimizer]
    finite = [v for _, v in configs if math.isfinite(v)]
    ceiling = max(finite) * 1.5 if finite else 1.0
    log_y = bool(finite) and min(finite) > 0
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims) + 1, 4.2), layout="constrained", squeeze=False)
    for ax, dim in zip(axes[0], dims):
        others = [d for d in dims if d != dim]
        line = [(c.get(dim), v) for c, v in configs if all(json.dumps(c.get(d)) == json.dumps(best.get(d))
                                                           for d in others)]
        scale = sensitivity_scale(optimizer, dim, [x for x, _ in line])
        order = _sorted_values([x for x, _ in line])
        position = {json.dumps(x): (i if scale == "choice" else 1 - x if scale == "log1m" else x)
                    for i, x in enumerate(order)}
        rank = {json.dumps(x): i for i, x in enumerate(order)}
        line.sort(key=lambda p: rank[json.dumps(p[0])])
        shown = [(position[json.dumps(x)], v) for x, v in line if math.isfinite(v)]
        failed = [position[json.dumps(x)] for x, v in line if not math.isfinite(v)]
        ax.plot([p for p, _ in shown], [v for _, v in shown], marker="o", color=color)
        if failed:
            ax.scatter(failed, [ceiling] * len(failed), marker="x", s=80, color=color, linewidths=2, zorder=5)
        if finite:
            ax.scatter([position[json.dumps(best.get(dim))]], [min(finite)], marker="*", s=160, color="black", zorder=6)
        if scale == "choice":
            ax.set_xticks(range(len(order)), [value_label(x) for x in order])
        elif scale in ("log", "log1m"):
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        held = ", ".join(f"{d}={value_label(best.get(d))}" for d in others)
        ax.set(xlabel=("1 - " if scale == "log1m" else "") + dim + (" (log scale)" if scale in ("log", "log1m") else ""),
               title=dim + (f"\n({held})" if held else ""))
        ax.grid(alpha=0.3)
    split = "validation" if data["valid_loss"].notna().any() else "training"
    axes[0][0].set_ylabel(f"final {split} loss, median over seeds" + (" (log scale)" if log_y else ""))
    fig.suptitle(f"{problem}, {optimizer}: sensitivity to each swept hyperparameter\n(*: best, x: every seed diverged)")
    return _save(fig, path)


def _middle(values, norm):
    """The value halfway along the colour scale (geometric mean of the ends on a log scale)."""
    low, high = float(values.min()), float(values.max())
    return math.sqrt(low * high) if norm is not None else (low + high) / 2


def plot_heatmap(runs, problem, optimizer, path):
    """Median final selection loss over the grid of exactly two swept hyperparameters (rows: the first by name).

    Cells are coloured on a log scale when every finite value is positive and
    carry their value; a cell where every seed diverged is grey with an x, a
    combination never run is blank; the best cell is outlined.
    """
    data = runs[(runs["problem"] == problem) & (runs["optimizer"] == optimizer)]
    dims = swept_dimensions(data)
    if len(dims) != 2:
        raise ValueError(f"a heat map needs exactly two swept hyperparameters; {optimizer} has {dims}")
    rows_dim, cols_dim = dims
    configs = _per_config(data)
    rows = _sorted_values([c.get(rows_dim) for c, _ in configs])
    cols = _sorted_values([c.get(cols_dim) for c, _ in configs])
    row_of = {json.dumps(v): i for i, v in enumerate(rows)}
    col_of = {json.dumps(v): j for j, v in enumerate(cols)}
    grid = np.full((len(rows), len(cols)), np.nan)
    for c, v in configs:
        grid[row_of[json.dumps(c.get(rows_dim))], col_of[json.dumps(c.get(cols_dim))]] = v
    finite = grid[np.isfinite(grid)]
    norm = matplotlib.colors.LogNorm() if finite.size and finite.min() > 0 else None
    fig, ax = plt.subplots(figsize=(1.1 * len(cols) + 3, 0.6 * len(rows) + 2.5), layout="constrained")
    shown = np.ma.masked_invalid(grid)
    image = ax.imshow(shown, cmap="viridis_r", norm=norm, aspect="auto")
    split = "validation" if data["valid_loss"].notna().any() else "training"
    fig.colorbar(image, ax=ax, label=f"final {split} loss, median over seeds")
    best = _best(configs)
    for i, j in np.ndindex(grid.shape):
        value = grid[i, j]
        if np.isinf(value):
            ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, color="lightgrey"))
            ax.text(j, i, "x", ha="center", va="center", fontsize=12)
        elif np.isfinite(value):
            ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
                    color="white" if value > _middle(finite, norm) else "black")  # dark cells: high losses
    ax.add_patch(plt.Rectangle((col_of[json.dumps(best.get(cols_dim))] - 0.5, row_of[json.dumps(best.get(rows_dim))] - 0.5),
                               1, 1, fill=False, edgecolor="red", linewidth=2))
    ax.set_xticks(range(len(cols)), [value_label(v) for v in cols])
    ax.set_yticks(range(len(rows)), [value_label(v) for v in rows])
    ax.set(xlabel=cols_dim, ylabel=rows_dim,
           title=f"{problem}, {optimizer}: {rows_dim} x {cols_dim}\n(red: best, x: every seed diverged)")
    return _save(fig, path)


def plot_boxes(chosen, problem, path, runs, colors=None):
    """Final test loss per seed for each optimizer's selected configuration (box plot, seeds as dots), best first."""
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    data = chosen[chosen["problem"] == problem]
    names = list(analysis.ranked_summary(runs[runs["problem"] == problem])["optimizer"])
    samples = [data[data["optimizer"] == n]["test_loss"].dropna().to_numpy() for n in names]
    colors = colors or optimizer_colors(runs["optimizer"])
    boxes = ax.boxplot([s if s.size else [np.nan] for s in samples], patch_artist=True,
                       medianprops={"color": "black"})
    for box, name in zip(boxes["boxes"], names):
        box.set(facecolor=(*colors[name][:3], 0.25), edgecolor=colors[name])
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30 if len(names) > 4 else 0,
                  ha="right" if len(names) > 4 else "center")
    for i, (name, s) in enumerate(zip(names, samples), start=1):
        ax.scatter(np.full(s.size, i) + np.linspace(-0.08, 0.08, s.size), s, s=14, alpha=0.7, zorder=3,
                   color=colors[name], label=name)
    ax.set(ylabel=_loss_label(runs, problem, "test") + ", final",
           xlabel="optimizer (best first)", title=f"{problem}: final test loss per seed")
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_profile(costs, path, colors=None):
    """Performance profiles (Dolan & More) of the median final test loss across problems."""
    finite = costs.to_numpy()[np.isfinite(costs.to_numpy())]
    top = max(2.0, float(np.max(finite / np.min(finite)))) if finite.size else 2.0
    taus = np.geomspace(1, top * 1.05, 200)
    profile = stats.performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    colors = colors or optimizer_colors(profile.columns)
    for name in profile.columns:
        ax.step(profile.index, profile[name], where="post", label=name, color=colors[name])
    ax.set(xscale="log", xlabel="tau: ratio to the best median test loss (log scale)",
           ylabel="share of problems within tau", ylim=(-0.02, 1.02),
           title=f"performance profiles over {len(costs)} problems")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_tuning_history(trials, title, path):
    """Per trial: its final validation loss (dots) and the best so far (line); beside it, the loss per learning rate.

    Diverged trials are red x at the top of both panels, trials interrupted
    before they finished (retried later) grey circles there.
    """
    fig, (ax, by_rate) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    done = [t for t in trials if t.value is not None]
    values = [t.value for t in done]
    log = bool(values) and all(v > 0 for v in values)
    if values:
        ax.scatter([t.number for t in done], values, s=18, label="trial")
        ax.step([t.number for t in done], np.minimum.accumulate(values), where="post", color="black",
                label="best so far")
        rated = [t for t in done if "learning_rate" in t.params]
        by_rate.scatter([t.params["learning_rate"] for t in rated], [t.value for t in rated], s=18)
    marks = (("diverged", {"marker": "x", "s": 60, "color": "red"}),
             ("pruned", {"marker": "v", "s": 40, "color": "orange"}),
             ("interrupted", {"marker": "o", "s": 40, "facecolors": "none", "edgecolors": "grey"}))
    for panel in (ax, by_rate):
        if log:
            panel.set_yscale("log")
        top = panel.get_ylim()[1]
        for outcome, style in marks:
            chosen = [t for t in trials if t.value is None and _outcome(t) == outcome and "learning_rate" in t.params]
            if chosen:
                x = [t.number if panel is ax else t.params["learning_rate"] for t in chosen]
                panel.scatter(x, [top] * len(chosen), zorder=5, label=outcome, **style)
        panel.grid(alpha=0.3)
    ylabel = "final validation loss" + (" (log scale)" if log else "")
    ax.set(xlabel="trial", ylabel=ylabel, title=title)
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    by_rate.set(xscale="log", xlabel="learning rate (log scale)", ylabel=ylabel, title="loss per learning rate")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_budget_curves(curves, title, path, colors=None):
    """The best validation loss found so far against the epochs of tuning spent (left) and the trials run (right).

    ``curves``: ``{optimizer: [(trials, epochs, best), ...]}``
    (:func:`optimlab.lab.training.analysis.budget.curve`); a curve starts at
    its first complete trial. One colour per optimizer (``colors``).
    """
    colors = colors or optimizer_colors(curves)
    fig, (by_epochs, by_trials) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    finite = [best for points in curves.values() for _, _, best in points if math.isfinite(best)]
    for name, points in sorted(curves.items()):
        shown = [p for p in points if math.isfinite(p[2])]
        if not shown:
            continue
        for panel, x in ((by_epochs, 1), (by_trials, 0)):
            panel.step([p[x] for p in shown], [p[2] for p in shown], where="post", color=colors.get(name),
                       label=name, marker="o", markersize=3)
    for panel, xlabel in ((by_epochs, "epochs of tuning spent"), (by_trials, "trials run")):
        if finite and all(v > 0 for v in finite):
            panel.set_yscale("log")
        panel.set(xlabel=xlabel, ylabel="best validation loss so far")
        panel.grid(alpha=0.3)
    by_trials.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    by_epochs.set_title(title)
    by_epochs.legend(fontsize=8)
    return _save(fig, path)


def _outcome(trial):
    """``diverged``, ``interrupted`` (stopped before it finished) or None, from a trial the tuner marked."""
    outcome = trial.user_attrs.get("outcome")
    if outcome is None and trial.state.name == "FAIL" and "surplus" not in trial.user_attrs:
        return "interrupted"
    return outcome


def plot_all_curves(recs, problem, baseline, path, colors=None):
    """Training loss of every configuration (median over seeds), each explosion marked, the naive baseline dashed.

    Like the curves of :func:`plot_curves`, the y range stays on the useful
    data: it stops at ``CLIP`` times the largest starting loss (or the
    baseline), so two runs climbing to 1e9 do not squash the others. Curves
    above it leave the top of the axes; a marker above it (an explosion's peak
    ^, a diverged run's last finite loss x) is drawn on the top edge with its
    value written beside it.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2), layout="constrained")
    groups = {}
    for r in analysis.records_of(recs, problem):
        groups.setdefault((r["spec"]["optimizer"], analysis.config_label(r["spec"]["hyperparameters"])), []).append(r)
    styles = _styles(sorted(groups), colors or optimizer_colors(r["spec"]["optimizer"] for r in recs))
    values, starts, marks = [], [], []
    for (optimizer, config), runs in sorted(groups.items()):
        frame = pd.concat([pd.DataFrame(r["history"]).astype(float) for r in runs])
        per_epoch = frame.groupby("epoch")["train_loss"].median()
        color, linestyle = styles[(optimizer, config)]
        ax.plot(per_epoch.index, per_epoch.values, color=color, linestyle=linestyle,
                label=f"{optimizer} {config} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        finite = per_epoch[np.isfinite(per_epoch)]
        values += list(finite.values)
        starts += list(finite.values[:1])
        marks += [(epoch, value, color, marker) for r in runs for epoch, value, marker in _run_marks(r)]
    if baseline and baseline.get("train_loss") is not None:
        ax.axhline(baseline["train_loss"], color="black", linestyle="--", linewidth=1,
                   label=f"naive baseline {baseline['train_loss']:.4g}")
        starts.append(baseline["train_loss"])
    positive = [v for v in values + [m[1] for m in marks] + starts if v > 0]
    top = CLIP * max(starts) if starts and max(starts) > 0 else math.inf
    _draw_marks(ax, marks, top)
    if ax.has_data() and positive:
        ax.set_yscale("log")
    clipped = max(positive, default=0) > top
    if clipped:
        ax.set_ylim(min(positive) / 1.5, top)
    cut = f"\naxis cut at {top:.3g}; a mark above it sits on the top edge, its value written" if clipped else ""
    ax.set(xlabel="epoch", ylabel="training loss (median over seeds, log scale)",
           title=f"{problem}: every configuration (^: explosion peak, x: diverged){cut}")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _run_marks(record):
    """``(epoch, value, marker)`` of a run's explosion peak (^) and, if it diverged, its last finite loss (x)."""
    marks = []
    found = [f for f in diagnostics.flags(record) if f["flag"] == "exploding"]
    if found and math.isfinite(found[0]["peak"]):
        marks.append((found[0]["peak_epoch"], found[0]["peak"], "^"))
    history = pd.DataFrame(record["history"]).astype(float)
    last = history[np.isfinite(history["train_loss"])].tail(1)
    if record["status"] == "diverged" and len(last):
        marks.append((last["epoch"].iloc[0], last["train_loss"].iloc[0], "x"))
    return marks


def _draw_marks(ax, marks, top):
    """Scatter ``(epoch, value, colour, marker)`` marks; those above ``top`` sit on it, their value written once per spot."""
    written = {}
    for epoch, value, color, marker in marks:
        ax.scatter([epoch], [min(value, top)], marker=marker, color=color, s=40, clip_on=False, zorder=5)
        if value > top and value > written.get(epoch, (0,))[0]:
            written[epoch] = (value, color)  # one value per spot on the edge (the largest), not a pile
    for epoch, (value, color) in written.items():
        ax.annotate(f"{value:.2g}", (epoch, top), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
