"""The eager convergence loop of TensorFlow's guide "Optimizers with Core APIs", against optimlab's compiled loop.

The baseline is the guide's code as published (its notebook): its
``GradientDescent``, ``Momentum`` and ``Adam`` ``tf.Module`` classes, written
out again here with the same arithmetic, and its eager ``convergence_test``
loop (printing left out). optimlab runs the same 9-run table (gd, momentum,
adam at 1e-3, 1e-2, 1e-1 on the quartic from x = 2, max_iters = 2000) with
``run_grid``, compiled, one trace per optimizer. Both tables must agree; the
compiled time includes tracing.

    python benchmarks/convergence_speed.py            # add --repeats 3 for medians
"""

import argparse
import statistics
import time

import tensorflow as tf

from optimlab.lab import run_grid

NAMES = ("gd", "momentum", "adam")
RATES = (1e-3, 1e-2, 1e-1)


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


def guide_convergence_test(optimizer, init_val=2.0, max_iters=2000):
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


def time_compiled_loop():
    start = time.perf_counter()
    results = run_grid(list(NAMES), "quartic", list(RATES), init=2.0, max_iters=2000)
    table = {key: (r.status, r.iterations) for key, r in results.items()}
    return time.perf_counter() - start, table


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=1, help="alternating repetitions; medians are reported")
    args = parser.parse_args()
    guide_times, compiled_times = [], []
    for _ in range(args.repeats):
        seconds, guide_table = time_guide_loop()
        guide_times.append(seconds)
        seconds, compiled_table = time_compiled_loop()
        compiled_times.append(seconds)
        if guide_table != compiled_table:
            raise SystemExit(f"the loops disagree:\nguide    {guide_table}\ncompiled {compiled_table}")
    for (name, lr), (status, iterations) in compiled_table.items():
        print(f"{name:9s} lr={lr:<6g} {status:10s} {iterations}")
    guide_s, compiled_s = statistics.median(guide_times), statistics.median(compiled_times)
    print(f"guide's eager loop: {guide_s:.2f} s   compiled loop: {compiled_s:.2f} s   "
          f"speed-up: {guide_s / compiled_s:.1f}x   (9 runs, {args.repeats} repeat(s), TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
