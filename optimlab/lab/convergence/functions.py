"""Analytic test functions for studying optimizers, with their known minima.

The quartic ``L(x) = 2x^4 + 3x^3 + 2`` of the TensorFlow guide "Optimizers
with Core APIs" and the classic 2-D / N-D
functions of the optimization literature (Rosenbrock, Beale, Booth,
Himmelblau, Rastrigin, Ackley, an ill-conditioned and a noisy quadratic).
Every function is a TensorFlow callable of one parameter tensor (a scalar for
the quartic, a vector of length ``dim`` otherwise), differentiable with
``tf.GradientTape`` and usable inside ``tf.function``.

Example:
    >>> from optimlab.lab.convergence import functions
    >>> f = functions.get_function("rosenbrock")
    >>> float(f([1.0, 1.0])), f.dim, f.start
    (0.0, 2, (-1.2, 1.0))
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from optimlab._names import unknown


@dataclasses.dataclass(frozen=True)
class TestFunction:
    """A named test function with its known minima, usual domain and standard start.

    Attributes:
        name: registry name (lowercase).
        fn: TensorFlow callable of the parameter tensor, returning a scalar.
        dim: number of coordinates; 0 means a scalar parameter (the quartic).
        minima: known global minimizers, each a tuple of ``dim`` coordinates
            (a 1-tuple for a scalar parameter).
        min_value: the loss at the global minima.
        domain: ``((low, high), ...)``, one interval per coordinate, the usual plotting box.
        start: the standard start point (a float for a scalar parameter).
        description: one line, with the formula.
        gradient: optional analytic gradient, a callable like ``fn``.
        saddles: known stationary points that are not minima.
    """

    __test__ = False  # not a pytest test class despite its name

    name: str
    fn: object
    dim: int
    minima: tuple
    min_value: float
    domain: tuple
    start: object
    description: str
    gradient: object = None
    saddles: tuple = ()

    def __call__(self, x):
        return self.fn(tf.convert_to_tensor(x))

    @property
    def shape(self):
        """The parameter's shape: ``()`` for a scalar, ``(dim,)`` otherwise."""
        return () if self.dim == 0 else (self.dim,)

    def distance_to_minimum(self, x):
        """Euclidean distance from ``x`` to the nearest known minimum (inf if none are known)."""
        if not self.minima:
            return math.inf
        point = np.reshape(np.asarray(x, dtype=np.float64), -1)
        return float(min(np.linalg.norm(point - np.asarray(m, dtype=np.float64)) for m in self.minima))


# ---------------------------------------------------------------- formulas
def quartic(x):
    """The guide's loss, written as the guide writes it (the guide's table depends on it)."""
    return 2 * (x**4) + 3 * (x**3) + 2


def quartic_gradient(x):
    return 8 * x**3 + 9 * x**2


def rosenbrock(x):
    return tf.reduce_sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def rosenbrock_gradient(x):
    inner = x[1:] - x[:-1] ** 2
    head = -400.0 * x[:-1] * inner - 2.0 * (1.0 - x[:-1])
    tail = 200.0 * inner
    zero = tf.zeros_like(x[:1])
    return tf.concat([head, zero], 0) + tf.concat([zero, tail], 0)


def beale(x):
    a, b = x[0], x[1]
    return (1.5 - a + a * b) ** 2 + (2.25 - a + a * b**2) ** 2 + (2.625 - a + a * b**3) ** 2


def booth(x):
    a, b = x[0], x[1]
    return (a + 2.0 * b - 7.0) ** 2 + (2.0 * a + b - 5.0) ** 2


def booth_gradient(x):
    a, b = x[0], x[1]
    r1, r2 = a + 2.0 * b - 7.0, 2.0 * a + b - 5.0
    return tf.stack([2.0 * r1 + 4.0 * r2, 4.0 * r1 + 2.0 * r2])


def himmelblau(x):
    a, b = x[0], x[1]
    return (a**2 + b - 11.0) ** 2 + (a + b**2 - 7.0) ** 2


def himmelblau_gradient(x):
    a, b = x[0], x[1]
    r1, r2 = a**2 + b - 11.0, a + b**2 - 7.0
    return tf.stack([4.0 * a * r1 + 2.0 * r2, 2.0 * r1 + 4.0 * b * r2])


def rastrigin(x):
    n = tf.cast(tf.size(x), x.dtype)
    return 10.0 * n + tf.reduce_sum(x**2 - 10.0 * tf.cos(2.0 * math.pi * x))


def ackley(x):
    sum_sq = tf.reduce_mean(x**2)
    # sqrt has an infinite derivative at 0; the guarded form has gradient 0 at the minimum.
    safe = tf.where(sum_sq > 0, sum_sq, tf.ones_like(sum_sq))
    radius = tf.where(sum_sq > 0, tf.sqrt(safe), tf.zeros_like(sum_sq))
    return (
        -20.0 * tf.exp(-0.2 * radius)
        - tf.exp(tf.reduce_mean(tf.cos(2.0 * math.pi * x)))
        + 20.0
        + math.e
    )


def _curvatures(dim, condition):
    """Eigenvalues ``condition ** (i / (dim - 1))``, from 1 to ``condition``."""
    return np.geomspace(1.0, condition, dim) if dim > 1 else np.ones(1)


def make_quadratic(dim, condition):
    """``0.5 * sum(h_i x_i^2)`` with curvatures spread geometrically from 1 to ``condition``."""
    h = _curvatures(dim, condition)

    def quadratic(x):
        return 0.5 * tf.reduce_sum(tf.constant(h, x.dtype) * x**2)

    def gradient(x):
        return tf.constant(h, x.dtype) * x

    return quadratic, gradient


def make_noisy_quadratic(dim, noise):
    """``0.5 * |x|^2 + noise * <xi, x>``, with ``xi ~ N(0, I)`` redrawn whenever ``x`` changes.

    The noise is a deterministic function of the parameter's bits (a stateless
    random draw seeded by them), so eager and compiled runs see the same noise
    and runs are reproducible without any random state.
    """

    def noisy_quadratic(x):
        bits = tf.bitcast(tf.cast(x, tf.float32), tf.int32)
        seed = tf.stack([tf.reduce_sum(bits), tf.reduce_max(bits)])
        xi = tf.random.stateless_normal(tf.shape(x), seed=seed, dtype=x.dtype)
        return 0.5 * tf.reduce_sum(x**2) + noise * tf.reduce_sum(xi * x)

    return noisy_quadratic


# ---------------------------------------------------------------- registry
_FUNCTIONS = {}  # name -> (builder(dim) -> TestFunction fields, defined in any dimension >= 2), in listing order


def register(name, any_dim=False):
    """Register the builder of the test function ``name`` (a decorator), listed in the order registered.

    The builder takes the dimension and returns the :class:`TestFunction`'s
    fields other than the name: ``fn`` (the formula), ``dim``, ``minima``,
    ``min_value``, ``domain`` (the plotting box), ``start`` (the default start),
    ``description`` and optionally ``gradient`` and ``saddles``. With
    ``any_dim`` the function is defined in every dimension >= 2 (the builder
    gets the one asked for, default 2); otherwise it has its own, fixed one.
    """
    def decorate(builder):
        _FUNCTIONS[name] = (builder, any_dim)
        return builder

    return decorate


def _origin(dim):
    return (tuple(0.0 for _ in range(dim)),)


def _box(dim, low, high):
    return tuple((low, high) for _ in range(dim))


@register("quartic")
def _quartic(dim):
    return dict(fn=quartic, dim=0, minima=((-9 / 8,),), min_value=quartic(-9 / 8), domain=((-2.0, 2.0),), start=2.0,
                description="the TF guide's 2x^4 + 3x^3 + 2: saddle (inflection) at 0, global minimum at -9/8",
                gradient=quartic_gradient, saddles=((0.0,),))


@register("rosenbrock", any_dim=True)
def _rosenbrock(dim):
    start = (-1.2, 1.0) if dim == 2 else tuple(-1.2 if i % 2 == 0 else 1.0 for i in range(dim))
    return dict(fn=rosenbrock, dim=dim, minima=(tuple(1.0 for _ in range(dim)),), min_value=0.0,
                domain=((-2.0, 2.0),) + _box(dim - 1, -1.0, 3.0), start=start,
                description="sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2: a curved narrow valley",
                gradient=rosenbrock_gradient)


@register("beale")
def _beale(dim):
    return dict(fn=beale, dim=2, minima=((3.0, 0.5),), min_value=0.0, domain=_box(2, -4.5, 4.5), start=(1.0, 1.5),
                description="(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2: flat plateaus, "
                            "sharp ridges")


@register("booth")
def _booth(dim):
    return dict(fn=booth, dim=2, minima=((1.0, 3.0),), min_value=0.0, domain=_box(2, -10.0, 10.0), start=(-5.0, -5.0),
                description="(x + 2y - 7)^2 + (2x + y - 5)^2: a mildly conditioned quadratic", gradient=booth_gradient)


@register("himmelblau")
def _himmelblau(dim):
    minima = ((3.0, 2.0), (-2.805118, 3.131312), (-3.779310, -3.283186), (3.584428, -1.848126))
    return dict(fn=himmelblau, dim=2, minima=minima, min_value=0.0, domain=_box(2, -5.0, 5.0), start=(0.0, 0.0),
                description="(x^2 + y - 11)^2 + (x + y^2 - 7)^2: four global minima", gradient=himmelblau_gradient)


@register("rastrigin", any_dim=True)
def _rastrigin(dim):
    return dict(fn=rastrigin, dim=dim, minima=_origin(dim), min_value=0.0, domain=_box(dim, -5.12, 5.12),
                start=(-2.0, 3.5) if dim == 2 else tuple(3.5 for _ in range(dim)),
                description="10 n + sum x[i]^2 - 10 cos(2 pi x[i]): a regular grid of local minima")


@register("ackley", any_dim=True)
def _ackley(dim):
    return dict(fn=ackley, dim=dim, minima=_origin(dim), min_value=0.0, domain=_box(dim, -5.0, 5.0),
                start=(-3.0, 2.5) if dim == 2 else tuple(2.5 for _ in range(dim)),
                description="-20 exp(-0.2 rms(x)) - exp(mean cos 2 pi x) + 20 + e: nearly flat outside, "
                            "a deep well at 0")


@register("quadratic", any_dim=True)
def _quadratic(dim):
    fn, gradient = make_quadratic(dim, 100.0)
    return dict(fn=fn, dim=dim, minima=_origin(dim), min_value=0.0, domain=_box(dim, -2.0, 2.0),
                start=tuple(1.5 if i % 2 == 0 else 1.0 for i in range(dim)),
                description="0.5 sum h[i] x[i]^2 with h from 1 to 100: ill-conditioned (condition number 100)",
                gradient=gradient)


@register("noisy_quadratic", any_dim=True)
def _noisy_quadratic(dim):
    return dict(fn=make_noisy_quadratic(dim, 0.1), dim=dim, minima=_origin(dim), min_value=0.0,
                domain=_box(dim, -2.0, 2.0), start=tuple(1.5 for _ in range(dim)),
                description="0.5 |x|^2 + 0.1 <xi, x>, xi ~ N(0, I) redrawn at each new x: gradient noise")


FUNCTION_NAMES = tuple(_FUNCTIONS)
# Functions defined in any dimension >= 2 (the others have a fixed dimension).
N_DIMENSIONAL = tuple(name for name, (_, any_dim) in _FUNCTIONS.items() if any_dim)


def function_names():
    """Names of the registered test functions."""
    return list(FUNCTION_NAMES)


def get_function(name, dim=None):
    """The registered TestFunction ``name``; N-D functions take ``dim`` (default 2).

    Raises:
        ValueError: unknown name (the message lists the valid ones), or a ``dim``
            a function does not support.
    """
    if not isinstance(name, str):
        raise TypeError(f"function name must be a string; got {name!r}")
    key = name.lower()
    if key not in FUNCTION_NAMES:
        raise ValueError(unknown("function", name, FUNCTION_NAMES))
    if dim is None:
        dim = 2
    elif key not in N_DIMENSIONAL:
        raise ValueError(f"dim can only be set for {', '.join(N_DIMENSIONAL)}; got dim={dim!r} for {key!r}")
    elif isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim must be an integer >= 2; got {dim!r}")
    builder, _ = _FUNCTIONS[key]
    return TestFunction(key, **builder(dim))


def describe_functions():
    """One row per registered function: name, dim, minima, min_value, start, domain, description."""
    rows = []
    for name in FUNCTION_NAMES:
        f = get_function(name)
        dim = "1" if f.dim == 0 else ("N (default 2)" if name in N_DIMENSIONAL else str(f.dim))
        rows.append({
            "name": name,
            "dim": dim,
            "minima": "; ".join(str(tuple(round(c, 4) for c in m)) for m in f.minima),
            "min_value": round(float(f.min_value), 6),
            "start": str(f.start),
            "domain": " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in f.domain),
            "description": f.description,
        })
    return rows


def as_function(function):
    """A TestFunction from a registered name, a TestFunction, or any callable of the parameter.

    A plain callable becomes an anonymous TestFunction with no known minima.
    """
    if isinstance(function, TestFunction):
        return function
    if isinstance(function, str):
        return get_function(function)
    if callable(function):
        name = getattr(function, "__name__", type(function).__name__)
        return TestFunction(name, function, -1, (), math.nan, (), None, "user-supplied function")
    raise TypeError(
        f"function must be a registered name ({', '.join(FUNCTION_NAMES)}), a TestFunction "
        f"or a callable of the parameter; got {function!r}"
    )
