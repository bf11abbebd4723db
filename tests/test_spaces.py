"""Search spaces (optimlab.spaces): every registered optimizer's space is valid and usable, classes of
one's own get a derived space, and the log1m mapping matches a float64 NumPy transcription."""

import math

import keras
import numpy as np
import optuna
import pytest
import tensorflow as tf

from optimlab import registry, spaces
from optimlab.spaces import Dimension

ENTRIES = registry.entries()
IDS = [e.name for e in ENTRIES]


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_every_declared_space_is_valid(entry):
    assert "learning_rate" in entry.space or "learning_rate" not in entry.defaults, \
        f"{entry.name} declares no learning-rate range"
    for key, d in entry.space.items():
        assert d.name == key and d.scale in spaces.SCALES and d.source.strip()
        assert d.default == entry.defaults[key], f"{entry.name}.{key}: the default is not the constructor's"
        assert d.contains(d.default), f"{entry.name}.{key}: default {d.default!r} outside [{d.low}, {d.high}]"
        if d.scale == "choice":
            assert d.choices
        else:
            assert d.low < d.high
            for value in d.grid(4):
                assert d.contains(value), f"{entry.name}.{key}: grid point {value} outside the dimension"


def _quadratic_steps(opt, steps=2):
    """A few steps on 0.5 * sum(c * w^2) over a matrix and a vector (curvatures c in (0, 1])."""
    matrix = tf.Variable(np.linspace(-1.0, 1.0, 6).reshape(3, 2), dtype=tf.float32)
    vector = tf.Variable([0.5, -2.0], dtype=tf.float32)
    curvature = tf.constant(np.linspace(0.2, 1.0, 6).reshape(3, 2), dtype=tf.float32)

    def loss():
        return 0.5 * tf.reduce_sum(curvature * matrix**2) + 0.5 * tf.reduce_sum(vector**2)

    for _ in range(steps):
        if hasattr(opt, "minimize"):  # optimlab's (Sophia's step needs the loss)
            opt.minimize(loss, [matrix, vector])
        else:  # a Keras 3 optimizer
            with tf.GradientTape() as tape:
                value = loss()
            opt.apply_gradients(zip(tape.gradient(value, [matrix, vector]), [matrix, vector]))
    return np.concatenate([matrix.numpy().ravel(), vector.numpy()])


def _settings(entry):
    """Each dimension's 3-point grid (the others at their defaults), then 3 random draws of the whole space."""
    for key, d in entry.space.items():
        for value in d.grid(3):
            yield {key: value}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=23))
    for _ in range(3):
        trial = study.ask()
        drawn = {key: d.suggest(trial) for key, d in entry.space.items()}
        assert drawn == {key: d.from_params(trial.params) for key, d in entry.space.items()}
        assert all(entry.space[key].contains(v) for key, v in drawn.items()), drawn
        study.tell(trial, 0.0)
        yield drawn


@pytest.mark.parametrize("entry", ENTRIES, ids=IDS)
def test_grid_points_and_random_draws_make_working_optimizers(entry):
    for settings in _settings(entry):
        result = _quadratic_steps(entry.cls(**settings))
        assert np.isfinite(result).all(), f"{entry.name}({settings}) gave {result}"


def test_the_catalog_carries_the_same_spaces_without_tensorflow():
    for entry in ENTRIES:
        assert spaces.listed(entry.name) == spaces.space(entry.name) == entry.space
    for alias in ("radam", "sfadamw", "gradient_descent"):
        assert spaces.listed(alias) == spaces.space(alias)


def test_names_select_and_a_name_the_space_lacks_is_named():
    assert list(spaces.space("adam", "learning_rate")) == ["learning_rate"]
    assert list(spaces.space("sgd", ["momentum", "learning_rate"])) == ["momentum", "learning_rate"]
    for lookup in (spaces.space, spaces.listed):
        with pytest.raises(ValueError, match=r"'beta_9' is not in adam's search space; its names: learning_rate, "
                                             r"beta_1, beta_2, epsilon"):
            lookup("adam", ["learning_rate", "beta_9"])
    with pytest.raises(ValueError, match="adma"):
        spaces.listed("adma")


def test_overrides_replace_entries_and_keep_the_default():
    wide = spaces.log(1e-8, 10.0, "a test's wider range")
    found = spaces.space("adam", overrides={"epsilon": wide})
    assert (found["epsilon"].low, found["epsilon"].high, found["epsilon"].default) == (1e-8, 10.0, 1e-7)
    assert found["beta_1"] == registry.info("adam").space["beta_1"]


class _TinyMomentum(keras.optimizers.Optimizer):
    """A user's own Keras optimizer: v <- beta v + g; w <- w - lr (v + g) / (1 + epsilon), one 'mode' string."""

    def __init__(self, learning_rate=0.01, beta=0.9, epsilon=1e-6, scale=2.0, centered=False, steps=3,
                 mode="plain", offset=0.0, name="tiny_momentum", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.beta, self.epsilon, self.scale, self.centered = beta, epsilon, scale, centered

    def build(self, variables):
        super().build(variables)
        self.velocities = [self.add_variable_from_reference(v, "velocity") for v in variables]

    def update_step(self, gradient, variable, learning_rate):
        v = self.velocities[self._get_variable_index(variable)]
        v.assign(self.beta * v + gradient)
        variable.assign_sub(tf.cast(learning_rate, variable.dtype) * (v + gradient) / (1 + self.epsilon))


def test_a_class_of_ones_own_gets_a_space_derived_from_its_defaults():
    found = spaces.space(_TinyMomentum)
    # Left out: an int (steps), a string (mode), a zero (offset).
    assert sorted(found) == ["beta", "centered", "epsilon", "learning_rate", "scale"]
    lr, beta, eps, scale = found["learning_rate"], found["beta"], found["epsilon"], found["scale"]
    assert (lr.scale, lr.low, lr.high, lr.default) == ("log", 1e-5, 1.0, 0.01)
    # beta: 1 - x from (1 - 0.9) / 100 to min(1, 10 (1 - 0.9)), in float64.
    gap = np.float64(1.0) - np.float64(0.9)
    assert beta.scale == "log1m" and beta.default == 0.9
    assert beta.low == pytest.approx(1 - min(1.0, 10 * gap), abs=1e-15)
    assert beta.high == pytest.approx(1 - gap / 100, rel=1e-15)
    assert (eps.scale, eps.low, eps.high) == ("log", pytest.approx(1e-9), pytest.approx(1e-3))
    assert (scale.scale, scale.low, scale.high) == ("log", pytest.approx(0.2), pytest.approx(20.0))
    assert found["centered"].choices == (False, True)
    for settings in [{k: d.grid(3)[-1] for k, d in found.items()}, {k: d.grid(3)[0] for k, d in found.items()}]:
        assert np.isfinite(_quadratic_steps(_TinyMomentum(**settings))).all()


def test_a_search_space_attribute_overrides_the_derived_entries():
    narrow = Dimension("beta", 0.5, 0.95, "linear", 0.9, "the user's own range")

    class Narrow(_TinyMomentum):
        search_space = {"beta": narrow, "epsilon": spaces.log(1e-7, 1e-5, "set on the class")}

    found = spaces.space(Narrow)
    assert found["beta"] == narrow
    assert (found["epsilon"].name, found["epsilon"].default, found["epsilon"].low) == ("epsilon", 1e-6, 1e-7)
    assert found["learning_rate"] == spaces.space(_TinyMomentum)["learning_rate"]
    with pytest.raises(ValueError, match="'rho' is not in Narrow's search space; its names: .*beta"):
        spaces.space(Narrow, ["rho"])


def test_a_registered_class_gives_its_declared_space():
    assert spaces.space(registry.info("adam").cls) == registry.info("adam").space


def test_log1m_suggest_and_from_params_match_a_float64_transcription():
    d = registry.info("adam").space["beta_2"]  # 1 - beta_2 in [1e-5, 0.1]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=7))
    drawn = []
    for _ in range(200):
        trial = study.ask()
        value = d.suggest(trial)
        u = np.float64(trial.params["one_minus_beta_2"])
        assert value == np.float64(1.0) - u == d.from_params(trial.params)
        distribution = trial.distributions["one_minus_beta_2"]
        assert distribution.log and distribution.low == pytest.approx(1 - 0.99999, rel=1e-12)
        assert distribution.high == pytest.approx(1 - 0.9, rel=1e-12)
        drawn.append(u)
        study.tell(trial, 0.0)
    # log(1 - x) is uniform on [log 1e-5, log 0.1]: its mean is the midpoint, within 4 standard errors.
    logs = np.log(np.array(drawn))
    low, high = np.log(1e-5), np.log(0.1)
    assert abs(logs.mean() - (low + high) / 2) < 4 * (high - low) / math.sqrt(12 * len(logs))
    assert logs.min() >= low - 1e-12 and logs.max() <= high + 1e-12
    # The grid: 1 - geomspace(1 - low, 1 - high, n) in float64.
    reference = 1.0 - np.geomspace(1.0 - 0.9, 1.0 - 0.99999, 5)
    np.testing.assert_allclose(d.grid(5), reference, rtol=1e-11)


def test_log_and_int_and_choice_grids_match_numpy():
    lr = registry.info("sgd").space["learning_rate"]
    np.testing.assert_allclose(lr.grid(6), np.geomspace(1e-5, 1.0, 6), rtol=1e-11)
    steps = registry.info("muon").space["ns_steps"]
    assert steps.grid(4) == [1, 4, 7, 10] and steps.contains(5) and not steps.contains(5.5)
    assert registry.info("sgd").space["nesterov"].grid(7) == [False, True]
    assert not registry.info("sgd").space["nesterov"].contains(0)


@pytest.mark.parametrize("bad, message", [
    (dict(low=1.0, high=1.0, scale="log"), "low < high"),
    (dict(low=0.0, high=1.0, scale="log"), "low > 0"),
    (dict(low=0.5, high=1.0, scale="log1m"), "high < 1"),
    (dict(low=0.1, high=1.0, scale="cubic"), "scale of x must be one of"),
    (dict(low=None, high=None, scale="choice"), "choices of x must not be empty"),
])
def test_a_malformed_dimension_is_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        Dimension(name="x", default=None, source="test", **bad)


def test_register_refuses_a_space_naming_an_argument_the_constructor_lacks():
    with pytest.raises(ValueError, match="space of bogus: _TinyMomentum takes no argument rho"):
        registry.register("bogus", paper="-", year=2026, url="-", quadratic=({}, 1, 1.0), rosenbrock=({}, 1, 1.0),
                          space={"rho": spaces.MOMENTUM})(_TinyMomentum)
    assert "bogus" not in registry.names()
