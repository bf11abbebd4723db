"""What one more input costs a TensorFlow function call: the measure behind "flat slot buffers".

An optimizer step called as a TensorFlow function passes every variable's
handle, every slot's handle and every gradient as inputs. Keeping the slots of
all variables in one flat buffer (torch's flat-parameter designs) would pass one
slot handle instead of one per variable. This measures what that could save:
the time of a call of optimlab's SGD-with-momentum op over ``N`` one-element
variables (so the update itself costs nothing), for several ``N``, interleaved
and repeated; the slope (microseconds per input) times the inputs a flat buffer
removes gives the saving on the benchmark's shape sets.

    python benchmarks/call_inputs.py --repeats 9
"""

import argparse
import os
import statistics
import time

import numpy as np
import tensorflow as tf

from optimlab import bench, kernels

COUNTS = (6, 54, 108, 216)  # variables per call (each brings 3 inputs: variable, slot, gradient)
CALLS = 2000


def call_of(library, n):
    """A traced function applying the op to ``n`` one-element variables and their momentum slots."""
    variables = [tf.Variable(tf.zeros([1])) for _ in range(n)]
    slots = [tf.Variable(tf.zeros([1])) for _ in range(n)]
    grads = [tf.constant(np.zeros(1, np.float32)) for _ in range(n)]
    handles = [h for v, u in zip(variables, slots) for h in (v.handle, u.handle)]
    scalars = tf.constant([0.01, 0.9], tf.float32)

    @tf.function(autograph=False)
    def step():
        library.optimlab_multi_apply_sgd_momentum(handles=handles, grads=grads, coefficients=scalars,
                                                  nesterov=False, change_form=False, decay=False)
        return tf.constant(0)

    return step.get_concrete_function()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="interleaved repetitions (default 9)")
    args = parser.parse_args()
    library = kernels.load()
    if library is None:
        raise SystemExit("optimlab's native kernels are unavailable here (g++ or TensorFlow headers missing)")
    calls = {n: call_of(library, n) for n in COUNTS}
    for call in calls.values():
        for _ in range(50):
            call()
    samples = {n: [] for n in COUNTS}
    load_before = os.getloadavg()[0]
    for _ in range(args.repeats):
        for n, call in calls.items():
            began = time.perf_counter()
            for _ in range(CALLS):
                call()
            samples[n].append(1e6 * (time.perf_counter() - began) / CALLS)
    medians = {n: statistics.median(v) for n, v in samples.items()}
    inputs = {n: 3 * n + 1 for n in COUNTS}
    slope = float(np.polyfit([inputs[n] for n in COUNTS], [medians[n] for n in COUNTS], 1)[0])
    print(f"{args.repeats} interleaved repeats of {CALLS} calls; load average {load_before:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; microseconds per call, median (min-max):")
    for n in COUNTS:
        print(f"  {n:4d} variables, {inputs[n]:4d} inputs: {medians[n]:7.1f} ({min(samples[n]):.1f}-"
              f"{max(samples[n]):.1f})")
    print(f"slope: {slope:.2f} us per input")
    for set_name in ("large", "small"):
        tensors = len(bench.SHAPE_SETS[set_name]())
        for name, slots in (("SGD with momentum", 1), ("Adam", 2)):
            saved = slots * tensors - slots  # one flat slot buffer per slot kind instead of one per variable
            print(f"  {set_name} set ({tensors} tensors), {name}: a flat buffer per slot removes {saved} inputs, "
                  f"about {slope * saved / 1e3:.3f} ms per call")


if __name__ == "__main__":
    main()
