"""Models of the training lab: seed 002's MLP, linear/logistic regression, a small CNN.

:func:`build` creates a problem's model with its weights fixed by ``seed``, so
that every optimizer of a paired comparison starts from the same point.
"""

import keras
import numpy as np


class MLP(keras.Model):
    """Seed 002's multilayer perceptron: Dense hidden layers, then a linear output.

    Args:
        num_hidden_units: an int or a list of ints (one hidden layer each).
        num_targets: outputs of the last (linear) layer.
        hidden_activation: activation of the hidden layers (default ``relu``).

    Example:
        >>> import numpy as np
        >>> MLP(4, 1)(np.zeros((2, 13), "float32")).shape
        TensorShape([2, 1])
    """

    def __init__(self, num_hidden_units, num_targets, hidden_activation="relu", **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_hidden_units, int):
            num_hidden_units = [num_hidden_units]
        self.feature_extractor = keras.Sequential(
            [keras.layers.Dense(units, activation=hidden_activation) for units in num_hidden_units]
        )
        self.last_linear = keras.layers.Dense(num_targets, activation="linear")

    def call(self, x):
        return self.last_linear(self.feature_extractor(x))


def linear(num_outputs):
    """One Dense layer: linear regression with MSE, logistic regression with crossentropy."""
    return keras.Sequential([keras.layers.Dense(num_outputs)])


def small_cnn(num_classes, filters=8, side=8):
    """A small CNN for ``side x side`` grey images given as flat rows (scikit-learn's digits)."""
    return keras.Sequential([
        keras.layers.Reshape((side, side, 1)),
        keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(2),
        keras.layers.Flatten(),
        keras.layers.Dense(num_classes),
    ])


def build(problem, num_features, seed):
    """The model of ``problem`` for inputs of ``num_features``, initialized from ``seed``."""
    keras.utils.set_random_seed(int(seed))
    if problem.model == "mlp":
        model = MLP(list(problem.hidden), problem.outputs)
    elif problem.model == "linear":
        model = linear(problem.outputs)
    elif problem.model == "cnn":
        model = small_cnn(problem.outputs, filters=problem.hidden[0])
    else:
        raise ValueError(f"model must be one of ['cnn', 'linear', 'mlp']; got {problem.model!r}")
    model(np.zeros((1, num_features), "float32"))  # creates the weights now, from the seed
    return model
