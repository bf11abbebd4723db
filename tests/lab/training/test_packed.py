"""Packed runs (runner/packed.py): each run of a pack has the record of the same run trained alone.

The reference is the one-run-per-program path (``loop.train_named``), whose
operations are Keras's own Dense layers and the optimizer on unstacked
variables. On the lab's diabetes MLP the losses, evaluations,
``train_loss_max``, dead units and statuses are equal bit for bit with
TensorFlow's oneDNN kernels off (``TF_ENABLE_ONEDNN_OPTS=0``); with them on
(TensorFlow's default on x86 Linux) oneDNN may take another matrix kernel for
the stacked shape on some CPUs (an AMD EPYC with AVX-512 does), and a loss then
differs in its last bits (within a relative 1e-5, a diverging run included). The bit-for-bit tests run
here as they are when oneDNN is off, and in a process of their own with oneDNN
off otherwise. On other shapes (minibatches of 32, a user's three-layer model)
a loss can differ in its last bit where Eigen picks another kernel for another
shape (within a relative 1e-6). The gradient norm and update ratios (the same
squares summed in another order) agree within a relative 1e-5.
"""

import os
import platform
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from optimlab.lab import Problem, factory
from optimlab.lab.training import problems, records
from optimlab.lab.training.runner import experiments, loop, packed

NORMS = ("grad_norm", "update_ratio")  # the same squares summed in another order
RTOL = 1e-5
# TensorFlow's oneDNN kernels, on by default on x86 Linux, may pick another kernel for a stacked shape.
ONEDNN = platform.machine().lower() in ("x86_64", "amd64") and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
EXACT = 1e-5 if ONEDNN else 0.0  # the tolerance of the tests that are bit for bit without oneDNN


def _assert_same_run(together, alone, rtol=0.0):
    """Equal records but ``wall_time``; ``rtol``: for every value (0: bit for bit, but the norms' RTOL)."""
    assert together.status == alone.status
    a, b = together.history, alone.history
    assert list(a.columns) == list(b.columns) and len(a) == len(b)
    for column in a.columns:
        if column == "wall_time":
            continue
        if column in NORMS or rtol:
            np.testing.assert_allclose(a[column], b[column], rtol=max(rtol, RTOL), err_msg=column)
        else:
            assert np.array_equal(a[column].to_numpy(), b[column].to_numpy(), equal_nan=True), column
    assert together.time_to_target["epoch"] == alone.time_to_target["epoch"]
    assert together.diagnostics["baseline"] == alone.diagnostics["baseline"]
    assert together.diagnostics["layers"].keys() == alone.diagnostics["layers"].keys()
    for layer, ratios in together.diagnostics["layers"].items():
        np.testing.assert_allclose(ratios, alone.diagnostics["layers"][layer], rtol=RTOL, err_msg=layer)


def _diabetes():
    problem = problems.get("diabetes")
    return problem, problems.load(problem)


CASES = [  # optimizer, shared settings, learning rates (the middle one diverges)
    ("sgd", {}, [1e-3, 1e4, 3e-3]),
    ("momentum", {}, [1e-4, 1e4, 5e-4]),
    ("adam", {}, [1e-2, 1e30, 1e-1]),
    ("adamw", {"weight_decay": 0.05, "clipvalue": 50.0}, [1e-2, 1e30, 3e-2]),
]


@pytest.mark.parametrize(("name", "settings", "lrs"), CASES, ids=[c[0] for c in CASES])
def test_a_pack_gives_each_run_its_record_alone_with_a_diverging_neighbour(name, settings, lrs):
    problem, data = _diabetes()
    hyper = [{**settings, "learning_rate": lr} for lr in lrs]
    seeds = [3, 1, 2]
    assert packed.reason(problem, data, name, hyper[0]) is None
    together = packed.train(problem, data, name, hyper, seeds, epochs=40, eval_every=4)
    alone = [loop.train_named(problem, data, name, h, s, epochs=40, eval_every=4) for h, s in zip(hyper, seeds)]
    assert [r.status for r in alone] == ["ok", "diverged", "ok"]  # the middle run stops, its neighbours go on
    for t, a in zip(together, alone):
        _assert_same_run(t, a, rtol=EXACT)


def test_minibatches_follow_each_runs_own_seed_and_padding_changes_nothing():
    problem = problems.get("classification")  # MLP, crossentropy, accuracy, batches of 32
    data = problems.load(problem)
    hyper = [{"learning_rate": lr} for lr in (0.05, 0.2)]
    together = packed.train(problem, data, "adam", hyper, [0, 5], epochs=3, eval_every=1, size=4)
    assert len(together) == 2
    for t, h, s in zip(together, hyper, [0, 5]):
        _assert_same_run(t, loop.train_named(problem, data, "adam", h, s, epochs=3, eval_every=1), rtol=1e-6)
    # the two runs saw different data orders: their histories differ
    assert together[0].history["train_loss"].iloc[1] != together[1].history["train_loss"].iloc[1]


@pytest.mark.parametrize("name", sorted(packed.ELEMENTWISE))
def test_every_packed_optimizer_updates_stacked_variables_as_each_run_alone(name):
    """The optimizers trusted to update value by value: five steps on [d, runs, h] equal each run's steps."""
    rng = np.random.default_rng(0)
    runs, lrs = 3, [1e-3, 3e-2, 0.2]
    start = [rng.normal(size=(4, 5)).astype("float32") for _ in range(runs)]
    grads = [[rng.normal(size=(4, 5)).astype("float32") for _ in range(runs)] for _ in range(5)]
    alone = []
    for k in range(runs):
        variable = tf.Variable(start[k])
        optimizer = factory.make_optimizer(name, {"learning_rate": lrs[k]})
        for step in grads:
            optimizer.apply([tf.constant(step[k])], [variable])
        alone.append(variable.numpy())
    stacked = tf.Variable(np.stack(start, axis=-2))
    optimizer = factory.make_optimizer(name, {"learning_rate": lrs[0]})
    optimizer._set_hyper("learning_rate", tf.Variable(np.array(lrs)[:, None]))
    optimizer.fused = False
    for step in grads:
        optimizer.apply([tf.constant(np.stack(step, axis=-2))], [stacked])
    for k in range(runs):
        np.testing.assert_allclose(stacked.numpy()[:, k], alone[k], rtol=1e-6, atol=1e-7, err_msg=f"run {k}")


def _sequential():
    return keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Activation("linear"),
                             keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])


def _tanh():
    return keras.Sequential([keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)])


class Doubled(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3)

    def call(self, x):
        return self.dense(x) * 2.0


def _toy(model):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 5)).astype("float32")
    y = (x[:, 0] - x[:, 2] > 0).astype("int64") + (x[:, 1] > 1).astype("int64")
    return Problem(name="toy_packed", model=model, data=((x[:160], y[:160]), (x[160:], y[160:])),
                   loss="crossentropy", metrics=["accuracy"], epochs=6, batch_size=None)


def test_a_users_sequential_model_is_packed_and_a_subclassed_one_falls_back_with_a_note(tmp_path):
    problem = _toy(_sequential)
    data = problems.load(problem)
    assert packed.reason(problem, data, "sgd", {"learning_rate": 0.1}) is None
    hyper = [{"learning_rate": 0.1}, {"learning_rate": 0.5}]
    for t, h, s in zip(packed.train(problem, data, "sgd", hyper, [0, 1], eval_every=1), hyper, [0, 1]):
        _assert_same_run(t, loop.train_named(problem, data, "sgd", h, s, eval_every=1), rtol=1e-6)

    other = _toy(Doubled)
    assert "model: a Doubled" in packed.reason(other, problems.load(other), "sgd", {"learning_rate": 0.1})
    notes = []
    runner = experiments.Runner(tmp_path, other, runs_per_program=4, on_note=notes.append)
    recs = experiments.sweep(runner, "sgd", [0.1, 0.5], seeds=2)
    assert len(recs) == 4 and all(r["status"] == "ok" for r in recs)
    assert notes == ["note: runs of sgd train one per program, not packed: model: a Doubled (only a "
                     "keras.Sequential or the lab's MLP of Dense and Activation layers is replicated)"]


def test_runner_records_are_the_same_packed_or_one_run_per_program(tmp_path):
    kept = {}
    for size in (1, 4):
        runner = experiments.Runner(tmp_path / str(size), "diabetes", epochs=30, runs_per_program=size)
        experiments.compare(runner, ["sgd", "adam"], seeds=3, learning_rates=[1e-3, 3e-2, 1e4])
        kept[size] = {r["key"]: r for r in records.load_all(tmp_path / str(size))}
    assert kept[1].keys() == kept[4].keys() and len(kept[1]) == 2 * (3 + 2)
    assert any(r["status"] == "diverged" for r in kept[4].values())
    for key, alone in kept[1].items():
        together = kept[4][key]
        assert together["status"] == alone["status"] and together["spec"] == alone["spec"]
        for column, values in alone["history"].items():
            if column == "wall_time":
                assert len(together["history"][column]) == len(values)
            elif column in NORMS:  # a record holds NaN as null
                np.testing.assert_allclose(np.array(together["history"][column], float), np.array(values, float),
                                           rtol=RTOL)
            elif EXACT:
                np.testing.assert_allclose(np.array(together["history"][column], float), np.array(values, float),
                                           rtol=EXACT, err_msg=column)
            else:
                assert np.array_equal(np.array(together["history"][column], float), np.array(values, float),
                                      equal_nan=True), column


@pytest.mark.skipif(not ONEDNN, reason="oneDNN is off in this process: the tests above are bit for bit already")
def test_bit_for_bit_with_onednn_off():
    """The bit-for-bit tests of this module, in a process with TensorFlow's oneDNN kernels off."""
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0")
    command = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", __file__, "-k",
               "diverging_neighbour or records_are_the_same"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_runs_per_program_must_be_a_positive_integer(tmp_path, bad):
    with pytest.raises(ValueError, match="runs_per_program must be a positive integer"):
        experiments.Runner(tmp_path, "diabetes", runs_per_program=bad)


def test_what_cannot_be_packed_says_why():
    problem, data = _diabetes()
    assert "clipnorm is set" in packed.reason(problem, data, "adam", {"learning_rate": 0.1, "clipnorm": 1.0})
    assert "'lamb' is not known to update value by value" in packed.reason(problem, data, "lamb", {})
    assert "activation 'tanh'" in packed.reason(_toy(_tanh), problems.load(_toy(_tanh)), "sgd", {})
    assert "schedule" in packed.reason(problem, data, "sgd", {}, schedule=("CosineDecay", {"decay_steps": 10}))
    cnn = problems.get("digits")
    assert "Conv2D" in packed.reason(cnn, problems.load(cnn), "sgd", {}) or "Reshape" in packed.reason(
        cnn, problems.load(cnn), "sgd", {})


@pytest.mark.parametrize("command", ["compare", "sweep", "tune"])
def test_the_flag_is_checked_before_anything_is_written(tmp_path, command):
    from typer.testing import CliRunner

    from optimlab.cli import app

    out = tmp_path / "out"
    result = CliRunner().invoke(app, [command, "--runs-per-program", "0", "--out", str(out)])
    assert result.exit_code == 2 and "--runs-per-program" in result.output and "greater than or equal to 1" in result.output
    assert not out.exists()
