"""Every fused fast path matches its optimizer's plain path (parameters and slots).

Each configuration runs twice: with optimlab's native kernels (bit-identical to
the plain path, asserted exactly in float64 and float32) and with
``OPTIMLAB_NATIVE=0``, where TensorFlow's kernels run (equal up to rounding).
Outside tf.distribute the native kernels update all the variables of a step in
one multi-tensor op per dtype; the single-tensor ops serve the per-variable path.
"""

import os
import stat
import warnings
from collections import Counter

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import fused, kernels

# One configuration per kernel variant the fast paths use.
CONFIGS = [
    ("gd", {"learning_rate": 0.1}),
    ("gd", {"learning_rate": 0.1, "weight_decay": 0.1}),
    ("sgd", {"learning_rate": 0.05}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "epsilon_hat": True}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True, "epsilon_hat": True}),
    ("adamax", {"learning_rate": 0.01}),
    ("adadelta", {"learning_rate": 1.0}),
    ("rmsprop", {"learning_rate": 0.01}),
    ("rmsprop", {"learning_rate": 0.01, "centered": True, "epsilon_inside_sqrt": False}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "centered": True}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "epsilon_inside_sqrt": False}),
    ("adagrad", {"learning_rate": 0.1, "epsilon_inside_sqrt": False}),
    ("momentum", {"learning_rate": 0.05, "momentum": 0.7}),
    ("ftrl", {"learning_rate": 0.1}),
    ("ftrl", {"learning_rate": 0.1, "learning_rate_power": -0.7, "l1_regularization_strength": 0.01,
              "l2_regularization_strength": 0.02, "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}),
    ("proximal_adagrad", {"learning_rate": 0.1}),
    ("conditional_gradient", {"learning_rate": 0.9, "lambda_": 2.0}),
    ("adagrad", {"learning_rate": 0.1}),
    ("adagrad", {"learning_rate": 0.1, "weight_decay": 0.1}),
    ("lazy_adam", {"learning_rate": 0.01}),
    ("lars", {"learning_rate": 0.1, "weight_decay": 0.01}),
    ("lars", {"learning_rate": 0.1, "nesterov": True, "exclude_vectors": False}),
    ("proximal_adagrad", {"learning_rate": 0.1, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.05}),
    ("adamw", {"learning_rate": 0.01, "weight_decay": 0.05, "epsilon_hat": True, "amsgrad": True}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "weight_decay": 0.1}),
    ("momentum", {"learning_rate": 0.05, "weight_decay": 0.1}),
    ("rmsprop", {"learning_rate": 0.01, "weight_decay": 0.1}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "centered": True, "weight_decay": 0.1}),
    ("schedule_free_sgd", {"learning_rate": 0.1}),
    ("schedule_free_sgd", {"learning_rate": 0.1, "beta_1": 0.5, "warmup_steps": 5, "weight_decay": 0.01}),
    ("schedule_free_adamw", {"learning_rate": 0.01}),
    ("schedule_free_adamw", {"learning_rate": 0.01, "warmup_steps": 5, "weight_decay": 0.01}),
]
# Optimizers with bit-identical native kernels (SGD only with momentum); weight decay folds into them.
# ConditionalGradient's native op also takes the gradient's norm, so it matches up to rounding.
NATIVE = {"gd", "sgd", "adam", "adamw", "rmsprop", "momentum", "adagrad", "lazy_adam", "lars",
          "schedule_free_sgd", "schedule_free_adamw"}
SHAPES = [(64, 80), (4096,), (3, 3, 8, 16), (400, 500)]  # the last is split across threads


def _ids(configs):
    return [f"{n}-{'-'.join(k for k in kw if k != 'learning_rate')}" for n, kw in configs]


def _run(name, kwargs, use_fused, dtype=tf.float64, steps=30):
    return _run_class(optimlab.info(name).cls, kwargs, use_fused, dtype, steps)


def _run_class(cls, kwargs, use_fused, dtype=tf.float64, steps=30):
    rng = np.random.default_rng(7)
    variables = [tf.Variable(rng.normal(size=s), dtype=dtype) for s in SHAPES]
    opt = cls(fused=use_fused, **kwargs)
    for _ in range(steps):
        grads = [tf.constant(rng.normal(size=s) * rng.uniform(0.1, 3.0), dtype) for s in SHAPES]
        opt.apply_gradients(zip(grads, variables))
    slots = [opt.get_slot(v, s).numpy() for v in variables for s in opt.get_slot_names()]
    return [v.numpy() for v in variables], slots


@pytest.fixture
def native_ops():
    ops = kernels.load()
    if ops is None:
        pytest.skip("optimlab's native kernels could not be built here (no g++ or TensorFlow headers)")
    return ops


@pytest.fixture(params=["native", "tensorflow"])
def kernel(request, monkeypatch):
    """Run a test with the native kernels, then with TensorFlow's (``OPTIMLAB_NATIVE=0``)."""
    if request.param == "native":
        request.getfixturevalue("native_ops")
    else:
        monkeypatch.setenv("OPTIMLAB_NATIVE", "0")
    return request.param


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=_ids(CONFIGS))
def test_fast_path_matches_plain_path(name, kwargs, kernel):
    opt = optimlab.get(name, **kwargs)
    assert fused.has_fast_path(opt)
    variable = tf.Variable(tf.zeros((4096,), tf.float64))
    rmsprop_declines = name == "rmsprop" and not (kwargs.get("momentum") and "epsilon_inside_sqrt" not in kwargs)
    adagrad_declines = name == "adagrad" and kwargs.get("epsilon_inside_sqrt", True)
    no_tf_kernel = name in ("momentum", "conditional_gradient", "lazy_adam", "lars", "schedule_free_sgd", "schedule_free_adamw")
    declines = kernel == "tensorflow" and (rmsprop_declines or adagrad_declines or no_tf_kernel)
    assert fused.apply(opt_built(opt, variable), tf.zeros((4096,), tf.float64), variable, 0.1) != declines
    plain_vars, plain_slots = _run(name, kwargs, use_fused=False)
    fast_vars, fast_slots = _run(name, kwargs, use_fused=True)
    for a, b in zip(plain_vars + plain_slots, fast_vars + fast_slots, strict=True):
        if kernel == "native" and name in NATIVE:
            np.testing.assert_array_equal(b, a)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)


NATIVE_CONFIGS = [(n, kw) for n, kw in CONFIGS if n in NATIVE and kw.get("momentum", n != "sgd")]


@pytest.mark.parametrize("name,kwargs", NATIVE_CONFIGS, ids=_ids(NATIVE_CONFIGS))
@pytest.mark.parametrize("dtype", [tf.float32, tf.float64])
def test_multi_tensor_path_is_bit_identical_under_the_default_setting(name, kwargs, dtype, native_ops):
    # fused=None: every variable, small ones included, joins the one multi-tensor op.
    plain_vars, plain_slots = _run(name, kwargs, use_fused=False, dtype=dtype)
    fast_vars, fast_slots = _run(name, kwargs, use_fused=None, dtype=dtype)
    for a, b in zip(plain_vars + plain_slots, fast_vars + fast_slots, strict=True):
        assert a.dtype == dtype.as_numpy_dtype or a.ndim == 0  # Schedule-Free keeps float64 scalars per variable
        np.testing.assert_array_equal(b, a)


def test_conditional_gradient_op_takes_the_norm_like_numpy_float64(native_ops):
    rng = np.random.default_rng(3)
    var0, grad = rng.normal(size=(400, 500)).astype(np.float32), rng.normal(size=(400, 500)).astype(np.float32) * 3
    variable = tf.Variable(var0)
    opt = optimlab.get("conditional_gradient", learning_rate=0.9, lambda_=2.0, fused=True)
    opt.apply_gradients([(tf.constant(grad), variable)])
    g64 = grad.astype(np.float64)
    expected = 0.9 * var0.astype(np.float64) - (1 - 0.9) * 2.0 * g64 / (np.sqrt(np.sum(g64 * g64)) + 1e-7)
    np.testing.assert_allclose(variable.numpy(), expected, rtol=2e-6, atol=1e-6)


def _run_single_tensor_ops(name, kwargs, dtype, steps=30):
    """``_run`` through ``fused.apply``, one single-tensor op per variable (the per-variable path)."""
    rng = np.random.default_rng(7)
    variables = [tf.Variable(rng.normal(size=s), dtype=dtype) for s in SHAPES]
    opt = optimlab.get(name, fused=True, **kwargs)
    opt.build(variables)
    for _ in range(steps):
        grads = [tf.constant(rng.normal(size=s) * rng.uniform(0.1, 3.0), dtype) for s in SHAPES]
        for g, v in zip(grads, variables):
            if fused.folds_weight_decay(opt):  # the per-variable path decays, then updates
                opt._decay_one(v, opt.learning_rate)
            else:  # decay happens before the update step (none here for optimizers with their own rule)
                opt._apply_weight_decay([v])
            assert fused.apply(opt, g, v, opt.learning_rate)
        opt.iterations.assign_add(1)
    slots = [opt.get_slot(v, s).numpy() for v in variables for s in opt.get_slot_names()]
    return [v.numpy() for v in variables], slots


@pytest.mark.parametrize("name,kwargs", NATIVE_CONFIGS, ids=_ids(NATIVE_CONFIGS))
def test_single_tensor_ops_match_the_multi_tensor_op_in_float32(name, kwargs, native_ops):
    multi_vars, multi_slots = _run(name, kwargs, use_fused=True, dtype=tf.float32)
    single_vars, single_slots = _run_single_tensor_ops(name, kwargs, tf.float32)
    for a, b in zip(multi_vars + multi_slots, single_vars + single_slots, strict=True):
        np.testing.assert_array_equal(b, a)


def _op_types(opt, variables, jit_compile=False):
    """Op types (with counts) of one traced step of ``opt`` over ``variables``."""
    variables = variables if isinstance(variables, list) else [variables]
    opt.build(variables)

    @tf.function(jit_compile=jit_compile)
    def step():
        opt.apply_gradients([(tf.ones_like(v), v) for v in variables])

    return Counter(op.type for op in step.get_concrete_function().graph.get_operations())


@pytest.mark.parametrize(
    "name,kwargs,native_op,tf_op",
    [
        ("adam", {}, "OptimlabMultiApplyAdam", "ResourceApplyAdam"),
        ("sgd", {"momentum": 0.9}, "OptimlabMultiApplySgdMomentum", "ResourceApplyKerasMomentum"),
        ("rmsprop", {"momentum": 0.9}, "OptimlabMultiApplyRmsprop", "ResourceApplyRMSProp"),
    ],
)
def test_one_multi_tensor_op_per_dtype_unless_switched_off(name, kwargs, native_op, tf_op, native_ops, monkeypatch):
    shapes = [(fused.MIN_SIZE,), (3, 5), (), (64, 80), (7,)]
    variables = [tf.Variable(tf.zeros(s, dtype)) for s in shapes for dtype in (tf.float32, tf.float64)]
    types = _op_types(optimlab.get(name, **kwargs), variables)
    assert types[native_op] == 2 and types[native_op.replace("Multi", "")] == 0 and types[tf_op] == 0
    monkeypatch.setenv("OPTIMLAB_NATIVE", "0")
    types = _op_types(optimlab.get(name, **kwargs), variables)
    assert types[tf_op] == 4 and types[native_op] == 0  # TensorFlow's kernels for the MIN_SIZE variables
    types = _op_types(optimlab.get(name, fused=False, **kwargs), variables)
    assert types[native_op] == 0 and types[tf_op] == 0


def test_sparse_gradients_take_the_per_variable_path(native_ops):
    dense, table = tf.Variable(tf.ones((50, 4))), tf.Variable(tf.ones((10, 4)))
    opt = optimlab.Adam(fused=True)
    opt.build([dense, table])
    sparse = tf.IndexedSlices(tf.ones((2, 4)), tf.constant([1, 3]), tf.constant([10, 4]))

    @tf.function
    def step():
        opt.apply_gradients([(tf.ones((50, 4)), dense), (sparse, table)])

    graph = step.get_concrete_function().graph
    (multi,) = [op for op in graph.get_operations() if op.type == "OptimlabMultiApplyAdam"]
    assert multi.get_attr("N") == 1  # the dense gradient only
    step()
    np.testing.assert_array_equal(table.numpy()[[0, 2]], 1.0)


def test_xla_uses_tensorflow_kernels(native_ops):
    variable = tf.Variable(tf.zeros((fused.MIN_SIZE,)))
    types = _op_types(optimlab.Adam(), variable, jit_compile=True)
    assert "ResourceApplyAdam" in types and "OptimlabApplyAdam" not in types


def test_switched_off_library_is_none_without_warning(monkeypatch):
    monkeypatch.setenv("OPTIMLAB_NATIVE", "0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.load() is None


def _fake_compiler(folder, name, exit_code):
    path = folder / name
    path.write_text(f"#!/bin/sh\necho 'fatal: broken compiler' >&2\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_broken_compiler_gives_none_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setenv("OPTIMLAB_CACHE", str(tmp_path / "cache"))
    compiler = _fake_compiler(tmp_path, "broken-gxx", 1)
    with pytest.warns(RuntimeWarning, match="broken compiler"):
        assert kernels.load(compiler) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert kernels.load(compiler) is None  # the failure is remembered: no second warning
    assert not list((tmp_path / "cache").iterdir())  # no partial library left behind
    with pytest.warns(RuntimeWarning, match="not found"):
        assert kernels.load(str(tmp_path / "no-such-compiler")) is None


def test_cached_library_is_reused(native_ops):
    path = kernels.build()
    assert path.exists() and path.parent == kernels.cache_dir()
    before = os.stat(path).st_mtime_ns
    assert kernels.build() == path
    assert os.stat(path).st_mtime_ns == before


def opt_built(opt, variable):
    opt.build([variable])
    return opt


def test_automatic_setting_uses_kernels_only_for_large_float_variables():
    opt = optimlab.Adam()
    small = tf.Variable(tf.zeros((fused.MIN_SIZE - 1,)))
    large = tf.Variable(tf.zeros((fused.MIN_SIZE,)))
    half = tf.Variable(tf.zeros((fused.MIN_SIZE,), tf.bfloat16))
    assert not fused.wanted(opt, small)
    assert fused.wanted(opt, large)
    assert not fused.wanted(opt, half)
    assert fused.wanted(optimlab.Adam(fused=True), small)
    assert not fused.wanted(optimlab.Adam(fused=False), large)


def test_fast_path_declines_configurations_its_kernel_cannot_express(monkeypatch):
    monkeypatch.setenv("OPTIMLAB_NATIVE", "0")  # TensorFlow has no RMSprop kernel without momentum
    variable = tf.Variable(tf.zeros((8,), tf.float64))
    opt = optimlab.RMSprop(momentum=0.0, fused=True)
    opt.build([variable])
    assert not fused.apply(opt, tf.ones((8,), tf.float64), variable, 0.1)
    opt.apply_gradients([(tf.ones((8,), tf.float64), variable)])  # falls back to the plain path
    assert np.all(variable.numpy() < 0)


def test_fused_flag_is_validated_and_serialized():
    with pytest.raises(ValueError, match="fused"):
        optimlab.Adam(fused="yes")
    config = optimlab.Adam(fused=False).get_config()
    assert config["fused"] is False
    assert optimlab.Adam.from_config(config).fused is False


def test_weight_decay_folds_into_the_native_op_and_keeps_exclusions(native_ops):
    # Decayed and excluded variables take one op each; results equal the plain path's bit for bit.
    def run(use_fused):
        rng = np.random.default_rng(3)
        kernel = tf.Variable(rng.normal(size=(64, 80)), name="kernel", dtype=tf.float32)
        bias = tf.Variable(rng.normal(size=(80,)), name="bias", dtype=tf.float32)
        opt = optimlab.AdamW(learning_rate=0.01, weight_decay=0.3, fused=use_fused)
        opt.exclude_from_weight_decay(var_names=["bias"])
        opt.build([kernel, bias])

        @tf.function
        def step(g1, g2):
            opt.apply_gradients([(g1, kernel), (g2, bias)])

        for _ in range(20):
            step(tf.constant(rng.normal(size=(64, 80)), tf.float32), tf.constant(rng.normal(size=(80,)), tf.float32))
        ops = [op for op in step.get_concrete_function(tf.zeros((64, 80)), tf.zeros((80,))).graph.get_operations()]
        return kernel.numpy(), bias.numpy(), ops

    plain_kernel, plain_bias, _ = run(False)
    fast_kernel, fast_bias, ops = run(None)
    multi = [op for op in ops if op.type == "OptimlabMultiApplyAdam"]
    assert sorted(op.get_attr("decay") for op in multi) == [False, True]
    assert not any(op.type == "AssignSubVariableOp" for op in ops)  # no separate decay pass
    np.testing.assert_array_equal(fast_kernel, plain_kernel)
    np.testing.assert_array_equal(fast_bias, plain_bias)


SPARSE_CONFIGS = [
    ("adagrad", {"learning_rate": 0.1, "epsilon_inside_sqrt": False}, "ResourceSparseApplyAdagradV2"),
    ("ftrl", {"learning_rate": 0.1, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02,
              "l2_shrinkage_regularization_strength": 0.03, "beta": 0.5}, "ResourceSparseApplyFtrlV2"),
    ("proximal_adagrad", {"learning_rate": 0.1, "l1_regularization_strength": 0.01, "l2_regularization_strength": 0.02},
     "ResourceSparseApplyProximalAdagrad"),
]


@pytest.mark.parametrize("name,kwargs,sparse_op", SPARSE_CONFIGS, ids=[c[0] for c in SPARSE_CONFIGS])
def test_sparse_fast_path_matches_the_lazy_sparse_rule(name, kwargs, sparse_op):
    shape = (64, 80)  # 5120 elements: at least MIN_SIZE, so the default setting takes the kernel

    def run(use_fused):
        rng = np.random.default_rng(11)
        variable = tf.Variable(rng.normal(size=shape))
        opt = optimlab.get(name, fused=use_fused, **kwargs)
        opt.build([variable])

        @tf.function
        def step(values, indices):
            opt.apply_gradients([(tf.IndexedSlices(values, indices, tf.constant(shape, tf.int64)), variable)])

        for _ in range(30):
            indices = tf.constant(rng.integers(0, shape[0], size=12), tf.int64)  # with repeats: deduplicated first
            step(tf.constant(rng.normal(size=(12, shape[1]))), indices)
        graph = step.get_concrete_function(tf.TensorSpec((12, shape[1]), tf.float64), tf.TensorSpec((12,), tf.int64)).graph
        types = {op.type for op in graph.get_operations()}
        return [variable.numpy()] + [opt.get_slot(variable, s).numpy() for s in opt.get_slot_names()], types

    plain, plain_types = run(False)
    fast, fast_types = run(None)
    assert sparse_op in fast_types and sparse_op not in plain_types
    for a, b in zip(plain, fast, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)


def _run_traced(name, kwargs, use_fused, steps=40):
    """``_run`` in float32 with every step inside one ``tf.function`` (Grappler's rewrites apply)."""
    rng = np.random.default_rng(8)
    shapes = [(16, 24), (300,), (3, 3, 4, 8)]
    variables = [tf.Variable(rng.normal(size=s), dtype=tf.float32) for s in shapes]
    grads = [tf.constant(rng.normal(size=(steps,) + s) * rng.uniform(0.1, 3.0), tf.float32) for s in shapes]
    opt = optimlab.get(name, fused=use_fused, **kwargs)

    @tf.function
    def train():
        for t in tf.range(steps):
            opt.apply_gradients(zip([g[t] for g in grads], variables))

    train()
    return [v.numpy() for v in variables] + [opt.get_slot(v, s).numpy() for v in variables for s in opt.get_slot_names()]


# The native paths whose plain path divides by a square root (epsilon inside it), which Grappler rewrites.
TRACED_CONFIGS = [(n, kw) for n, kw in NATIVE_CONFIGS if n in ("rmsprop", "adagrad") and kw.get("epsilon_inside_sqrt", True)]


@pytest.mark.parametrize("name,kwargs", TRACED_CONFIGS, ids=_ids(TRACED_CONFIGS))
def test_native_path_is_bit_identical_inside_tf_function(name, kwargs, native_ops):
    """Where users train (tf.function, fit): Grappler must not make the plain path round differently
    (RMSprop and Adagrad with epsilon inside the square root divide by a square root)."""
    plain = _run_traced(name, kwargs, use_fused=False)
    native = _run_traced(name, kwargs, use_fused=None)
    for a, b in zip(plain, native, strict=True):
        np.testing.assert_array_equal(b, a)


# ------------------------------------------------ dispatch by class, through the MRO
# (parent, kwargs, its native multi-tensor op, its TensorFlow kernel)
SUBCLASSED = [
    (optimlab.Adam, {"learning_rate": 0.01}, "OptimlabMultiApplyAdam", "ResourceApplyAdam"),
    (optimlab.SGD, {"learning_rate": 0.05, "momentum": 0.9}, "OptimlabMultiApplySgdMomentum", "ResourceApplyKerasMomentum"),
    (optimlab.RMSprop, {"learning_rate": 0.01, "momentum": 0.9}, "OptimlabMultiApplyRmsprop", "ResourceApplyRMSProp"),
]
SUBCLASSED_IDS = [parent.__name__ for parent, *_ in SUBCLASSED]
KERNEL_OPS = {op for _, _, native_op, tf_op in SUBCLASSED for op in (native_op, native_op.replace("Multi", ""), tf_op)}


@pytest.mark.parametrize("parent,kwargs,native_op,tf_op", SUBCLASSED, ids=SUBCLASSED_IDS)
def test_subclass_keeping_the_update_rule_keeps_the_fast_path(parent, kwargs, native_op, tf_op, kernel):
    child = type(f"My{parent.__name__}", (parent,), {"__doc__": "A user's subclass that keeps the update rule."})
    assert fused.fast_path_of(child) is fused.fast_path_of(parent) is not None
    large = tf.Variable(tf.zeros((fused.MIN_SIZE,), tf.float64))
    assert fused.wanted(child(**kwargs), large)
    assert fused.apply(opt_built(child(**kwargs), large), tf.ones((fused.MIN_SIZE,), tf.float64), large, 0.1)
    types = _op_types(child(fused=True, **kwargs), [tf.Variable(tf.zeros(s)) for s in SHAPES[:2]])
    assert types[native_op if kernel == "native" else tf_op] >= 1
    parent_vars, parent_slots = _run_class(parent, kwargs, use_fused=True)
    child_vars, child_slots = _run_class(child, kwargs, use_fused=True)
    for a, b in zip(parent_vars + parent_slots, child_vars + child_slots, strict=True):
        np.testing.assert_array_equal(b, a)  # the parent's fast path, bit for bit


class _Ascent:
    """Mixin: an update rule nothing else has, ``x <- x + g``, recognisable in the result."""

    def update_step(self, gradient, variable, learning_rate):
        variable.assign_add(gradient)


@pytest.mark.parametrize("parent,kwargs,native_op,tf_op", SUBCLASSED, ids=SUBCLASSED_IDS)
def test_subclass_overriding_the_update_rule_runs_its_own(parent, kwargs, native_op, tf_op, kernel):
    child = type(f"Ascending{parent.__name__}", (_Ascent, parent), {})
    assert fused.fast_path_of(child) is None
    variables = [tf.Variable(tf.zeros(s, tf.float64)) for s in SHAPES]
    opt = child(fused=True, **kwargs)
    assert not fused.wanted(opt, variables[1]) and not fused.folds_weight_decay(opt)
    assert not fused.apply(opt_built(child(**kwargs), variables[1]), tf.ones(SHAPES[1], tf.float64), variables[1], 0.1)
    for _ in range(3):
        opt.apply_gradients([(tf.fill(s, tf.constant(0.5, tf.float64)), v) for s, v in zip(SHAPES, variables)])
    for v in variables:
        np.testing.assert_array_equal(v.numpy(), 1.5)  # three steps of x <- x + 0.5
    assert not KERNEL_OPS & set(_op_types(child(fused=True, **kwargs), [tf.Variable(tf.zeros(s)) for s in SHAPES[:2]]))


def test_sparse_fast_path_needs_the_registering_class_sparse_rule():
    """Overriding only ``sparse_update_step`` keeps the dense fast path and takes the sparse gradients itself."""

    class RowCountingAdagrad(optimlab.Adagrad):
        def sparse_update_step(self, gradient, variable, learning_rate):
            variable.scatter_add(tf.IndexedSlices(tf.ones_like(gradient.values), gradient.indices, gradient.dense_shape))

    variable, other = (tf.Variable(tf.zeros((fused.MIN_SIZE, 2), tf.float64)) for _ in range(2))
    opt = RowCountingAdagrad(learning_rate=0.1, epsilon_inside_sqrt=False, fused=True)
    opt.build([variable])
    rows = tf.IndexedSlices(tf.ones((2, 2), tf.float64), tf.constant([1, 3]), tf.constant([fused.MIN_SIZE, 2]))
    assert fused.apply(opt, tf.zeros((fused.MIN_SIZE, 2), tf.float64), variable, 0.1)  # zero gradient: no change
    assert fused.apply(opt_built(optimlab.Adagrad(epsilon_inside_sqrt=False), other), rows, other, 0.1)
    assert not fused.apply(opt, rows, variable, 0.1)
    opt.apply_gradients([(rows, variable)])
    np.testing.assert_array_equal(variable.numpy()[[1, 3]], 1.0)


def test_nearest_registration_in_the_mro_wins(monkeypatch):
    monkeypatch.setattr(fused, "_REGISTERED", dict(fused._REGISTERED))  # the registration below stays in this test
    calls = []

    class Halving(optimlab.Adam):
        def update_step(self, gradient, variable, learning_rate):
            variable.assign(variable / 2)

    class HalvingChild(Halving):
        pass

    @fused.fast_path(Halving)
    def _halving_kernel(opt, gradient, variable, learning_rate):
        calls.append(type(opt))
        return variable.assign(variable / 2)

    assert fused.fast_path_of(HalvingChild).apply is _halving_kernel
    assert not fused.folds_weight_decay(HalvingChild())  # no native kernel of its own; Adam's is not inherited
    variable = tf.Variable(tf.fill((8,), tf.constant(4.0, tf.float64)))
    HalvingChild(fused=True).apply_gradients([(tf.ones((8,), tf.float64), variable)])
    assert calls == [HalvingChild]
    np.testing.assert_array_equal(variable.numpy(), 2.0)
