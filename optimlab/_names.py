"""The built-in names (optimizers, tasks, test functions, samplers, shape sets) and "did you mean", without TensorFlow.

The registries that hold these names import TensorFlow, which takes seconds;
the ``optimlab`` command checks ``--task``, ``--optimizers``, ``--function``,
``--sampler`` and ``--shapes`` against the lists here first, so a typo is answered at once, with a
suggestion. The registries stay the source of truth: optimizer and function
names come from the generated catalog (``python -m optimlab.lab.catalog``), aliases
and tasks are listed here, and a test (tests/lab/test_cli_names.py) asserts that
each list equals its registry and says which name is missing. Example::

    >>> did_you_mean("adma", OPTIMIZERS)
    "; did you mean 'adam'?"
"""

from optimlab import _catalog_data

# optimlab.registry.names(): every registered optimizer, sorted (from the generated catalog).
OPTIMIZERS = tuple(sorted(entry["name"] for entry in _catalog_data.OPTIMIZERS))
# The aliases given to optimlab.registry.register(...): alias -> registered name.
OPTIMIZER_ALIASES = {
    "frank_wolfe": "conditional_gradient", "gradient_descent": "gd", "gradientdescent": "gd",
    "lazyadam": "lazy_adam", "radam": "rectified_adam", "sfadamw": "schedule_free_adamw",
    "sfsgd": "schedule_free_sgd",
}
# optimlab.lab.training.problems.PROBLEMS: the built-in tasks, then the DeepOBS ones.
TASKS = (
    "boston", "diabetes", "digits", "breast_cancer", "wine", "iris", "quadratic", "classification",
    "quadratic_deep", "two_d_rosenbrock", "two_d_beale", "two_d_branin", "mnist_logreg", "mnist_mlp", "mnist_2c2d",
    "fmnist_logreg", "fmnist_mlp", "fmnist_2c2d", "cifar10_3c3d",
)
# optimlab.lab.training.runner.tuning.SAMPLERS: tune's --sampler values.
SAMPLERS = ("grid", "random", "tpe", "cmaes")
# optimlab.lab.training.runner.tuning.PRUNERS: tune's --pruner values.
PRUNERS = ("none", "median", "halving", "hyperband")
# optimlab.bench.SHAPE_SETS: bench's --shapes values.
SHAPE_SETS = ("large", "small")
# optimlab.lab.convergence.functions.FUNCTION_NAMES: the convergence lab's test functions (from the catalog).
FUNCTIONS = tuple(entry["name"] for entry in _catalog_data.FUNCTIONS)


def _edit_distance(a, b):
    """Optimal string alignment distance: insertions, deletions, substitutions, swaps of neighbours."""
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
    return d[len(a)][len(b)]


def unknown(kind, value, allowed, suggest_from=None, also=""):
    """The one message for a name that is not in a list: the suggestion first, then the valid names.

    ``suggest_from`` (default ``allowed``) may add aliases to what is suggested;
    ``also`` follows the list (e.g. " or package.module:attribute"). Example::

        >>> unknown("task", "diabets", ("boston", "diabetes"))
        "unknown task 'diabets'; did you mean 'diabetes'?; valid names: boston, diabetes"
    """
    hint = did_you_mean(value, allowed if suggest_from is None else suggest_from)
    return f"unknown {kind} {value!r}{hint}; valid names: {', '.join(map(str, allowed))}{also}"


def did_you_mean(value, allowed):
    """``"; did you mean 'adam'?"`` for the closest of ``allowed`` to ``value`` (typos, swaps), else ``""``."""
    text = str(value).lower()
    scored = sorted((_edit_distance(text, str(a).lower()), str(a)) for a in allowed)
    if scored and scored[0][0] <= max(2, len(text) // 3):
        return f"; did you mean {scored[0][1]!r}?"
    return ""
