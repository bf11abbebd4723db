"""Models of the training lab: the Boston housing MLP, linear/logistic regression, a small CNN, users' builders.

:func:`build` creates a problem's model with its weights fixed by ``seed``, so
that every optimizer of a paired comparison starts from the same point.
"""

import re

import keras
import numpy as np


class MLP(keras.Model):
    """The Boston housing book chapter's multilayer perceptron: Dense hidden layers, then a linear output.

    Args:
        num_hidden_units: an int or a list of ints (one hidden layer each).
        num_targets: outputs of the last (linear) layer.
        hidden_activation: activation of the hidden layers (default ``relu``).
        batchnorm: batch normalization between each hidden layer's Dense and
            its activation (Ioffe & Szegedy 2015; as in the article on TensorFlow optimizers). Default False.

    Example:
        >>> import numpy as np
        >>> MLP(4, 1)(np.zeros((2, 13), "float32")).shape
        TensorShape([2, 1])
    """

    def __init__(self, num_hidden_units, num_targets, hidden_activation="relu", batchnorm=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(num_hidden_units, int):
            num_hidden_units = [num_hidden_units]
        layers = []
        for units in num_hidden_units:
            if batchnorm:
                layers += [keras.layers.Dense(units), keras.layers.BatchNormalization(),
                           keras.layers.Activation(hidden_activation)]
            else:
                layers.append(keras.layers.Dense(units, activation=hidden_activation))
        self.feature_extractor = keras.Sequential(layers)
        self.last_linear = keras.layers.Dense(num_targets, activation="linear")

    def call(self, x):
        return self.last_linear(self.feature_extractor(x))


def linear(num_outputs):
    """One Dense layer: linear regression with MSE, logistic regression with crossentropy."""
    return keras.Sequential([keras.layers.Dense(num_outputs)])


def small_cnn(num_classes, filters=8, side=8, batchnorm=False):
    """A small CNN for ``side x side`` grey images given as flat rows (scikit-learn's digits)."""
    conv = [keras.layers.Conv2D(filters, 3, padding="same")]
    conv += [keras.layers.BatchNormalization()] if batchnorm else []
    return keras.Sequential([keras.layers.Reshape((side, side, 1)), *conv, keras.layers.Activation("relu"),
                             keras.layers.MaxPooling2D(2), keras.layers.Flatten(), keras.layers.Dense(num_classes)])


def _from_builder(problem):
    """The user's (or DeepOBS's) model: ``problem.model()``, with ``batchnorm=True`` when asked."""
    try:
        model = problem.model(batchnorm=True) if problem.batchnorm else problem.model()
    except TypeError as error:
        if problem.batchnorm and "batchnorm" in str(error):
            raise ValueError(f"batchnorm=True needs a model function that takes batchnorm=...; "
                             f"{problem.model!r} does not (add BatchNormalization layers to your model)") from error
        raise
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must return a keras.Model; {describe(problem)} returned {type(model).__name__}")
    return model


def build(problem, input_shape, seed):
    """The model of ``problem`` for inputs of ``input_shape`` (an int: flat features), initialized from ``seed``."""
    keras.utils.set_random_seed(int(seed))
    input_shape = (int(input_shape),) if np.isscalar(input_shape) else tuple(input_shape)
    if callable(problem.model):
        model = _from_builder(problem)
    elif problem.model == "mlp":
        model = MLP(list(problem.hidden), problem.outputs, batchnorm=problem.batchnorm)
    elif problem.model == "linear":
        model = linear(problem.outputs)
    elif problem.model == "cnn":
        model = small_cnn(problem.outputs, filters=problem.hidden[0], batchnorm=problem.batchnorm)
    else:
        raise ValueError(f"model must be one of ['cnn', 'linear', 'mlp'] or a function; got {problem.model!r}")
    try:
        model(np.zeros((1, *input_shape), "float32"))  # creates the weights now, from the seed
    except Exception as error:  # noqa: BLE001 - Keras's long message, cut to the line that says what is wrong
        raise ValueError(f"model: {describe(problem)} cannot take the data's inputs, rows of shape {input_shape}: "
                         f"{reason(error)}") from error
    return model


def describe(problem):
    """How an error names the problem's model: ``'mlp'`` or the function's ``module:qualname``."""
    model = problem.model
    return repr(model) if isinstance(model, str) else f"{getattr(model, '__module__', '?')}:" \
        f"{getattr(model, '__qualname__', type(model).__qualname__)}"


def reason(error):
    """The line of a Keras or TensorFlow error that says what is wrong (not its call stack), at most 300 characters."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Keras colours its messages
    lines = [line.strip(" \t\u2022") for line in text.splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Exception encountered", "Arguments received",
                                                                      "Call arguments received", "{{function_node"))]
    text = useful[0] if useful else (lines[0] if lines and lines[0] else type(error).__name__)
    return text if len(text) <= 300 else text[:297] + "..."
