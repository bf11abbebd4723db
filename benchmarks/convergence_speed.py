"""Seed 000's eager convergence loop against optimlab's compiled loop, on the seed's 9-run table.

Both loops run the same optimlab optimizers (gd, momentum, adam at 1e-3, 1e-2,
1e-1) on the quartic from x = 2 with max_iters = 2000, in the same process; the
script checks that both give the seed's table and prints the times and the
speed-up. The compiled time includes tracing each run's program.

    python benchmarks/convergence_speed.py            # add --repeats 3 for medians
"""

import argparse
import statistics
import time

import tensorflow as tf

import optimlab
from optimlab.lab import run_grid

NAMES = ("gd", "momentum", "adam")
RATES = (1e-3, 1e-2, 1e-1)


def seed_loss(x):
    return 2 * (x**4) + 3 * (x**3) + 2


def seed_grad(f, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        result = f(x)
    return tape.gradient(result, x)


def seed_convergence_test(optimizer, init_val=2.0, max_iters=2000):
    """Seed 000's loop (printing left out), with optimlab's pair-style apply_gradients."""
    x_star = tf.Variable(init_val)
    for iteration in range(1, max_iters + 1):
        x_grad = seed_grad(seed_loss, x_star)
        if tf.math.is_nan(x_grad):
            return "exploded", iteration
        x_old = x_star.numpy()
        optimizer.apply_gradients([(x_grad, x_star)])
        if x_star == x_old:
            return "converged", iteration
    return "max_iters", max_iters


def time_seed_loop():
    start = time.perf_counter()
    table = {(n, lr): seed_convergence_test(optimlab.get(n, learning_rate=lr)) for n in NAMES for lr in RATES}
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
    seed_times, compiled_times = [], []
    for _ in range(args.repeats):
        seconds, seed_table = time_seed_loop()
        seed_times.append(seconds)
        seconds, compiled_table = time_compiled_loop()
        compiled_times.append(seconds)
        if seed_table != compiled_table:
            raise SystemExit(f"the loops disagree:\nseed     {seed_table}\ncompiled {compiled_table}")
    for (name, lr), (status, iterations) in compiled_table.items():
        print(f"{name:9s} lr={lr:<6g} {status:10s} {iterations}")
    seed_s, compiled_s = statistics.median(seed_times), statistics.median(compiled_times)
    print(f"seed eager loop: {seed_s:.2f} s   compiled loop: {compiled_s:.2f} s   "
          f"speed-up: {seed_s / compiled_s:.1f}x   (9 runs, {args.repeats} repeat(s), TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
