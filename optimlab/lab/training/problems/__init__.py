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

What a problem *is* (for its records: two problems of one name are one only
when these agree) is :func:`fingerprint` (:mod:`.identity`).
"""

import dataclasses

import numpy as np

from optimlab._checks import check_range
from optimlab._names import unknown
from optimlab.lab.training.problems import builtin, custom, deepobs  # noqa: F401  (they register their problems)
from optimlab.lab.training.problems.builtin import BOSTON_COLUMNS, BOSTON_ENV, boston_split  # noqa: F401
from optimlab.lab.training.problems.identity import data_digest, fingerprint  # noqa: F401
from optimlab.lab.training.problems.data import VALID_SEED, Data, holdout, standardize_inputs  # noqa: F401
from optimlab.lab.training.problems.problem import PROBLEMS, Problem, names, note, register  # noqa: F401


def get(name):
    """The :class:`Problem` called ``name``, or the one at ``"package.module:attribute"``.

    The attribute may be a :class:`Problem` or a function of no arguments
    returning one (``optimlab compare --task mypkg.problems:cifar_resnet``).
    """
    if isinstance(name, Problem):
        return name
    if isinstance(name, str) and ":" in name:
        return _resolve_task(name)
    if name not in PROBLEMS:
        raise ValueError(unknown('task', name, PROBLEMS, also=' or package.module:attribute (your own Problem)'))
    return PROBLEMS[name]


def _resolve_task(path):
    """The Problem at ``path`` (a Problem or a function of no arguments returning one)."""
    target = custom.import_object(path, "task")
    problem = target() if callable(target) and not isinstance(target, Problem) else target
    if not isinstance(problem, Problem):
        raise TypeError(f"task {path!r} must be an optimlab.lab.Problem or a function returning one; "
                        f"got {type(problem).__name__}")
    if problem.name == "custom":  # name the records' folder after the attribute
        problem = dataclasses.replace(problem, name=path.rpartition(":")[2].replace(".", "_"))
    return problem


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
