"""The answer in one sentence per problem: who wins, by how much, and how sure we are.

Reads only the runs table (:func:`optimlab.lab.training.analysis.tables.runs_table`).
The best optimizer (lowest median final test loss of its selected configuration)
is set against the runner-up with the paired Wilcoxon test (Holm-corrected over
the problem's comparisons) and Cohen's d. Example output::

    sgd lr=0.001 beats adam lr=0.1 on diabetes: test MSE 3604 +/- 105 vs 3865 +/- 160
    (mean +/- sd), Wilcoxon p=0.004 Holm, 10 paired seeds, Cohen's d=1.9.
"""

import math

from optimlab.lab.training.analysis import tables

LOSS_NAMES = {"mse": "MSE", "crossentropy": "cross-entropy"}


def loss_name(runs):
    """``"test MSE"``: the name of the final test loss of these runs' problems."""
    kinds = sorted(set(runs["loss"])) if "loss" in runs and len(runs) else []
    return "test " + ("/".join(LOSS_NAMES.get(k, k) for k in kinds) or "loss")


def _num(value, digits=4):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def _spread(row):
    return f"{_num(row.get('test_loss_mean'))} +/- {_num(row.get('test_loss_std'), 3)}"


def _who(row):
    return f"{row['optimizer']} {row['config']}".strip()


def headline(problem_runs, alpha=0.05):
    """One sentence for the runs of one problem (see the module's example)."""
    ranked = tables.ranked_summary(problem_runs)
    problem = ranked["problem"].iloc[0]
    loss = loss_name(problem_runs)
    best = ranked.iloc[0]
    if "test_loss_mean" not in ranked or math.isnan(best.get("test_loss_mean", math.nan)):
        return f"On {problem}, every run diverged: no optimizer finished."
    if len(ranked) == 1:
        return (f"{_who(best)} on {problem}: {loss} {_spread(best)} (mean +/- sd) over {best['seeds']} seeds; "
                f"the only optimizer run, so nothing to compare.")
    second = ranked.iloc[1]
    tests = tables.tests(problem_runs, alpha=alpha)
    test = tests[(tests["best"] == best["optimizer"]) & (tests["other"] == second["optimizer"])]
    if math.isnan(second.get("test_loss_mean", math.nan)):
        return (f"{_who(best)} beats {_who(second)} on {problem}: every run of {second['optimizer']} diverged; "
                f"{best['optimizer']} reached {loss} {_spread(best)} (mean +/- sd) over {best['seeds']} seeds.")
    t = test.iloc[0]
    p, pairs, d = t.get("wilcoxon_p_holm"), int(t["pairs"]), t.get("cohens_d")
    both = f"{loss} {_spread(best)} vs {_spread(second)} (mean +/- sd)"
    if p is not None and not (isinstance(p, float) and math.isnan(p)) and p < alpha:
        return (f"{_who(best)} beats {_who(second)} on {problem}: {both}, Wilcoxon p={p:.2g} Holm, "
                f"{pairs} paired seeds, Cohen's d={_num(d, 2)}.")
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return (f"{_who(best)} has the lowest median {loss} on {problem} ahead of {_who(second)} ({both}), "
                f"but {pairs} paired seeds cannot show it is better: {t['note']}.")
    return (f"No significant difference on {problem}: {_who(best)} leads {_who(second)} with {both}, "
            f"Wilcoxon p={p:.2g} Holm over {pairs} paired seeds (needs p < {alpha}).")


def headlines(runs, alpha=0.05):
    """:func:`headline` for every problem of ``runs``, in name order."""
    return [headline(group, alpha) for _, group in runs.groupby("problem", sort=True)] if len(runs) else []
