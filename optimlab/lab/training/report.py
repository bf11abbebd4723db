"""``optimlab report DIR``: PNG figures and one self-contained report.html from the records.

Figures per problem: learning curves (mean +/- std over seeds of the selected
configuration), learning-rate sensitivity (median final validation loss per
learning rate; diverged settings marked with x), per-seed box plots of the
final test loss; across problems: performance profiles. The diagnostics
section (:func:`diagnostics_section`) shows each problem's naive baseline,
every configuration's training curve with its explosions marked, and the
runs' flags (:mod:`optimlab.lab.training.analysis.diagnostics`). The statistics
tables come from :mod:`optimlab.lab.training.analysis.tables`. PNGs are embedded in the HTML
as base64, so report.html can be mailed on its own.
"""

import base64
import html
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from optimlab.lab.training import analysis, records
from optimlab.lab.training.analysis import diagnostics, stats  # noqa: E402


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_curves(curves, chosen, problem, path, column="valid_loss"):
    """Mean +/- std of ``column`` per epoch for each optimizer's selected configuration."""
    fig, ax = plt.subplots(figsize=(7, 4))
    data = curves[curves["problem"] == problem]
    if data[column].isna().all():
        column = "train_loss"
    for (optimizer, config), runs in chosen[chosen["problem"] == problem].groupby(["optimizer", "config"]):
        sub = data[(data["optimizer"] == optimizer) & (data["config"] == config) & data["seed"].isin(runs["seed"])]
        per_epoch = sub.groupby("epoch")[column].agg(["mean", "std"]).dropna(subset=["mean"])
        line = ax.plot(per_epoch.index, per_epoch["mean"], label=f"{optimizer} ({config}, {runs['seed'].nunique()} seeds)")
        spread = per_epoch["std"].fillna(0)
        ax.fill_between(per_epoch.index, per_epoch["mean"] - spread, per_epoch["mean"] + spread,
                        color=line[0].get_color(), alpha=0.2)
    ax.set(xlabel="epoch", ylabel=column, title=f"{problem}: learning curves (mean +/- std)")
    if (data[column].dropna() > 0).all() and len(data):
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_lr_sensitivity(runs, problem, path):
    """Median final selection loss per learning rate; x where every seed diverged."""
    fig, ax = plt.subplots(figsize=(7, 4))
    data = runs[runs["problem"] == problem]
    for (optimizer, clipnorm), group in data.groupby(["optimizer", data["clipnorm"].fillna(-1)]):
        per_lr = group.groupby("learning_rate")["selection_loss"].median().sort_index()
        label = optimizer if clipnorm < 0 else f"{optimizer} clipnorm={clipnorm:g}"
        finite = per_lr[np.isfinite(per_lr)]
        line = ax.plot(finite.index, finite.values, marker="o", label=label)
        failed = per_lr[~np.isfinite(per_lr)]
        if len(failed) and len(finite):
            ax.scatter(failed.index, [finite.max()] * len(failed), marker="x", s=60, color=line[0].get_color())
    ax.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final validation loss (median)",
           title=f"{problem}: learning-rate sensitivity (x: diverged)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_boxes(chosen, problem, path):
    """Final test loss per seed for each optimizer (box plot with the seeds as points)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    data = chosen[chosen["problem"] == problem]
    names = sorted(data["optimizer"].unique())
    samples = [data[data["optimizer"] == n]["test_loss"].dropna().to_numpy() for n in names]
    ax.boxplot([s if s.size else [np.nan] for s in samples])
    ax.set_xticks(range(1, len(names) + 1), names)
    for i, s in enumerate(samples, start=1):
        ax.scatter(np.full(s.size, i) + np.linspace(-0.08, 0.08, s.size), s, s=12, alpha=0.7)
    ax.set(ylabel="final test loss", title=f"{problem}: final test loss per seed")
    return _save(fig, path)


def plot_profile(costs, path):
    """Performance profiles (Dolan & More) of the median final test loss across problems."""
    finite = costs.to_numpy()[np.isfinite(costs.to_numpy())]
    top = max(2.0, float(np.max(finite / np.min(finite)))) if finite.size else 2.0
    taus = np.geomspace(1, top * 1.05, 200)
    profile = stats.performance_profile(costs, taus)
    fig, ax = plt.subplots(figsize=(7, 4))
    for name in profile.columns:
        ax.step(profile.index, profile[name], where="post", label=name)
    ax.set(xscale="log", xlabel="tau (ratio to the best test loss)", ylabel="fraction of problems",
           ylim=(-0.02, 1.02), title=f"performance profiles over {len(costs)} problem(s)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def _table(frame):
    def cell(value):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        if isinstance(value, float):
            return f"{value:.4g}"
        return html.escape(str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.astype(object).itertuples(index=False))
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(path):
    data = base64.b64encode(Path(path).read_bytes()).decode()
    return f'<img alt="{html.escape(Path(path).stem)}" src="data:image/png;base64,{data}">'


_STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:auto}table{border-collapse:collapse;font-size:12px}"
          "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}")
_NOTES = ("Selection: per optimizer, the configuration run over the most seeds (ties: lowest mean final "
          "validation loss). Tests compare the best optimizer (lowest median test loss) with each other one: "
          "paired Wilcoxon signed-rank over seeds, Welch's t-test, both Holm-corrected within a problem; "
          "Cohen's d of the test losses. A p-value is left out (-) where the sample is too small for the test "
          "ever to reach 0.05 (e.g. fewer than 6 pairs). Diverged runs count in 'diverged', not in the losses.")


def plot_all_curves(recs, problem, baseline, path):
    """Training loss of every configuration (median over seeds), each explosion marked, the naive baseline dashed."""
    fig, ax = plt.subplots(figsize=(7, 4))
    groups = {}
    for r in recs:
        if r["spec"]["problem"] == problem:
            groups.setdefault(analysis.config_label(r["spec"]["hyperparameters"]) + f" {r['spec']['optimizer']}", []).append(r)
    for label, runs in sorted(groups.items()):
        frame = pd.concat([pd.DataFrame(r["history"]).astype(float) for r in runs])
        per_epoch = frame.groupby("epoch")["train_loss"].median()
        line = ax.plot(per_epoch.index, per_epoch.values, label=f"{label} ({len(runs)} seeds)")
        for r in runs:
            found = [f for f in diagnostics.flags(r) if f["flag"] == "exploding"]
            if found and "train_loss_max" in r["history"]:
                peak = np.nanmax(np.array(r["history"]["train_loss_max"], dtype=float))
                ax.scatter([found[0]["epoch"]], [peak], marker="^", color=line[0].get_color(), s=40)
    if baseline and baseline.get("train_loss") is not None:
        ax.axhline(baseline["train_loss"], color="black", linestyle="--", linewidth=1,
                   label=f"naive baseline {baseline['train_loss']:.4g}")
    ax.set(xlabel="epoch", ylabel="training loss (median over seeds)", yscale="log",
           title=f"{problem}: every configuration (^: explosion peak)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def diagnostics_section(recs, figures):
    """HTML: per problem the naive baseline, every configuration's curve and a table of flagged runs."""
    parts = ["<h2>Diagnostics</h2>", f"<p>{html.escape(_DIAGNOSTICS_NOTE)}</p>"]
    table = diagnostics.runs(recs)
    bases = diagnostics.baselines(recs)
    for problem in sorted(table["problem"].unique()):
        parts.append(f"<h3>{html.escape(problem)}</h3>")
        base = bases.get(problem)
        if base:
            values = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in base.items() if k != "kind")
            parts.append(f"<p>Naive baseline ({html.escape(base['kind'])}): {html.escape(values)}.</p>")
        else:
            parts.append("<p>Naive baseline: none (the model computes its own loss, or the records predate it).</p>")
        parts.append(_img(plot_all_curves(recs, problem, base, figures / f"{problem}_all_curves.png")))
        rows = table[table["problem"] == problem].drop(columns=["problem"])
        if base:
            for verdict, words in (("yes", "Beat the naive baseline's test loss"), ("no", "Did not beat it")):
                who = sorted({f"{o} {c}" for o, c in rows[rows["beats_baseline"] == verdict][["optimizer", "config"]]
                              .itertuples(index=False)})
                if who:
                    parts.append(f"<p>{words}: {html.escape(', '.join(who))}.</p>")
        parts.append(_table(rows))
        notes = {}
        for r in recs:
            if r["spec"]["problem"] == problem:
                for f in diagnostics.flags(r):
                    notes.setdefault(f["flag"], (f, r))
        for name, (f, r) in notes.items():
            who = f"{r['spec']['optimizer']} {analysis.config_label(r['spec']['hyperparameters'])} seed {r['spec']['seed']}"
            parts.append(f"<p><b>{html.escape(name)}</b> ({html.escape(who)}, from epoch {f['epoch']}): "
                         f"{html.escape(f['detail'])}. Suggestion: {html.escape(f['suggestion'])}.</p>")
    return "".join(parts)


_DIAGNOSTICS_NOTE = ("Per run: final losses against the naive baseline (the best constant prediction), the largest "
                     "epoch training loss and its epoch, the largest gradient norm, the share of dead ReLU units at "
                     "the end, and the flags (diverged, exploding, collapsed to a constant, plateau) with the epoch "
                     "where each began.")


def write_report(out):
    """Write PNGs and report.html under ``out`` from its records; return the HTML's path."""
    out = Path(out)
    recs = records.load_all(out)
    if not recs:
        raise FileNotFoundError(f"no run records under {str(out)!r} (expected {out}/records/...); run compare or sweep first")
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    runs = analysis.runs_table(recs)
    chosen = analysis.selected(runs)
    curves = analysis.curves(recs)
    parts = [f"<h1>optimlab report: {html.escape(str(out))}</h1><p>{len(recs)} runs.</p>",
             "<h2>Summary (final test loss of the selected configuration)</h2>",
             _table(analysis.summary(runs))]
    tests = analysis.tests(runs)
    if len(tests):
        parts += ["<h2>Statistical tests</h2>", _table(tests)]
    parts.append(f"<p>{html.escape(_NOTES)}</p>")
    for problem in sorted(runs["problem"].unique()):
        parts.append(f"<h2>{html.escape(problem)}</h2>")
        if problem == "boston":
            parts.append("<p>Note: the Boston housing column b encodes a racial statistic; it is kept only so "
                         "that results compare with the literature.</p>")
        paths = [plot_curves(curves, chosen, problem, figures / f"{problem}_curves.png"),
                 plot_lr_sensitivity(runs, problem, figures / f"{problem}_lr_sensitivity.png"),
                 plot_boxes(chosen, problem, figures / f"{problem}_boxes.png")]
        parts += [_img(p) for p in paths]
    parts += ["<h2>Performance profiles</h2>", _img(plot_profile(analysis.profile_costs(runs),
                                                                 figures / "performance_profile.png"))]
    parts.append(diagnostics_section(recs, figures))
    path = out / "report.html"
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>optimlab report</title>"
                    f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")
    return path
