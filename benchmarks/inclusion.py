"""Choi et al. (2019)'s inclusion relation, measured: tune SGD, momentum and Adam at one budget, rerun the winners.

Choi, Shallue, Nado, Lee, Maddison and Dahl ("On Empirical Comparisons of
Optimizers for Deep Learning", 2019) found that an optimizer never loses to
one it contains (Adam contains momentum, momentum contains SGD) once every
hyperparameter is tuned, epsilon and betas included, while with learning
rates alone the ranking can come out otherwise. This script tunes ``gd``
(plain SGD: its space is the learning rate), ``momentum`` (learning rate and
momentum) and ``adam`` (learning rate, beta_1, beta_2, epsilon, amsgrad) with
the same number of trials per optimizer (``optimlab tune``'s budget), once over
the learning rate alone and once over each optimizer's whole space
(:mod:`optimlab.spaces`), tuning on seed 0 and rerunning each winner on
``--seeds`` seeds (DeepOBS's and Schmidt et al. 2021's protocol). It prints a
Markdown table of the final test losses (median and interquartile range over
seeds) and, per space, the paired Wilcoxon tests of the inclusion relation
(Holm-corrected over the two pairs): a pair "holds" unless the contained
optimizer is significantly better than the one containing it.

    python benchmarks/inclusion.py --trials 20 --seeds 10 --epochs 100 --out runs/inclusion
"""

import argparse
import time

import numpy as np

from optimlab.lab.training.analysis import stats
from optimlab.lab.training.runner import experiments, tuning

CHAIN = ("gd", "momentum", "adam")  # each contains the one before it
SPACES = ("learning_rate", "full")


def measure(out, problem="quadratic_deep", trials=20, seeds=10, epochs=None, sampler="tpe", alpha=0.05):
    """Tune the chain over each space and rerun the winners; ``{space: {"rows": [...], "pairs": [...]}}``.

    A row: optimizer, best configuration, its seeds' final test losses; a pair:
    the contained and the containing optimizer, the median difference, Holm's
    p and whether the inclusion holds (the contained one is not significantly better).
    """
    found = {}
    for space in SPACES:
        runner = experiments.Runner(out, problem, epochs=epochs)
        try:
            result = tuning.tune(runner, list(CHAIN), trials=trials, sampler=sampler, space=space)
            reruns = tuning.rerun(runner, result, seeds)
        finally:
            runner.close()
        losses = {name: np.array([r["final"]["test_loss"] if r["status"] == "ok" else np.inf for r in reruns[name]])
                  for name in CHAIN}
        rows = [{"optimizer": name, "best": result[name]["best"], "test_losses": losses[name]} for name in CHAIN]
        tests = [stats.wilcoxon(losses[small], losses[big], alpha) for small, big in zip(CHAIN, CHAIN[1:])]
        raw = [t["p"] if t["p"] is not None else 1.0 for t in tests]
        holm = stats.holm(raw)
        pairs = []
        for (small, big), p in zip(zip(CHAIN, CHAIN[1:]), holm):
            difference = float(np.median(losses[small] - losses[big]))  # > 0: the containing optimizer is better
            pairs.append({"contained": small, "containing": big, "median_difference": difference, "p": p,
                          "holds": not (p < alpha and difference < 0)})
        found[space] = {"rows": rows, "pairs": pairs}
    return found


def _label(config):
    if not config:
        return "-"
    return " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(config.items())
                    if k != "clipnorm")


def markdown(found):
    """The README's table: per optimizer, the final test loss with the learning rate tuned and with everything."""
    lines = ["| optimizer | learning rate tuned: test loss, median [IQR] | all hyperparameters tuned: test loss, "
             "median [IQR] |", "| --- | --- | --- |"]
    for i, name in enumerate(CHAIN):
        cells = []
        for space in SPACES:
            row = found[space]["rows"][i]
            q1, median, q3 = np.percentile(row["test_losses"], [25, 50, 75])
            cells.append(f"{median:.4g} [{q3 - q1:.3g}] ({_label(row['best'])})")
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    for space in SPACES:
        for pair in found[space]["pairs"]:
            lines.append(f"\n{space}: {pair['contained']} vs {pair['containing']}: median difference "
                         f"{pair['median_difference']:.3g}, Wilcoxon p={pair['p']:.3g} (Holm), inclusion "
                         f"{'holds' if pair['holds'] else 'violated'}")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", default="quadratic_deep")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=None, help="default: the problem's")
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--out", default="runs/inclusion")
    args = parser.parse_args()
    started = time.perf_counter()
    found = measure(args.out, args.problem, args.trials, args.seeds, args.epochs, args.sampler)
    print(markdown(found))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
