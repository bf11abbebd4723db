"""tf.distribute: under MirroredStrategy gradients are summed across replicas (Keras 2's optimizer contract).

Runs on two logical CPUs configured in conftest.py.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

import optimlab
import distribute_families


def strategy():
    # The session's one strategy (conftest.py): several in one process can collide.
    from conftest import _mirrored_strategy

    if _mirrored_strategy() is None:
        pytest.skip("needs two logical CPUs (conftest.py configures them before TensorFlow starts)")
    return _mirrored_strategy()


def per_replica_grads(context):
    """Replica r contributes gradient (r + 1) * [1, -2, 3]."""
    r = tf.cast(context.replica_id_in_sync_group, tf.float32)
    return (r + 1.0) * tf.constant([1.0, -2.0, 3.0])


def run_step(opt_kwargs, aggregate=True, preaggregate=None):
    mirrored = strategy()
    with mirrored.scope():
        x = tf.Variable(np.zeros(3, np.float32))
        opt = optimlab.GradientDescent(learning_rate=1.0, **opt_kwargs)

    @tf.function
    def step():
        def replica_fn():
            context = tf.distribute.get_replica_context()
            grad = per_replica_grads(context)
            if preaggregate is not None:
                grad = context.all_reduce(preaggregate, grad)
            opt.apply_gradients([(grad, x)], experimental_aggregate_gradients=aggregate)

        mirrored.run(replica_fn)

    step()
    return x, opt


def test_gradients_are_summed_across_replicas():
    x, opt = run_step({})
    # sum over replicas of (r + 1) * g = 3 * g
    np.testing.assert_allclose(x.numpy(), -3.0 * np.array([1.0, -2.0, 3.0]))
    for component in x.values:
        np.testing.assert_allclose(component.numpy(), x.numpy())
    assert opt.iterations.numpy() == 1


def test_clipping_runs_after_the_cross_replica_sum():
    x, _ = run_step({"clipvalue": 4.0})
    np.testing.assert_allclose(x.numpy(), -np.clip(3.0 * np.array([1.0, -2.0, 3.0]), -4, 4))


def test_custom_aggregator_replaces_the_sum():
    def mean(grads_and_vars):
        context = tf.distribute.get_replica_context()
        return [(context.all_reduce(tf.distribute.ReduceOp.MEAN, g), v) for g, v in grads_and_vars]

    x, _ = run_step({"gradient_aggregator": mean})
    np.testing.assert_allclose(x.numpy(), -1.5 * np.array([1.0, -2.0, 3.0]))


def test_no_aggregation_when_the_caller_aggregated():
    x, _ = run_step({}, aggregate=False, preaggregate=tf.distribute.ReduceOp.MEAN)
    np.testing.assert_allclose(x.numpy(), -1.5 * np.array([1.0, -2.0, 3.0]))
    summed_twice, _ = run_step({}, aggregate=True, preaggregate=tf.distribute.ReduceOp.MEAN)
    np.testing.assert_allclose(summed_twice.numpy(), -3.0 * np.array([1.0, -2.0, 3.0]))


def test_fit_under_mirrored_strategy_matches_one_device():
    rng = np.random.default_rng(0)
    inputs = rng.normal(size=(16, 3)).astype("float32")
    targets = (inputs @ np.array([[1.0], [-1.0], [2.0]])).astype("float32")

    def train(scope):
        with scope:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
            model.compile(optimizer=optimlab.Adam(learning_rate=0.05, clipnorm=1.0), loss="mse")
        model.fit(inputs, targets, batch_size=8, epochs=3, shuffle=False, verbose=0)
        return model.get_weights(), model.optimizer

    mirrored_weights, opt = train(strategy().scope())
    single_weights, _ = train(tf.distribute.get_strategy().scope())
    for a, b in zip(mirrored_weights, single_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert opt.iterations.numpy() == 6


# ------------------------------------------------------- optimizer families
FAMILIES = {
    **distribute_families.families(),
    "accumulation": lambda: optimlab.Adam(0.05, gradient_accumulation_steps=2, weight_decay=0.1),
    "accumulation-self-decaying": lambda: optimlab.registry.get("lamb", learning_rate=0.05, gradient_accumulation_steps=2, weight_decay=0.1, decay_in_trust_ratio=True),
    "skip-nonfinite": lambda: optimlab.Adam(0.05, skip_nonfinite=True, gradient_accumulation_steps=2, use_ema=True, ema_momentum=0.5),
}


def _model(family):
    model = distribute_families.model()
    return optimlab.SAMModel(model, rho=0.05) if family == "sam" else model


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_fit_under_mirrored_strategy_matches_one_device_with_the_global_batch(family, mirrored):
    inputs, targets = distribute_families.data(seed=3)
    if family == "skip-nonfinite":
        inputs = inputs.copy()
        inputs[8:16] = np.nan  # the second global batch: skipped on both replicas

    def train(scope, eager):
        with scope:
            model = _model(family)
            model.compile(optimizer=FAMILIES[family](), loss="mse", run_eagerly=eager)
        model.fit(inputs, targets, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return model

    # the reference runs eagerly: no second trace, and an independent execution path
    distributed, single = train(mirrored.scope(), False), train(tf.distribute.get_strategy().scope(), True)
    for a, b in zip(distributed.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert distributed.optimizer.iterations.numpy() == single.optimizer.iterations.numpy() > 0
    for a, b in zip(distributed.optimizer.variables, single.optimizer.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-5, atol=2e-6, err_msg=getattr(a, "path", a.name))  # legacy: tf.Variables, as in Keras 2
    for var in distributed.trainable_variables:  # the replicas agree
        replicas = [component.numpy() for component in var.value.values]
        np.testing.assert_array_equal(replicas[0], replicas[1])


def test_accumulation_of_a_keras_model_in_a_custom_loop_under_mirrored_strategy(mirrored):
    """Item 1: a Keras model's variables (not plain tf.Variables) under accumulation, custom loop."""
    inputs, targets = distribute_families.data(seed=3)

    def train(strategy):
        with strategy.scope():
            model = _model("accumulation")
            opt = optimlab.Adam(0.05, gradient_accumulation_steps=2)
            opt.build(model.trainable_variables)  # variables are created in the scope, not in tf.function
        replicas = strategy.num_replicas_in_sync

        @tf.function
        def step(x, y):
            def replica_fn(x, y):
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(tf.square(model(x) - y)) / (8.0 * 1.0)
                grads = tape.gradient(loss, model.trainable_variables)
                opt.apply_gradients(zip(grads, model.trainable_variables))

            strategy.run(replica_fn, args=(x, y))

        dataset = tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(8)
        for x, y in strategy.experimental_distribute_dataset(dataset):
            step(x, y)
        assert replicas >= 1
        return model, opt

    distributed, opt = train(mirrored)
    single, _ = train(tf.distribute.get_strategy())
    for a, b in zip(distributed.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6)
    assert opt.iterations.numpy() == 2
