"""The eager convergence loop of TensorFlow's guide "Optimizers with Core APIs", against optimlab's compiled loop.

The baseline is the guide's code as published (its notebook): its
``GradientDescent``, ``Momentum`` and ``Adam`` ``tf.Module`` classes, written
out again here with the same arithmetic, and its eager ``convergence_test``
loop (printing left out). optimlab runs the same 9-run table (gd, momentum,
adam at 1e-3, 1e-2, 1e-1 on the quartic from x = 2, max_iters = 2000) with
``run_grid``: compiled, all nine runs side by side in one program (a group per
optimizer, each with its own traced optimizer; one gradient, stopping rules,
loop and path for all). The tables must agree.

Honest by construction: the two sides alternate (guide, optimlab, guide,
optimlab, ...), each repeat of optimlab starts from nothing (new programs,
tracing included), and the figures are medians with their spread (min-max) and
the ratio of the medians, with the machine's load average before and after.
optimlab's former path, one run per call of its optimizer's program
(``side_by_side=False``), is timed in the same rotation.
optimlab's fixed costs are measured apart, each repeated: the import (in a new
process: TensorFlow, then optimlab's convergence lab on top), and, for the
table's one program, tracing it (its optimizers' variables and the check that
their updates are entrywise included), starting it (its first call less a
second call: Grappler and the executor's set-up) and iterating (a second call,
the runs reset). Each phase is timed on a program of its own, outside
``run_grid``, so the phases need not add up to optimlab's time above (which
also creates the optimizers, computes the start norms and builds the results).

    python benchmarks/convergence_speed.py --repeats 5
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import tensorflow as tf

from optimlab.lab import run_grid
from optimlab.lab.convergence import side_by_side, stopping
from optimlab.lab.convergence.functions import get_function
from optimlab.lab.factory import make_optimizer

NAMES = ("gd", "momentum", "adam")
RATES = (1e-3, 1e-2, 1e-1)
MAX_ITERS = 2000


class GuideGradientDescent(tf.Module):
    """The guide's gradient descent: var -= lr * grad."""

    def __init__(self, learning_rate=1e-3):
        self.learning_rate = learning_rate

    def apply_gradients(self, grads, vars):
        for g, v in zip(grads, vars):
            v.assign_sub(self.learning_rate * g)


class GuideMomentum(tf.Module):
    """The guide's momentum: change = lr * grad + p * previous change (kept in Python)."""

    def __init__(self, learning_rate=1e-3, momentum=0.7):
        self.learning_rate, self.momentum, self.change = learning_rate, momentum, 0.0

    def apply_gradients(self, grads, vars):
        for g, v in zip(grads, vars):
            change = self.learning_rate * g + self.momentum * self.change
            v.assign_sub(change)
            self.change = change


class GuideAdam(tf.Module):
    """The guide's Adam: moments as tensors, bias corrections with a float step counter from 1."""

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, ep=1e-7):
        self.learning_rate, self.beta_1, self.beta_2, self.ep = learning_rate, beta_1, beta_2, ep
        self.t, self.built, self.v_dvar, self.s_dvar = 1.0, False, [], []

    def apply_gradients(self, grads, vars):
        if not self.built:
            self.v_dvar = [tf.Variable(tf.zeros(shape=v.shape)) for v in vars]
            self.s_dvar = [tf.Variable(tf.zeros(shape=v.shape)) for v in vars]
            self.built = True
        for i, (g, v) in enumerate(zip(grads, vars)):
            self.v_dvar[i] = self.beta_1 * self.v_dvar[i] + (1 - self.beta_1) * g
            self.s_dvar[i] = self.beta_2 * self.s_dvar[i] + (1 - self.beta_2) * tf.square(g)
            v_bc = self.v_dvar[i] / (1 - self.beta_1**self.t)
            s_bc = self.s_dvar[i] / (1 - self.beta_2**self.t)
            v.assign_sub(self.learning_rate * (v_bc / (tf.sqrt(s_bc) + self.ep)))
        self.t += 1.0


GUIDE_OPTIMIZERS = {"gd": GuideGradientDescent, "momentum": GuideMomentum, "adam": GuideAdam}


def guide_loss(x):
    return 2 * (x**4) + 3 * (x**3) + 2


def guide_grad(f, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        result = f(x)
    return tape.gradient(result, x)


def guide_convergence_test(optimizer, init_val=2.0, max_iters=MAX_ITERS):
    """The guide's loop (printing and the path left out), calling ``apply_gradients(grads, vars)``."""
    x_star = tf.Variable(init_val)
    for iteration in range(1, max_iters + 1):
        x_grad = guide_grad(guide_loss, x_star)
        if tf.math.is_nan(x_grad):
            return "exploded", iteration
        x_old = x_star.numpy()
        optimizer.apply_gradients([x_grad], [x_star])
        if x_star == x_old:
            return "converged", iteration
    return "max_iters", max_iters


def time_guide_loop():
    start = time.perf_counter()
    table = {(n, lr): guide_convergence_test(GUIDE_OPTIMIZERS[n](learning_rate=lr)) for n in NAMES for lr in RATES}
    return time.perf_counter() - start, table


def time_compiled_loop(side_by_side=True):
    start = time.perf_counter()
    results = run_grid(list(NAMES), "quartic", list(RATES), init=2.0, max_iters=MAX_ITERS, side_by_side=side_by_side)
    seconds = time.perf_counter() - start
    if any(r.note or not r.compiled for r in results.values()):
        raise SystemExit(f"a run did not run side by side: {[r.note for r in results.values()]}")
    return seconds, {key: (r.status, r.iterations) for key, r in results.items()}


def time_program_phases():
    """``{phase: seconds}`` of the one program of the table (every optimizer's runs side by side): trace,
    start (first call less a second), iterate (a second call, the runs reset to their starts)."""
    fn = get_function("quartic")
    rules = stopping.Rules(0.0, None, None, "seed", fn.minima)
    values = tf.fill([len(NAMES) * len(RATES)], tf.constant(2.0))

    def optimizers():
        """Per optimizer: the optimizer the program holds, and its runs."""
        groups = [[make_optimizer(name, {"learning_rate": lr}) for lr in RATES] for name in NAMES]
        return [(runs[0], runs) for runs in groups]

    start = time.perf_counter()
    program = side_by_side.SideBySide.build(fn, values, optimizers(), rules, MAX_ITERS, False)
    traced = time.perf_counter()
    program.run()
    first = time.perf_counter() - traced
    program.reset(fn, values, optimizers())
    again = time.perf_counter()
    program.run()
    second = time.perf_counter() - again
    return {"trace": traced - start, "start": first - second, "iterate": second}


IMPORT_PROBE = """
import time
start = time.perf_counter()
import tensorflow
middle = time.perf_counter()
import optimlab.lab.convergence.runner
print(middle - start, time.perf_counter() - middle)
"""


def time_imports():
    """``(TensorFlow, optimlab's convergence lab on top)`` import seconds, in a new process."""
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], capture_output=True, text=True, check=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    tensorflow_s, optimlab_s = (float(v) for v in out.stdout.split()[-2:])
    return tensorflow_s, optimlab_s


def spread(values, unit="s", digits=2):
    """``median (min-max)``."""
    return (f"{statistics.median(values):.{digits}f} {unit} ({min(values):.{digits}f}-{max(values):.{digits}f}"
            f"{' ' + unit if unit else ''})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repetitions of each side (default 3)")
    args = parser.parse_args()
    load_before = os.getloadavg()
    guide_times, compiled_times, alone_times, phases, imports = [], [], [], [], []
    for repeat in range(args.repeats):
        seconds, guide_table = time_guide_loop()
        guide_times.append(seconds)
        seconds, compiled_table = time_compiled_loop()
        compiled_times.append(seconds)
        seconds, alone_table = time_compiled_loop(side_by_side=False)
        alone_times.append(seconds)
        if not guide_table == compiled_table == alone_table:
            raise SystemExit(f"the loops disagree:\nguide    {guide_table}\ncompiled {compiled_table}")
        print(f"repeat {repeat + 1}: guide's eager loop {guide_times[-1]:.2f} s, optimlab {compiled_times[-1]:.3f} s, "
              f"one run per call {alone_times[-1]:.3f} s", flush=True)
        phases.append(time_program_phases())
        imports.append(time_imports())
    load_after = os.getloadavg()
    for (name, lr), (status, iterations) in compiled_table.items():
        print(f"{name:9s} lr={lr:<6g} {status:10s} {iterations}")
    ratios = [g / c for g, c in zip(guide_times, compiled_times)]
    guide_s, compiled_s = statistics.median(guide_times), statistics.median(compiled_times)
    print(f"9 runs, {args.repeats} interleaved repeats, TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; median (min-max):")
    print(f"  guide's eager loop:        {spread(guide_times)}")
    print(f"  optimlab (tracing incl.):  {spread(compiled_times, digits=3)}")
    print(f"  optimlab, one run per call: {spread(alone_times, digits=3)} (side_by_side=False: one program per "
          f"optimizer, called once per run)")
    print(f"  speed-up, ratio of medians: {guide_s / compiled_s:.1f}x (per-repeat ratios {min(ratios):.1f}-"
          f"{max(ratios):.1f}x); one run per call: {guide_s / statistics.median(alone_times):.1f}x")
    print("optimlab's fixed costs, median (min-max):")
    for phase, label in (("trace", "tracing the table's program"), ("start", "starting it (first call less second)"),
                         ("iterate", "iterating (a second call)")):
        print(f"  {label + ':':40s} {spread([p[phase] for p in phases], digits=3)}")
    print(f"  {'import tensorflow (new process):':40s} {spread([i[0] for i in imports])}")
    print(f"  {'import the convergence lab on top:':40s} {spread([i[1] for i in imports], digits=3)}")


if __name__ == "__main__":
    main()
