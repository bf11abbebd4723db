"""The techniques of the article on TensorFlow optimizers as problem options: batch normalization, mixup, label smoothing, schedules."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from scipy import stats
from typer.testing import CliRunner

import optimlab
from optimlab.cli import app
from optimlab.lab.training import problems, records
from optimlab.lab.training.problems import models
from optimlab.lab import factory
from optimlab.lab.training.runner import experiments, loop, program


def test_batchnorm_puts_batch_normalization_in_the_mlp_and_cnn_and_trains_its_statistics():
    for name in ("wine", "digits"):
        problem = dataclasses.replace(problems.get(name), batchnorm=True)
        data = problems.load(problem)
        model = models.build(problem, data.x_train.shape[1:], seed=0)
        norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
        assert len(norms) == len(problem.hidden)
    problem = dataclasses.replace(problems.get("wine"), batchnorm=True)
    result = loop.train(problem, problems.load(problem), optimlab.get("adam", learning_rate=0.01), seed=0, epochs=20)
    assert result.status == "ok" and result.final["valid_accuracy"] > 0.8


def test_batchnorm_on_a_builder_without_the_argument_is_named():
    problem = problems.Problem(name="own", model=lambda: keras.Sequential([keras.layers.Dense(1)]), batchnorm=True)
    with pytest.raises(ValueError, match="batchnorm=True needs a model function that takes batchnorm"):
        models.build(problem, (3,), seed=0)


def test_label_smoothing_loss_matches_numpy():
    problem = dataclasses.replace(problems.get("wine"), label_smoothing=0.2)
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(16, 3)).astype("float32")
    labels = rng.integers(0, 3, 16).astype("int32")
    targets = np.full((16, 3), 0.2 / 3) + 0.8 * np.eye(3)[labels]
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = np.mean(-(targets * log_p).sum(axis=1))
    assert float(loop.loss_fn(problem, training=True)(labels, logits)) == pytest.approx(expected, rel=1e-5)
    plain = np.mean(-log_p[np.arange(16), labels])
    assert float(loop.loss_fn(problem)(labels, logits)) == pytest.approx(plain, rel=1e-5)  # evaluation: plain


def test_mixup_weights_follow_beta_and_are_paired_by_seed():
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build([tf.Variable(0.0)])
    draws = []
    for _ in range(400):
        draws.append(float(program._mixup_weight(optimizer, 0.4, 7)))
        optimizer.iterations.assign_add(1)
    assert stats.kstest(draws, stats.beta(0.4, 0.4).cdf).pvalue > 0.01
    optimizer.iterations.assign(0)
    assert float(program._mixup_weight(optimizer, 0.4, 7)) == draws[0]


def test_mixup_changes_training_and_enters_the_run_key(tmp_path):
    plain = experiments.Runner(tmp_path, "iris", epochs=5)
    mixed = experiments.Runner(tmp_path, "iris", epochs=5, mixup=0.4)
    a, b = plain.run("sgd", {"learning_rate": 0.1}, 0), mixed.run("sgd", {"learning_rate": 0.1}, 0)
    assert "mixup" not in a["spec"] and b["spec"]["mixup"] == 0.4 and a["key"] != b["key"]
    assert a["history"]["train_loss"][0] == b["history"]["train_loss"][0]  # same start (paired)
    assert a["final"]["train_loss"] != b["final"]["train_loss"]


@pytest.mark.parametrize(("name", "args", "reference"), [
    ("CosineDecay", {"decay_steps": 10}, lambda step: 0.5 * (1 + np.cos(np.pi * min(step, 10) / 10))),
    ("ExponentialDecay", {"decay_steps": 4, "decay_rate": 0.5}, lambda step: 0.5 ** (step / 4)),
])
def test_schedule_per_run_follows_the_keras_formula(name, args, reference):
    """SGD on f(w) = w (gradient 1): after k steps w moved by the sum of the first k learning rates."""
    optimizer = factory.make_optimizer("sgd", {"learning_rate": 0.1}, (name, args))
    w = tf.Variable(0.0)
    for _ in range(12):
        optimizer.apply([tf.constant(1.0)], [w])
    assert float(w) == pytest.approx(-0.1 * sum(reference(k) for k in range(12)), rel=1e-5)


def test_schedule_from_optimlab_and_the_command_line(tmp_path):
    factory.make_optimizer("adam", {"learning_rate": 0.01}, ("WarmupDecay", {"warmup_steps": 2, "decay_steps": 8}))
    with pytest.raises(ValueError, match="unknown schedule"):
        experiments.Runner(tmp_path, "iris", schedule=("Cosine", {}))
    with pytest.raises(ValueError, match="batchnorm needs hidden layers"):
        experiments.Runner(tmp_path, "iris", batchnorm=True)
    bad = CliRunner().invoke(app, ["sweep", "--task", "iris", "--option", "warmup=3", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--option takes KEY=VALUE" in bad.output
    good = CliRunner().invoke(app, ["sweep", "--task", "wine", "--optimizer", "sgd", "--lrs", "0.1", "--epochs", "3",
                                    "--option", "schedule=CosineDecay:decay_steps=30", "--option", "label_smoothing=0.1",
                                    "--option", "batchnorm=true", "--out", str(tmp_path / "ok")])
    assert good.exit_code == 0, good.output
    (record,) = records.load_all(tmp_path / "ok")
    assert record["spec"]["schedule"] == {"name": "CosineDecay", "args": {"decay_steps": 30}}
    assert record["spec"]["label_smoothing"] == 0.1 and record["spec"]["batchnorm"] is True


def test_one_mixup_step_matches_numpy():
    """lambda x_i + (1 - lambda) x_rev(i), the loss mixed the same way, one gradient-descent step in float64."""
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    model = keras.Sequential([keras.layers.Dense(1)])
    model(x)
    w, b = (v.astype(np.float64) for v in model.get_weights())
    optimizer = optimlab.get("gd", learning_rate=0.1)
    optimizer.build(model.trainable_variables)
    lam = float(program._mixup_weight(optimizer, 0.4, 3))
    program._train_step(model, optimizer, loop.loss_fn("mse"), tf.constant(x), tf.constant(y), 0.4, 3)
    mixed = lam * x + (1 - lam) * x[::-1]
    out = mixed @ w + b
    g_out = (lam * 2 * (out - y) + (1 - lam) * 2 * (out - y[::-1])) / len(x)
    np.testing.assert_allclose(model.get_weights()[0], w - 0.1 * mixed.T @ g_out, rtol=1e-5)
    np.testing.assert_allclose(model.get_weights()[1], b - 0.1 * g_out.sum(0), rtol=1e-5)
