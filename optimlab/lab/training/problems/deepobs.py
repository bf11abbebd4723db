"""The DeepOBS test problems (Schneider, Balles & Hennig, ICLR 2019) in Keras 3.

Written from DeepOBS's TensorFlow code (https://github.com/fsschneider/DeepOBS):
the same data, models, initializers, budgets (``DEFAULT_TEST_PROBLEMS_SETTINGS``)
and metrics.

* ``quadratic_deep``: a 100-D noisy quadratic ``0.5 (theta - x)^T Q (theta - x)``
  whose Hessian ``Q = R^T diag(lambda) R`` has 90 eigenvalues from U(0, 1) and
  10 from U(30, 60), and a Haar-random rotation R (subgroup algorithm), all
  drawn, in DeepOBS's order, from one ``np.random.RandomState(42)``. Data: 1000
  rows of N(0, 0.6^2) in 100-D from RandomState(42) (train) and 43 (test);
  validation from 44 (DeepOBS's later versions, like its 2-D set). theta starts
  at 1. Batch 128, 100 epochs; the metric is the loss itself.
* ``two_d_rosenbrock``, ``two_d_beale``, ``two_d_branin``: the 2-D functions
  plus the noise ``u x + v y``, (x, y) ~ N(0, 1), 10000 rows from
  RandomState(42) (train) and 44 (validation); the test set is all zeros (the
  noise-free function). Starts (-0.5, 1.5), (-4.5, 4.5), (2.5, 12.5).
  DeepOBS sets no default budget for them; here batch 128, 100 epochs.
* ``mnist_logreg`` (zero-initialized, 50 epochs), ``mnist_mlp`` (1000-500-100,
  truncated normal 0.03, 100 epochs), ``mnist_2c2d``, ``fmnist_logreg``,
  ``fmnist_mlp``, ``fmnist_2c2d`` (two 5x5 conv + 1024 dense, truncated normal
  0.05, biases 0.05, 100 epochs), ``cifar10_3c3d`` (three conv, 512-256 dense,
  Glorot, L2 0.002 on the weights, 100 epochs); batch 128, crossentropy and
  accuracy. Pixels are scaled to [0, 1]; the last 10000 training images are
  the validation split. Deviation: ``cifar10_3c3d`` trains without DeepOBS's
  data augmentation (random crops, flips, colour jitter), with per-image
  standardization only.

Image data comes through ``keras.datasets``: read from the Keras cache
(``$KERAS_HOME/datasets``, default ``~/.keras/datasets``) when present,
downloaded otherwise; a clear ``FileNotFoundError`` when neither works.
"""

import functools
import gzip
import os
import pickle
from pathlib import Path

import numpy as np

from optimlab.lab.training.problems.problem import Problem, register

QUADRATIC_SIZE, QUADRATIC_DIM, QUADRATIC_NOISE = 1000, 100, 0.6
TWO_D_SIZE = 10000
TWO_D_STARTS = {"rosenbrock": (-0.5, 1.5), "beale": (-4.5, 4.5), "branin": (2.5, 12.5)}
IMAGE_VALID = 10000


# ------------------------------------------------------------------ quadratic_deep
def haar_rotation(dim, rng):
    """A rotation in SO(dim) drawn from the Haar measure by the subgroup algorithm (Diaconis & Shahshahani).

    Starts from a random 2-D rotation and grows it one dimension at a time by a
    Householder reflection towards a uniform point on the sphere; the draws
    from ``rng`` come in DeepOBS's order, so RandomState(42) gives its matrix.
    """
    angle = 2 * np.pi * rng.uniform()
    rotation = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v /= np.sqrt(v.T @ v)
        e1 = np.zeros((d + 1, 1))
        e1[0, 0] = 1.0
        w = (e1 - v) / np.sqrt((e1 - v).T @ (e1 - v))
        embedded = np.eye(d + 1)
        embedded[1:, 1:] = rotation
        rotation = embedded - 2 * w @ (w.T @ embedded)
    return -rotation


@functools.lru_cache(maxsize=1)
def quadratic_deep_hessian():
    """DeepOBS's Hessian: eigenvalues then rotation from one RandomState(42), ``R^T diag(lambda) R``."""
    rng = np.random.RandomState(42)
    eigenvalues = np.concatenate([rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)])
    rotation = haar_rotation(QUADRATIC_DIM, rng)
    return rotation.T @ np.diag(eigenvalues) @ rotation


def _normal_rows(seed, shape, scale):
    return np.float32(np.random.RandomState(seed).normal(0.0, scale, shape))


def quadratic_data():
    """Train / valid / test rows of N(0, 0.6^2) in 100-D (seeds 42, 44, 43); the targets are unused zeros."""
    shape = (QUADRATIC_SIZE, QUADRATIC_DIM)
    parts = [_normal_rows(seed, shape, QUADRATIC_NOISE) for seed in (42, 44, 43)]
    return tuple((x, np.zeros(len(x), np.float32)) for x in parts)


def _keras():
    import keras

    return keras


def quadratic_deep_model(batchnorm=False):
    """theta in R^100 (starting at 1); each row x gives the loss ``0.5 (theta - x)^T Q (theta - x)``."""
    keras = _keras()
    import tensorflow as tf

    hessian = tf.constant(quadratic_deep_hessian(), tf.float32)

    class NoisyQuadratic(keras.layers.Layer):
        def build(self, input_shape):
            self.theta = self.add_weight(shape=(QUADRATIC_DIM,), initializer="ones", name="theta")

        def call(self, x):
            delta = self.theta - x
            return 0.5 * tf.reduce_sum((delta @ hessian) * delta, axis=1)

    return keras.Sequential([NoisyQuadratic()])


# ------------------------------------------------------------------ 2-D problems
def two_d_data():
    """Noise (x, y) ~ N(0, 1): train RandomState(42), validation 44 (x drawn before y); test all zeros."""
    parts = []
    for seed in (42, 44):
        rng = np.random.RandomState(seed)
        x, y = rng.normal(0.0, 1.0, TWO_D_SIZE), rng.normal(0.0, 1.0, TWO_D_SIZE)
        parts.append(np.float32(np.stack([x, y], axis=1)))
    parts.insert(2, np.zeros((TWO_D_SIZE, 2), np.float32))
    return tuple((x, np.zeros(len(x), np.float32)) for x in parts)


def _two_d_value(kind, u, v):
    import tensorflow as tf

    if kind == "rosenbrock":
        return (1 - u) ** 2 + 100 * (v - u**2) ** 2
    if kind == "beale":
        return (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2
    b, c, r, s, t = 5.1 / (4 * np.pi**2), 5 / np.pi, 6.0, 10.0, 1 / (8 * np.pi)
    return (v - b * u**2 + c * u - r) ** 2 + s * (1 - t) * tf.cos(u) + s


def two_d_model(kind, batchnorm=False):
    """Parameters (u, v) at DeepOBS's start; each noise row (x, y) gives ``f(u, v) + u x + v y``."""
    keras = _keras()
    start = TWO_D_STARTS[kind]

    class TwoD(keras.layers.Layer):
        def build(self, input_shape):
            self.u = self.add_weight(shape=(), initializer=keras.initializers.Constant(start[0]), name="u")
            self.v = self.add_weight(shape=(), initializer=keras.initializers.Constant(start[1]), name="v")

        def call(self, noise):
            return _two_d_value(kind, self.u, self.v) + self.u * noise[:, 0] + self.v * noise[:, 1]

    return keras.Sequential([TwoD()])


# ------------------------------------------------------------------ image data
def keras_cache():
    """Keras's dataset cache: ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def _read_mnist_cache(folder):
    path = folder / "mnist.npz"
    if not path.exists():
        return None
    with np.load(path, allow_pickle=False) as f:
        return (f["x_train"], f["y_train"]), (f["x_test"], f["y_test"])


def _read_idx(path, offset):
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def _read_fashion_cache(folder):
    folder = folder / "fashion-mnist"
    names = ("train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz")
    if not all((folder / n).exists() for n in names):
        return None
    y_tr, x_tr, y_te, x_te = (_read_idx(folder / n, 8 if "labels" in n else 16) for n in names)
    return (x_tr.reshape(len(y_tr), 28, 28), y_tr), (x_te.reshape(len(y_te), 28, 28), y_te)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches: dicts, strings and NumPy arrays only."""

    def find_class(self, module, name):
        if module.startswith("numpy") and name in ("_reconstruct", "ndarray", "dtype", "scalar"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR batch file refers to {module}.{name}, which is not allowed")


def _read_cifar_batch(path):
    with open(path, "rb") as f:
        batch = _ArrayUnpickler(f, encoding="bytes").load()
    data = np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return data, np.asarray(batch[b"labels"], np.int64)


def _read_cifar10_cache(folder):
    for inner in (folder / "cifar-10-batches-py-target" / "cifar-10-batches-py", folder / "cifar-10-batches-py"):
        files = [inner / f"data_batch_{i}" for i in range(1, 6)] + [inner / "test_batch"]
        if all(f.exists() for f in files):
            parts = [_read_cifar_batch(f) for f in files]
            x_tr = np.concatenate([p[0] for p in parts[:5]])
            y_tr = np.concatenate([p[1] for p in parts[:5]])
            return (x_tr, y_tr), parts[5]
    return None


_CACHE_READERS = {"mnist": _read_mnist_cache, "fashion_mnist": _read_fashion_cache, "cifar10": _read_cifar10_cache}


def keras_dataset(name):
    """``((x_train, y_train), (x_test, y_test))`` of ``keras.datasets.<name>``: the cache, else a download."""
    cached = _CACHE_READERS[name](keras_cache())
    if cached is not None:
        return cached
    keras = _keras()
    try:
        return getattr(keras.datasets, name).load_data()
    except Exception as error:  # noqa: BLE001 - any download failure gets one clear message
        raise FileNotFoundError(
            f"{name} data is neither in the Keras cache ({keras_cache()}) nor downloadable ({error}); "
            f"go online once so that keras.datasets.{name}.load_data() caches it, or set $KERAS_HOME to a "
            "folder whose datasets/ holds it") from error
    return None


def image_data(name):
    """DeepOBS's splits: pixels in [0, 1], the last 10000 training images for validation, integer labels."""
    (x_tr, y_tr), (x_te, y_te) = keras_dataset(name)
    x_tr, x_te = (np.float32(x) / 255.0 for x in (x_tr, x_te))
    if x_tr.ndim == 3:
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    if name == "cifar10":  # per-image standardization (DeepOBS's, without its augmentation)
        x_tr, x_te = (_standardize_images(x) for x in (x_tr, x_te))
    y_tr, y_te = (np.asarray(y).reshape(-1).astype(np.int32) for y in (y_tr, y_te))
    n_valid = min(IMAGE_VALID, len(x_tr) // 6)
    return (x_tr[:-n_valid], y_tr[:-n_valid]), (x_tr[-n_valid:], y_tr[-n_valid:]), (x_te, y_te)


def _standardize_images(x):
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(x[0].size))
    return ((x - mean) / std).astype(np.float32)


# ------------------------------------------------------------------ image models
def _bn(batchnorm):
    keras = _keras()
    return [keras.layers.BatchNormalization()] if batchnorm else []


def logreg_model(batchnorm=False):
    """784 -> 10, weights and biases initialized to zero."""
    keras = _keras()
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10, kernel_initializer="zeros")])


def mlp_model(batchnorm=False):
    """784-1000-500-100-10 ReLU, truncated normal (std 0.03) weights, zero biases."""
    keras = _keras()
    layers = [keras.layers.Flatten()]
    for units in (1000, 500, 100):
        layers.append(keras.layers.Dense(units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=3e-2)))
        layers += _bn(batchnorm) + [keras.layers.Activation("relu")]
    layers.append(keras.layers.Dense(10, kernel_initializer=keras.initializers.TruncatedNormal(stddev=3e-2)))
    return keras.Sequential(layers)


def two_c_two_d_model(batchnorm=False):
    """conv 5x5x32 - pool - conv 5x5x64 - pool - dense 1024 - dense 10; truncated normal 0.05, biases 0.05."""
    keras = _keras()
    init = dict(kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.05),
                bias_initializer=keras.initializers.Constant(0.05))
    layers = []
    for filters in (32, 64):
        layers.append(keras.layers.Conv2D(filters, 5, padding="same", **init))
        layers += _bn(batchnorm)
        layers += [keras.layers.Activation("relu"), keras.layers.MaxPooling2D(2, 2, padding="same")]
    layers += [keras.layers.Flatten(), keras.layers.Dense(1024, **init)] + _bn(batchnorm)
    layers += [keras.layers.Activation("relu"), keras.layers.Dense(10, **init)]
    return keras.Sequential(layers)


def three_c_three_d_model(batchnorm=False, weight_decay=0.002):
    """conv 5x5x64 valid - pool 3/2 - conv 3x3x96 valid - pool - conv 3x3x128 - pool - 512 - 256 - 10.

    Glorot-normal conv and Glorot-uniform dense weights, zero biases, an L2
    penalty ``weight_decay / 2 * ||w||^2`` on the weights (DeepOBS's 0.002).
    """
    keras = _keras()
    l2 = keras.regularizers.L2(0.5 * weight_decay)
    layers = []
    for filters, size, padding in ((64, 5, "valid"), (96, 3, "valid"), (128, 3, "same")):
        layers.append(keras.layers.Conv2D(filters, size, padding=padding, kernel_initializer="glorot_normal",
                                          kernel_regularizer=l2))
        layers += _bn(batchnorm)
        layers += [keras.layers.Activation("relu"), keras.layers.MaxPooling2D(3, 2, padding="same")]
    layers.append(keras.layers.Flatten())
    for units in (512, 256):
        layers.append(keras.layers.Dense(units, kernel_initializer="glorot_uniform", kernel_regularizer=l2))
        layers += _bn(batchnorm) + [keras.layers.Activation("relu")]
    layers.append(keras.layers.Dense(10, kernel_initializer="glorot_uniform", kernel_regularizer=l2))
    return keras.Sequential(layers)


# ------------------------------------------------------------------ registry
def mnist_data():
    return image_data("mnist")


def fmnist_data():
    return image_data("fashion_mnist")


def cifar10_data():
    return image_data("cifar10")


def problems():
    """The DeepOBS problems, as :class:`~optimlab.lab.training.problems.Problem` s (registered on import)."""
    out = [Problem(name="quadratic_deep", description="DeepOBS: 100-D noisy quadratic, deep-learning eigenvalues",
                   model=quadratic_deep_model, data=quadratic_data, loss="mean_output", metrics=(),
                   epochs=100, batch_size=128)]
    for kind in TWO_D_STARTS:
        out.append(Problem(name=f"two_d_{kind}", description=f"DeepOBS: noisy 2-D {kind.capitalize()}",
                           model=functools.partial(two_d_model, kind), data=two_d_data, loss="mean_output",
                           metrics=(), epochs=100, batch_size=128))
    images = {"mnist": ("MNIST", mnist_data), "fmnist": ("Fashion-MNIST", fmnist_data)}
    for prefix, (title, loader) in images.items():
        for suffix, builder, epochs in (("logreg", logreg_model, 50), ("mlp", mlp_model, 100),
                                        ("2c2d", two_c_two_d_model, 100)):
            out.append(Problem(name=f"{prefix}_{suffix}", description=f"DeepOBS: {title} {suffix}",
                               model=builder, data=loader, loss="crossentropy", metrics=("accuracy",),
                               epochs=epochs, batch_size=128, needs_data=True))
    out.append(Problem(name="cifar10_3c3d", description="DeepOBS: CIFAR-10 3c3d (no augmentation)",
                       model=three_c_three_d_model, data=cifar10_data, loss="crossentropy", metrics=("accuracy",),
                       epochs=100, batch_size=128, needs_data=True))
    return out


for _problem in problems():
    register(_problem)
