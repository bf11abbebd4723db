"""The base class contract: minimize, apply_gradients, hyperparameters, slots,
constraints, sparse gradients, tf.function / XLA, and the Keras 3 machinery it keeps.

References are float64 NumPy computations written here, or Keras 3 itself.
"""

import numpy as np
import pytest
import tensorflow as tf
import keras

import optimlab
from optimlab import registry

STEPS = 100


def quadratic_grad(x, scale):
    """Gradient of 0.5 * sum(scale * x**2)."""
    return scale * x


def numpy_sgd(x0, scale, lrs, momentums, steps):
    """Keras's SGD with momentum (u <- m u - lr g; x <- x + u) in float64; lr and m per step."""
    x = np.array(x0, dtype=np.float64)
    u = np.zeros_like(x)
    for t in range(steps):
        g = quadratic_grad(x, scale)
        u = momentums[t] * u - lrs[t] * g
        x = x + u
    return x


X0 = np.array([1.0, -2.0, 0.5], dtype=np.float32)
SCALE = np.array([1.0, 0.5, 2.0], dtype=np.float32)


def quadratic_loss(x):
    return 0.5 * tf.reduce_sum(SCALE * x**2)


# --------------------------------------------------------------------------- minimize
def test_minimize_callable_loss_follows_gradient_descent():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.GradientDescent(learning_rate=0.1)
    for _ in range(STEPS):
        opt.minimize(lambda: 0.5 * tf.reduce_sum(SCALE.astype(np.float64) * x**2), [x])
    expected = numpy_sgd(X0, SCALE, [0.1] * STEPS, [0.0] * STEPS, STEPS)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-12)
    assert int(opt.iterations) == STEPS


def test_minimize_tensor_loss_needs_its_tape():
    x = tf.Variable(X0)
    opt = optimlab.GradientDescent(learning_rate=0.5)
    with tf.GradientTape() as tape:
        loss = quadratic_loss(x)
    opt.minimize(loss, [x], tape=tape)
    np.testing.assert_allclose(x.numpy(), X0 - 0.5 * SCALE * X0, rtol=1e-6)
    with pytest.raises(ValueError, match="tape"):
        opt.minimize(quadratic_loss(x), [x])


def test_minimize_grad_loss_weights_the_outputs():
    x = tf.Variable([1.0, 2.0])
    opt = optimlab.GradientDescent(learning_rate=1.0)
    # loss is the vector x**2; grad_loss w gives d(w . x**2)/dx = 2 w x
    opt.minimize(lambda: x**2, [x], grad_loss=tf.constant([0.5, -1.0]))
    np.testing.assert_allclose(x.numpy(), [1.0 - 1.0, 2.0 + 4.0])


class LazyModel(keras.Model):
    """A subclassed model whose variables only exist after its first call."""

    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(3, activation="tanh")
        self.out = keras.layers.Dense(1)

    def call(self, inputs):
        return self.out(self.hidden(inputs))


def test_minimize_var_list_callable_for_variables_created_on_first_call():
    keras.utils.set_random_seed(1)
    model = LazyModel()
    inputs = np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    assert not model.trainable_variables
    opt = optimlab.SGD(learning_rate=0.1)
    loss = lambda: tf.reduce_mean(model(inputs) ** 2)  # noqa: E731
    opt.minimize(loss, lambda: model.trainable_variables)
    assert len(model.trainable_variables) == 4
    before = [v.numpy() for v in model.trainable_variables]
    with tf.GradientTape() as tape:
        value = loss()
    grads = tape.gradient(value, model.trainable_variables)
    opt.minimize(loss, lambda: model.trainable_variables)
    for b, g, v in zip(before, grads, model.trainable_variables):
        np.testing.assert_allclose(v.numpy(), b - 0.1 * g.numpy(), rtol=1e-5, atol=1e-7)


def test_apply_gradients_returns_iterations_and_accepts_the_keras2_arguments():
    x = tf.Variable(X0)
    opt = optimlab.SGD(learning_rate=0.1)
    result = opt.apply_gradients([(tf.constant(SCALE), x)], name="step", experimental_aggregate_gradients=False)
    assert result is opt.iterations and int(result) == 1
    np.testing.assert_allclose(x.numpy(), X0 - 0.1 * SCALE, rtol=1e-6)
    assert opt._aggregate_in_apply  # the flag is restored after the call


# --------------------------------------------------------------------- hyperparameters
def schedule():
    return keras.optimizers.schedules.ExponentialDecay(0.2, decay_steps=10, decay_rate=0.5)


LR_FORMS = {
    "float": (lambda: 0.05, lambda t: 0.05),
    "tensor": (lambda: tf.constant(0.05), lambda t: 0.05),
    "callable": (lambda: (lambda: 0.05), lambda t: 0.05),
    "variable": (lambda: tf.Variable(0.05, dtype=tf.float64), lambda t: 0.05),
    "schedule": (schedule, lambda t: 0.2 * 0.5 ** (t / 10)),
}


@pytest.mark.parametrize("form", sorted(LR_FORMS))
def test_learning_rate_forms(form):
    make, lr_at = LR_FORMS[form]
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.SGD(learning_rate=make(), momentum=lambda: 0.5)
    for _ in range(STEPS):
        opt.minimize(lambda: 0.5 * tf.reduce_sum(SCALE.astype(np.float64) * x**2), [x])
    expected = numpy_sgd(X0, SCALE, [lr_at(t) for t in range(STEPS)], [0.5] * STEPS, STEPS)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6, atol=1e-12)


def test_hyperparameters_as_plain_attributes():
    opt = optimlab.SGD(learning_rate=0.1, momentum=0.5)
    opt.momentum = 0.25
    assert float(opt.momentum) == 0.25 and float(opt._get_hyper("momentum")) == 0.25
    assert opt._get_hyper("momentum", tf.float16).dtype == tf.float16
    opt.learning_rate = 0.05
    assert float(opt.learning_rate) == 0.05
    opt.momentum = lambda: 0.125
    assert float(opt._get_hyper("momentum")) == 0.125
    with pytest.raises(KeyError, match="beta_1"):
        opt._get_hyper("beta_1")
    with pytest.raises(ValueError, match=r"momentum must be .*\[0, 1\).*got 1.5"):
        opt.momentum = 1.5
    with pytest.raises(ValueError, match="learning_rate.*got -1"):
        opt.learning_rate = -1.0
    assert float(opt.learning_rate) == 0.05


def test_float64_hyperparameters_keep_python_precision():
    opt = optimlab.SGD(learning_rate=0.1, momentum=0.9)
    assert opt._get_hyper("momentum").dtype == tf.float64
    assert float(opt._get_hyper("momentum")) == 0.9
    assert float(opt.learning_rate) == 0.1
    callables = optimlab.SGD(learning_rate=lambda: 0.1, momentum=lambda: 0.9)
    assert float(callables._get_hyper("momentum", tf.float64)) == 0.9
    assert float(tf.cast(callables.learning_rate, tf.float64)) == 0.1


def test_changing_hyperparameters_reaches_a_traced_function_without_retracing():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.SGD(learning_rate=0.1, momentum=0.5)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(SCALE.astype(np.float64) * x**2)
        opt.apply_gradients(zip(tape.gradient(loss, [x]), [x]))

    lrs, moms = [], []
    for t in range(STEPS):
        if t == 1:
            traces = step.experimental_get_tracing_count()
        opt.learning_rate = 0.1 if t < 50 else 0.02
        opt.momentum = 0.5 if t % 2 else 0.8
        lrs.append(float(opt.learning_rate))
        moms.append(float(opt.momentum))
        step()
    assert step.experimental_get_tracing_count() == traces
    np.testing.assert_allclose(x.numpy(), numpy_sgd(X0, SCALE, lrs, moms, STEPS), rtol=1e-10)


# ----------------------------------------------------------------------------- slots
class RowScaled(optimlab.Optimizer):
    """Test optimizer with slots of other shapes and dtypes than their variable.

    Per row r: ``acc[r] += mean(g[r]**2)`` (float64 slot of shape [rows]);
    ``count += 1`` (int64 scalar slot); ``x[r] -= lr * g[r] / sqrt(acc[r] + 1)``.
    """

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        for var in var_list:
            self.add_slot(var, "acc", shape=var.shape[:1], dtype="float64", initializer=1.0)
            self.add_slot(var, "count", shape=(), dtype="int64")

    def update_step(self, gradient, variable, learning_rate):
        acc = self.get_slot(variable, "acc")
        axes = list(range(1, len(variable.shape)))
        acc.assign_add(tf.cast(tf.reduce_mean(tf.square(gradient), axis=axes), tf.float64))
        self.get_slot(variable, "count").assign_add(1)
        denom = tf.reshape(tf.cast(tf.sqrt(acc + 1.0), variable.dtype), [-1] + [1] * len(axes))
        variable.assign_sub(tf.cast(learning_rate, variable.dtype) * gradient / denom)


def numpy_row_scaled(x0, grad_fn, lr, steps):
    x = np.array(x0, dtype=np.float64)
    acc = np.ones(x.shape[0])
    for _ in range(steps):
        g = grad_fn(x)
        acc += (g**2).mean(axis=1)
        x = x - lr * g / np.sqrt(acc + 1.0)[:, None]
    return x, acc


def test_slots_of_other_shape_and_dtype():
    w0 = np.arange(6, dtype=np.float64).reshape(3, 2) / 4 - 0.5
    w = tf.Variable(w0)
    opt = RowScaled(learning_rate=0.1)
    for _ in range(STEPS):
        opt.minimize(lambda: 0.5 * tf.reduce_sum(w**2), [w])
    expected_w, expected_acc = numpy_row_scaled(w0, lambda x: x, 0.1, STEPS)
    np.testing.assert_allclose(w.numpy(), expected_w, rtol=1e-10)
    acc = opt.get_slot(w, "acc")
    assert acc.shape == (3,) and acc.dtype == "float64"
    np.testing.assert_allclose(acc.numpy(), expected_acc, rtol=1e-10)
    count = opt.get_slot(w, "count")
    assert count.dtype == "int64" and int(count.numpy()) == STEPS
    assert opt.get_slot_names() == ["acc", "count"]
    with pytest.raises(KeyError, match="'nope'.*acc"):
        opt.get_slot(w, "nope")


def test_add_slot_is_idempotent_and_takes_initializers():
    x = tf.Variable([1.0, 2.0])
    opt = optimlab.GradientDescent()
    first = opt.add_slot(x, "s", initializer=keras.initializers.Constant(3.0))
    assert opt.add_slot(x, "s") is first
    np.testing.assert_array_equal(first.numpy(), [3.0, 3.0])
    np.testing.assert_array_equal(opt.add_slot(x, "t", initializer="ones").numpy(), [1.0, 1.0])
    np.testing.assert_array_equal(opt.add_slot(x, "u", initializer=lambda shape, dtype: tf.fill(shape, 7.0)).numpy(), [7, 7])


def test_tf_train_checkpoint_round_trip_in_a_custom_loop(tmp_path):
    x = tf.Variable(X0)
    opt = optimlab.Adam(learning_rate=0.1, beta_1=0.8)
    for _ in range(3):
        opt.minimize(lambda: quadratic_loss(x), [x])
    opt.beta_1 = 0.7
    path = tf.train.Checkpoint(x=x, opt=opt).save(str(tmp_path / "ckpt"))
    x2 = tf.Variable(np.zeros(3, np.float32))
    opt2 = optimlab.Adam(learning_rate=0.1, beta_1=0.8)
    opt2.build([x2])
    tf.train.Checkpoint(x=x2, opt=opt2).restore(path).assert_consumed()
    assert float(opt2.beta_1) == 0.7 and int(opt2.iterations) == 3
    for slot in ("m", "v"):
        np.testing.assert_array_equal(opt2.get_slot(x2, slot).numpy(), opt.get_slot(x, slot).numpy())
    for _ in range(5):
        opt.minimize(lambda: quadratic_loss(x), [x])
        opt2.minimize(lambda: quadratic_loss(x2), [x2])
    np.testing.assert_array_equal(x.numpy(), x2.numpy())


# ------------------------------------------------------------------------- constraints
def test_constraints_apply_after_each_dense_update():
    x0 = np.array([0.5, -0.2, 0.1, 2.0])
    x = tf.Variable(x0, constraint=lambda v: tf.clip_by_value(v, 0.0, 1.0))
    opt = optimlab.GradientDescent(learning_rate=0.3)
    target = np.array([-1.0, 0.4, 3.0, 0.5])
    expected = x0.copy()
    for _ in range(STEPS):
        opt.minimize(lambda: 0.5 * tf.reduce_sum((x - target) ** 2), [x])
        expected = np.clip(expected - 0.3 * (expected - target), 0.0, 1.0)
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-12)


def test_keras_layer_constraint_through_fit():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, kernel_constraint=keras.constraints.NonNeg())])
    model.compile(optimizer=optimlab.Momentum(learning_rate=0.5, momentum=0.5), loss="mse")
    data = np.random.default_rng(0).normal(size=(16, 3)).astype("float32")
    model.fit(data, -np.abs(data[:, :2]) * 5, epochs=3, verbose=0)
    kernel = model.layers[0].kernel.numpy()
    assert (kernel >= 0).all() and (kernel == 0).any()


# ------------------------------------------------------------------------------ sparse
class Recorder(optimlab.GradientDescent):
    """Gradient descent that records what reaches its sparse path."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def sparse_update_step(self, gradient, variable, learning_rate):
        self.seen.append((gradient.indices.numpy(), gradient.values.numpy()))
        return super().sparse_update_step(gradient, variable, learning_rate)


def test_indexed_slices_reach_the_sparse_path_with_duplicates_summed():
    table0 = np.arange(12, dtype=np.float32).reshape(6, 2)
    table = tf.Variable(table0)
    ids = tf.constant([4, 1, 4, 0, 4])
    opt = Recorder(learning_rate=0.1)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, ids) * tf.constant([[1.0, 2.0]]))
    (grad,) = tape.gradient(loss, [table])
    assert isinstance(grad, tf.IndexedSlices)
    opt.apply_gradients([(grad, table)])
    ((indices, values),) = opt.seen
    assert sorted(indices.tolist()) == [0, 1, 4]
    dense = np.zeros_like(table0)
    np.add.at(dense, ids.numpy(), [1.0, 2.0])
    np.testing.assert_allclose(values, dense[indices])
    np.testing.assert_allclose(table.numpy(), table0 - 0.1 * dense)


def embedding_steps(opt, steps=STEPS):
    table = tf.Variable(np.linspace(-1, 1, 16, dtype=np.float32).reshape(8, 2))
    ids = tf.constant([1, 5, 1, 2])
    for _ in range(steps):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids) ** 2)
        opt.apply_gradients(zip(tape.gradient(loss, [table]), [table]))
    return table


@pytest.mark.parametrize("name", ["adam", "sgd", "momentum"])
def test_default_sparse_path_has_dense_semantics(name):
    sparse = embedding_steps(optimlab.get(name, learning_rate=0.01))
    dense_opt = optimlab.get(name, learning_rate=0.01)
    table = tf.Variable(np.linspace(-1, 1, 16, dtype=np.float32).reshape(8, 2))
    ids = tf.constant([1, 5, 1, 2])
    for _ in range(STEPS):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids) ** 2)
        dense_opt.apply_gradients([(tf.convert_to_tensor(tape.gradient(loss, table)), table)])
    np.testing.assert_allclose(sparse.numpy(), table.numpy(), rtol=1e-6, atol=1e-7)


def test_lazy_sparse_optimizers_touch_only_indexed_rows():
    lazy = [e for e in registry.entries() if e.has("lazy_sparse")]
    assert lazy, "at least gradient descent declares lazy sparse updates"
    for entry in lazy:
        opt = entry.cls(**entry.quadratic.kwargs)
        table = embedding_steps(opt, steps=3)
        untouched = np.linspace(-1, 1, 16, dtype=np.float32).reshape(8, 2)[[0, 3, 4, 6, 7]]
        np.testing.assert_array_equal(table.numpy()[[0, 3, 4, 6, 7]], untouched, err_msg=entry.name)
        fresh, fresh_table = entry.cls(**entry.quadratic.kwargs), tf.Variable(np.zeros((8, 2), np.float32))
        fresh.build([fresh_table])
        for slot_name in opt.get_slot_names():
            slot = opt.get_slot(table, slot_name)
            if slot.shape == table.shape:
                initial = fresh.get_slot(fresh_table, slot_name).numpy()
                np.testing.assert_array_equal(slot.numpy()[[0, 3, 4, 6, 7]], initial[[0, 3, 4, 6, 7]])


# --------------------------------------------------------------------- tf.function, XLA
@pytest.mark.parametrize("name", ["adam", "sgd", "momentum", "gd"])
def test_jit_compiled_step_matches_eager(name):
    kwargs = {"learning_rate": 0.05}
    eager_x, jit_x = tf.Variable(X0), tf.Variable(X0)
    eager_opt, jit_opt = optimlab.get(name, **kwargs), optimlab.get(name, **kwargs)

    @tf.function(jit_compile=True)
    def jit_step():
        with tf.GradientTape() as tape:
            loss = quadratic_loss(jit_x)
        jit_opt.apply_gradients(zip(tape.gradient(loss, [jit_x]), [jit_x]))

    for _ in range(20):
        jit_step()
        eager_opt.minimize(lambda: quadratic_loss(eager_x), [eager_x])
    np.testing.assert_allclose(jit_x.numpy(), eager_x.numpy(), rtol=1e-5, atol=1e-6)
    assert int(jit_opt.iterations) == 20


# ------------------------------------------------------------- compile / fit / save / load
def regression_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    return x, (x @ np.array([[1.0], [-2.0], [0.5]]) + 0.1).astype("float32")


def small_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])


@pytest.mark.parametrize("name", registry.names())
def test_fit_save_load_continues_bit_for_bit(name, tmp_path):
    """Save mid-training, reload, train on: the same weights and state as an uninterrupted run,
    for every registered optimizer."""
    entry = registry.info(name)
    x, y = regression_data()
    model = small_model()
    # XLA is covered by the jit tests; plain graphs keep this registry-wide test fast.
    model.compile(optimizer=entry.cls(**entry.quadratic.kwargs), loss="mse", jit_compile=False)
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    restored = keras.models.load_model(tmp_path / "m.keras")
    assert type(restored.optimizer) is entry.cls
    assert int(restored.optimizer.iterations) == 8
    restored.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


@pytest.mark.parametrize("form", ["callable", "schedule", "changed"])
def test_save_load_with_non_number_hyperparameters(form, tmp_path):
    x, y = regression_data()
    model = small_model()
    if form == "callable":
        opt = optimlab.Adam(learning_rate=lambda: 0.01, beta_1=lambda: 0.8)
    elif form == "schedule":
        opt = optimlab.Adam(learning_rate=schedule())
    else:
        opt = optimlab.Adam(learning_rate=0.01)
    model.compile(optimizer=opt, loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    if form == "changed":
        opt.beta_1 = 0.5
        opt.learning_rate = 0.02
    model.save(tmp_path / "m.keras", zipped=True)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    restored = keras.models.load_model(tmp_path / "m.keras")
    restored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    # A callable comes back as the number it returned: the same values, though
    # XLA may then order a few float32 operations differently.
    tol = 1e-6 if form == "callable" else 0
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_allclose(a, b, rtol=tol, atol=0)
    np.testing.assert_allclose(
        restored.optimizer.get_slot(restored.trainable_variables[0], "v").numpy(),
        model.optimizer.get_slot(model.trainable_variables[0], "v").numpy(),
        rtol=tol,
        atol=0,
    )


def test_slots_of_other_shapes_survive_save_and_load(tmp_path):
    keras.saving.register_keras_serializable("optimlab_tests")(RowScaled)
    x, y = regression_data()
    model = small_model()
    model.compile(optimizer=RowScaled(learning_rate=0.05), loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    kernel = restored.trainable_variables[0]
    np.testing.assert_array_equal(
        restored.optimizer.get_slot(kernel, "acc").numpy(),
        model.optimizer.get_slot(model.trainable_variables[0], "acc").numpy(),
    )
    assert int(restored.optimizer.get_slot(kernel, "count").numpy()) == 4


# ------------------------------------------------------------------------ configuration
def non_default_kwargs(entry):
    """The recipe's kwargs with every numeric hyperparameter nudged off its default."""
    kwargs = dict(entry.quadratic.kwargs)
    for key, default in entry.defaults.items():
        if isinstance(default, float) and not isinstance(default, bool) and key not in kwargs:
            kwargs[key] = default * 0.5 if default else 0.125
    return kwargs


@pytest.mark.parametrize("name", registry.names())
def test_every_optimizer_is_registered_and_round_trips_its_config(name):
    entry = registry.info(name)
    assert keras.saving.get_registered_object(f"optimlab>{entry.cls.__name__}") is entry.cls
    assert getattr(optimlab, entry.cls.__name__) is entry.cls
    opt = entry.cls(**{"clipvalue": 0.5, "weight_decay": 0.01, **non_default_kwargs(entry)})
    config = opt.get_config()
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is entry.cls and clone.get_config() == config
    for key, value in non_default_kwargs(entry).items():
        assert config[key] == pytest.approx(value), key
    with_schedule = entry.cls(**{**entry.quadratic.kwargs, "learning_rate": schedule()})
    restored = type(with_schedule).from_config(with_schedule.get_config())
    assert isinstance(restored._learning_rate, keras.optimizers.schedules.ExponentialDecay)
    assert restored.get_config() == with_schedule.get_config()


def test_config_evaluates_callables_and_keeps_keras_base_arguments():
    opt = optimlab.SGD(learning_rate=lambda: 0.25, momentum=lambda: 0.5, global_clipnorm=2.0, use_ema=True, ema_momentum=0.9)
    config = opt.get_config()
    assert config["learning_rate"] == 0.25 and config["momentum"] == 0.5
    assert config["global_clipnorm"] == 2.0 and config["use_ema"] and config["ema_momentum"] == 0.9
    clone = optimlab.SGD.from_config(config)
    assert float(clone.learning_rate) == 0.25 and clone.global_clipnorm == 2.0 and clone.use_ema


# --------------------------------------------------------------------------- bad input
BAD_CONSTRUCTORS = [
    ({"learning_rate": -0.1}, ValueError, r"learning_rate must be .*\[0, inf\).*-0.1"),
    ({"learning_rate": float("nan")}, ValueError, "learning_rate.*nan"),
    ({"learning_rate": float("inf")}, ValueError, "learning_rate.*inf"),
    ({"learning_rate": "fast"}, TypeError, "learning_rate.*'fast'"),
    ({"beta_1": 1.0}, ValueError, r"beta_1 must be .*\[0, 1\).*1.0"),
    ({"beta_2": -0.5}, ValueError, r"beta_2 must be .*\[0, 1\).*-0.5"),
    ({"epsilon": -1e-7}, ValueError, "epsilon.*-1e-07"),
    ({"momentun": 0.9}, TypeError, "momentun"),
    ({"clipnorm": 1.0, "global_clipnorm": 1.0}, ValueError, "clipnorm.*global_clipnorm"),
    ({"clipnorm": -1.0}, ValueError, "clipnorm.*-1.0"),
    ({"clipvalue": 1.0, "gradient_transformers": [lambda gv: gv]}, ValueError, "clipvalue.*gradient_transformers"),
    ({"gradient_aggregator": 3}, TypeError, "gradient_aggregator.*3"),
    ({"weight_decay": -0.1}, ValueError, "weight_decay.*-0.1"),
    ({"name": 5}, TypeError, "name.*5"),
]


@pytest.mark.parametrize("kwargs, error, message", BAD_CONSTRUCTORS)
def test_constructor_rejects_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        optimlab.Adam(**kwargs)


def test_clipping_cannot_be_switched_on_after_transformers():
    opt = optimlab.SGD(gradient_transformers=[lambda gv: gv])
    with pytest.raises(ValueError, match="global_clipnorm.*gradient_transformers"):
        opt.global_clipnorm = 1.0
    opt = optimlab.SGD(clipnorm=1.0)
    with pytest.raises(ValueError, match="clipnorm.*global_clipnorm"):
        opt.global_clipnorm = 1.0


def bad_apply_cases():
    x = tf.Variable(np.ones((2, 3), np.float32))
    y = tf.Variable(np.ones(3, np.float32))
    g = tf.ones((2, 3))
    return {
        "length": (lambda opt: opt.apply([g, g], [x]), ValueError, "same length.*2 gradients.*1 variables"),
        "shape": (lambda opt: opt.apply_gradients([(tf.ones((3, 2)), x)]), ValueError, r"shape \(3, 2\).*\(2, 3\)"),
        "dtype": (lambda opt: opt.apply_gradients([(tf.ones((2, 3), tf.int32), x)]), TypeError, "int32.*floating"),
        "no gradient": (lambda opt: opt.apply_gradients([(None, x), (None, y)]), ValueError, "No gradients.*Variable"),
        "not a pair": (lambda opt: opt.apply_gradients([g, x]), TypeError, "pairs"),
        "not a variable": (lambda opt: opt.apply_gradients([(g, g)]), TypeError, "variable"),
        "sparse shape": (
            lambda opt: opt.apply_gradients([(tf.IndexedSlices(tf.ones((1, 2)), tf.constant([0]), tf.constant([2, 3])), x)]),
            ValueError,
            "shape",
        ),
    }, [x, y]


@pytest.mark.parametrize("case", sorted(bad_apply_cases()[0]))
@pytest.mark.parametrize("built", [False, True], ids=["fresh", "built"])
def test_apply_rejects_bad_input_before_any_state_changes(case, built):
    cases, variables = bad_apply_cases()
    call, error, message = cases[case]
    opt = optimlab.Adam(learning_rate=0.1)
    if built:
        opt.apply_gradients([(tf.ones(v.shape), v) for v in variables])
    before = [v.numpy().copy() for v in variables + list(opt.variables)]
    with pytest.raises(error, match=message):
        call(opt)
    after = [v.numpy() for v in variables + list(opt.variables)]
    assert opt.built == built and len(after) == len(before)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------- Keras 3 machinery kept by the base
# Keras 3 rounds weight_decay and ema_momentum to float32, hence rtol=1e-6 below.
def test_weight_decay_is_keras_decoupled_decay():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.GradientDescent(learning_rate=0.1, weight_decay=0.2)
    expected = X0.astype(np.float64)
    for _ in range(STEPS):
        grad = SCALE * expected
        opt.apply_gradients([(tf.constant(SCALE, tf.float64) * x, x)])
        expected = expected - 0.1 * 0.2 * expected - 0.1 * grad
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-6)


def test_ema_keeps_a_moving_average_of_the_weights():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.GradientDescent(learning_rate=0.1, use_ema=True, ema_momentum=0.9)
    value, average = X0.astype(np.float64), None
    for _ in range(STEPS):
        opt.apply_gradients([(tf.constant(SCALE, tf.float64) * x, x)])
        value = value - 0.1 * SCALE * value
        average = value if average is None else 0.9 * average + 0.1 * value
    np.testing.assert_allclose(opt._model_variables_moving_average[0].numpy(), average, rtol=1e-6)
    opt.finalize_variable_values([x])
    np.testing.assert_allclose(x.numpy(), average, rtol=1e-6)


def test_gradient_accumulation_averages_before_updating():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.Momentum(learning_rate=0.1, momentum=0.5, gradient_accumulation_steps=3, clipvalue=0.3)
    rng = np.random.default_rng(0)
    grads = rng.normal(size=(30, 3))
    expected, change, pending = X0.astype(np.float64), np.zeros(3), []
    for g in grads:
        opt.apply_gradients([(tf.constant(g), x)])
        pending.append(g)
        if len(pending) == 3:
            mean = np.clip(np.mean(pending, axis=0), -0.3, 0.3)
            change = 0.1 * mean + 0.5 * change
            expected, pending = expected - change, []
        np.testing.assert_allclose(x.numpy(), expected, rtol=1e-10)


def test_loss_scale_factor_unscales_gradients():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = optimlab.GradientDescent(learning_rate=0.1, loss_scale_factor=128.0)
    opt.apply_gradients([(tf.constant(SCALE * 128.0, tf.float64), x)])
    np.testing.assert_allclose(x.numpy(), X0 - 0.1 * SCALE, rtol=1e-6)


# --------------------------------------------------------------------------------- CLI
def test_cli_lists_registered_optimizers():
    from typer.testing import CliRunner

    from optimlab.cli import app

    result = CliRunner().invoke(app, ["optimizers"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for name in registry.names():
        assert name in result.output
    only_adam = CliRunner().invoke(app, ["optimizers", "adam*"], env={"COLUMNS": "250"})
    assert "adam" in only_adam.output and "momentum" not in only_adam.output
