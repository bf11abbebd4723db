"""The report's answer sentence on the cases a user test found wrong (issue 15)."""

import json
import math

import pandas as pd

from optimlab.lab.training.analysis import verdict


def _runs(rows):
    """A runs table (the columns of ``analysis.runs_table``) from (optimizer, lr, seed, test_loss) tuples."""
    table = []
    for optimizer, lr, seed, test_loss in rows:
        diverged = test_loss is None
        table.append({
            "problem": "diabetes", "optimizer": optimizer, "config": f"lr={lr:g}",
            "hyperparameters": json.dumps({"learning_rate": lr}), "learning_rate": lr, "clipnorm": math.nan,
            "seed": seed, "status": "diverged" if diverged else "ok", "diverged": diverged,
            "selection_loss": math.inf if diverged else test_loss, "metric": "mae", "loss": "mse",
            "train_loss": math.nan, "valid_loss": math.nan if diverged else test_loss,
            "test_loss": math.nan if diverged else test_loss, "test_metric": math.nan, "epochs_run": 3,
            "epochs_to_target": math.nan, "seconds_to_target": math.nan, "wall_time": 1.0, "key": f"{optimizer}{lr}{seed}",
        })
    return pd.DataFrame(table)


def test_every_optimizer_that_always_diverged_is_named():
    runs = _runs([("adam", 0.1, s, 3700.0 + s) for s in range(3)]
                 + [(name, lr, s, None) for name in ("momentum", "sgd") for lr in (0.01, 0.1) for s in range(3)])
    sentence = verdict.headline(runs)
    assert sentence.startswith("adam lr=0.1 beats momentum and sgd on diabetes")
    assert "every run of momentum and sgd diverged" in sentence and "over 3 seeds" in sentence


def test_a_sweep_names_the_best_configuration_and_the_edge_of_the_grid():
    runs = _runs([("gd", 0.01, 0, 0.9), ("gd", 0.1, 0, 0.5), ("gd", 1.0, 0, 0.17)])
    sentence = verdict.headline(runs)
    assert sentence.startswith("gd lr=1 is the best of 3 configurations of gd on diabetes")
    assert "test MSE 0.17 over 1 seed." in sentence and "+/- -" not in sentence
    assert "largest learning rate tried" in sentence
    middle = verdict.headline(_runs([("gd", 0.01, 0, 0.9), ("gd", 0.1, 0, 0.1), ("gd", 1.0, 0, 0.5)]))
    assert "learning rate tried" not in middle


def test_one_configuration_is_not_called_the_only_one_run():
    """compare with one optimizer selects among several learning rates, then summarises only the winner's runs:
    the sentence must not claim that a single configuration was run (a user test found "the only configuration run")."""
    sentence = verdict.headline(_runs([("adam", 0.1, s, 0.5 + s / 100) for s in range(2)]))
    assert sentence.startswith("adam lr=0.1 on diabetes:") and "over 2 seeds" in sentence
    assert "only configuration run" not in sentence and "one configuration here" in sentence


def test_the_sentence_quotes_the_medians_it_ranks_by():
    """Found by a QA pass: ranked by median but quoting means, the winner showed the larger mean."""
    import numpy as np

    adam = [5000.0, 5010.0, 5020.0, 5030.0, 5040.0, 7000.0]  # lower median, higher mean (one bad seed)
    sgd = [5100.0, 5110.0, 5120.0, 5130.0, 5140.0, 5150.0]
    runs = _runs([("adam", 0.001, s, v) for s, v in enumerate(adam)] + [("sgd", 0.01, s, v) for s, v in enumerate(sgd)])
    assert np.mean(adam) > np.mean(sgd) and np.median(adam) < np.median(sgd)
    sentence = verdict.headline(runs)
    assert sentence.index("adam lr=0.001") < sentence.index("sgd lr=0.01")
    for values in (adam, sgd):
        q25, median, q75 = np.percentile(values, [25, 50, 75])
        assert f"{median:.4g} (IQR {q75 - q25:.3g})" in sentence, sentence
    assert f"{np.mean(adam):.4g}" not in sentence and "mean +/- sd" not in sentence
    assert f"median test MSE {np.median(adam):.4g}" in sentence


def test_a_column_of_p_values_uses_one_notation():
    """Found by a QA pass: "0.0005795" on one row, "5.797e-05" on the next."""
    import re

    small = verdict.p_texts([0.0005795, 5.797e-05, 0.031, None, math.nan])
    assert small[3:] == ["-", "-"]
    assert all(re.fullmatch(r"\d\.\de-\d\d", t) for t in small[:3]), small
    assert [float(t) for t in small[:3]] == [5.8e-04, 5.8e-05, 3.1e-02]
    plain = verdict.p_texts([0.031, 0.5, 0.0012])
    assert plain == ["0.031", "0.500", "0.001"]


def test_a_design_that_can_never_reach_the_threshold_says_so():
    """Found by a user (issue 22): 3 optimizers x 6 seeds, Holm p never below 0.0625, yet "needs p < 0.05"."""
    from optimlab.lab.training.analysis import tables

    runs = _runs([("adam", 0.01, s, 1.0 + s) for s in range(6)] + [("gd", 0.01, s, 2.0 + s) for s in range(6)]
                 + [("sgd", 0.01, s, 3.0 + s) for s in range(6)])  # adam wins every seed against both
    tests = tables.tests(runs)
    assert list(tests["wilcoxon_p_holm"]) == [0.0625, 0.0625]  # the most one-sided result possible
    assert all("can go below 0.0625" in note and "at least 7 seeds" in note for note in tests["note"])
    sentence = verdict.headline(runs)
    assert "6 paired seeds cannot show it is better" in sentence and "at least 7 seeds" in sentence
    assert "needs p < 0.05" not in sentence
    seven = _runs([(name, 0.01, s, base + s) for name, base in (("adam", 1.0), ("gd", 2.0), ("sgd", 3.0))
                   for s in range(7)])
    assert verdict.headline(seven).startswith("adam lr=0.01 beats gd lr=0.01 on diabetes")
    assert set(tables.tests(seven)["note"]) == {""}


def test_too_few_pairs_are_told_what_every_comparison_needs():
    runs = _runs([(name, 0.01, s, base + s) for name, base in (("adam", 1.0), ("gd", 2.0), ("sgd", 3.0))
                  for s in range(5)])
    from optimlab.lab.training.analysis import tables

    assert all("at least 7 seeds" in note for note in tables.tests(runs)["note"])  # not the single test's 6
