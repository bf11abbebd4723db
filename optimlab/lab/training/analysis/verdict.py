"""The answer in one sentence per problem: who wins, by how much, and how sure we are.

Reads only the runs table (:func:`optimlab.lab.training.analysis.tables.runs_table`).
The best optimizer (lowest median final test loss of its selected configuration)
is set against the runner-up with the paired Wilcoxon test (Holm-corrected over
the problem's comparisons) and Cohen's d. Example output (``optimlab compare --task iris
--optimizers sgd,adam --lrs 0.1 --seeds 6``)::

    adam lr=0.1 beats sgd lr=0.1 on iris: median test cross-entropy 0.02614 (IQR 0.0158) vs 0.2599
    (IQR 0.0226), Wilcoxon p=0.031 Holm, 6 paired seeds, Cohen's d=18.

The ranking is by median, so the sentence quotes medians (with the interquartile
range): a mean could put the runner-up ahead of the winner. :func:`p_texts`
writes a column of p-values in one notation.
"""

import math

from optimlab.lab.training.analysis import tables

LOSS_NAMES = {"mse": "MSE", "crossentropy": "cross-entropy"}


def loss_kinds(runs):
    """``"MSE"``, ``"cross-entropy"`` or ``"MSE/cross-entropy"``: the losses of these runs ("" for none)."""
    kinds = sorted(set(runs["loss"])) if "loss" in runs and len(runs) else []
    return "/".join(LOSS_NAMES.get(k, k) for k in kinds)


def loss_name(runs):
    """``"test MSE"``: the name of the final test loss of these runs' problems."""
    return "test " + (loss_kinds(runs) or "loss")


def _num(value, digits=4):
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}g}"


def spread(row):
    """``"3604 +/- 105"`` from a summary row's test loss mean and sd; the mean alone where one seed gives no spread."""
    std = row.get("test_loss_std")
    if std is None or (isinstance(std, float) and math.isnan(std)):
        return _num(row.get("test_loss_mean"))
    return f"{_num(row.get('test_loss_mean'))} +/- {_num(std, 3)}"


def _median(row):
    """``"0.02614 (IQR 0.0158)"``, or the median alone where one seed gives no spread."""
    median, iqr, seeds = row.get("test_loss_median"), row.get("test_loss_iqr"), row.get("seeds", 1)
    if int(seeds) < 2 or iqr is None or (isinstance(iqr, float) and math.isnan(iqr)):
        return _num(median)
    return f"{_num(median)} (IQR {_num(iqr, 3)})"


def p_texts(values):
    """A column of p-values in one notation: ``0.031`` style when all are >= 0.001, else ``3.1e-02`` style.

    ``None``/NaN (a refused test) gives ``"-"``. Example::

        >>> p_texts([0.0005795, 5.797e-05, None])
        ['5.8e-04', '5.8e-05', '-']
        >>> p_texts([0.031, 0.5])
        ['0.031', '0.500']
    """
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    scientific = any(v < 0.001 for v in present)
    return ["-" if v is None or (isinstance(v, float) and math.isnan(v))
            else (f"{v:.1e}" if scientific else f"{v:.3f}") for v in values]


def _seeds(n):
    return "1 seed" if int(n) == 1 else f"{int(n)} seeds"


def _who(row):
    return f"{row['optimizer']} {row['config']}".strip()


def _names(names):
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _sweep_sentence(problem_runs, best, problem, loss):
    """One optimizer: which of its configurations won, and whether it sits at the edge of the grid."""
    tried = problem_runs.drop_duplicates("hyperparameters")
    if len(tried) == 1:
        return (f"{_who(best)} on {problem}: {loss} {spread(best)} over {_seeds(best['seeds'])}; "
                f"one configuration here, so nothing to compare it with.")
    sentence = (f"{_who(best)} is the best of {len(tried)} configurations of {best['optimizer']} on {problem} "
                f"(lowest final validation loss): {loss} {spread(best)} over {_seeds(best['seeds'])}.")
    rates = sorted(set(tried["learning_rate"].dropna()))
    chosen = problem_runs.loc[problem_runs["config"] == best["config"], "learning_rate"].dropna()
    if len(rates) > 2 and len(chosen):
        if chosen.iloc[0] == rates[0]:
            sentence += " It is the smallest learning rate tried: a smaller one may do better."
        elif chosen.iloc[0] == rates[-1]:
            sentence += " It is the largest learning rate tried: a larger one may do better."
    return sentence


def headline(problem_runs, alpha=0.05):
    """One sentence for the runs of one problem (see the module's example)."""
    ranked = tables.ranked_summary(problem_runs)
    problem = ranked["problem"].iloc[0]
    loss = loss_name(problem_runs)
    best = ranked.iloc[0]
    if "test_loss_mean" not in ranked or math.isnan(best.get("test_loss_mean", math.nan)):
        return f"On {problem}, every run diverged: no optimizer finished."
    if len(ranked) == 1:
        return _sweep_sentence(problem_runs, best, problem, loss)
    second = ranked.iloc[1]
    tests = tables.tests(problem_runs, alpha=alpha)
    test = tests[(tests["best"] == best["optimizer"]) & (tests["other"] == second["optimizer"])]
    if math.isnan(second.get("test_loss_mean", math.nan)):
        lost = [r["optimizer"] for _, r in ranked.iloc[1:].iterrows() if math.isnan(r.get("test_loss_mean", math.nan))]
        every = "every run of " + _names(lost) + " diverged"
        return (f"{best['optimizer']} {best['config']} beats {_names(lost)} on {problem}: {every}; "
                f"{best['optimizer']} reached {loss} {spread(best)} (mean +/- sd) over {_seeds(best['seeds'])}.")
    t = test.iloc[0]
    p, pairs, d = t.get("wilcoxon_p_holm"), int(t["pairs"]), t.get("cohens_d")
    both = f"median {loss} {_median(best)} vs {_median(second)}"
    if p is not None and not (isinstance(p, float) and math.isnan(p)) and p < alpha:
        return (f"{_who(best)} beats {_who(second)} on {problem}: {both}, Wilcoxon p={p:.2g} Holm, "
                f"{pairs} paired seeds, Cohen's d={_num(d, 2)}.")
    if p is None or (isinstance(p, float) and math.isnan(p)) or t["limit"]:
        return (f"{_who(best)} has the lowest median {loss} on {problem} ahead of {_who(second)} ({both}), "
                f"but {pairs} paired seeds cannot show it is better: {t['note']}.")
    return (f"No significant difference on {problem}: {_who(best)} leads {_who(second)} with {both}, "
            f"Wilcoxon p={p:.2g} Holm over {pairs} paired seeds (needs p < {alpha}).")


def headlines(runs, alpha=0.05):
    """:func:`headline` for every problem of ``runs``, in name order."""
    return [headline(group, alpha) for _, group in runs.groupby("problem", sort=True)] if len(runs) else []
