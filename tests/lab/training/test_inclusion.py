"""Issue 23's literature check in CI size: Choi et al. (2019)'s inclusion relation on DeepOBS's quadratic_deep.

``benchmarks/inclusion.py`` tunes gd, momentum and Adam at one budget over the learning rate alone and over
their whole spaces, reruns each winner on several seeds and tests each pair. Here: a small budget, its
statistics checked against SciPy's Wilcoxon test and a hand-written Holm correction, and the relation that
must hold whatever the budget (momentum, whose space holds gd's, is never significantly worse than gd).
The full-size numbers, Adam's included, are in the README with the command that made them.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).parents[3] / "benchmarks"))
import inclusion  # noqa: E402


def _check(found, alpha=0.05):
    for space in inclusion.SPACES:
        rows = {row["optimizer"]: row for row in found[space]["rows"]}
        losses = {name: row["test_losses"] for name, row in rows.items()}
        assert all(np.isfinite(v).all() for v in losses.values()), losses
        raw = []
        for small, big in zip(inclusion.CHAIN, inclusion.CHAIN[1:]):
            raw.append(sps.wilcoxon(losses[small], losses[big], method="exact").pvalue)
        order = np.argsort(raw)  # Holm: the k-th smallest p times (m - k), running maximum, at most 1
        holm, running = [0.0] * len(raw), 0.0
        for k, i in enumerate(order):
            running = max(running, min(1.0, (len(raw) - k) * raw[i]))
            holm[i] = running
        for pair, p in zip(found[space]["pairs"], holm):
            assert pair["p"] == pytest.approx(p, rel=1e-9)
            difference = np.median(losses[pair["contained"]] - losses[pair["containing"]])
            assert pair["median_difference"] == pytest.approx(difference)
            assert pair["holds"] == (not (p < alpha and difference < 0))
        gd_in_momentum = found[space]["pairs"][0]
        assert gd_in_momentum["holds"], gd_in_momentum  # momentum's space contains gd's
    # gd's whole space is its learning rate: both searches find the same configuration and losses
    assert found["learning_rate"]["rows"][0]["best"] == found["full"]["rows"][0]["best"]
    np.testing.assert_array_equal(found["learning_rate"]["rows"][0]["test_losses"],
                                  found["full"]["rows"][0]["test_losses"])


def test_the_inclusion_check_in_ci_size(tmp_path):
    _check(inclusion.measure(tmp_path, trials=4, seeds=7, epochs=5))


@pytest.mark.slow
def test_the_inclusion_check_at_the_readmes_budget(tmp_path):
    _check(inclusion.measure(tmp_path, trials=20, seeds=10))
