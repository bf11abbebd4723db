"""LazyAdam: dense = keras.optimizers.Adam; sparse = a NumPy lazy-row transcription, over 120 steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimlab

STEPS = 120
ROWS, COLS = 6, 3


def table_grad(x, rows):
    return (x[rows] - 0.5) + 0.2 * np.cos(3 * x[rows])


def pick_rows(step):
    """Rows looked up at ``step``: a fixed pseudo-random pattern with duplicates; row 5 is never used."""
    rng = np.random.default_rng(step)
    return rng.integers(0, ROWS - 1, size=3)


def lazy_reference(x, lr, b1=0.9, b2=0.999, eps=1e-7, steps=STEPS):
    m, v = np.zeros_like(x), np.zeros_like(x)
    for t in range(1, steps + 1):
        rows = pick_rows(t)
        g = np.zeros_like(x)
        np.add.at(g, rows, table_grad(x, rows))
        idx = np.unique(rows)
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        m[idx] = b1 * m[idx] + (1 - b1) * g[idx]
        v[idx] = b2 * v[idx] + (1 - b2) * g[idx] ** 2
        x[idx] = x[idx] - lr_t * m[idx] / (np.sqrt(v[idx]) + eps)
    return x


def initial_table():
    return np.linspace(-1.0, 2.0, ROWS * COLS).reshape(ROWS, COLS)


def test_sparse_updates_are_lazy_and_match_reference():
    x = tf.Variable(initial_table())
    opt = optimlab.LazyAdam(learning_rate=0.02)
    for t in range(1, STEPS + 1):
        rows = pick_rows(t)
        values = tf.constant(table_grad(x.numpy(), rows))
        opt.apply_gradients([(tf.IndexedSlices(values, tf.constant(rows), tf.constant([ROWS, COLS])), x)])
    expected = lazy_reference(initial_table(), lr=0.02)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(x.numpy()[ROWS - 1], initial_table()[ROWS - 1])
    np.testing.assert_array_equal(opt.get_slot(x, "m").numpy()[ROWS - 1], 0.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_dense_matches_keras_adam(dtype):
    start = initial_table().astype(dtype)
    ours, theirs = tf.Variable(start), tf.Variable(start)
    opt = optimlab.LazyAdam(learning_rate=0.02, beta_2=0.99)
    ref = keras.optimizers.Adam(learning_rate=0.02, beta_2=0.99)
    for _ in range(STEPS):
        for var, o in ((ours, opt), (theirs, ref)):
            g = tf.constant(np.sin(var.numpy()) + 0.3, dtype=dtype)
            o.apply_gradients([(g, var)])
    # Keras keeps learning_rate and the betas in float32 even for float64 variables.
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-6)


def test_embedding_model_fit_touches_only_looked_up_rows():
    model = keras.Sequential([keras.Input((2,), dtype="int32"), keras.layers.Embedding(10, 4), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.compile(optimizer=optimlab.LazyAdam(learning_rate=0.01), loss="mse")
    before = model.layers[0].embeddings.numpy().copy()
    model.fit(np.array([[1, 2], [2, 3]]), np.ones((2, 1)), epochs=3, verbose=0)
    after = model.layers[0].embeddings.numpy()
    assert not np.allclose(after[[1, 2, 3]], before[[1, 2, 3]])
    np.testing.assert_array_equal(after[[0, 4, 5, 6, 7, 8, 9]], before[[0, 4, 5, 6, 7, 8, 9]])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="beta_1"):
        optimlab.LazyAdam(beta_1=-0.5)


def test_registered_as_lazy_sparse():
    assert optimlab.info("lazy_adam").has("lazy_sparse")
    opt = optimlab.LazyAdam(learning_rate=0.3, epsilon=1e-5)
    assert optimlab.LazyAdam.from_config(opt.get_config()).get_config() == opt.get_config()
