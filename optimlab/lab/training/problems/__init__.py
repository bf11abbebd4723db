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
* the DeepOBS problems (:mod:`.deepobs`): ``quadratic_deep``, ``two_d_*``,
  ``mnist_*``, ``fmnist_*``, ``cifar10_3c3d``.

Your own model and data: ``Problem(model=..., data=..., loss=...)`` (checked
and loaded by :mod:`.custom`), or ``--task package.module:attribute``.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from optimlab._checks import check_range
from optimlab._names import unknown

BOSTON_COLUMNS = (
    "crim", "zn", "indus", "chas", "nox", "rm", "age", "dis", "rad", "tax", "ptratio", "b", "lstat",
)
BOSTON_ENV = "OPTIMLAB_BOSTON"
_SPLIT_SEED = 0  # fixed: the split never depends on the run's seed


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """What a run trains: model, data, loss, metrics, budget and training options.

    Built-in problems are registered by name (:func:`get`); your own is one
    call (see :mod:`optimlab.lab.training.problems.custom` and the README,
    "Your own problem")::

        Problem(model=build_model, data=keras.datasets.mnist.load_data,
                loss="crossentropy", metrics=["accuracy"], epochs=5, batch_size=128, name="my_mnist")

    Args:
        model: ``"mlp"``, ``"linear"`` (one Dense layer: linear or logistic
            regression) or ``"cnn"`` (built from ``hidden`` and ``outputs``), or
            a function of no arguments returning a fresh ``keras.Model``; it is
            called after the run's seed is set, so paired runs start from the
            same weights.
        data: None for the built-in data of ``name``; otherwise NumPy arrays
            ``((x_train, y_train), (x_test, y_test))`` (the ``keras.datasets``
            layout), ``(train, valid, test)`` pairs, a dict with ``train``,
            ``test`` and optionally ``valid``, any of whose splits may be a
            finite ``tf.data.Dataset`` of ``(x, y)``, or a function of no
            arguments returning one of these.
        loss: ``"mse"``, ``"crossentropy"`` (sparse labels, logits),
            ``"mean_output"`` (the model outputs its per-example loss, as in
            DeepOBS's quadratic and 2-D problems) or a function
            ``loss(y_true, y_pred)`` (a Keras loss object works).
        metrics: ``"mae"``, ``"accuracy"`` or functions ``metric(y_true, y_pred)``;
            the first is the one summaries show.
        epochs, batch_size: the default budget (``batch_size`` None: full batch).
        standardize: scale inputs with the training statistics.
        target: validation loss that counts as "reached" (None: no target).
        batchnorm: batch normalization after each hidden layer (built-in MLP/CNN).
        mixup: mixup's Beta(alpha, alpha) parameter (0: off), Zhang et al. 2018.
        label_smoothing: for ``crossentropy`` (0: off).

    Problems compare by identity (traced programs are reused per problem object).
    """

    name: str = "custom"
    model: object = "mlp"
    data: object = None
    loss: object = "mse"
    metrics: tuple = ("mae",)
    epochs: int = 10
    batch_size: int | None = 32
    standardize: bool = False
    target: float | None = None
    hidden: tuple = ()
    outputs: int = 1
    description: str = ""
    needs_data: bool = False
    batchnorm: bool = False
    mixup: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        from optimlab.lab.training.problems import custom

        custom.check_problem(self)

    @property
    def metric(self):
        """The name of the first metric (None when there is none)."""
        from optimlab.lab.training.problems import custom

        return custom.metric_name(self.metrics[0]) if self.metrics else None

    def meta(self):
        """JSON-able metadata stored in every record (functions by ``module:name``, no arrays)."""
        from optimlab.lab.training.problems import custom

        return custom.describe(self)


@dataclasses.dataclass
class Data:
    """Inputs (float32, any shape) and targets (float32 columns for regression, int32 labels otherwise)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def _builtin(name, description, model, hidden, loss, metric, epochs, batch_size, standardize, target, outputs,
             needs_data=False):
    return Problem(name=name, description=description, model=model, hidden=hidden, loss=loss, metrics=(metric,),
                   epochs=epochs, batch_size=batch_size, standardize=standardize, target=target, outputs=outputs,
                   needs_data=needs_data)


PROBLEMS = {
    p.name: p
    for p in (
        _builtin("boston", "Boston housing prices (keras split; the b column encodes a racial statistic)",
                 "mlp", (4,), "mse", "mae", 1000, None, True, 25.0, 1, needs_data=True),
        _builtin("diabetes", "scikit-learn diabetes progression (442 patients, 10 features)",
                 "mlp", (16,), "mse", "mae", 500, None, True, 4000.0, 1),
        _builtin("digits", "scikit-learn 8x8 handwritten digits, small CNN",
                 "cnn", (8,), "crossentropy", "accuracy", 5, 64, True, 0.2, 10),
        _builtin("breast_cancer", "scikit-learn breast cancer (logistic regression)",
                 "linear", (), "crossentropy", "accuracy", 300, None, True, 0.15, 2),
        _builtin("wine", "scikit-learn wine cultivars (MLP)",
                 "mlp", (16,), "crossentropy", "accuracy", 300, None, True, 0.1, 3),
        _builtin("iris", "scikit-learn iris (logistic regression)",
                 "linear", (), "crossentropy", "accuracy", 300, None, True, 0.2, 3),
        _builtin("quadratic", "noisy quadratic: ill-conditioned least squares, minibatch noise",
                 "linear", (), "mse", "mae", 30, 32, False, 0.02, 1),
        _builtin("classification", "sklearn make_classification (20 features, 2 classes)",
                 "mlp", (32,), "crossentropy", "accuracy", 30, 32, True, 0.35, 2),
    )
}


def _register_deepobs():
    from optimlab.lab.training.problems import deepobs

    for problem in deepobs.problems():
        PROBLEMS[problem.name] = problem


_register_deepobs()


def names():
    return sorted(PROBLEMS)


def get(name):
    """The :class:`Problem` called ``name``, or the one at ``"package.module:attribute"``.

    The attribute may be a :class:`Problem` or a function of no arguments
    returning one (``optimlab compare --task mypkg.problems:cifar_resnet``).
    """
    if isinstance(name, Problem):
        return name
    if isinstance(name, str) and ":" in name:
        from optimlab.lab.training.problems import custom

        return custom.resolve_task(name)
    if name not in PROBLEMS:
        raise ValueError(unknown('task', name, PROBLEMS, also=' or package.module:attribute (your own Problem)'))
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
    if problem.data is not None:  # your own data, or a DeepOBS loader
        from optimlab.lab.training.problems import custom

        return custom.load(problem, valid_fraction, problem.standardize if standardize is None else standardize)
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
