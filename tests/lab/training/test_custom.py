"""Your own problem and optimizer: a Keras model builder on arrays, tf.data or a callable, through
compare, tune, report and the command line; clear errors for what is missing."""

import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from optimlab.cli import app
from optimlab.lab import Problem, factory
from optimlab.lab.training import problems, records, report
from optimlab.lab.training.problems import custom
from optimlab.lab.training.runner import experiments, loop, tuning


def _arrays(n=240, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int64")
    return (x[:180], y[:180]), (x[180:], y[180:])


def build_net():
    return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])


def _problem(**overrides):
    settings = dict(name="toy", model=build_net, data=_arrays(), loss="crossentropy", metrics=["accuracy"],
                    epochs=3, batch_size=30)
    return Problem(**{**settings, **overrides})


def test_own_model_runs_through_compare_tune_and_report_with_paired_seeds(tmp_path):
    runner = experiments.Runner(tmp_path, _problem())
    result = experiments.compare(runner, ["sgd", "keras.optimizers:Adam"], seeds=2, learning_rates=[0.1])
    assert set(result) == {"sgd", "keras.optimizers:Adam"}
    recs = records.load_all(tmp_path)
    assert {r["spec"]["problem"] for r in recs} == {"toy"}
    assert recs[0]["problem"]["model"].endswith(":build_net") and recs[0]["problem"]["data"] == "arrays"
    # paired seeds: every optimizer starts from the same weights (same initial loss per seed)
    start = {}
    for r in recs:
        start.setdefault(r["spec"]["seed"], set()).add(round(r["history"]["train_loss"][0], 6))
    assert all(len(v) == 1 for v in start.values()) and len(start) == 2
    again = experiments.Runner(tmp_path, _problem())
    experiments.compare(again, ["sgd", "keras.optimizers:Adam"], seeds=2, learning_rates=[0.1])
    assert again.computed == 0  # resumed from the records
    studies = tuning.tune(again, ["keras.optimizers:SGD"], trials=2, sampler="random", lr_range=(1e-3, 1e-1))
    assert studies["keras.optimizers:SGD"]["trials"] == 2
    html = report.write_report(tmp_path).read_text()
    assert "keras.optimizers:Adam" in html and "Naive baseline (majority class" in html


def test_keras_loss_object_gives_the_same_training_as_the_named_loss():
    named, own = _problem(), _problem(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    histories = [loop.train(p, problems.load(p), keras.optimizers.SGD(0.1), seed=4, epochs=3).history
                 for p in (named, own)]
    np.testing.assert_allclose(histories[0]["test_loss"], histories[1]["test_loss"], rtol=1e-6)


def test_data_as_tf_data_or_a_callable_gives_the_same_arrays():
    (x, y), (xt, yt) = _arrays()
    base = problems.load(_problem())
    batched = {"train": tf.data.Dataset.from_tensor_slices((x, y)).batch(64),
               "test": tf.data.Dataset.from_tensor_slices((xt, yt))}
    for data in (batched, lambda: batched, (x, y, xt, yt), lambda: ((x, y), (xt, yt))):
        loaded = problems.load(_problem(data=data))
        np.testing.assert_array_equal(loaded.x_train, base.x_train)
        np.testing.assert_array_equal(loaded.y_valid, base.y_valid)
        np.testing.assert_array_equal(loaded.x_test, base.x_test)
    assert len(base.x_valid) == 36 and base.y_train.dtype == np.int32


@pytest.mark.parametrize(("overrides", "error", "message"), [
    ({"model": "resnet"}, ValueError, "model must be one of"),
    ({"model": 3}, TypeError, "model must be a function"),
    ({"loss": "hinge"}, ValueError, "loss must be one of"),
    ({"metrics": "accuracy"}, TypeError, "metrics must be a list"),
    ({"metrics": ["f1"]}, ValueError, "metrics must hold names"),
    ({"epochs": 0}, ValueError, "epochs must be a positive integer"),
    ({"batch_size": -2}, ValueError, "batch_size must be a positive integer"),
    ({"mixup": -1.0}, ValueError, "mixup must be a finite number >= 0"),
    ({"label_smoothing": 0.1, "loss": "mse", "metrics": ["mae"]}, ValueError,
     "label_smoothing needs loss='crossentropy'"),
    ({"loss": None}, ValueError, "loss is required with your own data"),
    ({"metrics": ["mae"]}, ValueError, "metrics: 'mae' compares real-valued targets"),
    ({"loss": "mse", "metrics": ["accuracy"]}, ValueError, "metrics: 'accuracy' needs class labels"),
    ({"loss": "mean_output", "metrics": ["mae"]}, ValueError, "metrics: 'mae' compares"),
    ({"name": "a/b"}, ValueError, "name must be a non-empty string"),
])
def test_bad_problem_fields_are_named(overrides, error, message):
    with pytest.raises(error, match=message):
        _problem(**overrides)


@pytest.mark.parametrize(("data", "message"), [
    ({"train": _arrays()[0]}, "needs keys 'train' and 'test'"),
    (tf.data.Dataset.from_tensor_slices(_arrays()[0]), "has no test split"),
    (((np.zeros((5, 2)), np.zeros(4)), _arrays()[1]), "train split has 5 inputs but 4 targets"),
    ({"train": tf.data.Dataset.from_tensor_slices(_arrays()[0]).repeat(), "test": _arrays()[1]}, "is infinite"),
    ("data.csv", "data must be"),
])
def test_missing_or_bad_data_is_named(data, message):
    with pytest.raises(ValueError, match=message):
        problems.load(_problem(data=data))


def test_a_builder_that_returns_no_model_is_named(tmp_path):
    problem = _problem(model=lambda: "not a model")
    runner = experiments.Runner(tmp_path, problem)
    with pytest.raises(TypeError, match="model must return a keras.Model"):
        runner.run("sgd", {"learning_rate": 0.1}, 0)
    assert not list(tmp_path.iterdir())  # refused before any records folder or claim


def test_bad_optimizer_and_task_paths_are_named():
    with pytest.raises(ValueError, match="cannot import module 'no_such_module'"):
        factory.check_names(["no_such_module:Adam"])
    with pytest.raises(TypeError, match="must be a keras.optimizers.Optimizer subclass"):
        factory.check_names(["numpy:ndarray"])
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        problems.get("optimlab:nope")
    with pytest.raises(TypeError, match="must be an optimlab.lab.Problem or a function returning one"):
        problems.get("numpy:pi")


MODULE = textwrap.dedent('''
    import keras
    import numpy as np
    from optimlab.lab import Problem, factory

    def build():
        return keras.Sequential([keras.layers.Dense(1)])

    def regression():
        rng = np.random.default_rng(1)
        x = rng.normal(size=(100, 3)).astype("float32")
        y = x @ np.array([1.0, -2.0, 0.5], "float32")
        return Problem(model=build, data=((x[:80], y[:80]), (x[80:], y[80:])), loss="mse", epochs=4, batch_size=16)

    class HalfSGD(keras.optimizers.SGD):
        """An optimizer of one's own: SGD at half the learning rate."""

        def __init__(self, learning_rate=0.02, **kwargs):
            super().__init__(learning_rate=learning_rate / 2, **kwargs)
''')


def test_cli_takes_own_task_and_optimizer_classes(tmp_path, monkeypatch):
    (tmp_path / "mypkg_problems.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "runs"
    cli = CliRunner()
    result = cli.invoke(app, ["compare", "--task", "mypkg_problems:regression", "--optimizers",
                              "sgd,mypkg_problems:HalfSGD", "--lrs", "default", "--seeds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = records.load_all(out)
    assert {r["spec"]["problem"] for r in recs} == {"regression"}
    assert {r["spec"]["optimizer"] for r in recs} == {"sgd", "mypkg_problems:HalfSGD"}
    assert not [p for p in out.rglob("*") if ":" in p.name]  # folder names valid on Windows
    own = [r for r in recs if r["spec"]["optimizer"] == "mypkg_problems:HalfSGD"]
    assert own[0]["spec"]["hyperparameters"]["learning_rate"] == 0.02  # the class's own default
    assert cli.invoke(app, ["report", str(out)]).exit_code == 0
    bad = cli.invoke(app, ["compare", "--task", "mypkg_problems:nothing", "--out", str(out)])
    assert bad.exit_code == 2 and "has no attribute 'nothing'" in bad.output
