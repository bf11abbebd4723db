"""The :class:`Problem` (what a run trains) and the registry of problems by name.

The modules that define problems register them (:mod:`.builtin`, :mod:`.deepobs`);
:mod:`optimlab.lab.training.problems` is the package's face (``get``, ``load``).
"""

import dataclasses

from optimlab.lab.training.problems import custom

PROBLEMS = {}  # name -> Problem, in registration order: the built-in problems, then DeepOBS's


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """What a run trains: model, data, loss, metrics, budget and training options.

    Built-in problems are registered by name (:func:`get`); your own is one
    call (see :mod:`optimlab.lab.training.problems.custom` and the README,
    "Your own problem")::

        Problem(model=build_model, data=keras.datasets.mnist.load_data,
                loss="crossentropy", metrics=["accuracy"], epochs=5, batch_size=128, name="my_mnist")

    Args:
        model: ``"mlp"``, ``"linear"`` (one Dense layer: linear or logistic
            regression) or ``"cnn"`` (built from ``hidden`` and ``outputs``), or
            a function of no arguments returning a fresh ``keras.Model``; it is
            called after the run's seed is set, so paired runs start from the
            same weights.
        data: None for the built-in data of ``name``; otherwise NumPy arrays
            ``((x_train, y_train), (x_test, y_test))`` (the ``keras.datasets``
            layout), ``(train, valid, test)`` pairs, a dict with ``train``,
            ``test`` and optionally ``valid``, any of whose splits may be a
            finite ``tf.data.Dataset`` of ``(x, y)``, or a function of no
            arguments returning one of these.
        loss: ``"mse"``, ``"crossentropy"`` (sparse labels, logits),
            ``"mean_output"`` (the model outputs its per-example loss, as in
            DeepOBS's quadratic and 2-D problems) or a function
            ``loss(y_true, y_pred)`` (a Keras loss object works). Required
            with your own ``data``: there is no default loss.
        metrics: ``"mae"``, ``"accuracy"`` or functions ``metric(y_true, y_pred)``;
            the first is the one summaries show. Default (None): the one that
            fits the loss (``accuracy`` for crossentropy, ``mae`` for mse, none
            otherwise); ``mae`` with class labels or ``accuracy`` without them is refused.
        epochs, batch_size: the default budget (``batch_size`` None: full batch).
        standardize: scale inputs with the training statistics.
        target: validation loss that counts as "reached" (None: no target).
        batchnorm: batch normalization after each hidden layer (built-in MLP/CNN).
        mixup: mixup's Beta(alpha, alpha) parameter (0: off), Zhang et al. 2018.
        label_smoothing: for ``crossentropy`` (0: off).
        note: text shown with the problem's results (the CLI prints it, the
            report shows it; "" for none). Not stored in records: the report
            finds it by the records' problem name among the registered problems.

    Problems compare by identity (traced programs are reused per problem object);
    what a problem *is*, for its records, is its fingerprint
    (:func:`optimlab.lab.training.problems.fingerprint`). Before any run, one
    step on one batch checks that model, data, loss and metrics fit together
    (:func:`optimlab.lab.training.runner.loop.preflight`).
    """

    name: str = "custom"
    model: object = "mlp"
    data: object = None
    loss: object = None
    metrics: tuple | None = None
    epochs: int = 10
    batch_size: int | None = 32
    standardize: bool = False
    target: float | None = None
    hidden: tuple = ()
    outputs: int = 1
    description: str = ""
    needs_data: bool = False
    batchnorm: bool = False
    mixup: float = 0.0
    label_smoothing: float = 0.0
    note: str = dataclasses.field(default="", metadata={"recorded": False})

    def __post_init__(self):
        if self.metrics is None:  # frozen: the default that fits the loss is set once, here
            object.__setattr__(self, "metrics", custom.default_metrics(self.loss))
        custom.check_problem(self)

    @property
    def metric(self):
        """The name of the first metric (None when there is none)."""
        return custom.metric_name(self.metrics[0]) if self.metrics else None

    def meta(self):
        """JSON-able metadata stored in every record (functions by ``module:name``, no arrays)."""
        return custom.describe(self)


def register(problem):
    """Add ``problem`` to the registry under its name and return it: ``register(Problem(name="mine", ...))``.

    A name registered twice is a ValueError. The CLI checks ``--task`` against
    ``optimlab._names.TASKS``, a TensorFlow-free copy of these names that
    ``tests/lab/test_cli_names.py`` keeps equal to :data:`PROBLEMS`.
    """
    if not isinstance(problem, Problem):
        raise TypeError(f"register takes a Problem; got {type(problem).__name__}")
    if problem.name in PROBLEMS:
        raise ValueError(f"problem name {problem.name!r} is registered twice")
    PROBLEMS[problem.name] = problem
    return problem


def names():
    """The registered problems' names, sorted."""
    return sorted(PROBLEMS)


def note(problem):
    """The note shown with ``problem``'s results: a Problem's own, or the registered one of that name ("" if none)."""
    if isinstance(problem, Problem):
        return problem.note
    registered = PROBLEMS.get(problem)
    return registered.note if registered is not None else ""
