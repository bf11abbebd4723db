"""Test problems for the training lab: data, model, loss, metric and budget in one place.

A :class:`Problem` is metadata (JSON-able, copied into every run record) plus a
loader. :func:`load` turns it into a :class:`Data` split: train / validation /
test arrays, inputs standardized with the training statistics when asked.

Problems:

* ``boston``: Boston housing regression with exactly the
  ``keras.datasets.boston_housing`` split (404 train, 102 test rows; seed 002's
  data). Its ``b`` column encodes a racial statistic
  (``1000 (Bk - 0.63)^2``, Bk the proportion of Black residents by town); it is
  kept only so that results compare with the literature.
* ``diabetes``, ``digits``, ``breast_cancer``, ``wine``, ``iris``: the data sets
  that ship inside scikit-learn (no network).
* ``quadratic``: a noisy quadratic (linear least squares with an ill-conditioned
  design and noisy targets: the loss is a quadratic bowl, minibatches make the
  gradient noisy).
* ``classification``: ``sklearn.datasets.make_classification``.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from optimlab._checks import check_choice, check_range

BOSTON_COLUMNS = (
    "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b", "lstat",
)
BOSTON_ENV = "OPTIMLAB_BOSTON"
_SPLIT_SEED = 0  # fixed: the split never depends on the run's seed


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a run trains: data, model, loss, metric and default budget.

    ``model`` is ``mlp``, ``linear`` (one Dense layer: linear or logistic
    regression) or ``cnn``; ``loss`` is ``mse`` or ``crossentropy`` (sparse, from
    logits); ``metric`` is ``mae`` or ``accuracy``; ``batch_size`` None means
    full-batch gradient descent; ``target`` is the validation loss that counts as
    "reached" for time-to-target.
    """

    name: str
    description: str
    model: str
    hidden: tuple
    loss: str
    metric: str
    epochs: int
    batch_size: int | None
    standardize: bool
    target: float
    outputs: int
    needs_data: bool = False

    def meta(self):
        """JSON-able metadata stored in every record."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Data:
    """Float32 inputs, targets (float32 column for regression, int32 labels otherwise)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


PROBLEMS = {
    p.name: p
    for p in (
        Problem("boston", "Boston housing prices (keras split; the b column encodes a racial statistic)",
                "mlp", (4,), "mse", "mae", 1000, None, True, 25.0, 1, needs_data=True),
        Problem("diabetes", "scikit-learn diabetes progression (442 patients, 10 features)",
                "mlp", (16,), "mse", "mae", 500, None, True, 4000.0, 1),
        Problem("digits", "scikit-learn 8x8 handwritten digits, small CNN",
                "cnn", (8,), "crossentropy", "accuracy", 5, 64, True, 0.2, 10),
        Problem("breast_cancer", "scikit-learn breast cancer (logistic regression)",
                "linear", (), "crossentropy", "accuracy", 300, None, True, 0.15, 2),
        Problem("wine", "scikit-learn wine cultivars (MLP)",
                "mlp", (16,), "crossentropy", "accuracy", 300, None, True, 0.1, 3),
        Problem("iris", "scikit-learn iris (logistic regression)",
                "linear", (), "crossentropy", "accuracy", 300, None, True, 0.2, 3),
        Problem("quadratic", "noisy quadratic: ill-conditioned least squares, minibatch noise",
                "linear", (), "mse", "mae", 30, 32, False, 0.02, 1),
        Problem("classification", "sklearn make_classification (20 features, 2 classes)",
                "mlp", (32,), "crossentropy", "accuracy", 30, 32, True, 0.35, 2),
    )
}


def names():
    return sorted(PROBLEMS)


def get(name):
    """The :class:`Problem` called ``name``."""
    check_choice("task", name, PROBLEMS)
    return PROBLEMS[name]


# ------------------------------------------------------------------ loaders
def _boston_raw(path):
    """All 506 Boston rows in their original order from a CSV or a Keras ``.npz``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data path {str(path)!r} does not exist; pass the Boston CSV or Keras .npz")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as f:
            return f["x"].astype(np.float64), f["y"].astype(np.float64)
    import pandas as pd

    try:
        table = pd.read_csv(path)
    except (ValueError, OSError, UnicodeDecodeError) as error:  # pandas' parser errors are ValueErrors
        raise ValueError(f"data path {str(path)!r} is not a readable CSV ({error})") from None
    if list(table.columns[:-1]) != list(BOSTON_COLUMNS):
        raise ValueError(f"data path {str(path)!r} is not the Boston CSV; columns {list(table.columns)}")
    table = table.to_numpy(dtype=np.float64)
    return table[:, :-1], table[:, -1]


def boston_split(x, y, test_split=0.2, seed=113):
    """The ``keras.datasets.boston_housing.load_data`` split of the original rows."""
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    n_train = int(len(x) * (1 - test_split))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def _boston_path(data):
    """The explicit path, else ``$OPTIMLAB_BOSTON``, else the Keras cache (or None)."""
    if data is not None:
        return Path(data)
    if os.environ.get(BOSTON_ENV):
        return Path(os.environ[BOSTON_ENV])
    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "boston_housing.npz"
    return cache if cache.exists() else None


def _load_boston(data):
    path = _boston_path(data)
    if path is None:  # download through Keras (needs network)
        import keras

        try:
            return keras.datasets.boston_housing.load_data()
        except Exception as error:  # noqa: BLE001 - any download failure gets one clear message
            raise FileNotFoundError(
                f"Boston housing data not found: pass --data PATH (CSV or Keras .npz), set ${BOSTON_ENV}, "
                f"or go online so that Keras can download it ({error})"
            ) from error
    return boston_split(*_boston_raw(path))


def _load_sklearn(name):
    from sklearn import datasets

    if name == "quadratic":
        rng = np.random.RandomState(_SPLIT_SEED)
        scales = np.logspace(0, -1.5, 20)  # condition number 1000 of the Hessian
        x = rng.normal(size=(1000, 20)) * scales
        y = x @ rng.normal(size=20) + 0.1 * rng.normal(size=1000)
        return x, y
    if name == "classification":
        return datasets.make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=_SPLIT_SEED)
    loader = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits,
              "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "iris": datasets.load_iris}
    bunch = loader[name]()
    return bunch.data, bunch.target


def _holdout(x, y, fraction, seed):
    """Split off ``fraction`` of the rows (fixed permutation) as a holdout; 0 keeps the order."""
    if fraction == 0:
        return (x, y), (x[:0], y[:0])
    order = np.random.RandomState(seed).permutation(len(x))
    n_hold = int(round(len(x) * fraction))
    return (x[order[n_hold:]], y[order[n_hold:]]), (x[order[:n_hold]], y[order[:n_hold]])


def load(problem, data=None, standardize=None, valid_fraction=0.2):
    """The train / validation / test :class:`Data` of ``problem`` (a name or a Problem).

    Args:
        data: path to the Boston CSV or Keras ``.npz`` (Boston only; default:
            ``$OPTIMLAB_BOSTON``, then the Keras cache, then a Keras download).
        standardize: scale inputs to zero mean and unit variance with the
            training statistics (default: the problem's choice). Seed 002 uses raw inputs.
        valid_fraction: fraction of the training rows held out for validation
            (fixed permutation, default 0.2); 0 keeps every training row
            (validation columns are then empty and selection uses the training loss).
    """
    problem = get(problem) if isinstance(problem, str) else problem
    check_range("valid_fraction", valid_fraction, 0.0, 1.0, high_open=True)
    if problem.name == "boston":
        (x_tr, y_tr), (x_te, y_te) = _load_boston(data)
    else:
        (x_tr, y_tr), (x_te, y_te) = _holdout(*_load_sklearn(problem.name), 0.2, _SPLIT_SEED)
    (x_tr, y_tr), (x_va, y_va) = _holdout(np.asarray(x_tr), np.asarray(y_tr), valid_fraction, _SPLIT_SEED + 1)
    if problem.standardize if standardize is None else standardize:
        mean, std = x_tr.mean(axis=0), x_tr.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x_tr, x_va, x_te = ((x - mean) / std for x in (x_tr, x_va, x_te))
    if problem.loss == "mse":
        targets = [np.asarray(y, np.float32).reshape(-1, 1) for y in (y_tr, y_va, y_te)]
    else:
        targets = [np.asarray(y, np.int32) for y in (y_tr, y_va, y_te)]
    inputs = [np.asarray(x, np.float32) for x in (x_tr, x_va, x_te)]
    return Data(inputs[0], targets[0], inputs[1], targets[1], inputs[2], targets[2])
