"""DeepOBS problems: quadratic_deep built as DeepOBS builds it and its published baselines, the 2-D
problems against float64 NumPy, image problems from small arrays written in the Keras cache format."""

import gzip
import pickle

import keras
import numpy as np
import pytest

import optimlab
from optimlab.lab.training import problems
from optimlab.lab.training.problems import deepobs, models
from optimlab.lab.training.runner import loop


def test_quadratic_deep_hessian_has_deepobs_eigenvalues_and_a_proper_rotation():
    rng = np.random.RandomState(42)  # DeepOBS draws the eigenvalues first, from this generator
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
    hessian = deepobs.quadratic_deep_hessian()
    np.testing.assert_allclose(hessian, hessian.T, atol=1e-10)
    np.testing.assert_allclose(np.linalg.eigvalsh(hessian), np.sort(eigenvalues), rtol=1e-9, atol=1e-10)
    rotation = deepobs.haar_rotation(100, np.random.RandomState(7))
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(100), atol=1e-10)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_quadratic_deep_data_theta_and_loss_match_numpy():
    problem = problems.get("quadratic_deep")
    assert (problem.epochs, problem.batch_size, problem.loss) == (100, 128, "mean_output")
    data = problems.load(problem)
    np.testing.assert_array_equal(data.x_train, np.float32(np.random.RandomState(42).normal(0, 0.6, (1000, 100))))
    np.testing.assert_array_equal(data.x_test, np.float32(np.random.RandomState(43).normal(0, 0.6, (1000, 100))))
    model = models.build(problem, (100,), seed=0)
    (theta,) = model.get_weights()
    np.testing.assert_array_equal(theta, np.ones(100))
    delta = 1.0 - data.x_test[:7].astype(np.float64)
    expected = 0.5 * np.einsum("ij,jk,ik->i", delta, deepobs.quadratic_deep_hessian(), delta)
    np.testing.assert_allclose(model(data.x_test[:7]).numpy(), expected, rtol=1e-4)


# Learning rates tuned as DeepOBS does (lowest final validation loss on its log grid 1e-5 ... 1e2,
# 36 points; two seeds each): see README, "DeepOBS problems".
TUNED = [("sgd", {}, 0.01585), ("sgd", {"momentum": 0.99}, 2.512e-4), ("adam", {}, 0.03981)]


@pytest.mark.parametrize(("name", "settings", "lr"), TUNED, ids=["sgd", "momentum", "adam"])
def test_quadratic_deep_reproduces_the_published_baselines(name, settings, lr):
    """DeepOBS reports a final test loss of about 87 for SGD, Momentum and Adam on quadratic_deep.

    The reference is the test loss at the training optimum (theta = mean of the training rows),
    87.13, computed in float64 NumPy; each run must end within seed noise of it (two seeds; the
    spread over seeds and learning rates near the optimum is about +/- 0.3).
    """
    problem = problems.get("quadratic_deep")
    data = problems.load(problem)
    theta = data.x_train.astype(np.float64).mean(axis=0)
    delta = theta - data.x_test.astype(np.float64)
    optimum = np.mean(0.5 * np.einsum("ij,jk,ik->i", delta, deepobs.quadratic_deep_hessian(), delta))
    assert optimum == pytest.approx(87.1, abs=0.1)
    for seed in (0, 1):
        result = loop.train(problem, data, optimlab.get(name, learning_rate=lr, **settings), seed=seed,
                            eval_every=50, diagnostics=False)
        assert result.status == "ok"
        assert optimum - 0.3 < result.final["test_loss"] < optimum + 0.6  # the published baselines are about 87
        assert result.history["test_loss"].iloc[0] > 3 * optimum  # it did have to travel (theta starts at 1)


@pytest.mark.parametrize(("kind", "start", "value"), [
    ("rosenbrock", (-0.5, 1.5), (1 + 0.5) ** 2 + 100 * (1.5 - 0.25) ** 2),
    ("beale", (-4.5, 4.5), (1.5 + 4.5 - 4.5 * 4.5) ** 2 + (2.25 + 4.5 - 4.5 * 4.5**2) ** 2
                          + (2.625 + 4.5 - 4.5 * 4.5**3) ** 2),
    ("branin", (2.5, 12.5), (12.5 - 5.1 / (4 * np.pi**2) * 6.25 + 5 / np.pi * 2.5 - 6) ** 2
                            + 10 * (1 - 1 / (8 * np.pi)) * np.cos(2.5) + 10),
])
def test_two_d_problems_start_where_deepobs_starts_and_add_the_noise(kind, start, value):
    problem = problems.get(f"two_d_{kind}")
    data = problems.load(problem)
    rng = np.random.RandomState(42)
    np.testing.assert_array_equal(data.x_train[:, 0], np.float32(rng.normal(0, 1, 10000)))
    model = models.build(problem, (2,), seed=3)
    np.testing.assert_allclose([float(w) for w in model.get_weights()], start)
    assert float(np.mean(model(data.x_test))) == pytest.approx(value, rel=1e-5)  # test set: the noise-free value
    noise = data.x_train[:5].astype(np.float64)
    np.testing.assert_allclose(model(data.x_train[:5]).numpy(), value + noise @ np.array(start), rtol=1e-5)


def _write_keras_cache(home, n=120):
    """Small MNIST, Fashion-MNIST and CIFAR-10 files in the layout keras.datasets caches them."""
    rng = np.random.default_rng(0)
    folder = home / "datasets"
    (folder / "fashion-mnist").mkdir(parents=True)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    np.savez(folder / "mnist.npz", x_train=images, y_train=labels, x_test=images[:20], y_test=labels[:20])
    for stem, array, header in (("train-labels-idx1-ubyte", labels, 8), ("train-images-idx3-ubyte", images, 16),
                                ("t10k-labels-idx1-ubyte", labels[:20], 8), ("t10k-images-idx3-ubyte", images[:20], 16)):
        with gzip.open(folder / "fashion-mnist" / f"{stem}.gz", "wb") as f:
            f.write(b"\0" * header + array.tobytes())
    cifar = folder / "cifar-10-batches-py-target" / "cifar-10-batches-py"
    cifar.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (12, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 12))}
        (cifar / name).write_bytes(pickle.dumps(batch))
    return images, labels


def test_image_problems_read_the_keras_cache_without_network(tmp_path, monkeypatch):
    images, labels = _write_keras_cache(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda *a: pytest.fail("tried to download"))
    for name in ("mnist_logreg", "fmnist_2c2d", "cifar10_3c3d"):
        data = problems.load(name)
        assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
        assert len(data.x_train) + len(data.x_valid) == (120 if "mnist" in name else 60)
    data = problems.load("mnist_mlp")
    np.testing.assert_allclose(data.x_train[..., 0], images[:100] / 255.0, rtol=1e-6)  # last 20 rows: validation
    np.testing.assert_array_equal(data.y_valid, labels[100:])
    result = loop.train(problems.get("mnist_logreg"), problems.load("mnist_logreg"),
                        optimlab.get("sgd", learning_rate=0.1), seed=0, epochs=1, batch_size=32)
    assert result.history["test_loss"].iloc[0] == pytest.approx(np.log(10), rel=1e-6)  # zero init: uniform


def test_image_problems_without_cache_or_network_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))

    def offline(*args):
        raise OSError("network unreachable")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    with pytest.raises(FileNotFoundError, match="neither in the Keras cache .* nor downloadable"):
        problems.load("fmnist_mlp")


@pytest.mark.parametrize(("name", "shape", "count"), [
    ("mnist_logreg", (28, 28, 1), 7850), ("mnist_mlp", (28, 28, 1), 1336610),
    ("fmnist_2c2d", (28, 28, 1), 3274634), ("cifar10_3c3d", (32, 32, 3), 895210)])
def test_image_models_have_deepobs_sizes(name, shape, count):
    model = models.build(problems.get(name), shape, seed=0)
    assert model.count_params() == count
    assert model(np.zeros((2, *shape), "float32")).shape == (2, 10)
