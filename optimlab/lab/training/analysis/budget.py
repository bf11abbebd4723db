"""Budget curves of tuning studies: the best validation loss found against the budget spent.

Schmidt, Schneider and Hennig (2021, "Descending through a Crowded Valley")
compare optimizers at several tuning budgets, since a ranking at one budget
need not hold at another. A study's trials (as
:func:`optimlab.lab.training.runner.tuning.trials_of` lists them, kept in
``OUT/tuning.json``) give, per optimizer, the best loss after each trial and
the epochs spent so far (a pruned trial counts the epochs it ran); from them
:func:`sentence` says from which budget on the final winner led and whether
the ranking changed with the budget. Pure functions of the studies: no
TensorFlow, no Optuna.
"""

import json
import math
from pathlib import Path

SUMMARY = "tuning.json"  # OUT/tuning.json: every tuned study's trials (written by tune)


def fmt(value):
    return f"{value:.4g}"


def read_studies(out):
    """``{study: entry}`` from ``OUT/tuning.json``; {} where there is none or it cannot be read.

    An entry: ``problem``, ``optimizer``, ``sampler``, ``space``, ``pruner``, ``budget`` and
    ``epochs_per_run`` (epochs), ``trials`` (per trial: ``state``, ``value``, ``epochs``, ``cost``, ``params``).
    """
    try:
        found = json.loads((Path(out) / SUMMARY).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def curve(trials):
    """``[(trials so far, epochs so far, best value so far), ...]`` after each trial (inf before a complete one).

    The epochs are those taken from the budget (a trial's ``cost``: a whole run unless it was pruned).
    """
    out, spent, best = [], 0, math.inf
    for i, t in enumerate(trials, start=1):
        spent += int(t.get("cost", t.get("epochs")) or 0)
        value = t.get("value")
        if t.get("state") == "complete" and value is not None and math.isfinite(value):
            best = min(best, value)
        out.append((i, spent, best))
    return out


def groups(studies):
    """``{(problem, sampler, space, pruner): {optimizer: curve}}`` of the studies in ``tuning.json``."""
    found = {}
    for name, study in sorted(studies.items()):
        key = group_of(study)
        found.setdefault(key, {})[study["optimizer"]] = curve(study.get("trials") or [])
    return found


def group_of(study):
    """``(problem, sampler, space, pruner)`` of a study: the studies whose budget curves are set side by side."""
    space = study.get("space")
    space = ",".join(space) if isinstance(space, (list, tuple)) else str(space)
    return str(study.get("problem")), str(study.get("sampler")), space, str(study.get("pruner", "none"))


def best_at(points, epochs):
    """The best value of a curve once at most ``epochs`` have been spent (inf before its first trial)."""
    best = math.inf
    for _, spent, value in points:
        if spent > epochs:
            break
        best = value
    return best


def ranking(curves, epochs):
    """The optimizers ordered by their best value at budget ``epochs`` (None when one has no finite value yet)."""
    values = {name: best_at(points, epochs) for name, points in curves.items()}
    if not all(math.isfinite(v) for v in values.values()):
        return None
    return sorted(values, key=lambda name: (values[name], name))


def sentence(curves):
    """One sentence: the winner at the whole budget, from which budget on it led, and whether the ranking changed.

    Budgets are the epochs spent when a trial ended, in any study; at a budget
    where some optimizer has no complete trial yet the ranking is not defined.
    """
    curves = {name: points for name, points in curves.items() if points}
    if not curves:
        return "No finished trial yet: no budget curve."
    budgets = sorted({spent for points in curves.values() for _, spent, _ in points})
    final = ranking(curves, budgets[-1])
    if final is None:
        missing = sorted(n for n, p in curves.items() if not math.isfinite(p[-1][2]))
        return f"No complete trial of {', '.join(missing)}: the optimizers cannot be ranked."
    winner = final[0]
    if len(curves) == 1:
        return f"{winner}: best validation loss {fmt(curves[winner][-1][2])} after {budgets[-1]} epochs."
    since = budgets[-1]
    for epochs in reversed(budgets):
        order = ranking(curves, epochs)
        if order is None or order[0] != winner:
            break
        since = epochs
    trials = next(i for i, spent, _ in curves[winner] if spent >= since) if any(
        spent >= since for _, spent, _ in curves[winner]) else len(curves[winner])
    orders = [(epochs, order) for epochs in budgets if (order := ranking(curves, epochs)) is not None]
    changed = [(epochs, order) for epochs, order in orders if order != final]
    text = (f"{winner} is best at the whole budget ({budgets[-1]} epochs per optimizer at most) and has led since "
            f"{since} epochs ({trials} of its trials)")
    if not changed:
        return text + "; the ranking was the same at every budget where every optimizer had a complete trial."
    epochs, order = changed[-1]
    return (text + f"; the ranking changed with the budget: at {epochs} epochs it was {', '.join(order)}, "
            f"at the end {', '.join(final)}.")
