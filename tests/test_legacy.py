"""optimlab.legacy.Optimizer: Keras 2 style optimizers, written the way users wrote them
(the book chapter on Boston housing regression, TensorFlow Addons), with only the
base-class import changed.

Each is checked against a float64 NumPy transcription of its own equations over
100 steps, trained with compile/fit, saved and reloaded.
"""

import warnings

import numpy as np
import pytest
import tensorflow as tf
import keras

from optimlab.legacy import Optimizer

STEPS = 100


# ----------------------------------------------------------- legacy-style optimizers
class BookAdam(Optimizer):
    """The Boston housing chapter's Adam: no apply_state, _decayed_lr, epsilon as a plain attribute."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8, name="BookAdam", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("beta_1", beta_1)
        self._set_hyper("beta_2", beta_2)
        self.epsilon = epsilon or keras.backend.epsilon()

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "m")
        for var in var_list:
            self.add_slot(var, "v")

    def _resource_apply_dense(self, grad, var):
        dtype = var.dtype.base_dtype
        t = tf.cast(self.iterations + 1, dtype)
        lr = self._decayed_lr(dtype)
        beta_1 = self._get_hyper("beta_1", dtype)
        beta_2 = self._get_hyper("beta_2", dtype)
        epsilon = tf.convert_to_tensor(self.epsilon, dtype)
        m = self.get_slot(var, "m")
        v = self.get_slot(var, "v")
        m = m.assign(beta_1 * m + (1.0 - beta_1) * grad)
        v = v.assign(beta_2 * v + (1.0 - beta_2) * tf.square(grad))
        lr = lr * tf.sqrt(1 - tf.pow(beta_2, t)) / (1 - tf.pow(beta_1, t))
        return var.assign_add(-lr * m / (tf.sqrt(v) + epsilon))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                "beta_1": self._serialize_hyperparameter("beta_1"),
                "beta_2": self._serialize_hyperparameter("beta_2"),
                "epsilon": self.epsilon,
            }
        )
        return config


class LazyMomentum(Optimizer):
    """TF Addons style: _prepare_local / apply_state / _fallback_apply_state, a sparse path."""

    def __init__(self, learning_rate=0.01, momentum=0.9, name="LazyMomentum", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("momentum", momentum)

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "velocity")

    def _prepare_local(self, var_device, var_dtype, apply_state):
        super()._prepare_local(var_device, var_dtype, apply_state)
        apply_state[(var_device, var_dtype)]["momentum"] = tf.identity(self._get_hyper("momentum", var_dtype))

    def _coefficients(self, var, apply_state):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        return (apply_state or {}).get((var_device, var_dtype)) or self._fallback_apply_state(var_device, var_dtype)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        coefficients = self._coefficients(var, apply_state)
        velocity = self.get_slot(var, "velocity")
        velocity.assign(coefficients["momentum"] * velocity - coefficients["lr_t"] * grad)
        return var.assign_add(velocity)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        coefficients = self._coefficients(var, apply_state)
        velocity = self.get_slot(var, "velocity")
        rows = coefficients["momentum"] * tf.gather(velocity, indices) - coefficients["lr_t"] * grad
        self._resource_scatter_update(velocity, indices, rows)
        return self._resource_scatter_add(var, indices, rows)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "learning_rate": self._serialize_hyperparameter("learning_rate"),
                "momentum": self._serialize_hyperparameter("momentum"),
            }
        )
        return config


class SimpleAdagrad(Optimizer):
    """An Adagrad written for TF 2.x: accumulators start at 0.1 via a TF initializer."""

    def __init__(self, learning_rate=0.01, initial_accumulator_value=0.1, name="SimpleAdagrad", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._initial_accumulator_value = initial_accumulator_value

    def _create_slots(self, var_list):
        for var in var_list:
            self.add_slot(var, "acc", initializer=tf.constant_initializer(self._initial_accumulator_value))

    def _resource_apply_dense(self, grad, var, apply_state=None):
        lr = self._decayed_lr(var.dtype.base_dtype)
        acc = self.get_slot(var, "acc")
        acc_t = acc.assign_add(tf.square(grad))
        return var.assign_sub(lr * grad / tf.sqrt(acc_t))

    def get_config(self):
        config = super().get_config()
        config["learning_rate"] = self._serialize_hyperparameter("learning_rate")
        config["initial_accumulator_value"] = self._initial_accumulator_value
        return config


class DecaySGD(Optimizer):
    """Keras 2's time-based decay: created with lr= and decay=, lr_t read from apply_state."""

    def __init__(self, learning_rate=0.01, name="DecaySGD", **kwargs):
        super().__init__(name, **kwargs)
        self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
        self._set_hyper("decay", self._initial_decay)

    def _resource_apply_dense(self, grad, var, apply_state=None):
        coefficients = apply_state[(var.device, var.dtype.base_dtype)]
        return var.assign_sub(coefficients["lr_t"] * grad)

    def get_config(self):
        config = super().get_config()
        config["learning_rate"] = self._serialize_hyperparameter("learning_rate")
        return config


for _cls in (BookAdam, LazyMomentum, SimpleAdagrad, DecaySGD):
    keras.saving.register_keras_serializable("optimlab_legacy_tests")(_cls)


# ------------------------------------------------------------ NumPy transcriptions
def numpy_seed_adam(x, grad_fn, lr, b1, b2, eps, decay, steps):
    m, v = np.zeros_like(x), np.zeros_like(x)
    for i in range(steps):
        g, t = grad_fn(x), i + 1
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        lr_t = lr / (1 + decay * i) * np.sqrt(1 - b2**t) / (1 - b1**t)
        x = x - lr_t * m / (np.sqrt(v) + eps)
    return x


def numpy_momentum(x, grad_fn, lr, mu, steps):
    velocity = np.zeros_like(x)
    for _ in range(steps):
        velocity = mu * velocity - lr * grad_fn(x)
        x = x + velocity
    return x


def numpy_adagrad(x, grad_fn, lr, acc0, steps):
    acc = np.full_like(x, acc0)
    for _ in range(steps):
        g = grad_fn(x)
        acc = acc + g**2
        x = x - lr * g / np.sqrt(acc)
    return x


def numpy_decay_sgd(x, grad_fn, lr, decay, steps):
    for i in range(steps):
        x = x - lr / (1 + decay * i) * grad_fn(x)
    return x


X0 = np.array([1.5, -0.7, 0.3, 2.0])
SCALE = np.array([1.0, 3.0, 0.5, 0.2])


def grad_fn(x):
    return SCALE * x


def run(opt, steps=STEPS):
    """Minimize 0.5 * sum(SCALE * x**2) for a float64 and a float32 copy of X0 at once."""
    x64 = tf.Variable(X0, dtype=tf.float64)
    x32 = tf.Variable(X0, dtype=tf.float32)
    for _ in range(steps):
        opt.minimize(
            lambda: 0.5 * tf.reduce_sum(SCALE * x64**2) + tf.cast(0.5 * tf.reduce_sum(SCALE.astype(np.float32) * x32**2), tf.float64),
            [x64, x32],
        )
    return x64.numpy(), x32.numpy()


def f32(x):
    """Keras 2 keeps number hyperparameters in float32 variables (cast up for float64 weights)."""
    return float(np.float32(x))


CASES = {
    "seed_adam": (
        lambda: BookAdam(learning_rate=0.05, beta_1=0.8, decay=0.01),
        lambda: numpy_seed_adam(X0, grad_fn, f32(0.05), f32(0.8), f32(0.999), 1e-8, f32(0.01), STEPS),
    ),
    "lazy_momentum": (
        lambda: LazyMomentum(0.05, momentum=0.7),
        lambda: numpy_momentum(X0, grad_fn, f32(0.05), f32(0.7), STEPS),
    ),
    "simple_adagrad": (lambda: SimpleAdagrad(0.3), lambda: numpy_adagrad(X0, grad_fn, f32(0.3), 0.1, STEPS)),
    "decay_sgd": (
        lambda: DecaySGD(lr=0.2, decay=0.05),
        lambda: numpy_decay_sgd(X0, grad_fn, f32(0.2), f32(0.05), STEPS),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_legacy_optimizer_follows_its_equations(case):
    make, reference = CASES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        opt = make()
    x64, x32 = run(opt)
    expected = reference()
    np.testing.assert_allclose(x64, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(x32, expected, rtol=2e-4, atol=1e-5)
    assert int(opt.iterations) == STEPS


def test_legacy_optimizer_in_a_jit_compiled_step():
    x = tf.Variable(X0, dtype=tf.float64)
    opt = LazyMomentum(0.05, momentum=0.7)

    @tf.function(jit_compile=True)
    def step():
        with tf.GradientTape() as tape:
            loss = 0.5 * tf.reduce_sum(SCALE * x**2)
        opt.apply_gradients(zip(tape.gradient(loss, [x]), [x]))

    for _ in range(STEPS):
        step()
    np.testing.assert_allclose(x.numpy(), numpy_momentum(X0, grad_fn, f32(0.05), f32(0.7), STEPS), rtol=1e-10)


def test_sparse_path_uses_resource_apply_sparse_with_summed_duplicates():
    table0 = np.linspace(-1.0, 1.0, 12).reshape(6, 2)
    table = tf.Variable(table0)
    ids = tf.constant([4, 1, 4])
    opt = LazyMomentum(0.1, momentum=0.5)
    expected, velocity = table0.copy(), np.zeros_like(table0)
    for _ in range(STEPS):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.gather(table, ids) ** 2)
        (grad,) = tape.gradient(loss, [table])
        assert isinstance(grad, tf.IndexedSlices)
        opt.apply_gradients([(grad, table)])
        dense = np.zeros_like(table0)
        np.add.at(dense, ids.numpy(), 2 * expected[ids.numpy()])
        rows = [1, 4]
        velocity[rows] = 0.5 * velocity[rows] - 0.1 * dense[rows]
        expected[rows] += velocity[rows]
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(table.numpy()[[0, 2, 3, 5]], table0[[0, 2, 3, 5]])


def test_dense_rule_serves_sparse_gradients_when_there_is_no_sparse_hook():
    table = tf.Variable(np.ones((4, 2)))
    opt = SimpleAdagrad(0.5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.gather(table, [2, 2]))
    opt.apply_gradients(zip(tape.gradient(loss, [table]), [table]))
    expected = np.ones((4, 2))
    expected[2] -= 0.5 * 2.0 / np.sqrt(0.1 + 4.0)
    np.testing.assert_allclose(table.numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(opt.get_slot(table, "acc").numpy()[0], [0.1, 0.1], rtol=1e-6)


def test_fallback_apply_state_when_called_directly():
    x = tf.Variable(X0)
    opt = LazyMomentum(0.1, momentum=0.5)
    opt.build([x])
    opt._resource_apply_dense(tf.constant(grad_fn(X0)), x)
    np.testing.assert_allclose(x.numpy(), X0 - f32(0.1) * grad_fn(X0), rtol=1e-12)


# ------------------------------------------------------------- Keras 3 models, saving
def data():
    rng = np.random.default_rng(3)
    inputs = rng.normal(size=(32, 4)).astype("float32")
    return inputs, (inputs @ np.array([[1.0], [-1.0], [0.5], [2.0]]) - 0.3).astype("float32")


def small_model():
    keras.utils.set_random_seed(2)
    return keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_legacy_optimizer_trains_with_fit_and_survives_save_load(case, tmp_path):
    make, _ = CASES[case]
    inputs, targets = data()
    model = small_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(optimizer=make(), loss="mse")
    history = model.fit(inputs, targets, batch_size=8, epochs=4, shuffle=False, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    model.save(tmp_path / "m.keras")
    model.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)

    restored = keras.models.load_model(tmp_path / "m.keras")
    assert type(restored.optimizer) is type(model.optimizer)
    assert restored.optimizer.get_config() == model.optimizer.get_config()
    assert int(restored.optimizer.iterations) == 16
    restored.fit(inputs, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), restored.get_weights()):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ Keras 2 API details
def test_lr_alias_and_deprecation_warning():
    with pytest.warns(UserWarning, match="`lr` argument is deprecated"):
        opt = DecaySGD(lr=0.3)
    assert float(opt.lr) == f32(0.3) and float(opt.learning_rate) == f32(0.3)
    opt.lr = 0.1
    assert float(opt._get_hyper("learning_rate")) == f32(0.1)
    assert DecaySGD.from_config({"name": "DecaySGD", "lr": 0.7}).get_config()["learning_rate"] == 0.7


def test_config_is_built_on_the_keras2_base_config():
    opt = BookAdam(learning_rate=0.02, clipnorm=1.5, decay=0.1)
    config = opt.get_config()
    assert config == {"name": "BookAdam", "clipnorm": 1.5, "decay": 0.1, "learning_rate": 0.02, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-8}
    clone = BookAdam.from_config(config)
    assert clone.get_config() == config and clone.clipnorm == 1.5


def test_name_is_positional_and_slots_are_named():
    opt = LazyMomentum(0.1)
    assert opt.name == "LazyMomentum"
    x = tf.Variable([1.0])
    opt.minimize(lambda: x**2, [x])
    assert opt.get_slot_names() == ["velocity"]
    assert opt.get_slot(x, "velocity").shape == (1,)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"lr": -0.1}, ValueError, "lr.*-0.1"),
        ({"decay": -1.0}, ValueError, "decay.*-1.0"),
        ({"clipvalue": -1.0}, ValueError, "clipvalue.*-1.0"),
        ({"learning_rate": float("nan")}, ValueError, "learning_rate.*nan"),
        ({"momentum_": 0.9}, TypeError, "momentum_"),
        ({"clipnorm": 1.0, "global_clipnorm": 2.0}, ValueError, "clipnorm.*global_clipnorm"),
    ],
)
def test_legacy_constructor_rejects_bad_arguments(kwargs, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(error, match=message):
            LazyMomentum(**kwargs)


def test_missing_resource_apply_dense_is_reported():
    class Incomplete(Optimizer):
        def __init__(self, name="Incomplete", **kwargs):
            super().__init__(name, **kwargs)

    x = tf.Variable([1.0])
    with pytest.raises(NotImplementedError, match="Incomplete must implement _resource_apply_dense"):
        Incomplete().minimize(lambda: x**2, [x])


# ------------------------------------------------------------ the Keras 2 contract, piece by piece
def test_hyperparameters_are_keras2_variables_and_keep_their_types():
    opt = LazyMomentum(0.05, momentum=0.7)
    opt._set_hyper("flag", True)
    opt._set_hyper("period", 5)
    assert opt._serialize_hyperparameter("flag") is True and opt._serialize_hyperparameter("period") == 5
    x = tf.Variable([1.0, 2.0])
    opt.minimize(lambda: tf.reduce_sum(x**2), [x])
    assert isinstance(opt._hyper["momentum"], tf.Variable) and opt._hyper["momentum"].dtype == tf.float32
    assert opt._hyper["flag"].dtype == tf.bool and opt._hyper["period"].dtype == tf.int32
    assert opt._serialize_hyperparameter("flag") is True and opt._serialize_hyperparameter("period") == 5
    assert isinstance(opt.iterations, tf.Variable) and opt.iterations.dtype == tf.int64
    opt.iterations.assign_add(0, read_value=False)
    assert opt._use_locking is True and opt._dense_apply_args == ["self", "grad", "var", "apply_state"]


def test_variables_weights_and_set_weights_in_keras2_order():
    from optimlab.legacy import Adam

    a, b = tf.Variable([1.0, 2.0]), tf.Variable([[3.0]])
    opt = Adam(0.1)
    opt.apply_gradients([(tf.constant([0.5, -0.5]), a), (tf.constant([[1.0]]), b)])
    names = [v.name for v in opt.variables()]
    assert opt.variables() == opt.weights and len(names) == 5  # iterations, m(a), m(b), v(a), v(b)
    assert [tuple(v.shape) for v in opt.weights] == [(), (2,), (1, 1), (2,), (1, 1)]
    values = opt.get_weights()
    assert values[0] == 1
    fresh = Adam(0.1)
    fresh.build([a, b])
    fresh.set_weights(values)
    for x, y in zip(fresh.get_weights(), values):
        np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="set_weights got 2 arrays"):
        fresh.set_weights(values[:2])


def test_apply_gradients_returns_something_tf_group_accepts():
    from optimlab.legacy import SGD

    x = tf.Variable([1.0])
    opt = SGD(0.1)

    @tf.function
    def step():
        op = opt.apply_gradients([(tf.constant([1.0]), x)])
        with tf.control_dependencies([tf.group(op)]):
            return tf.identity(x)

    np.testing.assert_allclose(step().numpy(), [1.0 - np.float32(0.1)])


def test_tf_variable_attribute_is_not_optimizer_state_and_lr_goes_through_properties():
    from optimlab.legacy import SGD

    class Wrapper(Optimizer):
        def __init__(self, inner, name="Wrapper", **kwargs):
            super().__init__(name, **kwargs)
            self._inner = inner
            self.counter = tf.Variable(3)

        @property
        def learning_rate(self):
            return self._inner._get_hyper("learning_rate")

        @learning_rate.setter
        def learning_rate(self, value):
            self._inner._set_hyper("learning_rate", value)

    opt = Wrapper(SGD(0.1))
    x = tf.Variable([1.0])
    opt.build([x])
    assert all(v is not opt.counter for v in opt.variables())
    opt.lr = 0.5
    assert opt._inner._serialize_hyperparameter("learning_rate") == 0.5


def test_add_slot_takes_a_tensor_value_and_its_shape():
    class Snapshot(Optimizer):
        def __init__(self, name="Snapshot", **kwargs):
            super().__init__(name, **kwargs)

        def _create_slots(self, var_list):
            for var in var_list:
                self.add_slot(var, "start", var.read_value())
                self.add_slot(var, "row", initializer=tf.zeros([1, 2]))

        def _resource_apply_dense(self, grad, var):
            return var.assign_sub(grad)

    x = tf.Variable([[1.0, 2.0], [3.0, 4.0]])
    opt = Snapshot()
    opt.apply_gradients([(tf.ones_like(x), x)])
    np.testing.assert_array_equal(opt.get_slot(x, "start").numpy(), [[1.0, 2.0], [3.0, 4.0]])
    assert tuple(opt.get_slot(x, "row").shape) == (1, 2)


def test_slots_created_after_loading_are_restored_when_they_appear():
    from optimlab.legacy import Adam

    x = tf.Variable([1.0, -1.0])
    trained = Adam(0.1)
    for _ in range(3):
        trained.apply_gradients([(tf.constant([0.3, 0.2]), x)])
    store = {}
    trained.save_own_variables(store)
    fresh = Adam(0.1)
    fresh.load_own_variables(store)  # not built: nothing to assign yet
    assert fresh.get_weights() == []
    fresh.build([x])
    for a, b in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_install_points_tf_keras_legacy_at_optimlab_and_uninstall_restores():
    import optimlab.legacy as legacy
    import tensorflow.keras.optimizers.legacy as tf_legacy_module

    before = tf.keras.optimizers.legacy.Adam
    with legacy.install():
        assert tf.keras.optimizers.legacy.Adam is legacy.Adam
        assert tf.keras.optimizers.legacy.Optimizer is legacy.Optimizer
        from tensorflow.keras.optimizers.legacy import Nadam, SGD

        assert Nadam is legacy.Nadam and SGD is legacy.SGD and tf_legacy_module.RMSprop is legacy.RMSprop
    assert not legacy.installed()
    assert tf.keras.optimizers.legacy.Adam is before
    assert not hasattr(tf.keras.optimizers.legacy, "Nadam")


def test_tf_train_checkpoint_restores_slots_created_after_restore(tmp_path):
    from optimlab.legacy import Adam

    x = tf.Variable([1.0, -1.0])
    trained = Adam(0.1)
    for _ in range(3):
        trained.apply_gradients([(tf.constant([0.3, 0.2]), x)])
    path = tf.train.Checkpoint(opt=trained, x=x).save(str(tmp_path / "ckpt"))
    y, fresh = tf.Variable([0.0, 0.0]), Adam(0.1)
    tf.train.Checkpoint(opt=fresh, x=y).restore(path)
    fresh.build([y])  # slots appear after the restore
    for a, b in zip(fresh.get_weights(), trained.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_apply_gradients_drops_missing_gradients_and_rejects_all_missing():
    from optimlab.legacy import SGD

    x, y = tf.Variable([1.0]), tf.Variable([2.0])
    opt = SGD(0.5)
    opt.apply_gradients([(tf.constant([1.0]), x), (None, y)])
    np.testing.assert_allclose([x.numpy()[0], y.numpy()[0]], [0.5, 2.0])
    with pytest.raises(ValueError, match="No gradients provided"):
        SGD(0.5).apply_gradients([(None, x), (None, y)])
