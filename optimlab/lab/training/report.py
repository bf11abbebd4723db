"""``optimlab report DIR``: one self-contained report.html (and PNG figures) from the records.

The report is where a user reads the answer. In order:

1. the answer: one sentence per problem naming the winner, the effect size and
   how sure we are (:mod:`optimlab.lab.training.analysis.verdict`);
2. the context: task, budget, batch size, raw or standardized inputs,
   validation share, target, seeds, library versions and the commands run;
3. the ranked summary table, with readable column names;
4. the statistical tests (when there is something to test), with the paired
   seeds each problem needs for a Holm-corrected p below 0.05;
5. per problem: training and validation (or test) curves per configuration
   (median over seeds with the interquartile band; every configuration of a
   sweep), learning-rate sensitivity (when several rates were run), per
   optimizer with other swept hyperparameters one panel per swept one (and a
   heat map when exactly two were swept), and the per-seed test losses (when
   several seeds were run);
6. diagnostics (:func:`section_diagnostics`): per problem the naive
   baseline, which configurations beat it (median over seeds, with how many
   seeds did), every configuration's training
   curve with explosions marked and the baseline dashed, and the runs' flags
   (:mod:`optimlab.lab.training.analysis.diagnostics`);
7. tuning history (when ``OUT/tuning.db`` exists), the budget curves of the
   tuned optimizers with their sentence (when ``OUT/tuning.json`` exists:
   :func:`section_budget`) and performance profiles (when there are several problems).

The figures are drawn by :mod:`optimlab.lab.training.plots` (one colour per
optimizer in every figure); this module assembles the HTML around them.

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

import numpy as np

from optimlab.lab.arguments import check_output_folder, check_report_folder, user_errors
from optimlab.lab.training import analysis, plots, problems, records
from optimlab.lab.training.analysis import budget, diagnostics, stats, verdict


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




# ------------------------------------------------------------------ sections
def section_answer(ctx):
    sentences = verdict.headlines(ctx.runs)
    return '<section id="answer"><h2>Answer</h2>' + "".join(
        f'<p class="answer">{html.escape(s)}</p>' for s in sentences) + "</section>"


def section_context(ctx):
    rows = []
    for problem, group in ctx.runs.groupby("problem", sort=True):
        rec = analysis.records_of(ctx.recs, problem)[0]
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
    for note in dict.fromkeys(problems.note(name) for name in sorted({r["spec"]["problem"] for r in ctx.recs})):
        if note:  # a registered problem's note (records do not carry it)
            parts.append(f"<p>Note: {html.escape(note, quote=False)}</p>")
    return "".join(parts) + "</section>"


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
                         median, verdict.spread(r), ci, metric, r["reached"],
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
            "A Wilcoxon p-value is left out (-) where its pairs alone can never reach 0.05 (fewer than 6). "
            "Holm multiplies the smallest p by the number of comparisons, and n pairs never give a p below 2 / 2^n, "
            "so the seeds a problem needs grow with its optimizers:")
    return ('<section id="tests"><h2>Statistical tests</h2>'
            + _table(("problem", "best", "other", "paired seeds", "Wilcoxon p (Holm)", "Welch p (Holm)",
                      "Cohen's d", "note"), rows, {"Wilcoxon p (Holm)": "number", "Welch p (Holm)": "number"})
            + f"<p class='note'>{html.escape(note)} " + html.escape(_seeds_needed_text(tests)) + "</p></section>")


def _seeds_needed_text(tests, alpha=0.05):
    """Per problem: its optimizers, comparisons and the fewest paired seeds that can reach ``alpha`` under Holm."""
    parts = []
    for problem, group in tests.groupby("problem", sort=True):
        comparisons = len(group)
        parts.append(f"{problem}: {comparisons + 1} optimizers, {comparisons} comparison"
                     f"{'s' if comparisons > 1 else ''}, at least {stats.seeds_needed(comparisons, alpha)} paired "
                     f"seeds for a p below {alpha:g}")
    return "; ".join(parts) + " (the note on a test says when its seeds are too few)."


def section_problems(ctx):
    parts = []
    sweep = analysis.is_sweep(ctx.runs)
    shown = ctx.runs if sweep else ctx.chosen
    for problem in sorted(ctx.runs["problem"].unique()):
        runs = ctx.runs[ctx.runs["problem"] == problem]
        parts.append(f'<section class="problem"><h2>{html.escape(problem)}</h2>')
        what = "every configuration" if sweep else "each optimizer's selected configuration"
        path = plots.plot_curves(ctx.curves, shown, problem, ctx.figures / f"{problem}_curves.png", ctx.runs, ctx.colors)
        parts.append(_img(path, f"{problem}: loss per epoch of {what} (median over seeds, band: interquartile range)"))
        # Optimizers with other swept hyperparameters get their own panels (below): pooling over them would mislead.
        plain = [name for name, group in runs.groupby("optimizer")
                 if set(plots.swept_dimensions(group)) <= {"learning_rate", "clipnorm"}]
        rated = runs[runs["optimizer"].isin(plain)]
        if len(rated) and rated.groupby("optimizer")["learning_rate"].nunique().max() > 1:
            path = plots.plot_lr_sensitivity(ctx.runs[ctx.runs["optimizer"].isin(plain)], problem,
                                             ctx.figures / f"{problem}_lr_sensitivity.png", ctx.colors)
            parts.append(_img(path, f"{problem}: final loss against the learning rate"))
        parts += _sensitivity_figures(ctx, problem, runs)
        if ctx.chosen[ctx.chosen["problem"] == problem]["seed"].nunique() > 1:
            path = plots.plot_boxes(ctx.chosen, problem, ctx.figures / f"{problem}_boxes.png", ctx.runs, ctx.colors)
            parts.append(_img(path, f"{problem}: final test loss per seed"))
        parts.append("</section>")
    return "".join(parts)


def _sensitivity_figures(ctx, problem, runs):
    """Per optimizer with a swept hyperparameter besides the learning rate: one panel per swept one, and a heat map of two.

    (A learning rate swept alone is the learning-rate sensitivity figure above, all optimizers in one.)
    """
    parts = []
    for optimizer, group in runs.groupby("optimizer", sort=True):
        dims = plots.swept_dimensions(group)
        if not dims or dims == ["learning_rate"]:
            continue
        stem = ctx.figures / f"{problem}_{records.folder_name(optimizer)}"
        split = "validation" if group["valid_loss"].notna().any() else "training"
        path = plots.plot_sensitivity(ctx.runs, problem, optimizer, f"{stem}_sensitivity.png", ctx.colors)
        held = (" Each panel holds the other swept hyperparameters at the best configuration's values "
                "(lowest median final loss)." if len(dims) > 1 else "")
        parts.append(_img(path, f"{problem}, {optimizer}: final {split} loss (median over seeds) against each swept "
                                f"hyperparameter ({', '.join(dims)}).{held}"))
        if len(dims) == 2:
            path = plots.plot_heatmap(ctx.runs, problem, optimizer, f"{stem}_heatmap.png")
            parts.append(_img(path, f"{problem}, {optimizer}: final {split} loss (median over seeds) over the grid of "
                                    f"{dims[0]} and {dims[1]}"))
    return parts


_DIAGNOSTICS_NOTE = ("Per run: final losses against the naive baseline (the best constant prediction), the largest "
                     "epoch training loss and its epoch, the largest gradient norm, the share of dead ReLU units at "
                     "the end, and the flags (diverged, exploding, collapsed to a constant, plateau) with the epoch "
                     "where each began.")


_DIAGNOSTICS_COLUMNS = {"optimizer": "optimizer", "config": "config", "seed": "seed", "status": "status",
                        "train_loss": "train loss", "test_loss": "test loss", "beats_baseline": "beats baseline",
                        "peak_train_loss": "worst epoch loss", "peak_epoch": "at epoch", "dead_units": "dead ReLU",
                        "flags": "flags"}


def section_diagnostics(ctx):
    """Per problem: the naive baseline, who beat it, every configuration's curve, the runs' flags explained."""
    table = diagnostics.runs(ctx.recs)
    bases = diagnostics.baselines(ctx.recs)
    parts = ['<section id="diagnostics"><h2>Diagnostics</h2>', f"<p class='note'>{html.escape(_DIAGNOSTICS_NOTE)}</p>"]
    for problem in sorted(table["problem"].unique()):
        parts.append(f"<h3>{html.escape(problem)}</h3>")
        base = bases.get(problem)
        rows = table[table["problem"] == problem].drop(columns=["problem"])
        parts += _baseline_paragraphs(base, rows)
        path = plots.plot_all_curves(ctx.recs, problem, base, ctx.figures / f"{problem}_all_curves.png", ctx.colors)
        parts.append(_img(path, f"{problem}: training loss of every configuration, explosions marked, "
                                "the naive baseline dashed"))
        parts.append(_table(tuple(_DIAGNOSTICS_COLUMNS.values()),
                            rows[list(_DIAGNOSTICS_COLUMNS)].astype(object).itertuples(index=False),
                            {"dead ReLU": "percent"}))
        parts += _flag_paragraphs(analysis.records_of(ctx.recs, problem))
    parts.append("</section>")
    return "".join(parts)


def _baseline_paragraphs(base, rows):
    """The naive baseline's losses, and which configurations beat it (``rows``: the problem's diagnostics rows).

    One level decides (:func:`diagnostics.against_baseline`: the median over
    seeds); the words beside each configuration count its seeds.
    """
    if not base:
        return ["<p>Naive baseline: none (the model computes its own loss, or the records predate it).</p>"]
    values = ", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in base.items() if k != "kind")
    parts = [f"<p>Naive baseline ({html.escape(base['kind'])}): {html.escape(values)}.</p>"]
    verdicts = diagnostics.against_baseline(rows, base)
    groups = (("Beat the naive baseline's test loss", lambda v: v["beat"]),
              ("Did not beat it", lambda v: not v["beat"] and math.isfinite(v["median"])),
              ("Did not beat it (diverged)", lambda v: not math.isfinite(v["median"])))
    for words, chosen in groups:
        who = [f"{v['optimizer']} {v['config']} ({_seed_words(v)})" for v in verdicts if chosen(v)]
        if who:
            parts.append(f"<p>{words}: {html.escape(', '.join(who))}.</p>")
    return parts


def _seed_words(verdict):
    """``"median over 5 seeds; 4 of 5 seeds did"``, ``"1 seed"``, or the count of seeds that diverged."""
    n = verdict["seeds"]
    if not math.isfinite(verdict["median"]):
        return "every seed diverged" if verdict["diverged"] == n else f"{verdict['diverged']} of {n} seeds diverged"
    if n == 1:
        return "1 seed"
    return f"median over {n} seeds; {verdict['seeds_beat']} of {n} seeds did"


def _flag_paragraphs(recs):
    """Each flag raised in ``recs`` explained once, with the first run that raised it and the suggestion."""
    first = {}
    for r in recs:
        for f in diagnostics.flags(r):
            first.setdefault(f["flag"], (f, r))
    parts = []
    for name, (f, r) in first.items():
        who = f"{r['spec']['optimizer']} {analysis.config_label(r['spec']['hyperparameters'])} seed {r['spec']['seed']}"
        parts.append(f"<p><b>{html.escape(name)}</b> ({html.escape(who)}, from epoch {f['epoch']}): "
                     f"{html.escape(f['detail'])}. Suggestion: {html.escape(f['suggestion'])}.</p>")
    return parts


def section_tuning(ctx):
    db = ctx.out / "tuning.db"
    if not db.exists():
        return ""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = f"sqlite:///{db.resolve()}"
    parts = ['<section id="tuning"><h2>Tuning</h2>',
             f"<p>Browse the studies interactively: <code>optuna-dashboard {html.escape(str(db))}</code> "
             "(with several hyperparameters tuned it shows their importances). x: a diverged trial, "
             "v: a pruned trial (stopped early), o: a trial interrupted before it finished (run again on "
             "resume).</p>"]
    for summary in optuna.study.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
        path = ctx.figures / f"tuning_{summary.study_name}.png"
        parts.append(_img(plots.plot_tuning_history(trials, f"{summary.study_name}: tuning history", path),
                          f"{summary.study_name}: final validation loss per trial"))
    return "".join(parts) + "</section>"


def section_budget(ctx):
    """Per group of studies (problem, sampler, space, pruner): the budget curves, the sentence, how the budget went."""
    studies = budget.read_studies(ctx.out)
    if not studies:
        return ""
    parts = ['<section id="budget"><h2>Tuning budget</h2><p>Each optimizer was tuned at the same budget, '
             "counted in epochs: a pruned trial counts the epochs it ran, any other trial a whole run. The "
             "curves show the best validation loss found so far; tune on one seed, then rerun the winners on "
             "many (<code>--seeds</code>) to compare them.</p>"]
    for i, ((problem, sampler, space, pruner), curves) in enumerate(budget.groups(studies).items()):
        title = f"{problem}: {space} ({sampler}, pruner {pruner})"
        parts.append(f'<p class="answer">{html.escape(budget.sentence(curves))}</p>')
        path = ctx.figures / f"budget_{i}.png"
        parts.append(_img(plots.plot_budget_curves(curves, title, path, ctx.colors),
                          f"{title}: best validation loss against the budget spent"))
        rows = []
        for study in sorted(studies.values(), key=lambda s: s["optimizer"]):
            if budget.group_of(study) != (problem, sampler, space, pruner):
                continue
            trials = study.get("trials") or []
            states = [t.get("state") for t in trials]
            spent = sum(int(t.get("cost", t.get("epochs")) or 0) for t in trials)
            saved = sum(study["epochs_per_run"] - int(t.get("cost") or 0) for t in trials if t.get("state") == "pruned")
            rows.append([study["optimizer"], len(trials), states.count("complete"), states.count("diverged"),
                         states.count("pruned"), f"{spent}/{study['budget']}", saved])
        parts.append(_table(["optimizer", "trials", "complete", "diverged", "pruned", "epochs spent/budget",
                             "epochs saved by pruning"], rows))
    return "".join(parts) + "</section>"


def section_profiles(ctx):
    costs = analysis.profile_costs(ctx.runs)
    if len(costs) < 2:
        return ""
    return ('<section id="profiles"><h2>Performance profiles</h2>'
            + _img(plots.plot_profile(costs, ctx.figures / "performance_profile.png", ctx.colors),
                   "share of problems on which each optimizer is within tau of the best") + "</section>")


SECTIONS = [section_answer, section_context, section_summary, section_tests, section_problems, section_diagnostics,
            section_tuning, section_budget, section_profiles]

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
                  plots.optimizer_colors(runs["optimizer"]))
    problems = ", ".join(sorted(runs["problem"].unique()))
    body = "".join(section(ctx) for section in (sections or SECTIONS))
    path = out / "report.html"
    path.write_text(f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
                    f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
                    f"<title>optimlab report: {html.escape(problems)}</title><style>{_STYLE}</style></head><body>"
                    f"<h1>optimlab report: {html.escape(problems)}</h1><p>{len(recs)} runs in "
                    f"{html.escape(str(out))}.</p>{body}</body></html>")
    return path


def make_report(out, console):
    """``optimlab report OUT``: check the folder, write the report, say where (no TensorFlow on this path)."""
    folder = Path(out)
    check_report_folder(out)
    check_output_folder(folder)
    with user_errors():
        path = write_report(folder)
    console.print(f"wrote {path} and PNGs under {path.parent / 'figures'}", highlight=False, overflow="fold")
