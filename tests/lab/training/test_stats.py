"""The lab's statistics against scipy.stats on known samples, and against hand computations."""

import functools
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from optimlab.lab.training.analysis import stats

RNG = np.random.default_rng(7)
A = RNG.normal(1.0, 1.0, size=12)
B = A + RNG.normal(0.4, 0.5, size=12)  # paired with A, no ties


def test_describe_matches_numpy():
    x = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    d = stats.describe(x)
    assert d["n"] == 8
    assert d["mean"] == pytest.approx(3.875)
    assert d["std"] == pytest.approx(np.std(x, ddof=1))
    assert d["median"] == pytest.approx(3.5)
    assert d["iqr"] == pytest.approx(sps.iqr(x))


@pytest.mark.parametrize("n", [6, 10, 20])
def test_wilcoxon_exact_matches_scipy(n):
    x, y = A[:n], B[:n]
    ours = stats.wilcoxon(x, y, method="exact")
    ref = sps.wilcoxon(x, y, method="exact")
    assert ours["method"] == "exact"
    assert ours["statistic"] == pytest.approx(ref.statistic)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-10)


def test_wilcoxon_normal_approximation_with_ties_matches_scipy():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0])
    y = x - np.array([1.0, 1.0, -2.0, 2.0, 3.0, 3.0, 3.0, -1.0, 4.0, 5.0, 0.0, 6.0])  # ties and one zero
    ours = stats.wilcoxon(x, y, method="approx")
    ref = sps.wilcoxon(x, y, method="approx", zero_method="wilcox", correction=False)
    assert ours["method"] == "approx" and ours["n"] == 11
    assert ours["statistic"] == pytest.approx(ref.statistic)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-10)


@pytest.mark.parametrize("d", [[1.0] * 6, [-1, 1, 2, 3, 4, 5.0], [1, 1, 2, -2, 3, 3, 4, 5.0],
                               [-1, 1, 1, 1, 1, 1, 1.0], [2.0, -2.0, 3, 3, 3, 5, 6, 7, 7, -8, 9, 10, 11]])
def test_wilcoxon_with_ties_matches_scipys_default(d):
    """Found in issue 22: six equal differences gave p = 0.029 (normal approximation), below the exact 2/64."""
    ours = stats.wilcoxon(np.array(d), np.zeros(len(d)))
    ref = sps.wilcoxon(d)  # scipy's auto: with ties and n <= 13, every sign pattern
    assert ours["method"] == "permutation"
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours["p"] >= stats.wilcoxon_min_p(len(d))


def test_wilcoxon_refuses_samples_that_can_never_reach_alpha():
    x = np.arange(1.0, 6.0)
    refused = stats.wilcoxon(x + 1.0, x)  # 5 pairs all one way: the most extreme result possible
    assert refused["p"] is None and "needs 6" in refused["reason"]
    # scipy gives that most extreme 5-pair result p = 2/32 = 0.0625 > 0.05: it can never reach 0.05
    assert sps.wilcoxon(x + np.arange(1, 6) * 0.1, x).pvalue == pytest.approx(0.0625)
    six = np.arange(1.0, 7.0)
    assert stats.wilcoxon(six + six * 0.1, six)["p"] == pytest.approx(2 / 64)
    assert stats.wilcoxon_min_p(6) < 0.05 <= stats.wilcoxon_min_p(5)


def test_welch_matches_scipy():
    a, b = A, RNG.normal(1.5, 2.0, size=7)
    ours = stats.welch(a, b)
    ref = sps.ttest_ind(a, b, equal_var=False)
    assert ours["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert ours["df"] == pytest.approx(ref.df, rel=1e-12)


def test_welch_refuses_single_values():
    assert stats.welch([1.0], [2.0, 3.0])["p"] is None


def test_bootstrap_matches_scipy_percentile_interval():
    x = RNG.exponential(2.0, size=40)
    ours = stats.bootstrap_ci(x, n_resamples=20000, seed=1)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=20000, random_state=2).confidence_interval
    se = x.std(ddof=1) / math.sqrt(x.size)
    assert ours[0] == pytest.approx(ref.low, abs=0.05 * se * 4)
    assert ours[1] == pytest.approx(ref.high, abs=0.05 * se * 4)
    assert ours[0] < x.mean() < ours[1]


def test_bootstrap_median_statistic():
    x = np.arange(1.0, 22.0)
    low, high = stats.bootstrap_ci(x, statistic=np.median, n_resamples=5000)
    ref = sps.bootstrap((x,), np.median, method="percentile", n_resamples=5000, random_state=0).confidence_interval
    assert abs(low - ref.low) <= 1.0 and abs(high - ref.high) <= 1.0


def test_holm_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert stats.holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert stats.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])


def test_cohens_d_by_hand():
    a, b = [2.0, 4.0, 6.0], [1.0, 2.0, 3.0]
    pooled = math.sqrt((8.0 + 2.0) / 4)  # sums of squares 8 and 2, 4 degrees of freedom
    assert stats.cohens_d(a, b) == pytest.approx(2.0 / pooled)


def test_performance_profile_by_hand():
    costs = pd.DataFrame({"a": [1.0, 4.0, math.inf], "b": [2.0, 2.0, 3.0]}, index=["p1", "p2", "p3"])
    profile = stats.performance_profile(costs, [1.0, 2.0, 10.0])
    # ratios: a = [1, 2, inf], b = [2, 1, 1]
    assert profile["a"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    assert profile["b"].tolist() == pytest.approx([2 / 3, 1.0, 1.0])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="x and y"):
        stats.wilcoxon([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="values"):
        stats.describe([])
    with pytest.raises(ValueError, match="confidence"):
        stats.bootstrap_ci([1.0, 2.0], confidence=1.5)


# ------------------------------------------------ what a design can show (issue 22)

def _sign_patterns(n):
    """Every one of the 2**n sign patterns of the differences ranked 1..n, as rows of signed ranks."""
    signs = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)
    return signs * np.arange(1.0, n + 1)


@functools.cache
def _scipy_smallest_p(n):
    """The smallest exact two-sided p scipy gives over all sign patterns of n pairs (one call per distinct W+)."""
    patterns = _sign_patterns(n)
    w_plus = np.where(patterns > 0, patterns, 0).sum(axis=1)
    one_per_w = {w: row for w, row in zip(w_plus, patterns)}
    return min(sps.wilcoxon(row, method="exact", zero_method="wilcox").pvalue for row in one_per_w.values())


def _holm_rejects_any(pvalues, alpha):
    """Holm's step-down procedure as written in textbooks: reject while p_(i) <= alpha / (m - i + 1)."""
    m = len(pvalues)
    return sorted(pvalues)[0] < alpha / m  # the first step decides whether anything is rejected


@pytest.mark.parametrize("n", range(1, 12))
def test_smallest_p_of_n_pairs_matches_an_exhaustive_count_with_scipy(n):
    assert stats.wilcoxon_min_p(n) == pytest.approx(_scipy_smallest_p(n), rel=1e-12)


def test_seeds_needed_matches_an_exhaustive_count_under_holm():
    smallest = {n: _scipy_smallest_p(n) for n in range(1, 12)}
    for comparisons in range(1, 40):
        # the fewest pairs with which some sign pattern, repeated over every comparison, lets Holm reject
        expected = min(n for n, p in smallest.items() if _holm_rejects_any([p] * comparisons, 0.05))
        assert stats.seeds_needed(comparisons) == expected, comparisons
        assert stats.holm_min_p(expected, comparisons) < 0.05 <= stats.holm_min_p(expected - 1, comparisons)
    assert [stats.seeds_needed(k - 1) for k in (2, 3, 4, 5, 8, 14, 27)] == [6, 7, 7, 8, 9, 10, 11]


def test_holm_floor_is_what_holm_gives_on_the_most_one_sided_results():
    for n, comparisons in [(6, 2), (7, 2), (10, 5), (5, 1)]:
        p = _scipy_smallest_p(n)
        assert min(stats.holm([p] * comparisons)) == pytest.approx(stats.holm_min_p(n, comparisons))
    assert stats.holm_min_p(6, 2) == pytest.approx(0.0625)  # the user's case: 3 optimizers, 6 seeds


def test_design_limit_says_what_the_design_can_never_show():
    text = stats.design_limit(6, 3)
    assert "0.0625" in text and "at least 7 seeds" in text and "3 optimizers" in text
    assert stats.design_limit(7, 3) is None and stats.design_limit(6, 2) is None
    assert "at least 6 seeds" in stats.design_limit(5, 2)


def test_default_seeds_can_show_a_difference_with_room_to_spare():
    for k in (2, 3, 5, 20, 40, 60):
        assert stats.design_limit(stats.default_seeds(k), k) is None
    assert stats.default_seeds(3) == stats.DEFAULT_SEEDS == 10
    assert stats.default_seeds(40) == 11
    # at 10 seeds, 3 optimizers still reach p < 0.05 when the two smallest differences go the other way (W = 3)
    d = np.arange(1.0, 11.0) * np.array([-1, -1] + [1] * 8)
    assert min(stats.holm([sps.wilcoxon(d, method="exact").pvalue] * 2)) < 0.05
    with pytest.raises(ValueError, match="alpha"):
        stats.seeds_needed(2, alpha=0.0)
