"""``optimlab report DIR``: one self-contained report.html (and PNG figures) from the records.

The report is where a user reads the answer. In order:

1. the answer: one sentence per problem naming the winner, the effect size and
   how sure we are (:mod:`optimlab.lab.training.analysis.verdict`);
2. the context: task, budget, batch size, raw or standardized inputs,
   validation share, target, seeds, library versions and the commands run;
3. the ranked summary table, with readable column names;
4. the statistical tests (when there is something to test);
5. per problem: training and validation (or test) curves per configuration
   (median over seeds with the interquartile band; every configuration of a
   sweep), learning-rate sensitivity (when several rates were run) and the
   per-seed test losses (when several seeds were run);
6. diagnostics (:func:`section_diagnostics`): per problem the naive
   baseline, which configurations beat it, every configuration's training
   curve with explosions marked and the baseline dashed, and the runs' flags
   (:mod:`optimlab.lab.training.analysis.diagnostics`);
7. tuning history (when ``OUT/tuning.db`` exists) and performance profiles
   (when there are several problems).

Every figure gives an optimizer the same colour (:func:`optimizer_colors`,
built once from the sorted names); its configurations differ by line style.

Each section is one function returning HTML (empty when it does not apply), so
new sections slot in by appending to :data:`SECTIONS`. PNGs are embedded as
base64: report.html can be mailed on its own. Example::

    from optimlab.lab.training import report
    report.write_report("runs/diabetes")     # runs/diabetes/report.html
"""

import base64
import dataclasses
import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from optimlab.lab.training import analysis, records  # noqa: E402
from optimlab.lab.training.analysis import diagnostics, stats, verdict  # noqa: E402

COLORS = plt.get_cmap("tab10").colors + plt.get_cmap("Dark2").colors
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)))


@dataclasses.dataclass
class Context:
    """What every section may read: the folder, its records and the tables derived from them."""

    out: Path
    recs: list
    runs: object
    chosen: object
    curves: object
    figures: Path
    colors: dict = dataclasses.field(default_factory=dict)


# ------------------------------------------------------------------ helpers
def _save(fig, path):
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _img(path, caption):
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _cell(value, kind="text"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<td class="num">-</td>'
    if kind == "percent":
        return f'<td class="num">{value:.0%}</td>'
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f'<td class="num">{value}</td>'
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if kind == "number":
        return f'<td class="num">{html.escape(str(value))}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def _table(headers, rows, kinds=None):
    kinds = kinds or {}
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(v, kinds.get(h, "text")) for h, v in zip(headers, row)) + "</tr>"
                   for row in rows)
    return f'<div class="table"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _loss_label(runs, problem, split):
    names = {"train": "training", "valid": "validation", "test": "test"}
    kinds = sorted(set(runs[runs["problem"] == problem]["loss"]))
    return f"{names[split]} {'/'.join(verdict.LOSS_NAMES.get(k, k) for k in kinds)} (log scale)"


def _is_sweep(runs):
    """True when no configuration was selected (every configuration ran over the same seeds)."""
    return all(g.groupby("hyperparameters")["seed"].nunique().nunique() == 1
               for _, g in runs.groupby(["problem", "optimizer"]))


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


# ------------------------------------------------------------------ figures
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
        ax.set(xlabel="epoch", ylabel=_loss_label(runs, problem, split).replace(" (log scale)", "")
               + (" (log scale)" if ax.get_yscale() == "log" else ""),
               title=f"{problem}: {'training' if split == 'train' else {'valid': 'validation', 'test': 'test'}[split]} loss")
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
    ax.set(ylabel=_loss_label(runs, problem, "test").replace(" (log scale)", "") + ", final",
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
        by_rate.scatter([t.params["learning_rate"] for t in done], values, s=18)
    marks = (("diverged", {"marker": "x", "s": 60, "color": "red"}),
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


def _outcome(trial):
    """``diverged``, ``interrupted`` (stopped before it finished) or None, from a trial the tuner marked."""
    outcome = trial.user_attrs.get("outcome")
    if outcome is None and trial.state.name == "FAIL" and "surplus" not in trial.user_attrs:
        return "interrupted"
    return outcome


def _records_of(recs, problem):
    """The records of ``problem`` as the tables label it (with its budget where a folder mixes budgets)."""
    labels = analysis.problem_labels(recs)
    return [r for r in recs if labels[r["key"]] == problem]


# ------------------------------------------------------------------ sections
def section_answer(ctx):
    sentences = verdict.headlines(ctx.runs)
    return '<section id="answer"><h2>Answer</h2>' + "".join(
        f'<p class="answer">{html.escape(s)}</p>' for s in sentences) + "</section>"


def section_context(ctx):
    rows = []
    for problem, group in ctx.runs.groupby("problem", sort=True):
        rec = _records_of(ctx.recs, problem)[0]
        spec, meta = rec["spec"], rec["problem"]
        batch = "full batch" if spec["batch_size"] is None else f"{spec['batch_size']} rows"
        rows.append((problem, meta.get("description", ""), f"{spec['epochs']} epochs", batch,
                     "standardized" if spec["standardize"] else "raw", f"{spec['valid_fraction']:.0%}",
                     "-" if spec["target"] is None else f"{spec['target']:g}", int(group["seed"].nunique()), len(group)))
    versions = ctx.recs[0].get("versions", {})
    text = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
    commands_file = ctx.out / "commands.txt"
    commands = commands_file.read_text().strip().splitlines() if commands_file.exists() else []
    parts = ['<section id="context"><h2>Context</h2>',
             _table(("task", "description", "budget", "batch", "inputs", "validation share", "target (loss)",
                     "seeds", "runs"), rows),
             f"<p>Versions: {html.escape(text)}.</p>"]
    if commands:
        parts.append("<p>Commands run in this folder:</p><pre>" + html.escape("\n".join(dict.fromkeys(commands)))
                     + "</pre>")
    if "boston" in set(ctx.runs["problem"]):
        parts.append("<p>Note: the Boston housing column b encodes a racial statistic; it is kept only so "
                     "that results compare with the literature.</p>")
    return "".join(parts) + "</section>"


def _pm(mean, spread, digits=3):
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return None
    return f"{mean:.4g} +/- {spread:.{digits}g}" if spread is not None and not math.isnan(spread) else f"{mean:.4g}"


def section_summary(ctx):
    table = analysis.ranked_summary(ctx.runs)
    headers = ("problem", "rank", "optimizer", "configuration", "seeds", "diverged", "test loss, median [IQR]",
               "mean +/- sd", "95% CI of the mean", "test metric", "reached target", "epochs to target")
    rows = []
    for problem, group in table.groupby("problem", sort=True):
        for rank, (_, r) in enumerate(group.iterrows(), start=1):
            metric = f"{r['test_metric']:.4g} ({r['metric']})" if not math.isnan(r["test_metric"]) else None
            median = r.get("test_loss_median")
            median = None if median is None or math.isnan(median) else f"{median:.4g} [{r.get('test_loss_iqr'):.3g}]"
            low, high = r.get("ci_low"), r.get("ci_high")
            ci = None if low is None or math.isnan(low) else f"{low:.4g} to {high:.4g}"
            rows.append((problem, rank, r["optimizer"], r["config"], int(r["seeds"]), r["diverged"],
                         median, _pm(r.get("test_loss_mean"), r.get("test_loss_std")), ci, metric, r["reached"],
                         r["epochs_to_target"]))
    note = ("Per optimizer, the configuration run over the most seeds (ties: lowest mean final validation "
            "loss); ranked by median final test loss. Diverged runs count in 'diverged', not in the losses; "
            "95% CI: percentile bootstrap of the mean.")
    return ('<section id="summary"><h2>Ranked summary</h2>'
            + _table(headers, rows, {"diverged": "percent", "reached target": "percent",
                                     "mean +/- sd": "number", "test loss, median [IQR]": "number",
                                     "95% CI of the mean": "number", "test metric": "number"})
            + f"<p class='note'>{html.escape(note)}</p></section>")


def section_tests(ctx):
    tests = analysis.tests(ctx.runs)
    if not len(tests):
        return ""
    wilcoxon = verdict.p_texts([r.get("wilcoxon_p_holm") for _, r in tests.iterrows()])
    welch = verdict.p_texts([r.get("welch_p_holm") for _, r in tests.iterrows()])
    rows = [(r["problem"], r["best"], r["other"], int(r["pairs"]), w, t, r.get("cohens_d"), r["note"] or "")
            for (_, r), w, t in zip(tests.iterrows(), wilcoxon, welch)]
    note = ("The best optimizer (lowest median test loss) against each other one: paired Wilcoxon signed-rank "
            "over seeds, Welch's t-test, both Holm-corrected within a problem; Cohen's d of the test losses. "
            "A p-value is left out (-) where the sample can never reach 0.05 (fewer than 6 pairs).")
    return ('<section id="tests"><h2>Statistical tests</h2>'
            + _table(("problem", "best", "other", "paired seeds", "Wilcoxon p (Holm)", "Welch p (Holm)",
                      "Cohen's d", "note"), rows, {"Wilcoxon p (Holm)": "number", "Welch p (Holm)": "number"})
            + f"<p class='note'>{html.escape(note)}</p></section>")


def section_problems(ctx):
    parts = []
    sweep = _is_sweep(ctx.runs)
    shown = ctx.runs if sweep else ctx.chosen
    for problem in sorted(ctx.runs["problem"].unique()):
        runs = ctx.runs[ctx.runs["problem"] == problem]
        parts.append(f'<section class="problem"><h2>{html.escape(problem)}</h2>')
        what = "every configuration" if sweep else "each optimizer's selected configuration"
        parts.append(_img(plot_curves(ctx.curves, shown, problem, ctx.figures / f"{problem}_curves.png", ctx.runs,
                                      ctx.colors),
                          f"{problem}: loss per epoch of {what} (median over seeds, band: interquartile range)"))
        if runs.groupby("optimizer")["learning_rate"].nunique().max() > 1:
            parts.append(_img(plot_lr_sensitivity(ctx.runs, problem, ctx.figures / f"{problem}_lr_sensitivity.png",
                                                      ctx.colors),
                              f"{problem}: final loss against the learning rate"))
        if ctx.chosen[ctx.chosen["problem"] == problem]["seed"].nunique() > 1:
            parts.append(_img(plot_boxes(ctx.chosen, problem, ctx.figures / f"{problem}_boxes.png", ctx.runs,
                                         ctx.colors),
                              f"{problem}: final test loss per seed"))
        parts.append("</section>")
    return "".join(parts)


CLIP = 10.0  # the diagnostics curves' y axis stops at CLIP times the largest starting loss


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
    for r in _records_of(recs, problem):
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
        for r in runs:
            found = [f for f in diagnostics.flags(r) if f["flag"] == "exploding"]
            if found and "train_loss_max" in r["history"]:
                marks.append((found[0]["epoch"], np.nanmax(np.array(r["history"]["train_loss_max"], dtype=float)),
                              color, "^"))
            history = pd.DataFrame(r["history"]).astype(float)
            last = history[np.isfinite(history["train_loss"])].tail(1)
            if r["status"] == "diverged" and len(last):
                marks.append((last["epoch"].iloc[0], last["train_loss"].iloc[0], color, "x"))
    if baseline and baseline.get("train_loss") is not None:
        ax.axhline(baseline["train_loss"], color="black", linestyle="--", linewidth=1,
                   label=f"naive baseline {baseline['train_loss']:.4g}")
        starts.append(baseline["train_loss"])
    positive = [v for v in values + [m[1] for m in marks] + starts if v > 0]
    top = CLIP * max(starts) if starts and max(starts) > 0 else math.inf
    clipped = False
    written = {}
    for epoch, value, color, marker in marks:
        ax.scatter([epoch], [min(value, top)], marker=marker, color=color, s=40, clip_on=False, zorder=5)
        if value > top and value > written.get(epoch, (0,))[0]:
            written[epoch] = (value, color)  # one value per spot on the edge (the largest), not a pile
    for epoch, (value, color) in written.items():
        ax.annotate(f"{value:.2g}", (epoch, top), textcoords="offset points", xytext=(4, -10), fontsize=7, color=color)
    if ax.has_data() and positive:
        ax.set_yscale("log")
    if max(positive, default=0) > top:
        clipped = True
        ax.set_ylim(min(positive) / 1.5, top)
    cut = f"\naxis cut at {top:.3g}; a mark above it sits on the top edge, its value written" if clipped else ""
    ax.set(xlabel="epoch", ylabel="training loss (median over seeds, log scale)",
           title=f"{problem}: every configuration (^: explosion peak, x: diverged){cut}")
    ax.legend(fontsize=7)
    return _save(fig, path)


_DIAGNOSTICS_NOTE = ("Per run: final losses against the naive baseline (the best constant prediction), the largest "
                     "epoch training loss and its epoch, the largest gradient norm, the share of dead ReLU units at "
                     "the end, and the flags (diverged, exploding, collapsed to a constant, plateau) with the epoch "
                     "where each began.")


def section_diagnostics(ctx):
    """Per problem: the naive baseline, who beat it, every configuration's curve, the runs' flags explained."""
    table = diagnostics.runs(ctx.recs)
    bases = diagnostics.baselines(ctx.recs)
    parts = ['<section id="diagnostics"><h2>Diagnostics</h2>', f"<p class='note'>{html.escape(_DIAGNOSTICS_NOTE)}</p>"]
    for problem in sorted(table["problem"].unique()):
        parts.append(f"<h3>{html.escape(problem)}</h3>")
        base = bases.get(problem)
        rows = table[table["problem"] == problem].drop(columns=["problem"])
        if base:
            values = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in base.items() if k != "kind")
            parts.append(f"<p>Naive baseline ({html.escape(base['kind'])}): {html.escape(values)}.</p>")
            for column, answer, words in (("beats_baseline", "yes", "Beat the naive baseline's test loss"),
                                          ("beats_baseline", "no", "Did not beat it"),
                                          ("status", "diverged", "Did not beat it (diverged)")):
                who = sorted({f"{o} {c}" for o, c in rows[rows[column] == answer][["optimizer", "config"]]
                              .itertuples(index=False)})
                if who:
                    parts.append(f"<p>{words}: {html.escape(', '.join(who))}.</p>")
        else:
            parts.append("<p>Naive baseline: none (the model computes its own loss, or the records predate it).</p>")
        path = plot_all_curves(ctx.recs, problem, base, ctx.figures / f"{problem}_all_curves.png", ctx.colors)
        parts.append(_img(path, f"{problem}: training loss of every configuration, explosions marked, "
                                "the naive baseline dashed"))
        shown = {"optimizer": "optimizer", "config": "config", "seed": "seed", "status": "status",
                 "train_loss": "train loss", "test_loss": "test loss", "beats_baseline": "beats baseline",
                 "peak_train_loss": "worst epoch loss", "peak_epoch": "at epoch", "dead_units": "dead ReLU",
                 "flags": "flags"}
        parts.append(_table(tuple(shown.values()), rows[list(shown)].astype(object).itertuples(index=False),
                            {"dead ReLU": "percent"}))
        notes = {}
        for r in _records_of(ctx.recs, problem):
            for f in diagnostics.flags(r):
                notes.setdefault(f["flag"], (f, r))
        for name, (f, r) in notes.items():
            who = f"{r['spec']['optimizer']} {analysis.config_label(r['spec']['hyperparameters'])} seed {r['spec']['seed']}"
            parts.append(f"<p><b>{html.escape(name)}</b> ({html.escape(who)}, from epoch {f['epoch']}): "
                         f"{html.escape(f['detail'])}. Suggestion: {html.escape(f['suggestion'])}.</p>")
    parts.append("</section>")
    return "".join(parts)


def section_tuning(ctx):
    db = ctx.out / "tuning.db"
    if not db.exists():
        return ""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{db.resolve()}"
    parts = ['<section id="tuning"><h2>Tuning</h2>',
             f"<p>Browse the studies interactively: <code>optuna-dashboard {html.escape(str(db))}</code>. "
             "Only the learning rate is tuned, so it carries all of the importance; x: a diverged trial, "
             "o: a trial interrupted before it finished (run again on resume).</p>"]
    for summary in optuna.study.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        path = ctx.figures / f"tuning_{summary.study_name}.png"
        parts.append(_img(plot_tuning_history(trials, f"{summary.study_name}: tuning history", path),
                          f"{summary.study_name}: final validation loss per trial"))
    return "".join(parts) + "</section>"


def section_profiles(ctx):
    costs = analysis.profile_costs(ctx.runs)
    if len(costs) < 2:
        return ""
    return ('<section id="profiles"><h2>Performance profiles</h2>'
            + _img(plot_profile(costs, ctx.figures / "performance_profile.png", ctx.colors),
                   "share of problems on which each optimizer is within tau of the best") + "</section>")


SECTIONS = [section_answer, section_context, section_summary, section_tests, section_problems, section_diagnostics,
            section_tuning, section_profiles]

_STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:auto;padding:0 12px;line-height:1.4}"
          ".table{max-width:100%}table{border-collapse:collapse;font-size:12px;width:100%}"
          "td,th{border:1px solid #ccc;padding:2px 4px;vertical-align:top}th{background:#f3f3f3;text-align:left}"
          "td.num{text-align:right}img{max-width:100%;height:auto}"
          "figure{margin:12px 0}figcaption{font-size:12px;color:#555}p.answer{font-size:1.1em;font-weight:600}"
          "pre{white-space:pre-wrap;word-break:break-all;background:#f7f7f7;padding:6px}p.note{font-size:12px}")


def write_report(out, sections=None):
    """Write PNGs and report.html under ``out`` from its records; return the HTML's path."""
    out = Path(out)
    recs = records.load_all(out)
    if not recs:
        raise FileNotFoundError(f"no run records under {str(out)!r} (expected {out}/records/...); run compare or sweep first")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    runs = analysis.runs_table(recs)
    ctx = Context(out, recs, runs, analysis.selected(runs), analysis.curves(recs), figures,
                  optimizer_colors(runs["optimizer"]))
    problems = ", ".join(sorted(runs["problem"].unique()))
    body = "".join(section(ctx) for section in (sections or SECTIONS))
    path = out / "report.html"
    path.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                    f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                    f"<title>optimlab report: {html.escape(problems)}</title><style>{_STYLE}</style></head><body>"
                    f"<h1>optimlab report: {html.escape(problems)}</h1><p>{len(recs)} runs in "
                    f"{html.escape(str(out))}.</p>{body}</body></html>")
    return path
