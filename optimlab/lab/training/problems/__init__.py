"""Test problems for the training lab: data, model, loss, metric and budget in one place.

A :class:`Problem` is metadata (JSON-able, copied into every run record) plus a
loader. :func:`load` turns it into a :class:`Data` split: train / validation /
test arrays, inputs standardized with the training statistics when asked.

Problems are registered by name with :func:`register` (the module that
defines a problem registers it: :mod:`.builtin` the built-in ones,
:mod:`.deepobs` DeepOBS's); :func:`get` and :func:`names` read the registry
:data:`PROBLEMS`, in registration order. A problem's ``note`` (Boston's below)
is shown with its results by the CLI and the report (:func:`note`).

Problems:

* ``boston``: Boston housing regression with exactly the
  ``keras.datasets.boston_housing`` split (404 train, 102 test rows; the data
  of the book chapter on Boston housing regression). Its ``b`` column encodes
  a racial statistic (``1000 (Bk - 0.63)^2``, Bk the proportion of Black
  residents by town); it is kept only so that results compare with the literature.
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

import numpy as np

from optimlab._checks import check_range
from optimlab._names import unknown

VALID_SEED = 1  # fixed: the validation rows never depend on the run's seed
PROBLEMS = {}  # name -> Problem, in registration order: the built-in problems, then DeepOBS's


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
        note: text shown with the problem's results (the CLI prints it, the
            report shows it; "" for none). Not stored in records: the report
            finds it by the records' problem name among the registered problems.

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
    note: str = dataclasses.field(default="", metadata={"recorded": False})

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


def register(problem):
    """Add ``problem`` to the registry under its name and return it: ``register(Problem(name="mine", ...))``.

    A name registered twice is a ValueError. The CLI checks ``--task`` against
    ``optimlab._names.TASKS``, a TensorFlow-free copy of these names that
    ``tests/lab/test_cli_names.py`` keeps equal to :data:`PROBLEMS`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"register takes a Problem; got {type(problem).__name__}")
    if problem.name in PROBLEMS:
        raise ValueError(f"problem name {problem.name!r} is registered twice")
    PROBLEMS[problem.name] = problem
    return problem


def names():
    """The registered problems' names, sorted."""
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


def note(problem):
    """The note shown with ``problem``'s results: a Problem's own, or the registered one of that name ("" if none)."""
    if isinstance(problem, Problem):
        return problem.note
    registered = PROBLEMS.get(problem)
    return registered.note if registered is not None else ""


# ------------------------------------------------------------------ loading
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


def load(problem, data=None, standardize=None, valid_fraction=0.2):
    """The train / validation / test :class:`Data` of ``problem`` (a name or a Problem).

    Args:
        data: path to the Boston CSV or Keras ``.npz`` (Boston only; default:
            ``$OPTIMLAB_BOSTON``, then the Keras cache, then a Keras download).
        standardize: scale inputs to zero mean and unit variance with the
            training statistics (default: the problem's choice). The Boston housing
            book chapter uses raw inputs.
        valid_fraction: fraction of the training rows held out for validation
            (fixed permutation, default 0.2); 0 keeps every training row
            (validation columns are then empty and selection uses the training loss).
    """
    problem = get(problem) if isinstance(problem, str) else problem
    check_range("valid_fraction", valid_fraction, 0.0, 1.0, high_open=True)
    if problem.data is not None:  # your own data, or a DeepOBS loader
        from optimlab.lab.training.problems import custom

        return custom.load(problem, valid_fraction, problem.standardize if standardize is None else standardize)
    (x_tr, y_tr), (x_te, y_te) = builtin.raw_split(problem.name, data)
    (x_tr, y_tr), (x_va, y_va) = holdout(np.asarray(x_tr), np.asarray(y_tr), valid_fraction, VALID_SEED)
    if problem.standardize if standardize is None else standardize:
        x_tr, x_va, x_te = standardize_inputs((x_tr, x_va, x_te))
    if problem.loss == "mse":
        targets = [np.asarray(y, np.float32).reshape(-1, 1) for y in (y_tr, y_va, y_te)]
    else:
        targets = [np.asarray(y, np.int32) for y in (y_tr, y_va, y_te)]
    inputs = [np.asarray(x, np.float32) for x in (x_tr, x_va, x_te)]
    return Data(inputs[0], targets[0], inputs[1], targets[1], inputs[2], targets[2])


# The modules that define problems register them on import; the built-in ones first, then DeepOBS's.
from optimlab.lab.training.problems import builtin, deepobs  # noqa: E402, F401
from optimlab.lab.training.problems.builtin import BOSTON_COLUMNS, BOSTON_ENV, boston_split  # noqa: E402, F401
