"""One worker of test_multiworker.py: ``python multiworker_job.py INDEX PORT0,PORT1 OUT.npz [fit]``.

Trains each optimizer family of ``families()`` (those test_distribute.py also
covers come from ``distribute_families.py``) with MultiWorkerMirroredStrategy
in a custom loop (each worker feeds its half of every global batch) and saves
the final weights; with ``fit`` it also tries ``model.fit`` and saves the
outcome. ``reference()`` is the single-process run on whole global batches.
"""

import json
import os
import sys

import numpy as np

import distribute_families

GLOBAL_BATCH = 8


def families():
    import optimlab

    return {
        **distribute_families.families(),
        "accumulation": lambda: optimlab.registry.get("lamb", learning_rate=0.05, gradient_accumulation_steps=2, weight_decay=0.1),
        "skip-nonfinite": lambda: optimlab.Adam(0.05, skip_nonfinite=True),
    }


def data():
    return distribute_families.data(seed=5)


def train(strategy, family, make, rows, compiled=True):
    """Custom loop; ``rows(batch_start)`` are the rows this process feeds from each global batch."""
    import tensorflow as tf

    import optimlab

    inputs, targets = data()
    if family == "skip-nonfinite":
        inputs[8:16] = np.nan
    with strategy.scope():
        model = distribute_families.model()
        opt = make()
        opt.build(model.trainable_variables)  # in the scope, before the loop

    def loss_fn(x, y):
        return tf.reduce_sum(tf.square(model(x) - y)) / GLOBAL_BATCH

    def step(x, y):
        def replica_fn(x, y):
            variables = model.trainable_variables
            if family == "sam":
                grads, _ = optimlab.sam_gradients(lambda: loss_fn(x, y), variables, rho=0.05)
            else:
                with tf.GradientTape() as tape:
                    loss = loss_fn(x, y)
                grads = tape.gradient(loss, variables)
            opt.apply_gradients(zip(grads, variables))

        strategy.run(replica_fn, args=(x, y))

    step = tf.function(step) if compiled else step
    for start in range(0, len(inputs), GLOBAL_BATCH):
        part = rows(start)
        step(tf.constant(inputs[part]), tf.constant(targets[part]))
    return [w for w in model.get_weights()] + [np.asarray(opt.iterations)]


def try_fit(strategy, make):
    """``fit`` under MultiWorkerMirroredStrategy: "ok" or the error's type."""
    import keras

    inputs, targets = data()
    try:
        with strategy.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
            model.compile(optimizer=make(), loss="mse")
        model.fit(inputs, targets, batch_size=GLOBAL_BATCH, epochs=1, verbose=0)
        return "ok"
    except Exception as error:  # the outcome is the result here (keras-team/keras#20585)
        print(f"fit with {make}: {type(error).__name__}: {error}"[:2000], file=sys.stderr)
        return type(error).__name__


def run_all(strategy, rows, compiled=True):
    results = {}
    for family, make in families().items():
        for i, value in enumerate(train(strategy, family, make, rows, compiled)):
            results[f"{family}/{i}"] = value
    return results


def reference():
    """The single-process run: whole global batches, no strategy, eager."""
    import tensorflow as tf

    return run_all(tf.distribute.get_strategy(), lambda start: slice(start, start + GLOBAL_BATCH), compiled=False)


def main(argv):
    index, ports, out = int(argv[1]), argv[2].split(","), argv[3]
    os.environ["TF_CONFIG"] = json.dumps(
        {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]}, "task": {"type": "worker", "index": index}}
    )
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    half = GLOBAL_BATCH // 2
    results = run_all(strategy, lambda start: slice(start + index * half, start + (index + 1) * half))
    if len(argv) > 4 and argv[4] == "fit":
        import keras

        import optimlab

        results["fit/optimlab"] = np.array(try_fit(strategy, lambda: optimlab.Adam(0.05)))
        results["fit/keras"] = np.array(try_fit(strategy, lambda: keras.optimizers.Adam(0.05)))
    np.savez(out, **results)


if __name__ == "__main__":
    main(sys.argv)
