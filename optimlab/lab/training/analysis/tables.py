"""Analysis of run records: tables of runs, selection, summaries, tests and profiles.

Reads only records (each carries its problem's metadata), never the runner,
so a report can be made from a folder copied from another machine.

Selection is re-derived from the records: for each problem and optimizer, the
configuration run over the most seeds wins, ties broken by the lowest mean
final validation loss. That is the configuration :func:`experiments.compare`
selected, and the best one of a sweep.
"""

import json
import math

import numpy as np
import pandas as pd

from optimlab.lab.training.analysis import stats


def selection_loss(record):
    """The final validation loss (training loss without a validation split); inf if diverged."""
    final = record["final"]
    value = final.get("valid_loss")
    value = final.get("train_loss") if value is None else value
    if record["status"] != "ok" or value is None or not math.isfinite(value):
        return math.inf
    return value


def config_label(hyperparameters):
    """``"lr=0.001 clipnorm=2"``: a short name of a configuration."""
    short = {"learning_rate": "lr"}
    return " ".join(f"{short.get(k, k)}={value_label(v)}" for k, v in sorted(hyperparameters.items()))


def value_label(value):
    """One hyperparameter value in words: ``true`` for a switch (not ``1``), ``0.001`` for a number, ``none``,
    other values (a schedule's name) as they are; tables, labels and figures' ticks all use it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return f"{value:g}"
    return str(value)


_NOT_BUDGET = ("problem", "optimizer", "hyperparameters", "seed", "schedule")  # a schedule is part of a configuration


def problem_labels(records):
    """``{key: label}``: the problem's name, with its budget added where a folder mixes budgets.

    Runs of one problem with different budgets (``--epochs``, batch size, data
    preparation, ...) are different experiments: they get labels such as
    ``diabetes [epochs=20]`` so that tables and figures keep them apart instead
    of pooling them as extra seeds.
    """
    budgets = {}
    for r in records:
        spec = r["spec"]
        budget = json.dumps({k: v for k, v in spec.items() if k not in _NOT_BUDGET}, sort_keys=True)
        budgets.setdefault(spec["problem"], {})[r["key"]] = json.loads(budget)
    labels = {}
    for problem, per_key in budgets.items():
        distinct = {json.dumps(b, sort_keys=True) for b in per_key.values()}
        varying = sorted({k for b in per_key.values() for k in b if len({json.dumps(x.get(k)) for x in per_key.values()}) > 1})
        for key, budget in per_key.items():
            if len(distinct) == 1:
                labels[key] = problem
            else:
                labels[key] = f"{problem} [" + " ".join(f"{k}={budget.get(k)}" for k in varying) + "]"
    return labels


def records_of(records, problem):
    """The records of ``problem`` as the tables label it (with its budget where a folder mixes budgets)."""
    labels = problem_labels(records)
    return [r for r in records if labels[r["key"]] == problem]


def _number(value):
    return math.nan if value is None else float(value)


def runs_table(records):
    """One row per record."""
    rows = []
    labels = problem_labels(records)
    for r in records:
        spec, final, hit = r["spec"], r["final"], r["time_to_target"]
        metric = r["problem"]["metric"]
        configuration = dict(spec["hyperparameters"])
        if spec.get("schedule"):  # runs that differ in their schedule alone are different configurations
            configuration["schedule"] = spec["schedule"]["name"]
        rows.append({
            "problem": labels[r["key"]], "optimizer": spec["optimizer"],
            "config": config_label(configuration),
            "hyperparameters": json.dumps(configuration, sort_keys=True),
            "learning_rate": spec["hyperparameters"].get("learning_rate", math.nan),
            "clipnorm": spec["hyperparameters"].get("clipnorm", math.nan),
            "seed": spec["seed"], "status": r["status"], "diverged": r["status"] == "diverged",
            "selection_loss": selection_loss(r), "metric": metric, "loss": r["problem"].get("loss", "loss"),
            "train_loss": _number(final.get("train_loss")),
            "valid_loss": _number(final.get("valid_loss")),
            "test_loss": _number(final.get("test_loss")) if r["status"] == "ok" else math.nan,
            "test_metric": _number(final.get(f"test_{metric}")) if r["status"] == "ok" else math.nan,
            "epochs_run": final.get("epochs_run"),
            "epochs_to_target": _number(hit.get("epoch")), "seconds_to_target": _number(hit.get("seconds")),
            "wall_time": _number(final.get("wall_time")), "key": r["key"],
        })
    return pd.DataFrame(rows)


def selected(runs):
    """The runs of each (problem, optimizer)'s selected configuration."""
    keep = []
    for _, group in runs.groupby(["problem", "optimizer"], sort=True):
        per_config = group.groupby("hyperparameters").agg(
            seeds=("seed", "nunique"), score=("selection_loss", "mean"))
        best = per_config.sort_values(["seeds", "score"], ascending=[False, True]).index[0]
        keep.append(group[group["hyperparameters"] == best])
    return pd.concat(keep) if keep else runs.iloc[:0]


def is_sweep(runs):
    """True when no configuration was selected (every configuration ran over the same seeds)."""
    return all(g.groupby("hyperparameters")["seed"].nunique().nunique() == 1
               for _, g in runs.groupby(["problem", "optimizer"]))


def summary(runs):
    """Per problem and optimizer (selected configuration): spread, CI, divergence, time to target."""
    rows = []
    for (problem, optimizer), group in selected(runs).groupby(["problem", "optimizer"], sort=True):
        test = group["test_loss"].dropna().to_numpy()
        row = {"problem": problem, "optimizer": optimizer, "config": group["config"].iloc[0],
               "seeds": len(group), "diverged": float(group["diverged"].mean()),
               "reached": float(group["epochs_to_target"].notna().mean()),
               "epochs_to_target": group["epochs_to_target"].median(),
               "seconds_to_target": group["seconds_to_target"].median(),
               "metric": group["metric"].iloc[0], "test_metric": group["test_metric"].mean()}
        if test.size:
            d = stats.describe(test)
            low, high = stats.bootstrap_ci(test) if test.size > 1 else (math.nan, math.nan)
            row.update({f"test_loss_{k}": d[k] for k in ("mean", "std", "median", "iqr")})
            row.update({"ci_low": low, "ci_high": high})
        rows.append(row)
    return pd.DataFrame(rows)


def tests(runs, alpha=0.05):
    """Per problem: the best optimizer (lowest median test loss) against each other one.

    Paired Wilcoxon on seeds where both runs finished, Welch on all finished
    runs, Holm's correction over the comparisons of a problem, Cohen's d.
    """
    rows = []
    chosen = selected(runs)
    for problem, group in chosen.groupby("problem", sort=True):
        all_medians = group.groupby("optimizer")["test_loss"].median()
        medians = all_medians.dropna()
        if len(medians) < 1 or len(all_medians) < 2:
            continue
        best = medians.idxmin()
        ref = group[group["optimizer"] == best].set_index("seed")["test_loss"]
        block = []
        for other in sorted(set(medians.index) - {best}):
            loss = group[group["optimizer"] == other].set_index("seed")["test_loss"]
            pairs = pd.concat([ref, loss], axis=1, join="inner").dropna()
            w = stats.wilcoxon(pairs.iloc[:, 1], pairs.iloc[:, 0], alpha=alpha) if len(pairs) else \
                {"p": None, "statistic": math.nan, "reason": "no paired seeds"}
            t = stats.welch(loss.dropna(), ref.dropna())
            block.append({"problem": problem, "best": best, "other": other, "pairs": len(pairs),
                          "wilcoxon_p": w["p"], "welch_p": t["p"],
                          "cohens_d": stats.cohens_d(loss.dropna(), ref.dropna()),
                          "note": w["reason"] or t["reason"] or ""})
        for other in sorted(set(all_medians.index) - set(medians.index)):  # never silently dropped
            n = int((group["optimizer"] == other).sum())
            block.append({"problem": problem, "best": best, "other": other, "pairs": 0, "wilcoxon_p": None,
                          "welch_p": None, "cohens_d": math.nan, "note": f"all {n} runs of {other} diverged"})
        for column in ("wilcoxon_p", "welch_p"):
            for row, adjusted in zip(block, stats.holm([r[column] for r in block])):
                row[f"{column}_holm"] = adjusted
        _note_design_limits(block, alpha)
        rows.extend(block)
    return pd.DataFrame(rows)


def _note_design_limits(block, alpha):
    """Say, on each test of a problem whose seeds can never give a Holm-corrected p below ``alpha``, why not.

    Sets ``limit`` (that sentence, or "") and ``note`` of each row of ``block``.
    Holm multiplies the smallest of the m p-values it corrects by m, so no
    adjusted p goes below ``m * 2 / 2**n`` with n the most pairs of a test
    (:func:`stats.holm_min_p`). A test refused for too few pairs is told what
    the whole problem's comparisons need (the refusal counts one test alone).
    """
    tested = [row for row in block if row["wilcoxon_p"] is not None]
    limit = stats.design_limit(max(r["pairs"] for r in tested), len(tested) + 1, alpha) if tested else None
    for row in block:
        row["limit"] = (limit or "") if row["wilcoxon_p"] is not None else ""
        if row["limit"]:
            row["note"] = limit
        elif row["wilcoxon_p"] is None and row["pairs"] > 0:
            row["note"] = stats.design_limit(row["pairs"], len(block) + 1, alpha) or row["note"]


def ranked_summary(runs):
    """:func:`summary` ranked within each problem: lowest median test loss first, all-diverged last."""
    table = summary(runs)
    if table.empty:
        return table
    key = table["test_loss_median"] if "test_loss_median" in table else table["diverged"]
    return (table.assign(_key=key.fillna(math.inf)).sort_values(["problem", "_key", "optimizer"])
            .drop(columns="_key").reset_index(drop=True))


def profile_costs(runs):
    """Problems x optimizers: median final test loss of the selected configuration (inf if none)."""
    table = summary(runs)
    if "test_loss_median" not in table:
        table["test_loss_median"] = math.nan
    costs = table.pivot(index="problem", columns="optimizer", values="test_loss_median")
    return costs.fillna(np.inf)


def curves(records):
    """Long table of histories: problem, optimizer, config, seed, epoch and the history columns."""
    frames = []
    labels = problem_labels(records)
    for r in records:
        h = pd.DataFrame(r["history"]).astype(float)
        spec = r["spec"]
        h = h.assign(problem=labels[r["key"]], optimizer=spec["optimizer"],
                     config=config_label(spec["hyperparameters"]), seed=spec["seed"])
        frames.append(h)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
