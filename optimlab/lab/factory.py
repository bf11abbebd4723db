"""The lab's one optimizer factory: names become optimizer classes, instances and settings here.

Both labs and the ``optimlab`` command name optimizers the same way: a
registered name or alias (``"adam"``, ``"radam"``), a wildcard (``"adam*"``),
``"all"``, or ``package.module:Class`` (a Keras or optimlab optimizer class of
one's own). Expanding a comma-separated list into names needs no TensorFlow
and lives in :func:`optimlab.lab.arguments.optimizer_names` (it answers before
TensorFlow loads, from the generated catalog); everything that needs the
classes is here:

* :func:`names`: that expansion, with each own class imported and checked.
* :func:`canonical`: the registered name behind an alias (own classes unchanged).
* :func:`optimizer_class`: the class behind ``package.module:Class``.
* :func:`make_optimizer`: a fresh optimizer from a name, hyperparameters and
  an optional learning-rate schedule; :func:`factories`: one
  ``factory(learning_rate)`` per name (the convergence lab's grid).
* :func:`default_learning_rate` and :func:`hyperparameters_of`: an
  optimizer's settings, read from its class.

Example::

    >>> from optimlab.lab import factory
    >>> factory.names("adam*,radam")
    ['adam', 'adamax', 'adamw', 'rectified_adam']
    >>> factory.make_optimizer("sgd", {"learning_rate": 0.1, "momentum": 0.9}).momentum
    0.9
"""

import inspect

import keras

from optimlab import registry, schedules
from optimlab._names import unknown
from optimlab.lab.arguments import optimizer_names
from optimlab.lab.training.problems.custom import import_object


def optimizer_class(name):
    """The class behind ``package.module:Class`` (a Keras or optimlab optimizer); ValueError/TypeError otherwise."""
    cls = import_object(name, "optimizer")
    if not (isinstance(cls, type) and issubclass(cls, keras.optimizers.Optimizer)):
        raise TypeError(f"optimizer {name!r} must be a keras.optimizers.Optimizer subclass (optimlab's included); "
                        f"got {cls!r}")
    return cls


def canonical(name):
    """The registered name behind ``name`` (an alias, any case); ``package.module:Class`` is imported, checked, kept."""
    if ":" in name:
        optimizer_class(name)
        return name
    return registry.info(name).name


def check_names(items):
    """:func:`canonical` of each name in the list ``items``; ValueError for an empty list or an unknown name."""
    if not items:
        raise ValueError("optimizers must name at least one optimizer; got an empty list")
    return [canonical(name) for name in items]


def names(text, option="--optimizers"):
    """The optimizers that ``text`` names (``"adam,sgd"``, ``"adam*"``, ``"all"``, aliases, own classes).

    The expansion is :func:`optimlab.lab.arguments.optimizer_names` (LabError
    for an unknown name); here an own class is imported and checked too
    (ValueError or TypeError when it is not an optimizer class).
    """
    found = optimizer_names(text, option)
    for name in found:
        if ":" in name:
            optimizer_class(name)
    return found


def make_schedule(name, learning_rate, args):
    """``keras.optimizers.schedules.<name>`` or ``optimlab.schedules.<name>`` from ``learning_rate`` and ``args``."""
    known = schedule_classes()
    if name not in known:
        raise ValueError(unknown("schedule", name, sorted(known)))
    try:
        return known[name](learning_rate, **args)
    except TypeError as error:
        raise ValueError(f"schedule {name!r} does not take {sorted(args)} after the learning rate: {error}") from error


# The first argument of a schedule that starts at (or peaks at) the run's learning rate. Others
# (PiecewiseConstantDecay's boundaries, ScaledSchedule's inner schedule) would take the rate as something else.
LEARNING_RATE_FIRST = ("initial_learning_rate", "initial_value", "max_value", "peak_value")


def schedule_classes():
    """``{name: class}`` of the schedules a run can follow (their first argument is the run's learning rate)."""
    found = {}
    for module in (keras.optimizers.schedules, schedules):  # optimlab's win a clash of names
        for name in dir(module):
            if _is_schedule(getattr(module, name)) and not name.startswith("_"):
                found[name] = getattr(module, name)
    return dict(sorted(found.items()))


def _is_schedule(value):
    if not (isinstance(value, type) and issubclass(value, keras.optimizers.schedules.LearningRateSchedule)):
        return False
    first = list(inspect.signature(value.__init__).parameters)[1:2]
    return bool(first) and first[0] in LEARNING_RATE_FIRST


def make_optimizer(name, hyperparameters, schedule=None):
    """A fresh optimizer: a registered name or ``package.module:Class`` with ``hyperparameters``.

    Hyperparameters set to None are left at the class's defaults. With
    ``schedule = (ScheduleName, {args})``, the learning rate becomes that Keras
    or optimlab schedule started at ``hyperparameters["learning_rate"]``.
    """
    hyper = {k: v for k, v in hyperparameters.items() if v is not None}
    if schedule is not None and "learning_rate" in hyper:
        hyper["learning_rate"] = make_schedule(schedule[0], hyper["learning_rate"], schedule[1])
    if ":" in name:
        cls = optimizer_class(name)
        try:
            return cls(**_whole_numbers(cls, hyper))
        except TypeError as error:
            raise TypeError(f"optimizer {name!r} does not take {sorted(hyper)}: {error}") from error
    return registry.get(name, **_whole_numbers(registry.info(name).cls, hyper))


def _whole_numbers(cls, hyper):
    """Whole floats given to integer arguments back as ``int`` (a record stores every number as a float: 5.0 steps)."""
    params = inspect.signature(cls.__init__).parameters
    return {k: int(v) if isinstance(v, float) and v.is_integer() and k in params and type(params[k].default) is int
            else v for k, v in hyper.items()}


def factories(optimizers):
    """``{label: factory(learning_rate)}`` from names (a list or a comma-separated string) or such a dict.

    A dict's factories are kept as given (each must be callable); a name is its
    own label and makes a new optimizer with the given learning rate and the
    other settings at their defaults.
    """
    if isinstance(optimizers, dict):
        for label, factory in optimizers.items():
            if not callable(factory):
                raise TypeError(f"optimizers[{label!r}] must be a callable of the learning rate; got {factory!r}")
        return dict(optimizers)
    items = optimizers.split(",") if isinstance(optimizers, str) else list(optimizers)
    items = [n.strip() for n in items if n.strip()]
    if not items:
        raise ValueError(f"optimizers must name at least one optimizer; got {optimizers!r}")
    check_names(items)  # ValueError listing the valid names
    return {name: (lambda lr, name=name: make_optimizer(name, {"learning_rate": lr})) for name in items}


def default_learning_rate(name):
    """The learning rate an optimizer takes when none is given (1e-3 where its class has no number)."""
    if ":" in name:
        default = inspect.signature(optimizer_class(name)).parameters.get("learning_rate")
        value = getattr(default, "default", None)
        return float(value) if isinstance(value, (int, float)) else 1e-3
    return float(registry.info(name).defaults.get("learning_rate", 1e-3))


def own_keywords(cls):
    """The keywords of ``cls.__init__`` itself (not ``name`` or ``**kwargs``), sorted."""
    return sorted(set(inspect.signature(cls.__init__).parameters) - {"self", "name", "kwargs"})


def hyperparameters_of(cls):
    """Every keyword the optimizer class's constructor takes, its own and its bases' (not ``name``), sorted."""
    keys = set()
    for base in cls.__mro__:
        if "__init__" in vars(base):
            keys |= {k for k, p in inspect.signature(base.__init__).parameters.items()
                     if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and k not in ("self", "name")}
    return sorted(keys)
