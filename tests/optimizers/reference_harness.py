"""Shared pieces of the per-optimizer reference tests: random problems, runners, comparison.

A reference test feeds the same sequence of random gradients to an optimlab
optimizer and to an independent reference (a float64 NumPy transcription of the
paper's update rule written in the test, or the Keras 3 optimizer of the same
name) and compares the final parameters. Gradients are drawn up front, so both
sides see identical inputs and only the update rules can differ.
"""

import keras
import numpy as np
import tensorflow as tf

SHAPES = ((3,), (4, 5), (2, 3, 4))
STEPS = 120
FLOAT64_TOL = {"rtol": 1e-10, "atol": 1e-12}
FLOAT32_TOL = {"rtol": 2e-5, "atol": 2e-6}


def random_problem(seed, shapes=SHAPES, steps=STEPS):
    """Starting points and ``steps`` lists of gradients, one per shape, with varied scales."""
    rng = np.random.default_rng(seed)
    x0 = [rng.normal(size=shape) for shape in shapes]
    scales = rng.uniform(0.1, 3.0, size=(steps, len(shapes)))
    grads = [[scales[t, i] * rng.normal(size=shape) for i, shape in enumerate(shapes)] for t in range(steps)]
    return x0, grads


def run_tf(optimizer, x0, grads, dtype="float32"):
    """Apply every gradient list with ``optimizer`` (optimlab or Keras) inside one traced step."""
    variables = [keras.Variable(x, dtype=dtype) for x in x0]
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply_gradients(zip(gradients, variables))

    for gradients in grads:
        step([tf.constant(g, dtype=dtype) for g in gradients])
    return [np.asarray(v.numpy(), dtype=np.float64) for v in variables]


def run_numpy(update, x0, grads, init_state=lambda x: {}):
    """The reference loop: ``update(x, g, state, t)`` returns the new ``x`` (``t`` from 1)."""
    xs = [np.array(x, dtype=np.float64) for x in x0]
    states = [init_state(x) for x in xs]
    for t, gradients in enumerate(grads, start=1):
        xs = [update(x, g, state, t) for x, g, state in zip(xs, gradients, states)]
    return xs


def assert_matches(actual, expected, x0, tol, min_move=1e-2):
    """Every array matches its reference, and the run moved far enough to be telling."""
    moved = max(np.max(np.abs(e - x)) for e, x in zip(expected, x0))
    assert moved > min_move, f"reference moved only {moved:g}; the comparison would be vacuous"
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, e, **tol)


def run_torch(make_optimizer, x0, grads):
    """The same gradients through a ``torch.optim`` optimizer, float64 (torch must be installed).

    torch's default dtype is float64 meanwhile, so that its scalar state (step
    counts, NAdam's momentum product) is float64 too.
    """
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        params = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in x0]
        optimizer = make_optimizer(params)
        for gradients in grads:
            for p, g in zip(params, gradients):
                p.grad = torch.tensor(g, dtype=torch.float64)
            optimizer.step()
    finally:
        torch.set_default_dtype(previous)
    return [p.detach().numpy().copy() for p in params]


def closed_loop_problem(shapes, steps, seed=0, noise=0.3, centred=False):
    """A noisy quadratic whose gradient depends on the current point: ``g = h * (w - c) + n_t``.

    Returns starting points and ``grads(ws, t)``; closed-loop references (the
    gradient at step t is computed from the reference's own iterate) use it.
    ``c`` is zero unless ``centred``; draws are in a fixed order for reproducibility.
    """
    rng = np.random.default_rng(seed)
    params = [rng.normal(size=s) for s in shapes]
    curvature = [rng.uniform(0.5, 2.0, size=s) for s in shapes]
    centre = [rng.normal(size=s) if centred else np.zeros(s) for s in shapes]
    noises = [[noise * rng.normal(size=s) for s in shapes] for _ in range(steps)]

    def grads(ws, t):
        return [h * (w - c) + n for h, w, c, n in zip(curvature, ws, centre, noises[t])]

    return params, grads


def run_closed_loop(optimizer, params, grads, steps):
    """Eager float64 run of ``optimizer`` on a :func:`closed_loop_problem`; final parameters."""
    variables = [tf.Variable(p, dtype=tf.float64) for p in params]
    for t in range(steps):
        gradients = grads([v.numpy() for v in variables], t)
        optimizer.apply_gradients(zip([tf.constant(g) for g in gradients], variables))
    return [v.numpy() for v in variables]


def run_optax(transformation, x0, grads):
    """The same gradients through an Optax transformation, float64 (optax and jax must be installed)."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import optax

    params = [jax.numpy.asarray(x, jax.numpy.float64) for x in x0]
    state, update = transformation.init(params), jax.jit(transformation.update)
    for gradients in grads:
        updates, state = update([jax.numpy.asarray(g) for g in gradients], state, params)
        params = optax.apply_updates(params, updates)
    return [np.asarray(p, dtype=np.float64) for p in params]
