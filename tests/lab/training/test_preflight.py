"""Issue 22: a problem is checked (one step on one batch) before any run: refusals name the field and write nothing."""

import textwrap

import numpy as np
import pytest
from typer.testing import CliRunner

from optimlab.cli import app
from optimlab.lab import Problem
from optimlab.lab.training import problems
from optimlab.lab.training.runner import loop

MODULE = textwrap.dedent('''
    import keras
    import numpy as np
    import tensorflow as tf
    from optimlab.lab import Problem

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype("float32")
    labels = (x[:, 0] > 0).astype("int64")  # two classes
    values = (x @ np.array([1.0, -1.0, 0.5, 2.0])).astype("float32")
    CLASSES = ((x[:45], labels[:45]), (x[45:], labels[45:]))
    VALUES = ((x[:45], values[:45]), (x[45:], values[45:]))

    def dense(units):
        return lambda: keras.Sequential([keras.layers.Dense(units)])

    def task(**fields):
        return Problem(**{"model": dense(2), "data": CLASSES, "loss": "crossentropy", "epochs": 1, **fields})

    def good():
        return task()

    def one_unit_for_two_classes():
        return task(model=dense(1))

    def labels_out_of_range():
        return task(data=((x[:45], labels[:45] * 4), (x[45:], labels[45:])))

    def negative_labels():
        return task(data=((x[:45], labels[:45] - 1), (x[45:], labels[45:])))

    def fractional_labels():
        return task(data=((x[:45], labels[:45] * 0.5), (x[45:], labels[45:])))

    def text_labels():
        return task(data=((x[:45], np.array(["cat", "dog"] * 22 + ["cat"])), (x[45:], labels[45:])))

    def wrong_input_shape():
        return task(model=lambda: keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]))

    def not_a_model():
        return task(model=lambda: "not a model")

    def no_loss():
        return Problem(model=dense(1), data=VALUES)

    def mae_with_crossentropy():
        return task(metrics=["mae"])

    def regression_outputs_mismatch():
        return task(model=dense(3), data=VALUES, loss="mse")

    def failing_metric():
        def broken(y, out):
            raise RuntimeError("this metric is broken")
        return task(metrics=[broken])

    def loss_without_gradient():
        return task(data=VALUES, loss=lambda y, out: tf.reduce_mean(y) + 0.0 * tf.stop_gradient(out))

    def nan_loss():
        return task(data=VALUES, loss=lambda y, out: out * float("nan"))
''')

REFUSED = [
    ("one_unit_for_two_classes", "model: outputs 1 value(s) per row", "2 units in the last layer"),
    ("labels_out_of_range", "model: outputs 2 value(s) per row", "labels 0..4 needs one logit per class: 5 units"),
    ("negative_labels", "data: loss='crossentropy' needs class labels 0, 1, ...", "hold -1"),
    ("fractional_labels", "data: loss='crossentropy' needs integer class labels", "0.5"),
    ("text_labels", "data: the train targets must be numbers", "dtype <U3"),
    ("wrong_input_shape", "model: ", "expected axis -1 of input shape to have value 5"),
    ("not_a_model", "model must return a keras.Model", "returned str"),
    ("no_loss", "loss is required with your own data", "'crossentropy' for class labels"),
    ("mae_with_crossentropy", "metrics: 'mae' compares real-valued targets", "use ['accuracy']"),
    ("regression_outputs_mismatch", "model: outputs rows of shape (3,)", "targets' rows have shape (1,)"),
    ("failing_metric", "metrics: broken fails on one batch", "this metric is broken"),
    ("loss_without_gradient", "loss: ", "no gradient reaches them"),
    ("nan_loss", "loss: ", "a finite number is expected"),
]


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    (tmp_path / "preflight_tasks.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "preflight_tasks"


def _invoke(command, task, out):
    args = {"compare": ["--optimizers", "sgd", "--lrs", "0.1", "--seeds", "1"],
            "sweep": ["--optimizer", "sgd", "--lrs", "0.1", "--seeds", "1"],
            "tune": ["--optimizers", "sgd", "--trials", "1"],
            "diagnose": ["--optimizer", "sgd", "--lr", "0.1"]}[command]
    return CliRunner().invoke(app, [command, "--task", task, *args, "--out", str(out)])


def _one_line(result):
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else "\n".join(lines)


@pytest.mark.parametrize(("attribute", "field", "expected"), REFUSED)
def test_a_problem_that_cannot_train_is_refused_in_one_line_before_anything_is_written(tasks, tmp_path, attribute,
                                                                                       field, expected):
    out = tmp_path / "runs"
    result = _invoke("compare", f"{tasks}:{attribute}", out)
    assert result.exit_code == 2, result.output
    line = _one_line(result)
    assert line.startswith("error: ") and field in line and expected in line, line
    assert not out.exists()  # no records, claims, commands.txt or report folder


@pytest.mark.parametrize("command", ["compare", "sweep", "tune", "diagnose"])
def test_every_training_command_checks_before_it_writes(tasks, tmp_path, command):
    out = tmp_path / "runs"
    assert _invoke(command, f"{tasks}:good", out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert any(p.suffix == ".json" for p in before)
    assert (out / "commands.txt").exists() == (command != "diagnose")  # diagnose logs no command line
    result = _invoke(command, f"{tasks}:one_unit_for_two_classes", out)
    assert result.exit_code == 2 and "model: outputs 1 value(s) per row" in _one_line(result), result.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before  # nothing added or changed


def test_builtin_problems_keep_their_loss_and_metric():
    assert problems.get("iris").loss == "crossentropy" and problems.get("iris").metrics == ("accuracy",)
    assert problems.get("boston").metrics == ("mae",) and problems.get("quadratic_deep").metrics == ()


@pytest.mark.parametrize(("loss", "metrics"), [("crossentropy", ("accuracy",)), ("mse", ("mae",)),
                                               ("mean_output", ()), (lambda y, out: out, ())])
def test_metric_defaults_fit_the_loss(loss, metrics):
    data = ((np.zeros((8, 2), "float32"), np.zeros(8, "int64")),) * 2
    assert Problem(model="linear", data=data, loss=loss).metrics == metrics
    assert Problem(model="linear", data=data, loss=loss, metrics=[]).metrics == []  # the user's choice stays


def test_a_builtin_name_without_data_or_loss_is_refused_before_training():
    own = Problem(name="own", model="linear")
    with pytest.raises(ValueError, match="data: problem 'own' has none"):
        problems.load(own)
    with pytest.raises(ValueError, match="loss: problem 'iris' has none"):
        loop.preflight(Problem(name="iris", model="linear", outputs=3), problems.load(problems.get("iris")))


def test_preflight_passes_every_builtin_problem_without_a_download():
    for name in ("iris", "digits", "diabetes", "quadratic", "quadratic_deep", "two_d_rosenbrock"):
        problem = problems.get(name)
        loop.preflight(problem, problems.load(problem))
