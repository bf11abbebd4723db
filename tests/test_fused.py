"""Every fused fast path matches its optimizer's plain path (float64, parameters and slots)."""

import numpy as np
import pytest
import tensorflow as tf

import optimlab
from optimlab import fused

# One configuration per kernel variant the fast paths use.
CONFIGS = [
    ("gd", {"learning_rate": 0.1}),
    ("sgd", {"learning_rate": 0.05}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9}),
    ("sgd", {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True}),
    ("adam", {"learning_rate": 0.01}),
    ("adam", {"learning_rate": 0.01, "epsilon_hat": True}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True}),
    ("adam", {"learning_rate": 0.01, "amsgrad": True, "epsilon_hat": True}),
    ("adamax", {"learning_rate": 0.01}),
    ("adadelta", {"learning_rate": 1.0}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9}),
    ("rmsprop", {"learning_rate": 0.01, "momentum": 0.9, "centered": True}),
    ("adagrad", {"learning_rate": 0.1, "epsilon_inside_sqrt": False}),
]
SHAPES = [(64, 80), (4096,), (3, 3, 8, 16)]


def _run(name, kwargs, use_fused, steps=30):
    rng = np.random.default_rng(7)
    variables = [tf.Variable(rng.normal(size=s), dtype=tf.float64) for s in SHAPES]
    opt = optimlab.get(name, fused=use_fused, **kwargs)
    for _ in range(steps):
        grads = [tf.constant(rng.normal(size=s) * rng.uniform(0.1, 3.0)) for s in SHAPES]
        opt.apply_gradients(zip(grads, variables))
    slots = [opt.get_slot(v, s).numpy() for v in variables for s in opt.get_slot_names()]
    return [v.numpy() for v in variables], slots


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[f"{n}-{'-'.join(k for k in kw if k != 'learning_rate')}" for n, kw in CONFIGS])
def test_fast_path_matches_plain_path(name, kwargs):
    opt = optimlab.get(name, **kwargs)
    assert fused.has_fast_path(opt)
    variable = tf.Variable(tf.zeros((4096,), tf.float64))
    assert fused.apply(opt_built(opt, variable), tf.zeros((4096,), tf.float64), variable, 0.1)
    plain_vars, plain_slots = _run(name, kwargs, use_fused=False)
    fast_vars, fast_slots = _run(name, kwargs, use_fused=True)
    for a, b in zip(plain_vars + plain_slots, fast_vars + fast_slots):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)


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


def test_fast_path_declines_configurations_its_kernel_cannot_express():
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
