"""Problems: the exact Keras Boston split, scikit-learn data sets, standardization, errors."""

import os
from pathlib import Path

import numpy as np
import pytest

from optimlab.lab.training import problems

SHARED = Path(os.environ.get("OPTIMLAB_SHARED", Path(__file__).resolve().parents[3] / ".." / "shared"))
BOSTON_CSV = SHARED / "data" / "boston_housing.csv"
needs_boston = pytest.mark.skipif(not BOSTON_CSV.exists(), reason=f"Boston CSV not found at {BOSTON_CSV} (../shared/data)")


@needs_boston
def test_boston_reproduces_the_keras_split():
    data = problems.load("boston", BOSTON_CSV, standardize=False, valid_fraction=0)
    assert data.x_train.shape == (404, 13) and data.x_test.shape == (102, 13) and len(data.x_valid) == 0
    first = [1.23247, 0, 8.14, 0, 0.538, 6.142, 91.7, 3.9769, 4, 307, 21, 396.9, 18.72]
    np.testing.assert_allclose(data.x_train[0], first, rtol=1e-6)
    np.testing.assert_allclose(data.y_train[:10, 0], [15.2, 42.3, 50, 21.1, 17.7, 18.5, 11.3, 15.6, 15.6, 14.4])


@needs_boston
def test_boston_from_environment_and_npz(tmp_path, monkeypatch):
    import pandas as pd

    table = pd.read_csv(BOSTON_CSV).to_numpy(dtype=np.float64)
    npz = tmp_path / "boston_housing.npz"
    np.savez(npz, x=table[:, :-1], y=table[:, -1])
    monkeypatch.setenv(problems.BOSTON_ENV, str(npz))
    from_env = problems.load("boston", standardize=False, valid_fraction=0)
    from_csv = problems.load("boston", BOSTON_CSV, standardize=False, valid_fraction=0)
    np.testing.assert_array_equal(from_env.x_test, from_csv.x_test)


@needs_boston
def test_validation_is_carved_from_training_rows_only():
    full = problems.load("boston", BOSTON_CSV, standardize=False, valid_fraction=0)
    split = problems.load("boston", BOSTON_CSV, standardize=False, valid_fraction=0.2)
    assert len(split.x_train) + len(split.x_valid) == 404
    np.testing.assert_array_equal(split.x_test, full.x_test)


def test_b_column_is_documented():
    assert "racial statistic" in problems.__doc__
    assert "racial statistic" in problems.get("boston").description


def test_missing_boston_path_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        problems.load("boston", tmp_path / "nope.csv")


@pytest.mark.parametrize("name", [n for n in problems.names() if n != "boston" and problems.get(n).data is None])
def test_builtin_problems_load_without_network(name):
    problem = problems.get(name)
    data = problems.load(problem)
    n = len(data.x_train) + len(data.x_valid) + len(data.x_test)
    assert len(data.x_valid) == pytest.approx(0.2 * 0.8 * n, abs=2)
    assert data.x_train.dtype == np.float32
    if problem.loss == "crossentropy":
        assert data.y_train.dtype == np.int32 and data.y_train.max() < problem.outputs
    else:
        assert data.y_train.shape == (len(data.x_train), 1)


def test_standardization_uses_training_statistics():
    data = problems.load("wine", standardize=True)
    np.testing.assert_allclose(data.x_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(data.x_train.std(axis=0), 1, atol=1e-4)
    raw = problems.load("wine", standardize=False)
    assert raw.x_train[:, 12].max() > 100  # proline, in its raw units
    assert abs(data.x_valid.mean()) > 1e-4  # validation is scaled by training statistics, not its own


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="unknown task .mnist.; valid names: boston"):
        problems.get("mnist")
    with pytest.raises(ValueError, match="valid_fraction"):
        problems.load("iris", valid_fraction=1.5)


def test_every_problem_is_registered_once_by_name():
    assert problems.names() == sorted(problems.PROBLEMS)
    assert all(name == problem.name for name, problem in problems.PROBLEMS.items())
    assert {"boston", "iris", "quadratic_deep", "cifar10_3c3d"} <= set(problems.PROBLEMS)  # built-in and DeepOBS
    with pytest.raises(ValueError, match="'iris' is registered twice"):
        problems.register(problems.Problem(name="iris"))


def test_a_problem_note_is_shown_but_not_recorded():
    assert "racial statistic" in problems.note("boston")
    assert problems.note(problems.get("boston")) == problems.note("boston")
    assert problems.note("iris") == "" and problems.note("not_registered") == ""
    assert "note" not in problems.get("boston").meta()  # records keep their fields
    with pytest.raises(TypeError, match="note must be a string"):
        problems.Problem(note=None)
