"""Optimizer step benchmark: optimlab against Keras 3, TensorFlow's fused kernels, torch.optim and Optax.

One "step" applies one set of gradients to every parameter tensor of a shape set.
Implementations run interleaved (A B C A B C ...) so that machine noise hits all of
them alike; each reports its median time, its ratio to the fastest peer, its
optimizer-state bytes per parameter and its ratio to the memory-traffic bound
(bytes an ideal single pass moves / bandwidth measured here by a fused axpy).

Peers that are not installed (torch, jax/optax) are skipped with a note.

Two ways of calling a step are measured (``steps_per_call``):

- 1 (the default): every step is its own call, as a training loop that calls a
  compiled step per batch does. A TensorFlow function call costs about 0.1 ms
  before any work (0.05-0.1 ms more with a few dozen inputs), which dominates
  small problems.
- K > 1: K steps per call, as inside a compiled training program (Keras's
  ``steps_per_execution``, optimlab's lab loops): TensorFlow implementations
  run K steps in one ``tf.while_loop``, Optax in one jitted ``lax.fori_loop``,
  torch in its own Python loop (it has no compiled loop; each step is a call,
  as in any torch training). The time reported is per step.
"""

import concurrent.futures
import dataclasses
import math
import multiprocessing
import random
import time

import numpy as np
import tensorflow as tf

import optimlab
from optimlab import _interrupt, _quiet


def resnet50_like_shapes():
    """Kernels and biases of ResNet-50's convolutions and classifier: ~25.5M parameters in 108 tensors."""
    shapes = [(7, 7, 3, 64), (64,)]
    channels = 64
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        for block in range(blocks):
            shapes += [(1, 1, channels, width), (width,), (3, 3, width, width), (width,), (1, 1, width, 4 * width), (4 * width,)]
            if block == 0:
                shapes += [(1, 1, channels, 4 * width), (4 * width,)]
            channels = 4 * width
    return shapes + [(2048, 1000), (1000,)]


SHAPE_SETS = {
    "large": resnet50_like_shapes,
    "small": lambda: [(784, 512), (512,), (512, 256), (256,), (256, 10), (10,)],
}

# Peer implementations of the same algorithm: (keras class, torch class + kwargs, optax factory name).
PEERS = {
    "sgd": ("SGD", {"momentum": 0.9}, ("SGD", {"momentum": 0.9}), ("sgd", {"momentum": 0.9})),
    "adam": ("Adam", {}, ("Adam", {}), ("adam", {})),
    "adamw": ("AdamW", {}, ("AdamW", {}), ("adamw", {})),
    "rmsprop": ("RMSprop", {"momentum": 0.9}, ("RMSprop", {"momentum": 0.9, "alpha": 0.9}), ("rmsprop", {"momentum": 0.9})),
    "adagrad": ("Adagrad", {}, ("Adagrad", {}), ("adagrad", {})),
    "adadelta": ("Adadelta", {}, ("Adadelta", {}), ("adadelta", {})),
    "adamax": ("Adamax", {}, ("Adamax", {}), ("adamax", {})),
    "nadam": ("Nadam", {}, ("NAdam", {}), ("nadam", {})),
    "lion": ("Lion", {}, None, ("lion", {})),
    "lamb": ("Lamb", {}, None, ("lamb", {})),
    "adafactor": ("Adafactor", {}, ("Adafactor", {}), ("adafactor", {})),
    "ftrl": ("Ftrl", {}, None, None),
    "rectified_adam": (None, {}, ("RAdam", {}), ("radam", {})),
    "yogi": (None, {}, None, ("yogi", {})),
    "adabelief": (None, {}, None, ("adabelief", {})),
    "novograd": (None, {}, None, ("novograd", {})),
    "lars": (None, {}, None, ("lars", {})),
    "adan": (None, {}, None, ("adan", {})),
    "gd": ("SGD", {}, ("SGD", {}), ("sgd", {})),
    "momentum": ("SGD", {"momentum": 0.7}, ("SGD", {"momentum": 0.7}), ("sgd", {"momentum": 0.7})),
    "lazy_adam": ("Adam", {}, ("Adam", {}), ("adam", {})),
    "muon": ("Muon", {}, None, ("contrib.muon", {})),
    "adopt": (None, {}, None, ("contrib.adopt", {})),
    "ademamix": (None, {}, None, ("contrib.ademamix", {})),
    "prodigy": (None, {}, None, ("contrib.prodigy", {})),
    "schedule_free_adamw": (None, {}, None, ("contrib.schedule_free_adamw", {})),
    "cocob": (None, {}, None, ("contrib.cocob", {})),
}
MIN_BLOCK_S = 0.03  # shortest timed block, in seconds

# Settings under which optimlab runs the same algorithm as the peers above.
OPTIMLAB_KWARGS = {
    "sgd": {"momentum": 0.9},
    "rmsprop": {"momentum": 0.9},
    "muon": {"flatten_higher_rank": False},  # Keras and Optax orthogonalize 2-D variables only
}


@dataclasses.dataclass
class Timing:
    optimizer: str
    shapes: str
    implementation: str
    median_ms: float
    state_bytes_per_param: float
    note: str = ""
    min_ms: float = float("nan")  # the spread of the repeats' times
    max_ms: float = float("nan")


def _traced(function):
    """``function`` traced once, as the concrete function a step calls.

    Calling the concrete function skips ``tf.function``'s per-call signature
    lookup, which hashes every captured tensor (about 0.3 ms for the 330
    captures of the large set) and is not part of any optimizer's work; every
    TensorFlow implementation here is called this way.
    """
    return function.get_concrete_function()


def _time(step, steps):
    start = time.perf_counter()
    step(steps)
    return (time.perf_counter() - start) / steps


def _steps(update, steps_per_call):
    """Inside a traced function: ``update()`` once, or ``steps_per_call`` times in one sequential while loop."""
    if steps_per_call == 1:
        update()
        return

    def body(i):  # the counter waits for the step (the loop is sequential too)
        with tf.control_dependencies([op for op in tf.nest.flatten(update()) if op is not None]):
            return i + 1

    tf.while_loop(lambda i: i < steps_per_call, body, [tf.constant(0)], parallel_iterations=1)


def _tf_runner(opt, shapes, jit=False, seed=0, steps_per_call=1):
    import keras

    rng = np.random.default_rng(seed)
    # Keras's Muon routes variables by their Keras ``path``, which tf.Variable lacks.
    make = keras.Variable if isinstance(opt, keras.optimizers.Muon) else tf.Variable
    variables = [make(rng.standard_normal(s, dtype=np.float32)) for s in shapes]
    grads = [tf.constant(rng.standard_normal(s, dtype=np.float32) * 1e-3) for s in shapes]
    opt.build(variables)

    @_traced
    @tf.function(jit_compile=jit, autograph=False)
    def one():
        _steps(lambda: opt.apply_gradients(zip(grads, variables)), steps_per_call)
        return tf.constant(0)

    def run(steps):
        for _ in range(steps):
            one()
        variables[0].numpy()  # wait for the last update

    n_params = sum(int(np.prod(s)) for s in shapes)
    state = sum(int(np.prod(v.shape)) * tf.as_dtype(v.dtype).size for v in opt.variables if len(v.shape) > 0)
    return run, state / n_params


# TensorFlow's fused kernels called directly (the TF floor): kernel, slot count, scalar arguments.
RAW_KERNELS = {
    "adam": ("ResourceApplyAdam", ("m", "v"),
             dict(beta1_power=0.9, beta2_power=0.999, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7)),
    "sgd": ("ResourceApplyKerasMomentum", ("accum",), dict(lr=1e-3, momentum=0.9)),
    "gd": ("ResourceApplyGradientDescent", (), dict(alpha=1e-3)),
    "rmsprop": ("ResourceApplyRMSProp", ("ms", "mom"), dict(lr=1e-3, rho=0.9, momentum=0.9, epsilon=1e-7)),
    "adagrad": ("ResourceApplyAdagradV2", ("accum",), dict(lr=1e-3, epsilon=1e-7)),
    "adadelta": ("ResourceApplyAdadelta", ("accum", "accum_update"), dict(lr=1e-3, rho=0.95, epsilon=1e-7)),
    "adamax": ("ResourceApplyAdaMax", ("m", "v"), dict(beta1_power=0.9, lr=1e-3, beta1=0.9, beta2=0.999, epsilon=1e-7)),
    "momentum": ("ResourceApplyMomentum", ("accum",), dict(lr=1e-3, momentum=0.7)),
    "ftrl": ("ResourceApplyFtrlV2", ("accum", "linear"), dict(lr=1e-3, l1=0.0, l2=0.0, l2_shrinkage=0.0, lr_power=-0.5)),
    "proximal_adagrad": ("ResourceApplyProximalAdagrad", ("accum",), dict(lr=1e-3, l1=0.0, l2=0.0)),
}


def _raw_runner(name, shapes, seed=0, steps_per_call=1):
    """``name``'s TensorFlow fused kernel, called directly on every tensor of the shape set."""
    kernel, slot_names, scalars = RAW_KERNELS[name]
    op = getattr(tf.raw_ops, kernel)
    rng = np.random.default_rng(seed)
    variables = [tf.Variable(rng.standard_normal(s, dtype=np.float32)) for s in shapes]
    slots = [{k: tf.Variable(tf.zeros(s)) for k in slot_names} for s in shapes]
    grads = [tf.constant(rng.standard_normal(s, dtype=np.float32) * 1e-3) for s in shapes]
    constants = {k: tf.constant(v, tf.float32) for k, v in scalars.items()}
    gradient_arg = "delta" if kernel == "ResourceApplyGradientDescent" else "grad"

    def update():
        return [op(var=var.handle, **{k: v.handle for k, v in state.items()}, **constants, **{gradient_arg: g})
                for var, state, g in zip(variables, slots, grads)]

    @_traced
    @tf.function(autograph=False)
    def one():
        _steps(update, steps_per_call)
        return tf.constant(0)

    def run(steps):
        for _ in range(steps):
            one()
        variables[0].numpy()

    return run, 4.0 * len(slot_names)


def _torch_runner(name, kwargs, shapes, mode, seed=0, steps_per_call=1):
    import torch

    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen) * 1e-3
    extra = {"fused": True} if mode == "fused" else {"foreach": True}
    opt = getattr(torch.optim, name)(params, lr=1e-3, **kwargs, **extra)
    opt.step()

    def run(steps):
        for _ in range(steps * steps_per_call):
            opt.step()

    n_params = sum(p.numel() for p in params)
    state = sum(t.numel() * t.element_size() for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0)
    return run, state / n_params


def _optax_runner(name, kwargs, shapes, seed=0, steps_per_call=1):
    import jax
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(seed)
    params = [jnp.asarray(rng.standard_normal(s, dtype=np.float32)) for s in shapes]
    grads = [jnp.asarray(rng.standard_normal(s, dtype=np.float32) * 1e-3) for s in shapes]
    factory = optax
    for part in name.split("."):  # "contrib.prodigy" -> optax.contrib.prodigy
        factory = getattr(factory, part)
    tx = factory(learning_rate=1e-3, **kwargs)
    state = tx.init(params)

    def step(params, state):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    if steps_per_call == 1:
        one = jax.jit(step)
    else:
        one = jax.jit(lambda p, s: jax.lax.fori_loop(0, steps_per_call, lambda _, c: step(*c), (p, s)))

    holder = [params, state]

    def run(steps):
        p, s = holder
        for _ in range(steps):
            p, s = one(p, s)
        jax.block_until_ready(p)
        holder[:] = [p, s]

    n_params = sum(int(np.prod(s)) for s in shapes)
    leaves = [x for x in jax.tree_util.tree_leaves(state) if hasattr(x, "ndim") and x.ndim > 0]
    return run, sum(x.size * x.dtype.itemsize for x in leaves) / n_params


def measure_bandwidth(shapes, repeats=5, steps=5):
    """Bytes per second of a fused axpy (x -= a * g reads 8 and writes 4 bytes per parameter)."""
    variables = [tf.Variable(tf.ones(s)) for s in shapes]
    grads = [tf.ones(s) for s in shapes]
    alpha = tf.constant(1e-6)

    @_traced
    @tf.function
    def one():
        for v, g in zip(variables, grads):
            tf.raw_ops.ResourceApplyGradientDescent(var=v.handle, alpha=alpha, delta=g)
        return tf.constant(0)

    def run(n):
        for _ in range(n):
            one()
        variables[0].numpy()

    run(2)
    best = min(_time(run, steps) for _ in range(repeats))
    n_params = sum(int(np.prod(s)) for s in shapes)
    return 12 * n_params / best


def implementations(name, shapes, peers=("keras", "keras-xla", "tf-fused", "torch", "optax"), steps_per_call=1):
    """(label, runner factory, note) for optimlab and every installed peer of ``name``; each runner makes
    ``steps_per_call`` steps per call (see the module's docstring)."""
    kwargs = OPTIMLAB_KWARGS.get(name, {})
    k = {"steps_per_call": steps_per_call}
    found = [
        ("optimlab", lambda: _tf_runner(optimlab.get(name, **kwargs), shapes, **k), ""),
        ("optimlab-plain", lambda: _tf_runner(optimlab.get(name, fused=False, **kwargs), shapes, **k), "fused=False"),
        ("optimlab-xla", lambda: _tf_runner(optimlab.get(name, **kwargs), shapes, jit=True, **k), "jit_compile=True"),
    ]
    keras_name, keras_kwargs, torch_spec, optax_spec = PEERS.get(name, (None, {}, None, None))
    if keras_name and "keras" in peers:
        import keras

        cls = getattr(keras.optimizers, keras_name)
        found.append(("keras", lambda: _tf_runner(cls(**keras_kwargs), shapes, **k), "tf.function"))
        if "keras-xla" in peers:
            found.append(("keras-xla", lambda: _tf_runner(cls(**keras_kwargs), shapes, jit=True, **k),
                          "jit_compile=True"))
    if name in RAW_KERNELS and "tf-fused" in peers:
        found.append(("tf-fused", lambda: _raw_runner(name, shapes, **k), f"raw {RAW_KERNELS[name][0]}"))
    if torch_spec and "torch" in peers and _installed("torch"):
        found.append(("torch-foreach", lambda: _torch_runner(*torch_spec, shapes, "foreach", **k), ""))
        if torch_spec[0] in ("Adam", "AdamW", "SGD", "Adagrad"):
            found.append(("torch-fused", lambda: _torch_runner(*torch_spec, shapes, "fused", **k), ""))
    if optax_spec and "optax" in peers and _installed("optax"):
        found.append(("optax-jit", lambda: _optax_runner(*optax_spec, shapes, **k), ""))
    return found


def _installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def run(optimizers=("adam", "sgd", "rmsprop"), shape_sets=("large", "small"), repeats=7, steps=3, progress=None,
        pause=0.05, isolate=False, steps_per_call=1):
    """Time every implementation; returns (list of Timing, bandwidth in bytes/s per shape set).

    ``steps_per_call``: 1 times each step as its own call; K > 1 times K steps
    per call (a compiled loop where the library has one) and reports per step.

    Each repeat times every implementation once, in a fresh random order (so no
    implementation always follows the same neighbour). A timed block starts
    ``pause`` idle seconds after the previous one (the worker threads a library
    leaves spinning after its own work, OpenMP's or Eigen's, would otherwise
    steal the cores from the next) and one untimed step (waking the library's own
    threads), then runs at least ``steps`` steps and at least ``MIN_BLOCK_S``
    seconds, so small problems measure steady steps, not wake-up latency.

    With ``isolate`` every (optimizer, shape set) is measured in a fresh process:
    TensorFlow, XLA and JAX keep part of each implementation's memory for the
    life of a process, so a long list on the large set would otherwise run out.
    """
    # Bandwidth is a property of the machine: measure it on the large set, where
    # per-kernel overheads are negligible, and use it for every set's bound.
    bandwidth = dict.fromkeys(shape_sets, measure_bandwidth(SHAPE_SETS["large"]()))
    results = []
    for set_name in shape_sets:
        for name in optimizers:
            args = (name, set_name, repeats, steps, pause, steps_per_call)
            if isolate:
                context = multiprocessing.get_context("spawn")
                with concurrent.futures.ProcessPoolExecutor(1, mp_context=context,
                                                            initializer=_interrupt.worker_process,
                                                            initargs=(_quiet.quiet(),)) as pool:
                    results.extend(_interrupt.result(pool.submit(measure, *args), pool))  # Ctrl-C ends the child
            else:
                results.extend(measure(*args))
            if progress:
                progress(name, set_name)
    return results, bandwidth


def measure(name, set_name, repeats, steps, pause, steps_per_call=1):
    """Timings of every implementation of optimizer ``name`` on one shape set (see ``run``), per step."""
    order = random.Random(0)
    shapes = SHAPE_SETS[set_name]()
    results, runners = [], []
    for label, factory, note in implementations(name, shapes, steps_per_call=steps_per_call):
        try:
            fn, state = factory()
            fn(2)  # warm up: trace, compile, allocate
            block = max(steps, math.ceil(MIN_BLOCK_S / _time(fn, 1)))
        except Exception as error:  # a peer that cannot run this algorithm is reported, not fatal
            results.append(Timing(name, set_name, label, float("nan"), float("nan"), f"failed: {error}"[:120]))
            continue
        runners.append((label, fn, state, note, block))
    samples = {label: [] for label, *_ in runners}
    for _ in range(repeats):
        _interrupt.check()  # a Ctrl-C (inside the command line) stops between repetitions
        for label, fn, _, _, block in order.sample(runners, len(runners)):
            time.sleep(pause)
            fn(1)
            samples[label].append(_time(fn, block))
    for label, _, state, note, _ in runners:
        ms = 1e3 * np.asarray(samples[label]) / steps_per_call
        results.append(Timing(name, set_name, label, float(np.median(ms)), state, note, float(ms.min()),
                              float(ms.max())))
    return results


def table(results, bandwidth):
    """A pandas DataFrame with ratios to the best peer and to the memory-traffic bound."""
    import pandas as pd

    frame = pd.DataFrame([dataclasses.asdict(r) for r in results])
    ratios, bounds = [], []
    for _, row in frame.iterrows():
        group = frame[(frame.optimizer == row.optimizer) & (frame.shapes == row.shapes)]
        peers = group[~group.implementation.str.startswith("optimlab")].median_ms.dropna()
        ratios.append(row.median_ms / peers.min() if len(peers) else float("nan"))
        n_params = sum(int(np.prod(s)) for s in SHAPE_SETS[row.shapes]())
        slots = row.state_bytes_per_param / 4.0
        bound_ms = 1e3 * (3 + 2 * slots) * 4 * n_params / bandwidth[row.shapes]
        bounds.append(row.median_ms / bound_ms)
    frame["ratio_to_best_peer"] = ratios
    frame["ratio_to_bandwidth_bound"] = bounds
    return frame


def summary(frame):
    """Per optimizer and shape set: the best optimlab variant against the best peer and the bound."""
    import pandas as pd

    rows = []
    for (name, set_name), group in frame.groupby(["optimizer", "shapes"], sort=False):
        ours = group[group.implementation.str.startswith("optimlab")].dropna(subset=["median_ms"])
        peers = group[~group.implementation.str.startswith("optimlab")].dropna(subset=["median_ms"])
        if ours.empty:
            continue
        best = ours.loc[ours.median_ms.idxmin()]
        row = {"optimizer": name, "shapes": set_name, "optimlab": best.implementation, "optimlab_ms": best.median_ms}
        if not peers.empty:
            peer = peers.loc[peers.median_ms.idxmin()]
            row.update(best_peer=peer.implementation, peer_ms=peer.median_ms, ratio=best.median_ms / peer.median_ms)
        keras_plain = group[group.implementation == "keras"].median_ms
        if not keras_plain.empty:
            row["speedup_vs_keras_tf_function"] = float(keras_plain.iloc[0]) / best.median_ms
        row["ratio_to_bandwidth_bound"] = best.ratio_to_bandwidth_bound
        rows.append(row)
    return pd.DataFrame(rows)


def plot(frame, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sets = list(dict.fromkeys(frame.shapes))
    fig, axes = plt.subplots(len(sets), 1, figsize=(11, 4 * len(sets)), squeeze=False)
    for ax, set_name in zip(axes[:, 0], sets):
        sub = frame[frame.shapes == set_name]
        pivot = sub.pivot_table(index="optimizer", columns="implementation", values="median_ms")
        pivot.plot.bar(ax=ax, logy=True, rot=0)
        ax.set_ylabel("median step time (ms, log)")
        ax.set_title(f"optimizer step time, {set_name} shape set (lower is better)")
        ax.legend(fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
