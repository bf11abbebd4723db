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

EXPLOSION = 100.0
COLLAPSE = 0.01
PLATEAU = 0.01

SUGGESTIONS = {
    "diverged": "lower the learning rate, clip the gradient norm (--clipnorm) or warm the learning rate up",
    "exploding": "clip the gradient norm (--clipnorm), lower the learning rate or warm it up; standardize the inputs",
    "collapsed to a constant": "lower the learning rate or clip the gradient norm so the first steps do not kill "
                               "the ReLU units; standardize the inputs",
    "plateau": "if the loss is still high, raise the learning rate or use a schedule; if it is the floor, the "
               "budget could end here",
}


def _column(history, name):
    values = history.get(name)
    if values is None:
        return np.full(len(history["epoch"]), np.nan)
    return np.array([np.nan if v is None else float(v) for v in values])


def _flag(name, epoch, detail):
    return {"flag": name, "epoch": int(epoch), "detail": detail, "suggestion": SUGGESTIONS[name]}


def _exploding(history, epochs):
    loss, peak = _column(history, "train_loss"), _column(history, "train_loss_max")
    peak = np.where(np.isnan(peak), loss, peak)
    peak_epoch = _column(history, "peak_epoch")
    grad = _column(history, "grad_norm")
    start_loss, start_grad = loss[0], grad[0]
    for i in range(1, len(epochs)):
        if start_loss > 0 and peak[i] > EXPLOSION * start_loss:
            at = peak_epoch[i] if math.isfinite(peak_epoch[i]) else epochs[i]
            return _flag("exploding", at, f"training loss reached {peak[i]:.3g} at epoch {int(at)}, "
                                          f"{peak[i] / start_loss:.2g}x its initial {start_loss:.4g}")
        if start_grad > 0 and grad[i] > EXPLOSION * start_grad:
            return _flag("exploding", epochs[i], f"gradient norm reached {grad[i]:.3g} at epoch {int(epochs[i])}, "
                                                 f"{grad[i] / start_grad:.2g}x its initial {start_grad:.4g}")
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
    """The flags of one record, ordered by the epoch where each began."""
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
    return sorted(out, key=lambda f: f["epoch"])


def peak(history):
    """``(loss, epoch)`` of the largest epoch training loss (``train_loss_max``); NaNs where none was measured."""
    loss_max = _column(history, "train_loss_max")
    if not np.isfinite(loss_max).any():
        return math.nan, math.nan
    at = int(np.nanargmax(loss_max))
    return loss_max[at], _column(history, "peak_epoch")[at]


def flag_text(found):
    return "; ".join(f"{f['flag']} @ {f['epoch']}" for f in found) or "-"


def runs(records):
    """One row per record: final losses against the baseline, the diagnostics' extremes and the flags."""
    from optimlab.lab.training.analysis import config_label

    rows = []
    for r in records:
        h, spec = r["history"], r["spec"]
        baseline = (r.get("diagnostics") or {}).get("baseline") or {}
        peak_loss, peak_epoch = peak(h)
        rows.append({
            "problem": spec["problem"], "optimizer": spec["optimizer"], "config": config_label(spec["hyperparameters"]),
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
    """Per problem: the naive baseline's kind and losses (from the first record that has one)."""
    out = {}
    for r in records:
        baseline = (r.get("diagnostics") or {}).get("baseline")
        if baseline and r["spec"]["problem"] not in out:
            out[r["spec"]["problem"]] = baseline
    return out
