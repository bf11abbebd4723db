"""The built-in problems of the training lab and their data (the DeepOBS set is in :mod:`.deepobs`).

Each problem is registered here with :func:`~optimlab.lab.training.problems.register`;
:func:`raw_split` gives its train and test rows before validation rows are cut
and inputs standardized (:func:`optimlab.lab.training.problems.load` does both).

* ``boston``: Boston housing with exactly the ``keras.datasets.boston_housing``
  split (the data of the book chapter on Boston housing regression), read from
  the CSV or Keras ``.npz`` at ``--data`` or ``$OPTIMLAB_BOSTON``, the Keras
  cache, or a Keras download.
* ``diabetes``, ``digits``, ``breast_cancer``, ``wine``, ``iris``: scikit-learn's
  bundled data sets (no network), 20% of the rows held out for testing.
* ``quadratic``: linear least squares with an ill-conditioned design and noisy targets.
* ``classification``: ``sklearn.datasets.make_classification``.
"""

import os
from pathlib import Path

import numpy as np

from optimlab.lab.training.problems.data import holdout
from optimlab.lab.training.problems.problem import Problem, register

BOSTON_COLUMNS = (
    "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b", "lstat",
)
BOSTON_ENV = "OPTIMLAB_BOSTON"
DATA_SETS = ("diabetes", "digits", "breast_cancer", "wine", "iris", "quadratic", "classification")  # Boston aside
TEST_SEED = 0  # fixed: the generated data and the test rows never depend on the run's seed
BOSTON_NOTE = ("Boston housing's b column encodes a racial statistic; it is kept only so that results "
               "compare with the literature.")


register(Problem(name="boston",
                 description="Boston housing prices (keras split; the b column encodes a racial statistic)",
                 model="mlp", hidden=(4,), loss="mse", metrics=("mae",), epochs=1000, batch_size=None,
                 standardize=True, target=25.0, needs_data=True, note=BOSTON_NOTE))
register(Problem(name="diabetes", description="scikit-learn diabetes progression (442 patients, 10 features)",
                 model="mlp", hidden=(16,), loss="mse", metrics=("mae",), epochs=500, batch_size=None,
                 standardize=True, target=4000.0))
register(Problem(name="digits", description="scikit-learn 8x8 handwritten digits, small CNN",
                 model="cnn", hidden=(8,), loss="crossentropy", metrics=("accuracy",), epochs=5, batch_size=64,
                 standardize=True, target=0.2, outputs=10))
register(Problem(name="breast_cancer", description="scikit-learn breast cancer (logistic regression)",
                 model="linear", loss="crossentropy", metrics=("accuracy",), epochs=300, batch_size=None,
                 standardize=True, target=0.15, outputs=2))
register(Problem(name="wine", description="scikit-learn wine cultivars (MLP)",
                 model="mlp", hidden=(16,), loss="crossentropy", metrics=("accuracy",), epochs=300, batch_size=None,
                 standardize=True, target=0.1, outputs=3))
register(Problem(name="iris", description="scikit-learn iris (logistic regression)",
                 model="linear", loss="crossentropy", metrics=("accuracy",), epochs=300, batch_size=None,
                 standardize=True, target=0.2, outputs=3))
register(Problem(name="quadratic", description="noisy quadratic: ill-conditioned least squares, minibatch noise",
                 model="linear", loss="mse", metrics=("mae",), epochs=30, batch_size=32, standardize=False,
                 target=0.02))
register(Problem(name="classification", description="sklearn make_classification (20 features, 2 classes)",
                 model="mlp", hidden=(32,), loss="crossentropy", metrics=("accuracy",), epochs=30, batch_size=32,
                 standardize=True, target=0.35, outputs=2))


def raw_split(name, data=None):
    """``((x_train, y_train), (x_test, y_test))`` of the built-in problem ``name`` (``data``: Boston's path)."""
    if name == "boston":
        return _load_boston(data)
    if name not in DATA_SETS:
        raise ValueError(f"data: problem {name!r} has none; data=None is for the built-in problems "
                         f"{['boston', *DATA_SETS]}: pass data=... (arrays, tf.data or a function returning them)")
    return holdout(*_load_sklearn(name), 0.2, TEST_SEED)


# ------------------------------------------------------------------ Boston housing
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
        reason = " ".join(str(error).split())  # one line: pandas' messages end in a newline
        raise ValueError(f"data path {str(path)!r} is not a readable CSV ({reason})") from None
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


# ------------------------------------------------------------------ scikit-learn and generated data
def _load_sklearn(name):
    from sklearn import datasets

    if name == "quadratic":
        rng = np.random.RandomState(TEST_SEED)
        scales = np.logspace(0, -1.5, 20)  # condition number 1000 of the Hessian
        x = rng.normal(size=(1000, 20)) * scales
        y = x @ rng.normal(size=20) + 0.1 * rng.normal(size=1000)
        return x, y
    if name == "classification":
        return datasets.make_classification(n_samples=1000, n_features=20, n_informative=8, random_state=TEST_SEED)
    loader = {"diabetes": datasets.load_diabetes, "digits": datasets.load_digits,
              "breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine, "iris": datasets.load_iris}
    bunch = loader[name]()
    return bunch.data, bunch.target
