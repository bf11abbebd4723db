"""Diagnostics that explain a run, read from its record: flags with the epoch they began and a suggestion.

The measurements come from :mod:`optimlab.lab.training.runner.probes` (naive
baseline, gradient norm, update ratios, dead ReLU units, the largest epoch
loss between evaluations). The flags:

* ``diverged``: the loss became NaN or infinite (the run stopped).
* ``exploding``: an epoch's training loss, or the gradient norm, grew to
  more than ``EXPLOSION`` (100) times its initial value.
* ``collapsed to a constant``: the training loss ends within ``COLLAPSE``
  (1%) of the naive baseline's (the best constant prediction), or every ReLU
  unit is dead: the network ignores its inputs.
* ``plateau``: from some epoch on, the training loss never improved by more
  than ``PLATEAU`` (1%) again, for at least a quarter of the budget.

One rule each, used by the report and by ``optimlab diagnose`` alike, on the
record as written: the worst epoch loss (:func:`worst_losses`, :func:`peak`,
:func:`window_peaks`), the flags (:func:`flags`), whether a configuration beat
the naive baseline (:func:`against_baseline`: the median over its seeds) and
what to try (:func:`suggestion`, from the run's own settings). Tables group runs
by the problem's label (:func:`~optimlab.lab.training.analysis.tables.problem_labels`).

In the book chapter on Boston housing regression, gradient descent at lr 1e-3
on the raw features shows three of them: the first steps explode (training
loss ~1e11), every ReLU unit dies and the network ends at exactly the mean
predictor's loss.

Example:
    >>> record = {"status": "ok", "history": {"epoch": [0, 1, 2], "train_loss": [600.0, 90.0, 84.6],
    ...     "train_loss_max": [600.0, 5e11, 85.0], "peak_epoch": [0, 1, 2], "grad_norm": [1e3, 1.0, 0.1],
    ...     "dead_units": [0.0, 1.0, 1.0]}, "diagnostics": {"baseline": {"train_loss": 84.62}}}
    >>> [f["flag"] for f in flags(record)]
    ['exploding', 'collapsed to a constant']
"""

import math

import numpy as np
import pandas as pd

from optimlab.lab.training.analysis.tables import config_label, problem_labels

EXPLOSION = 100.0
COLLAPSE = 0.01
PLATEAU = 0.01


def suggestion(flag, spec=None):
    """What to try against ``flag``, for the run's settings (its record's ``spec``; None: not known).

    Nothing the run already does is suggested: standardizing the inputs only
    when they were raw (or not known), clipping harder than the run's
    ``clipnorm`` when it clipped, a warm-up only without a schedule.
    """
    spec = spec or {}
    hyper = spec.get("hyperparameters") or {}
    lr, clip = hyper.get("learning_rate"), hyper.get("clipnorm")
    lower = "lower the learning rate" + (f" (below {lr:g})" if lr else "")
    clipping = f"clip the gradient norm harder (--clipnorm below {clip:g})" if clip else \
        "clip the gradient norm (--clipnorm)"
    warm = "check the schedule's first steps" if spec.get("schedule") else "warm the learning rate up"
    raw = {False: "; standardize the inputs (--standardize)", None: "; standardize the inputs if they are raw"}
    standardize = raw.get(spec.get("standardize"), "")
    return {
        "diverged": f"{lower}, {clipping} or {warm}{standardize}",
        "exploding": f"{clipping}, {lower} or {warm}{standardize}",
        "collapsed to a constant": f"{lower} or {clipping} so the first steps do not kill the ReLU units{standardize}",
        "plateau": "if the loss is still high, raise the learning rate or use a schedule; if it is the floor, the "
                   "budget could end here",
    }[flag]


def _column(history, name):
    values = history.get(name)
    if values is None:
        return np.full(len(history["epoch"]), np.nan)
    return np.array([np.nan if v is None else float(v) for v in values])


def _flag(name, epoch, detail):
    return {"flag": name, "epoch": int(epoch), "detail": detail}


def worst_losses(history):
    """Per evaluation: ``(loss, epoch)`` arrays of the largest epoch training loss since the previous one.

    That is ``train_loss_max`` at ``peak_epoch`` where the run measured them,
    else the evaluation's own training loss and epoch: the one rule behind the
    report's peak column, the explosion flag and ``diagnose``'s "worst epoch".
    """
    loss, epochs = _column(history, "train_loss"), _column(history, "epoch")
    worst, at = _column(history, "train_loss_max"), _column(history, "peak_epoch")
    measured = ~np.isnan(worst)
    return np.where(measured, worst, loss), np.where(measured & ~np.isnan(at), at, epochs)


def peak(history):
    """``(loss, epoch)`` of the largest finite epoch training loss of a run (:func:`worst_losses`); NaNs if none."""
    worst, at = worst_losses(history)
    finite = np.isfinite(worst)
    if not finite.any():
        return math.nan, math.nan
    i = int(np.argmax(np.where(finite, worst, -np.inf)))
    return float(worst[i]), float(at[i])


def window_peaks(history, picks):
    """The largest finite worst loss (:func:`worst_losses`) of the evaluations since each previous pick, per pick.

    ``picks``: increasing row indices (``diagnose`` shows about a dozen rows):
    an explosion between two shown rows still shows. NaN where none is finite.
    """
    worst, _ = worst_losses(history)
    starts = [0, *(p + 1 for p in picks[:-1])]
    out = []
    for a, b in zip(starts, picks):
        window = worst[a:b + 1]
        window = window[np.isfinite(window)]
        out.append(float(window.max()) if window.size else math.nan)
    return out


def _exploding(history, epochs):
    worst, at = worst_losses(history)
    grad = _column(history, "grad_norm")
    start_loss, start_grad = worst[0], grad[0]
    top, top_epoch = peak(history)
    for i in range(1, len(epochs)):
        if start_loss > 0 and worst[i] > EXPLOSION * start_loss:
            flag = _flag("exploding", at[i], f"training loss reached {top:.3g} at epoch {int(top_epoch)}, "
                                             f"{top / start_loss:.2g}x its initial {start_loss:.4g}")
            return {**flag, "peak": top, "peak_epoch": top_epoch}
        if start_grad > 0 and grad[i] > EXPLOSION * start_grad:
            detail = (f"gradient norm reached {grad[i]:.3g} at epoch {int(epochs[i])}, "
                      f"{grad[i] / start_grad:.2g}x its initial {start_grad:.4g}")
            if start_loss > 0 and top > EXPLOSION * start_loss:
                detail += f"; training loss then reached {top:.3g} at epoch {int(top_epoch)}"
            return {**_flag("exploding", epochs[i], detail), "peak": top, "peak_epoch": top_epoch}
    return None


def _collapsed(history, epochs, baseline):
    loss, dead = _column(history, "train_loss"), _column(history, "dead_units")
    base = (baseline or {}).get("train_loss")
    near = np.zeros(len(loss), bool)
    if base is not None and base > 0:
        near = np.abs(loss - base) <= COLLAPSE * base
    all_dead = dead >= 1.0
    holds = near | all_dead
    if not holds[-1] or len(loss) < 2:
        return None
    start = len(holds) - 1
    while start > 1 and holds[start - 1]:
        start -= 1
    parts = []
    if near[-1]:
        parts.append(f"training loss {loss[-1]:.4g} equals the constant predictor's {base:.4g}")
    if math.isfinite(dead[-1]):
        parts.append(f"{dead[-1]:.0%} of ReLU units dead")
    return _flag("collapsed to a constant", epochs[start], "; ".join(parts))


def _plateau(history, epochs):
    loss = _column(history, "train_loss")
    if len(loss) < 4 or not np.all(np.isfinite(loss)):
        return None
    best_after = np.minimum.accumulate(loss[::-1])[::-1]  # best loss from each row to the end
    stuck = best_after >= (1 - PLATEAU) * loss
    start = len(loss) - 1
    while start > 1 and stuck[start - 1]:
        start -= 1
    span = epochs[-1] - epochs[start]
    if start >= len(loss) - 2 or span < 0.25 * epochs[-1]:
        return None
    return _flag("plateau", epochs[start], f"training loss stayed within {PLATEAU:.0%} of {loss[start]:.4g} "
                                           f"from epoch {int(epochs[start])} to {int(epochs[-1])}")


def flags(record):
    """The flags of one record, ordered by the epoch where each began, each with a suggestion for its settings.

    An ``exploding`` flag also carries ``peak`` and ``peak_epoch`` (:func:`peak`).
    """
    history = record["history"]
    epochs = _column(history, "epoch")
    baseline = (record.get("diagnostics") or {}).get("baseline")
    out = []
    if record["status"] == "diverged":
        out.append(_flag("diverged", epochs[-1], f"the loss became NaN or infinite at epoch {int(epochs[-1])}"))
    explosion = _exploding(history, epochs)
    if explosion:
        out.append(explosion)
    collapse = _collapsed(history, epochs, baseline) if record["status"] == "ok" else None
    if collapse:
        out.append(collapse)
    elif record["status"] == "ok":
        plateau = _plateau(history, epochs)
        if plateau:
            out.append(plateau)
    for f in out:
        f["suggestion"] = suggestion(f["flag"], record.get("spec"))
    return sorted(out, key=lambda f: f["epoch"])


def flag_text(found):
    return "; ".join(f"{f['flag']} @ {f['epoch']}" for f in found) or "-"


def runs(records):
    """One row per record: final losses against the baseline, the diagnostics' extremes and the flags.

    ``problem`` is the problem's label (:func:`~optimlab.lab.training.analysis.tables.problem_labels`), as in
    every other table, so runs of one problem with different budgets stay apart.
    """
    labels = problem_labels(records)
    rows = []
    for r in records:
        h, spec = r["history"], r["spec"]
        baseline = (r.get("diagnostics") or {}).get("baseline") or {}
        peak_loss, peak_epoch = peak(h)
        rows.append({
            "problem": labels[r["key"]], "optimizer": spec["optimizer"],
            "config": config_label(spec["hyperparameters"]),
            "seed": spec["seed"], "status": r["status"],
            "train_loss": _column(h, "train_loss")[-1], "test_loss": _column(h, "test_loss")[-1],
            "baseline_test_loss": baseline.get("test_loss", math.nan),
            "beats_baseline": ("yes" if _column(h, "test_loss")[-1] < baseline["test_loss"] else "no")
            if baseline.get("test_loss") is not None and r["status"] == "ok" else "-",
            "peak_train_loss": peak_loss, "peak_epoch": peak_epoch,
            "max_grad_norm": np.nanmax(_column(h, "grad_norm")) if np.isfinite(_column(h, "grad_norm")).any() else math.nan,
            "dead_units": _column(h, "dead_units")[-1],
            "flags": flag_text(flags(r)),
        })
    frame = pd.DataFrame(rows)
    return frame.sort_values(["problem", "optimizer", "config", "seed"]).reset_index(drop=True) if rows else frame


def baselines(records):
    """Per problem label (as :func:`runs`): the naive baseline's kind and losses (the first record's that has one)."""
    labels = problem_labels(records)
    out = {}
    for r in records:
        baseline = (r.get("diagnostics") or {}).get("baseline")
        if baseline and labels[r["key"]] not in out:
            out[labels[r["key"]]] = baseline
    return out


def against_baseline(rows, baseline):
    """Per configuration of ``rows`` (one problem's :func:`runs`): did it beat the naive baseline's test loss?

    One level decides: the median final test loss over the configuration's
    seeds, a diverged seed counting as worse than any loss. Each entry also
    counts the seeds that beat it on their own, for the words beside the answer:
    ``{"optimizer", "config", "seeds", "seeds_beat", "diverged", "median", "beat"}``.
    """
    target = (baseline or {}).get("test_loss")
    out = []
    for (optimizer, config), group in rows.groupby(["optimizer", "config"], sort=True):
        ok = group["status"] == "ok"
        losses = np.where(ok, group["test_loss"].astype(float), np.inf)
        losses = np.where(np.isnan(losses), np.inf, losses)
        median = float(np.median(losses))
        out.append({"optimizer": optimizer, "config": config, "seeds": len(group),
                    "seeds_beat": int((losses < target).sum()) if target is not None else 0,
                    "diverged": int((~ok).sum()), "median": median,
                    "beat": target is not None and median < target})
    return out
