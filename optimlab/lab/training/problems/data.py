"""A problem's arrays: the train / validation / test split and the shared ways to make it."""

import dataclasses

import numpy as np

VALID_SEED = 1  # fixed: the validation rows never depend on the run's seed


@dataclasses.dataclass
class Data:
    """Inputs (float32, any shape) and targets (float32 columns for regression, int32 labels otherwise)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def holdout(x, y, fraction, seed):
    """Split off ``fraction`` of the rows (fixed permutation) as a holdout; 0 keeps the order."""
    if fraction == 0:
        return (x, y), (x[:0], y[:0])
    order = np.random.RandomState(seed).permutation(len(x))
    n_hold = int(round(len(x) * fraction))
    return (x[order[n_hold:]], y[order[n_hold:]]), (x[order[:n_hold]], y[order[:n_hold]])


def standardize_inputs(inputs):
    """``inputs`` scaled by the first one's (the training rows') mean and standard deviation, in their dtype.

    A constant column keeps its scale (its deviation counts as 1).
    """
    mean, std = inputs[0].mean(axis=0), inputs[0].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return [(x - mean) / std for x in inputs]
