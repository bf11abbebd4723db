"""Search spaces: the range and scale of every hyperparameter worth tuning, per optimizer.

Choi et al. (2019, "On Empirical Comparisons of Optimizers for Deep Learning")
found that rankings between Adam, momentum and SGD flip once every
hyperparameter (Adam's epsilon and betas included) is tuned; a fair comparison
needs each optimizer's whole space, not its learning rate alone. Each
registered optimizer declares its space beside its update rule
(``@register(..., space={...})``, kept on ``Entry.space``) with the builders
below; :func:`space` returns it for a registered name, an alias or a class of
one's own (derived from the constructor's defaults, see :func:`derive`).

Scales:

- ``"log"``: drawn log-uniformly in ``[low, high]`` (learning rates, epsilons);
- ``"linear"``: uniformly in ``[low, high]``;
- ``"log1m"``: ``1 - x`` drawn log-uniformly in ``[1 - high, 1 - low]``, for
  betas, momentum and decay rates, whose interesting values crowd towards 1
  (0.9, 0.99, 0.999 are equally spaced on this scale);
- ``"int"``: integers in ``[low, high]``;
- ``"choice"``: one of ``choices`` (booleans, modes).

``low`` and ``high`` are always in the hyperparameter's own units (a beta's
space is ``[low, high]`` of beta itself, whatever the scale).

This module imports neither TensorFlow nor Keras: the command checks names
against it before TensorFlow loads (through the generated catalog,
:func:`listed`). Example::

    >>> from optimlab import spaces
    >>> d = spaces.space("adam")["beta_2"]              # doctest: +SKIP
    >>> d.scale, d.contains(0.999), d.grid(3)            # doctest: +SKIP
    ('log1m', True, [0.9, 0.999, 0.99999])
"""

import dataclasses
import inspect
import math
import re

SCALES = ("log", "linear", "log1m", "int", "choice")

# Where the shared ranges come from (the ``source`` field of each dimension).
CHOI = "Choi et al. 2019, App. D: tuned on a log scale of {}"
RULE = "optimlab's rule for a class of one's own ({})"


@dataclasses.dataclass(frozen=True)
class Dimension:
    """One hyperparameter's range: ``name``, ``[low, high]`` on ``scale``, the constructor's ``default``.

    ``source`` says where the range comes from; ``choices`` lists the values
    of a ``"choice"`` dimension. Checked when made (ValueError naming the
    field): a known scale, ``low < high`` (``0 < low`` on ``"log"``,
    ``high < 1`` on ``"log1m"``), non-empty choices.
    """

    name: str
    low: float | None
    high: float | None
    scale: str
    default: object
    source: str
    choices: tuple = ()

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"scale of {self.name or 'a dimension'} must be one of {', '.join(SCALES)}; "
                             f"got {self.scale!r}")
        if self.scale == "choice":
            object.__setattr__(self, "choices", tuple(self.choices))
            if not self.choices:
                raise ValueError(f"choices of {self.name or 'a dimension'} must not be empty")
            return
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"{self.name or 'a dimension'} needs low < high; got [{self.low}, {self.high}]")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"{self.name or 'a dimension'} on a log scale needs low > 0; got {self.low}")
        if self.scale == "log1m" and self.high >= 1:
            raise ValueError(f"{self.name or 'a dimension'} on a log1m scale needs high < 1; got {self.high}")
        if self.scale == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError(f"{self.name or 'a dimension'} on an int scale needs whole bounds; "
                             f"got [{self.low}, {self.high}]")

    @property
    def optuna_name(self):
        """The name of this dimension's Optuna parameter (``one_minus_<name>`` on a log1m scale)."""
        return f"one_minus_{self.name}" if self.scale == "log1m" else self.name

    def contains(self, value):
        """Whether ``value`` lies in this dimension (one of the choices; a number in ``[low, high]``)."""
        if self.scale == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            return False
        if self.scale == "int" and value != int(value):
            return False
        return self.low <= value <= self.high

    def grid(self, n):
        """``n`` points from ``low`` to ``high``, evenly spaced on the dimension's scale (all choices for ``"choice"``)."""
        if self.scale == "choice":
            return list(self.choices)
        if n < 1:
            raise ValueError(f"grid needs n >= 1; got {n}")
        fractions = [0.5] if n == 1 else [i / (n - 1) for i in range(n)]
        if self.scale == "int":
            return sorted({int(round(self.low + f * (self.high - self.low))) for f in fractions})
        # 12 significant digits: 0.999, not 0.9990000000000023 (the scale's arithmetic), kept inside [low, high]
        return [min(max(float(f"{self._at(f):.12g}"), self.low), self.high) for f in fractions]

    def _at(self, fraction):
        """The value at ``fraction`` (0 -> low, 1 -> high) of the way along the scale."""
        if self.scale == "log":
            return math.exp(math.log(self.low) + fraction * (math.log(self.high) - math.log(self.low)))
        if self.scale == "log1m":
            top, bottom = math.log(1 - self.low), math.log(1 - self.high)
            return 1 - math.exp(top + fraction * (bottom - top))
        return self.low + fraction * (self.high - self.low)

    def suggest(self, trial):
        """The value drawn with an Optuna ``trial`` (on a log1m scale, ``1 - x`` is drawn log-uniformly)."""
        if self.scale == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.scale == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high))
        if self.scale == "log1m":
            return 1 - trial.suggest_float(self.optuna_name, 1 - self.high, 1 - self.low, log=True)
        return trial.suggest_float(self.name, self.low, self.high, log=self.scale == "log")

    def from_params(self, params):
        """The value back from an Optuna trial's ``params`` dict (the inverse of what :meth:`suggest` stored)."""
        value = params[self.optuna_name]
        return 1 - value if self.scale == "log1m" else value


def _declared(scale, low, high, source, choices=()):
    # A dimension as an optimizer module declares it: name and default are filled by register().
    return Dimension(name="", low=low, high=high, scale=scale, default=None, source=source, choices=choices)


def log(low, high, source):
    """A dimension drawn log-uniformly in ``[low, high]``, for ``register(space=...)``."""
    return _declared("log", float(low), float(high), source)


def linear(low, high, source):
    """A dimension drawn uniformly in ``[low, high]``, for ``register(space=...)``."""
    return _declared("linear", float(low), float(high), source)


def log1m(low, high, source):
    """A dimension whose ``1 - x`` is drawn log-uniformly (``x`` in ``[low, high]``), for ``register(space=...)``."""
    return _declared("log1m", float(low), float(high), source)


def integer(low, high, source):
    """A dimension of the integers in ``[low, high]``, for ``register(space=...)``."""
    return _declared("int", int(low), int(high), source)


def choice(choices, source):
    """A dimension of a few values (``(False, True)``, modes), for ``register(space=...)``."""
    return _declared("choice", None, None, source, tuple(choices))


# Dimensions shared by many optimizers (each module may declare its own instead).
LEARNING_RATE = log(1e-5, 1.0, "log-uniform, as Choi et al. 2019 and Schmidt et al. 2021 tune it; "
                               "optimlab's range [1e-5, 1]")
BETA_1 = log1m(0.0, 0.999, CHOI.format("1 - beta_1; optimlab's range 1 - beta_1 in [1e-3, 1]"))
BETA_2 = log1m(0.9, 0.99999, CHOI.format("1 - beta_2; optimlab's range 1 - beta_2 in [1e-5, 0.1]"))
EPSILON = log(1e-10, 1.0, CHOI.format("epsilon over many decades (large values make Adam momentum-like); "
                                      "optimlab's range [1e-10, 1]"))
MOMENTUM = log1m(0.0, 0.999, CHOI.format("1 - momentum; optimlab's range 1 - momentum in [1e-3, 1]"))
BOOLEAN = choice((False, True), "both settings")
ADAM_LIKE = {"learning_rate": LEARNING_RATE, "beta_1": BETA_1, "beta_2": BETA_2, "epsilon": EPSILON}

_MOMENTUM_LIKE = re.compile(r"^(beta\w*|\w*momentum\w*|rho|\w*decay)$")
_EPSILON_LIKE = re.compile(r"^\w*(epsilon|eps)\w*$")


def derive(cls):
    """A space derived from the defaults of ``cls.__init__``'s own arguments, by this rule.

    - ``learning_rate`` (a positive number): log scale over ``[1e-5, 1]``
      (widened to hold the default);
    - a boolean: ``choice`` of ``(False, True)``;
    - a float in (0, 1) named ``beta*``, ``*momentum*``, ``rho`` or ``*decay``:
      ``log1m`` with ``1 - x`` from a hundredth to ten times ``1 - default``
      (capped at 1);
    - a positive float named like ``epsilon`` / ``eps``: log scale, three
      decades either side of the default;
    - any other positive float: log scale, one decade either side;
    - everything else is left out: integers, zeros and negative numbers
      (no scale can be told from them), strings, None, tuples, callables.
    """
    found = {}
    for key, parameter in inspect.signature(cls.__init__).parameters.items():
        d = parameter.default
        if key in ("self", "name") or d is inspect.Parameter.empty:
            continue
        if isinstance(d, bool):
            found[key] = Dimension(key, None, None, "choice", d, RULE.format("a boolean"), (False, True))
        elif not isinstance(d, float) or not math.isfinite(d) or d <= 0:
            continue
        elif key == "learning_rate":
            found[key] = Dimension(key, min(1e-5, d), max(1.0, d), "log", d, RULE.format("learning rate 1e-5..1"))
        elif _MOMENTUM_LIKE.match(key) and d < 1:
            gap = 1 - d
            found[key] = Dimension(key, 1 - min(1.0, 10 * gap), 1 - gap / 100, "log1m", d,
                                   RULE.format("1 - x from (1 - default) / 100 to 10 (1 - default)"))
        elif _EPSILON_LIKE.match(key):
            found[key] = Dimension(key, d * 1e-3, d * 1e3, "log", d, RULE.format("epsilon: default x 1e-3..1e3"))
        else:
            found[key] = Dimension(key, d / 10, d * 10, "log", d, RULE.format("default x 0.1..10"))
    return found


def complete(declared, defaults):
    """``{name: Dimension}`` with each dimension's ``name`` and (where unset) ``default`` filled in."""
    return {key: dataclasses.replace(d, name=key, default=defaults.get(key) if d.default is None else d.default)
            for key, d in declared.items()}


def _defaults(cls):
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def space(optimizer, names=None, overrides=None):
    """``{name: Dimension}``: the search space of ``optimizer``, or of the ``names`` in it.

    ``optimizer``: a registered name or alias (its declared space, read from
    the registry, which imports TensorFlow), or a class: a registered class
    gives its declared space, any other class one derived from its
    constructor's defaults (:func:`derive`). A class attribute
    ``search_space`` (``{name: Dimension}``) replaces the entries it names.
    ``names``: None for the whole space, one name (e.g. ``"learning_rate"``)
    or a list of names; a name the space lacks is a ValueError naming it and
    listing the space's names. ``overrides``: ``{name: Dimension}`` replacing
    (or adding) entries, applied before ``names`` is read.
    """
    if isinstance(optimizer, str):
        from optimlab import registry  # imports TensorFlow: only a registered name needs it

        entry = registry.info(optimizer)
        label, found, defaults = entry.name, dict(entry.space), entry.defaults
    elif isinstance(optimizer, type):
        label, defaults = optimizer.__name__, _defaults(optimizer)
        entry = _registered_entry(optimizer)
        found = dict(entry.space) if entry is not None else derive(optimizer)
        found.update(complete(getattr(optimizer, "search_space", None) or {}, defaults))
    else:
        raise TypeError(f"optimizer must be a registered name or a class; got {optimizer!r}")
    if overrides:
        found.update(complete(overrides, defaults))
    return select(found, names, label)


def select(found, names, label):
    """The entries of ``found`` named by ``names`` (None: all; a string: that one); ValueError on a name it lacks."""
    if names is None:
        return found
    wanted = [names] if isinstance(names, str) else list(names)
    for key in wanted:
        if key not in found:
            raise ValueError(f"{key!r} is not in {label}'s search space; its names: {', '.join(found) or 'none'}")
    return {key: found[key] for key in wanted}


def _registered_entry(cls):
    import sys

    registry = sys.modules.get("optimlab.registry")  # a class was made, so TensorFlow is loaded; never load it here
    if registry is None:
        return None
    return next((e for e in registry.entries() if e.cls is cls), None)


def listed(optimizer, names=None):
    """The declared space of a registered name or alias, from the generated catalog: no TensorFlow.

    Equal to :func:`space` for the same name (a test keeps the catalog in step);
    for the command's checks before TensorFlow loads. ValueError on an unknown
    optimizer name, and as :func:`space` on an unknown ``names`` entry.
    """
    from optimlab import _catalog_data, _names

    key = _names.OPTIMIZER_ALIASES.get(optimizer.lower(), optimizer.lower())
    for entry in _catalog_data.OPTIMIZERS:
        if entry["name"] == key:
            return select({d["name"]: Dimension(**d) for d in entry["space"]}, names, key)
    raise ValueError(_names.unknown("optimizer", optimizer, _names.OPTIMIZERS))
