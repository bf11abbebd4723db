"""Statistics for comparing optimizers: spread, confidence intervals, tests, profiles.

Pure functions on NumPy arrays, written from the textbook definitions (SciPy
is used for distribution tails and ranks only; the tests check the results
against ``scipy.stats``):

* :func:`describe`: mean, standard deviation (ddof=1), median, IQR;
* :func:`bootstrap_ci`: percentile bootstrap confidence interval;
* :func:`wilcoxon`: paired Wilcoxon signed-rank test, chosen as ``scipy.stats.wilcoxon``'s
  ``method="auto"`` chooses: exact without ties for n <= 50; with ties, exact over all
  2**n sign patterns for n <= 13, the normal approximation with tie correction otherwise;
* :func:`welch`: Welch's unequal-variance t-test;
* :func:`holm`: Holm's step-down correction for several tests;
* :func:`cohens_d`: effect size (difference of means over the pooled SD);
* :func:`performance_profile`: Dolan & Moré (2002) profiles across problems.

A test whose sample is too small to ever reach ``alpha`` returns ``p=None``
and a ``reason``: the signed-rank test on n pairs cannot give a two-sided p
below ``2 / 2**n`` (every pair one way), so n < 6 pairs can never reach 0.05.

What a design can show (:func:`holm_min_p`, :func:`seeds_needed`,
:func:`design_limit`): the lab sets the best of k optimizers against each of
the k - 1 others and corrects with Holm, whose smallest adjusted p is
``(k - 1) * 2 / 2**n``. So 3 optimizers need 7 seeds (6 give at best 0.0625),
and :func:`default_seeds` is :data:`DEFAULT_SEEDS`, or more where k needs more.
"""

import math

import numpy as np
from scipy import stats as sps


def _values(name, values):
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name} must hold at least one value; got an empty sample")
    return array


def describe(values):
    """``n, mean, std`` (ddof=1, NaN for one value), ``median, q25, q75, iqr``, ``min, max``."""
    x = _values("values", values)
    q25, median, q75 = np.percentile(x, [25, 50, 75])
    std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
    return {"n": int(x.size), "mean": float(x.mean()), "std": std, "median": float(median),
            "q25": float(q25), "q75": float(q75), "iqr": float(q75 - q25),
            "min": float(x.min()), "max": float(x.max())}


def bootstrap_ci(values, statistic=np.mean, confidence=0.95, n_resamples=10000, seed=0):
    """Percentile bootstrap interval ``(low, high)`` of ``statistic`` (a function with ``axis``)."""
    x = _values("values", values)
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    rng = np.random.default_rng(seed)
    resampled = statistic(x[rng.integers(0, x.size, size=(n_resamples, x.size))], axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def wilcoxon_min_p(n):
    """The smallest two-sided p the signed-rank test can give on ``n`` non-zero pairs."""
    return min(1.0, 2.0 / 2.0**n)


def holm_min_p(n, comparisons):
    """The smallest Holm-adjusted p of ``comparisons`` signed-rank tests on ``n`` pairs each.

    Holm multiplies the smallest of m p-values by m, and no p is below
    :func:`wilcoxon_min_p`, so no adjusted p can go below ``m * 2 / 2**n``.
    """
    return min(1.0, max(1, int(comparisons)) * wilcoxon_min_p(n))


def seeds_needed(comparisons, alpha=0.05):
    """The fewest paired seeds with which ``comparisons`` Holm-corrected signed-rank tests can reach ``p < alpha``."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1); got {alpha!r}")
    n = 1
    while holm_min_p(n, comparisons) >= alpha:
        n += 1
    return n


class DesignWarning(UserWarning):
    """A study that can never show a difference (too few paired seeds for its number of comparisons)."""


DEFAULT_SEEDS = 10  # 3 optimizers at 10 seeds: p < 0.05 even when the 2 smallest differences go the other way


def default_seeds(optimizers, alpha=0.05):
    """``compare``'s seeds for ``optimizers`` optimizers: :data:`DEFAULT_SEEDS`, or :func:`seeds_needed` where more."""
    return max(DEFAULT_SEEDS, seeds_needed(max(1, int(optimizers) - 1), alpha))


def design_limit(seeds, optimizers, alpha=0.05):
    """Why ``seeds`` paired seeds of ``optimizers`` optimizers can never show a difference; None when they can.

    The best optimizer is tested against each other one (``optimizers - 1``
    comparisons, Holm-corrected); the sentence gives the smallest attainable p
    and the seeds needed. Example::

        >>> design_limit(6, 3)
        'with 6 paired seeds and 3 optimizers (2 Holm-corrected Wilcoxon comparisons) no p-value can go below 0.0625, so it can never reach p < 0.05: that needs at least 7 seeds'
    """
    comparisons = max(1, int(optimizers) - 1)
    floor = holm_min_p(seeds, comparisons)
    if floor < alpha:
        return None
    tests = "1 Wilcoxon comparison" if comparisons == 1 else f"{comparisons} Holm-corrected Wilcoxon comparisons"
    return (f"with {seeds} paired seed{'s' if seeds != 1 else ''} and {optimizers} optimizers ({tests}) no p-value "
            f"can go below {floor:.3g}, so it can never reach p < {alpha:g}: that needs at least "
            f"{seeds_needed(comparisons, alpha)} seeds")


def _signed_rank_counts(n):
    """``counts[w]``: how many of the 2**n sign patterns of ranks 1..n give W+ = w."""
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank]
    return counts


PERMUTATION_PAIRS = 13  # scipy's limit too: 2**13 patterns are fewer than its 9999 resamples


def _sign_patterns(n):
    """The 2**n rows of 0/1: which of n ranks count as positive, every combination once."""
    return ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.float64)


def wilcoxon(x, y, alpha=0.05, method="auto"):
    """Paired two-sided Wilcoxon signed-rank test of ``x - y``; zero differences dropped.

    Returns ``{"statistic": min(W+, W-), "p", "n", "method", "reason"}``; ``p`` is
    None when ``n`` pairs can never give ``p < alpha``. ``method``: ``exact``
    (no ties), ``permutation`` (every sign pattern of the tied ranks: exact with
    ties, up to ``PERMUTATION_PAIRS`` pairs), ``approx`` (normal, tie-corrected,
    no continuity correction) or ``auto`` (exact for n <= 50 without ties,
    permutation with ties up to ``PERMUTATION_PAIRS``, else approx: scipy's choice).
    Exact and permutation p-values never go below ``2 / 2**n``
    (:func:`wilcoxon_min_p`): only one sign pattern has every pair one way.
    """
    x, y = _values("x", x), _values("y", y)
    if x.shape != y.shape:
        raise ValueError(f"x and y must pair up; got {x.size} and {y.size} values")
    d = (x - y)[x != y]
    n = d.size
    if n == 0 or wilcoxon_min_p(n) >= alpha:
        need = next(k for k in range(1, 64) if wilcoxon_min_p(k) < alpha)
        reason = f"{n} non-zero pairs: p >= {wilcoxon_min_p(n):.3g}, can never reach {alpha}; needs {need}"
        return {"statistic": math.nan, "p": None, "n": n, "method": None, "reason": reason}
    ranks = sps.rankdata(np.abs(d))
    r_plus, r_minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    statistic = min(r_plus, r_minus)
    ties = len(np.unique(ranks)) < n
    if method == "auto":
        method = "exact" if n <= 50 and not ties else "permutation" if n <= PERMUTATION_PAIRS else "approx"
    if method == "exact":
        if ties:
            raise ValueError("method='exact' needs differences without ties; use method='approx'")
        counts = _signed_rank_counts(n)
        p = min(1.0, 2 * counts[: int(statistic) + 1].sum() / 2.0**n)
    elif method == "permutation":
        if n > PERMUTATION_PAIRS:
            raise ValueError(f"method='permutation' enumerates 2**n sign patterns: n <= {PERMUTATION_PAIRS}; got {n}")
        p = min(1.0, 2 * float(np.mean(_sign_patterns(n) @ ranks <= statistic + 1e-9)))
    elif method == "approx":
        _, tie_sizes = np.unique(np.abs(d), return_counts=True)
        var = n * (n + 1) * (2 * n + 1) / 24 - (tie_sizes**3 - tie_sizes).sum() / 48
        z = (statistic - n * (n + 1) / 4) / math.sqrt(var)
        p = float(2 * sps.norm.sf(abs(z)))
    else:
        raise ValueError(f"method must be one of ['approx', 'auto', 'exact', 'permutation']; got {method!r}")
    return {"statistic": float(statistic), "p": float(p), "n": n, "method": method, "reason": None}


def welch(a, b):
    """Welch's two-sided t-test of equal means: ``{"statistic", "df", "p", "reason"}``.

    ``p`` is None when a group has fewer than 2 values or both variances are 0.
    """
    a, b = _values("a", a), _values("b", b)
    if a.size < 2 or b.size < 2:
        return {"statistic": math.nan, "df": math.nan, "p": None,
                "reason": f"need at least 2 values per group; got {a.size} and {b.size}"}
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return {"statistic": math.nan, "df": math.nan, "p": None, "reason": "both groups are constant"}
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    return {"statistic": float(t), "df": float(df), "p": float(2 * sps.t.sf(abs(t), df)), "reason": None}


def holm(pvalues):
    """Holm-adjusted p-values in the input order; None entries (refused tests) stay None."""
    present = [(p, i) for i, p in enumerate(pvalues) if p is not None]
    m = len(present)
    adjusted = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(present)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def cohens_d(a, b):
    """``(mean(a) - mean(b)) / pooled SD`` (pooled with ddof=1); NaN when undefined."""
    a, b = _values("a", a), _values("b", b)
    if a.size + b.size <= 2:
        return math.nan
    squares = ((a - a.mean()) ** 2).sum() + ((b - b.mean()) ** 2).sum()
    pooled = math.sqrt(squares / (a.size + b.size - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else math.nan


def performance_profile(costs, taus):
    """Dolan & Moré performance profiles.

    Args:
        costs: pandas DataFrame, one row per problem, one column per solver,
            positive costs (lower is better; non-finite = failed).
        taus: ratios ``tau >= 1`` at which to evaluate.

    Returns a DataFrame indexed by ``tau``: for each solver the fraction of
    problems whose cost is within ``tau`` times the best solver's.
    """
    import pandas as pd

    values = costs.to_numpy(dtype=np.float64)
    if np.any(values[np.isfinite(values)] <= 0):
        raise ValueError("costs must be positive (lower is better); shift or use a ratio-friendly cost")
    values = np.where(np.isfinite(values), values, np.inf)
    best = values.min(axis=1, keepdims=True)
    with np.errstate(invalid="ignore"):
        ratios = np.where(np.isfinite(best), values / best, np.inf)
    taus = np.asarray(taus, dtype=np.float64)
    fractions = (ratios[None, :, :] <= taus[:, None, None]).mean(axis=1)
    return pd.DataFrame(fractions, index=pd.Index(taus, name="tau"), columns=costs.columns)
