"""One registry, one source of truth for every optimlab optimizer.

``@register(...)`` records a class's name, paper and capabilities, the recipe the
conformance suite uses, and makes the class Keras-serializable. The README's
optimizer table, the CLI's option lists and the tests' skips all read it.

The ``fused`` capability is not declared: it is read from the fast-path
registration (``optimlab.fused``) beside the class's update rule.
"""

import dataclasses
import fnmatch
import inspect

import keras

from optimlab._names import unknown

_REGISTRY = {}
_ALIASES = {}

# Capabilities an optimizer may declare; tests skip on these, never on names.
CAPABILITIES = {
    "sparse": "has its own sparse update path for tf.IndexedSlices",
    "lazy_sparse": "a sparse gradient updates only the indexed rows (state of other rows untouched)",
    "needs_loss": "its step needs the loss value (e.g. SAM, Prodigy variants)",
    "no_bfloat16": "not meaningful in bfloat16 (state needs more precision)",
    "fused": "has a fused-kernel fast path that can be switched off",
}
_DERIVED = {"fused"}  # read from elsewhere, never declared


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How the conformance suite drives an optimizer to a minimum.

    ``kwargs`` go to the constructor; ``steps`` updates are made; the result must
    lie within ``tol`` (max-abs distance) of the minimum.
    """

    kwargs: dict
    steps: int
    tol: float


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    cls: type
    summary: str
    paper: str
    year: int
    url: str
    declared: frozenset
    quadratic: Recipe
    rosenbrock: Recipe
    aliases: tuple = ()
    space: dict = dataclasses.field(default_factory=dict)

    @property
    def defaults(self):
        """Constructor defaults, read from the signature (never repeated by hand)."""
        params = inspect.signature(self.cls.__init__).parameters
        return {
            k: p.default
            for k, p in params.items()
            if k not in ("self", "name") and p.default is not inspect.Parameter.empty and p.kind == p.POSITIONAL_OR_KEYWORD
        }

    @property
    def capabilities(self):
        """The declared capabilities, plus ``fused`` where a fast path applies to the class."""
        from optimlab import fused

        return self.declared | ({"fused"} if fused.fast_path_of(self.cls) else set())

    def has(self, capability):
        return capability in self.capabilities


def register(
    name,
    *,
    paper,
    year,
    url,
    quadratic,
    rosenbrock,
    capabilities=(),
    aliases=(),
    space=None,
):
    """Class decorator: register an optimizer under the lowercase ``name``.

    ``quadratic`` and ``rosenbrock`` are ``(kwargs, steps, tol)`` tuples or Recipes.
    ``space``: ``{argument: Dimension}`` for each constructor argument worth
    tuning, built with :mod:`optimlab.spaces` (``log``, ``log1m``, ...), each
    with the source of its range; kept on ``Entry.space`` with every
    dimension's name and default (read from the signature) filled in. An
    argument the constructor lacks is a ValueError.
    """
    unknown = set(capabilities) - set(CAPABILITIES)
    if unknown:
        raise ValueError(f"unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITIES)}")
    derived = set(capabilities) & _DERIVED
    if derived:
        raise ValueError(f"capabilities {sorted(derived)} are derived (fused: register a fast path), not declared")

    def decorate(cls):
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()}
        strangers = sorted(set(space or {}) - (set(defaults) - {"self", "name", "kwargs"}))
        if strangers:
            raise ValueError(f"space of {name}: {cls.__name__} takes no argument {', '.join(strangers)}")
        keras.saving.register_keras_serializable(package="optimlab", name=cls.__name__)(cls)
        doc = inspect.getdoc(cls) or ""
        entry = Entry(
            name=name,
            cls=cls,
            summary=doc.splitlines()[0] if doc else "",
            paper=paper,
            year=year,
            url=url,
            declared=frozenset(capabilities),
            quadratic=quadratic if isinstance(quadratic, Recipe) else Recipe(*quadratic),
            rosenbrock=rosenbrock if isinstance(rosenbrock, Recipe) else Recipe(*rosenbrock),
            aliases=tuple(aliases),
            space={key: dataclasses.replace(d, name=key, default=defaults[key]) for key, d in (space or {}).items()},
        )
        if name in _REGISTRY or name in _ALIASES:
            raise ValueError(f"optimizer name {name!r} is registered twice")
        _REGISTRY[name] = entry
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return decorate


def _ensure_registered():
    """Import every optimizer module once, so lookups see all of them."""
    import optimlab.optimizers  # noqa: F401


def _resolve(name):
    _ensure_registered()
    if not isinstance(name, str):
        raise TypeError(f"optimizer name must be a string; got {name!r}")
    key = name.lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(unknown("optimizer", name, names(), suggest_from=list(_REGISTRY) + list(_ALIASES)))
    return key


def info(name):
    """The registry entry of ``name`` (or an alias)."""
    return _REGISTRY[_resolve(name)]


def get(name, **kwargs):
    """A new optimizer by registered name, e.g. ``optimlab.get("adam", learning_rate=0.01)``."""
    return info(name).cls(**kwargs)


def names(pattern="*"):
    """Sorted registered names matching a shell-style wildcard, e.g. ``names("adam*")``."""
    _ensure_registered()
    return sorted(n for n in _REGISTRY if fnmatch.fnmatch(n, pattern.lower()))


def entries(pattern="*"):
    return [_REGISTRY[n] for n in names(pattern)]


def markdown_table():
    """The README's optimizer table, generated from the registry."""
    rows = ["| name | class | paper | year | capabilities |", "| --- | --- | --- | --- | --- |"]
    for e in entries():
        caps = ", ".join(sorted(e.capabilities)) or "-"
        rows.append(f"| `{e.name}` | `{e.cls.__name__}` | [{e.paper}]({e.url}) | {e.year} | {caps} |")
    return "\n".join(rows)
