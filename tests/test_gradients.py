"""Gradient processing: order and refusal rules of Keras 2's OptimizerV2.

The reference is ``tf_keras.optimizers.legacy.SGD`` (Keras 2) on the same inputs:
with learning rate 1 and no momentum, ``-delta`` of each variable is exactly the
processed gradient.
"""

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import gradients as gradient_ops

tf_keras = pytest.importorskip("tf_keras")

RNG = np.random.default_rng(7)
VALUES = [RNG.normal(size=(3, 2)) * 3, RNG.normal(size=(4,)) * 0.2]
GRADS = [RNG.normal(size=(3, 2)) * 4, RNG.normal(size=(4,)) * 0.5]


def scale_by(factor):
    def transform(grads_and_vars):
        return [(g * factor, v) for g, v in grads_and_vars]

    return transform


def shift_first(grads_and_vars):
    (g0, v0), *rest = grads_and_vars
    return [(g0 + 1.0, v0)] + list(rest)


def processed(make_opt, steps=3):
    """``-delta`` of each variable after applying GRADS with ``make_opt()`` at lr=1, ``steps`` times."""
    variables = [tf.Variable(v, dtype=tf.float32) for v in VALUES]
    opt = make_opt()
    for _ in range(steps):
        opt.apply_gradients([(tf.constant(g, tf.float32), v) for g, v in zip(GRADS, variables)])
    return [(v0 - v.numpy()) / steps for v0, v in zip(VALUES, variables)]


CONFIGS = {
    "clipvalue": {"clipvalue": 0.7},
    "clipnorm": {"clipnorm": 1.5},
    "global_clipnorm": {"global_clipnorm": 2.0},
    "clipvalue+clipnorm": {"clipvalue": 0.7, "clipnorm": 1.0},
    "clipvalue+global_clipnorm": {"clipvalue": 0.7, "global_clipnorm": 1.0},
    "transformers": {"gradient_transformers": [scale_by(0.5), shift_first]},
    "aggregator+transformers": {"gradient_aggregator": scale_by(3.0), "gradient_transformers": [shift_first, scale_by(0.5)]},
    "aggregator+clipnorm": {"gradient_aggregator": scale_by(10.0), "clipnorm": 2.0},
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_processing_matches_keras2(config):
    kwargs = CONFIGS[config]
    ours = processed(lambda: optimlab.GradientDescent(learning_rate=1.0, **kwargs))
    keras2 = processed(lambda: tf_keras.optimizers.legacy.SGD(learning_rate=1.0, **kwargs))
    for a, b in zip(ours, keras2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    untouched = processed(lambda: optimlab.GradientDescent(learning_rate=1.0))
    assert any(not np.allclose(a, b) for a, b in zip(ours, untouched)), "the configuration must change the gradients"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"clipnorm": 1.0, "global_clipnorm": 1.0},
        {"clipvalue": 1.0, "gradient_transformers": [shift_first]},
        {"clipnorm": 1.0, "gradient_transformers": [shift_first]},
        {"global_clipnorm": 1.0, "gradient_transformers": [shift_first]},
    ],
    ids=["clipnorm+global_clipnorm", "clipvalue+transformers", "clipnorm+transformers", "global_clipnorm+transformers"],
)
def test_refusals_match_keras2(kwargs):
    with pytest.raises(ValueError) as keras2_error:
        tf_keras.optimizers.legacy.SGD(**kwargs)
    with pytest.raises(ValueError) as ours:
        optimlab.SGD(**kwargs)
    for arg in kwargs:
        assert arg in str(ours.value) and arg in str(keras2_error.value)


def test_clipping_sparse_gradients_matches_keras2():
    def run(make_opt):
        table = tf.Variable(np.arange(12, dtype=np.float32).reshape(6, 2))
        opt = make_opt()
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, [1, 3, 1]) * 4.0)
        grads = tape.gradient(loss, [table])
        assert isinstance(grads[0], tf.IndexedSlices)
        opt.apply_gradients(zip(grads, [table]))
        return table.numpy()

    for kwargs in ({"clipvalue": 3.0}, {"clipnorm": 5.0}, {"global_clipnorm": 5.0}):
        np.testing.assert_allclose(
            run(lambda: optimlab.GradientDescent(learning_rate=1.0, **kwargs)),
            run(lambda: tf_keras.optimizers.legacy.SGD(learning_rate=1.0, **kwargs)),
            rtol=1e-6,
            err_msg=str(kwargs),
        )


def test_pure_functions_leave_missing_gradients_alone():
    x, y = tf.Variable([3.0, 4.0]), tf.Variable([1.0])
    pairs = [(tf.constant([3.0, 4.0]), x), (None, y)]
    (g, _), (none, _) = gradient_ops.clip_by_global_norm(pairs, 1.0)
    np.testing.assert_allclose(g.numpy(), [0.6, 0.8], rtol=1e-6)
    assert none is None
    assert gradient_ops.clip_by_norm(pairs, 1.0)[1][0] is None
    assert gradient_ops.clip_by_value(pairs, 1.0)[1][0] is None
    assert gradient_ops.all_reduce_sum(pairs) == pairs  # no strategy: unchanged


def test_deduplicate_sums_rows_sharing_an_index():
    values = tf.constant([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    unique = gradient_ops.deduplicate(tf.IndexedSlices(values, tf.constant([2, 0, 2, 2]), tf.constant([3, 2])))
    assert sorted(unique.indices.numpy().tolist()) == [0, 2]
    dense = tf.convert_to_tensor(unique).numpy()
    np.testing.assert_allclose(dense, [[3.0, 4.0], [0.0, 0.0], [13.0, 16.0]])
