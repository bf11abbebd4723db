"""Training loops against a float64 NumPy transcription of gradient descent, divergence, pairing."""

import numpy as np
import pytest

import optimlab
from optimlab.lab.training import problems
from optimlab.lab.training.problems import models
from optimlab.lab.training.runner import loop

QUAD = problems.get("quadratic")  # linear model + MSE: the gradient has a closed form


def _numpy_gd(x, y, w, b, lr, orders):
    """Float64 reference: w <- w - lr * dL/dw for L = mean((x w + b - y)^2), per batch in ``orders``."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    w, b = w.astype(np.float64), b.astype(np.float64)
    epoch_losses = []
    for batches in orders:
        losses = []
        for rows in batches:
            xb, yb = x[rows], y[rows]
            residual = xb @ w + b - yb
            losses.append(np.mean(residual**2))
            w = w - lr * 2 * xb.T @ residual / len(rows)
            b = b - lr * 2 * residual.mean(axis=0)
        epoch_losses.append(np.mean(losses))
    return w, b, np.array(epoch_losses)


def _initial_weights(data, seed):
    w, b = models.build(QUAD, data.x_train.shape[1], seed).get_weights()
    return w, b


def test_full_batch_gradient_descent_matches_numpy_over_150_epochs():
    data = problems.load(QUAD)
    w0, b0 = _initial_weights(data, seed=3)
    result = loop.train(QUAD, data, optimlab.get("gd", learning_rate=0.3), seed=3, epochs=150,
                            batch_size=None, eval_every=150)
    n = len(data.x_train)
    _, _, ref_losses = _numpy_gd(data.x_train, data.y_train, w0, b0, 0.3, [[np.arange(n)]] * 150)
    assert result.status == "ok"
    assert result.history["train_loss"].iloc[-1] == pytest.approx(ref_losses.mean(), rel=1e-4)
    final_w, final_b = _numpy_gd(data.x_train, data.y_train, w0, b0, 0.3, [[np.arange(n)]] * 150)[:2]
    ref_valid = np.mean((data.x_valid @ final_w + final_b - data.y_valid) ** 2)
    assert result.final["valid_loss"] == pytest.approx(ref_valid, rel=1e-4)


def test_minibatch_sgd_follows_the_seeded_order_and_matches_numpy():
    data = problems.load(QUAD)
    w0, b0 = _initial_weights(data, seed=5)
    epochs, batch = 12, 32
    result = loop.train(QUAD, data, optimlab.get("gd", learning_rate=0.05), seed=5, epochs=epochs,
                            batch_size=batch, eval_every=1)
    orders = loop.epoch_orders(np.random.default_rng(5), len(data.x_train), batch, epochs)
    assert orders.shape == (epochs, len(data.x_train) // batch, batch)  # the remainder is dropped
    _, _, ref_losses = _numpy_gd(data.x_train, data.y_train, w0, b0, 0.05, orders)
    np.testing.assert_allclose(result.history["train_loss"].to_numpy()[1:], ref_losses, rtol=2e-4)


def test_history_columns_and_time_to_target():
    problem = problems.get("iris")
    result = loop.train(problem, problems.load(problem), optimlab.get("adam", learning_rate=0.05), seed=0,
                            epochs=40, eval_every=4, target=0.6)
    h = result.history
    assert list(h.columns) == ["epoch", "train_loss", "valid_loss", "valid_accuracy", "test_loss",
                               "test_accuracy", "wall_time", "train_loss_max", "peak_epoch", "grad_norm",
                               "update_ratio", "dead_units"]
    assert h["epoch"].tolist() == list(range(0, 41, 4))
    assert h["wall_time"].is_monotonic_increasing
    hit = result.time_to_target
    first = h[h["valid_loss"] <= 0.6].iloc[0]
    assert hit["epoch"] == first["epoch"] and hit["seconds"] == pytest.approx(first["wall_time"])


def test_divergence_stops_early_and_is_recorded():
    problem = problems.get("diabetes")
    result = loop.train(problem, problems.load(problem), optimlab.get("gd", learning_rate=10.0), seed=0,
                            epochs=200, eval_every=10)
    assert result.status == "diverged"
    assert result.final["epochs_run"] < 200
    assert result.time_to_target["epoch"] is None


def test_seed_pairs_initial_weights_across_optimizers():
    problem = problems.get("wine")
    data = problems.load(problem)
    runs = [loop.train(problem, data, optimlab.get(name, learning_rate=0.01), seed=1, epochs=2, eval_every=1)
            for name in ("gd", "adam")]
    assert runs[0].history["valid_loss"].iloc[0] == runs[1].history["valid_loss"].iloc[0]
    other = loop.train(problem, data, optimlab.get("gd", learning_rate=0.01), seed=2, epochs=2, eval_every=1)
    assert other.history["valid_loss"].iloc[0] != runs[0].history["valid_loss"].iloc[0]


def test_mlp_is_the_seed_model():
    model = models.MLP([4, 3], 1)
    assert model(np.zeros((5, 13), "float32")).shape == (5, 1)
    assert [layer.units for layer in model.feature_extractor.layers] == [4, 3]


def test_keras_fit_gives_the_same_columns():
    problem = problems.get("iris")
    h = loop.fit(problem, problems.load(problem), optimlab.get("adam", learning_rate=0.05), seed=0, epochs=3)
    assert list(h.columns) == ["epoch", "train_loss", "valid_loss", "valid_accuracy", "test_loss",
                               "test_accuracy", "wall_time"]
    assert h["epoch"].tolist() == [1, 2, 3]
    assert h["valid_loss"].iloc[-1] < h["valid_loss"].iloc[0]


def test_bad_batch_size():
    problem = problems.get("iris")
    with pytest.raises(ValueError, match="batch_size"):
        loop.train(problem, problems.load(problem), optimlab.get("gd"), seed=0, epochs=1, batch_size=10_000)


def test_a_hyperparameter_that_changes_the_slots_gets_its_own_program():
    """SGD keeps momentum slots only for momentum != 0: a program traced with them must not be
    reused without them (the README's Boston housing chapter commands, run in one process, hit a zip() error)."""
    problem = problems.get("diabetes")
    data = problems.load(problem)

    def run(momentum):
        r = loop.train_named(problem, data, "sgd", {"learning_rate": 0.01, "momentum": momentum}, 1, epochs=3,
                             batch_size=64, eval_every=1)
        return r.history.drop(columns="wall_time")

    loop._PROGRAMS.clear()
    loop._FRESH.clear()
    fresh = run(0.0)
    loop._PROGRAMS.clear()
    loop._FRESH.clear()
    run(0.9)
    assert run(0.0).equals(fresh)
    with_momentum = loop.train(problem, data, optimlab.get("sgd", learning_rate=0.01, momentum=0.9), seed=1,
                               epochs=3, batch_size=64, eval_every=1)
    plain = loop.train(problem, data, optimlab.get("sgd", learning_rate=0.01), seed=1, epochs=3, batch_size=64,
                       eval_every=1)
    assert plain.history.drop(columns="wall_time").equals(fresh)
    assert not with_momentum.history.drop(columns="wall_time").equals(fresh)


def test_runs_reuse_one_traced_program_and_match_a_fresh_one():
    """Issue 17 item 1: seeds, learning rates and variable-held hyperparameters share one trace, exactly."""
    problem = problems.get("diabetes")
    data = problems.load(problem)
    for batch in (None, 64):
        def run(lr, seed, momentum):
            r = loop.train(problem, data, optimlab.get("sgd", learning_rate=lr, momentum=momentum), seed=seed,
                           epochs=6, batch_size=batch, eval_every=2)
            return r.history.drop(columns="wall_time")

        loop._PROGRAMS.clear()
        fresh = run(0.05, 2, 0.5)
        loop._PROGRAMS.clear()
        traces = loop.TRACES
        run(0.01, 1, 0.9)
        reused = run(0.05, 2, 0.5)
        assert loop.TRACES == traces + 1  # the second run reused the first one's program
        assert reused.equals(fresh)  # bit for bit what a new program gives
        for _ in range(2):  # the lab's path: the second call copies the cached fresh optimizer state
            named = loop.train_named(problem, data, "sgd", {"learning_rate": 0.05, "momentum": 0.5}, 2, epochs=6,
                                     batch_size=batch, eval_every=2)
            run(0.01, 3, 0.9)
            assert named.history.drop(columns="wall_time").equals(fresh)
        loop.train(problem, data, optimlab.get("sgd", learning_rate=0.05, clipnorm=1.0),
                   seed=2, epochs=2, batch_size=batch)
        assert loop.TRACES == traces + 2  # clipping is not a variable: a new trace
    iris = problems.get("iris")  # the same optimizer settings on another model: its own fresh state
    other = loop.train_named(iris, problems.load(iris), "sgd", {"learning_rate": 0.05, "momentum": 0.5}, 2, epochs=3)
    assert other.status == "ok" and len(other.history) == 4
