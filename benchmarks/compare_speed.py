"""The 36-run ``optimlab compare --task diabetes``: time outside of import against training time.

3 optimizers (sgd, momentum, adam) x 3 learning rates selected with seed 0,
then each winner over 10 paired seeds (seed 0 reused): 3 x (3 + 9) = 36 runs,
in a fresh folder, through the same code as the command. Prints the import
time, the time of the command after import, the training time (the records'
``wall_time``, the seconds inside the training steps) and their ratio (the
goal of issue 17 is <= 1.5).

    python benchmarks/compare_speed.py            # add --jobs 2 for worker processes
    python benchmarks/compare_speed.py --epochs 5000   # 10x the training: fixed costs amortized

What is not training: tracing one program per optimizer and its first call
(about a second each on a 2-core machine), the evaluations inside the
program (every ``epochs / 100`` epochs: validation, test, diagnostics),
initial weights per seed, and writing records.
"""

import argparse
import tempfile
import time

started = time.perf_counter()
import tensorflow as tf  # noqa: E402

from optimlab.lab import commands  # noqa: E402
from optimlab.lab.training import records  # noqa: E402
from optimlab.lab.training.runner import loop  # noqa: E402

imported = time.perf_counter()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's budget (500)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as out:
        begin = time.perf_counter()
        runner = commands.make_runner(out, "diabetes", None, args.epochs, None, None, 0.2, None, False, None, jobs=args.jobs)
        commands.compare(runner, "sgd,momentum,adam", 10, "1e-3,1e-2,1e-1", None)
        after = time.perf_counter() - begin
        recs = records.load_all(out)
    training = sum(r["final"]["wall_time"] for r in recs)
    print(f"{len(recs)} runs; import {imported - started:.2f} s; compare after import {after:.2f} s; "
          f"training {training:.2f} s; after import / training = {after / training:.2f}x "
          f"(jobs={args.jobs}, epochs={args.epochs or 500}, programs traced {loop.TRACES}, "
          f"TensorFlow {tf.__version__})")


if __name__ == "__main__":
    main()
