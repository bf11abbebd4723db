"""The 36-run ``optimlab compare --task diabetes``, one run per program against packed runs, side by side.

3 optimizers (sgd, momentum, adam) x 3 learning rates selected with seed 0,
then each winner over 10 paired seeds (seed 0 reused): 3 x (3 + 9) = 36 runs,
in a fresh folder, through the same code as the command. Each measurement is
a fresh process (so import and every first trace are paid as by the command),
alternating between the modes: ``--runs-per-program 1`` (one run per
program) and packed (``--runs-per-program N``, default 16; see
``optimlab/lab/training/runner/packed.py``). Prints, per mode, the median and
the range over the repeats of: import, the comparison after import, and its
split: building and tracing programs, calling them (their first call starts
them; the evaluations inside; training), the training itself (the records'
``wall_time``), the initial weights of the seeds, writing records, and the
rest (data, selection, summaries). Then the ratio of the medians.

    python benchmarks/compare_speed.py                  # 3 repeats of each mode
    python benchmarks/compare_speed.py --repeats 5 --epochs 5000 --pack 16
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

PARTS = ("trace", "calls", "training", "weights", "records", "rest")
LABELS = {"trace": "build+trace programs", "calls": "program calls", "training": "  of which training",
          "weights": "initial weights", "records": "writing records", "rest": "rest"}


def _timed(module, name, totals, key):
    """Replace ``module.name`` by a wrapper adding its seconds to ``totals[key]`` (this process only)."""
    original = getattr(module, name)

    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - began

    setattr(module, name, wrapper)


def one(runs_per_program, epochs, jobs):
    """One comparison in this (fresh) process; prints one JSON line of seconds."""
    started = time.perf_counter()
    import tensorflow as tf  # noqa: F401 - timed: the command imports it too

    from optimlab import _interrupt
    from optimlab.lab import commands
    from optimlab.lab.training import records
    from optimlab.lab.training.runner import loop, packed, program

    imported = time.perf_counter()
    totals = dict.fromkeys(("trace", "calls", "weights", "records"), 0.0)
    _timed(program.Program, "__init__", totals, "trace")
    _timed(packed.PackedProgram, "__init__", totals, "trace")
    _timed(_interrupt, "call", totals, "calls")
    _timed(loop, "initial_weights", totals, "weights")
    _timed(records, "write", totals, "records")
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        begin = time.perf_counter()
        runner = commands.make_runner(out, "diabetes", None, epochs, None, None, 0.2, None, False, None, jobs=jobs)
        runner.runs_per_program = runs_per_program
        commands.compare(runner, "sgd,momentum,adam", 10, "1e-3,1e-2,1e-1", None)
        after = time.perf_counter() - begin
        recs = records.load_all(out)
    training = sum(r["final"]["wall_time"] for r in recs)
    rest = after - sum(totals.values())
    print(json.dumps({"runs": len(recs), "import": imported - started, "after": after, "training": training,
                      **totals, "rest": rest, "programs": loop.TRACES + packed.TRACES}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pack", type=int, default=16, help="runs per program of the packed mode")
    parser.add_argument("--epochs", type=int, default=None, help="default: the task's budget (500)")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child's runs per program
    args = parser.parse_args()
    if args.one is not None:
        one(args.one, args.epochs, args.jobs)
        return
    modes = {"one run per program": 1, f"packed ({args.pack} runs per program)": args.pack}
    results = {mode: [] for mode in modes}
    for _ in range(args.repeats):
        for mode, size in modes.items():  # interleaved: both modes see the same load
            command = [sys.executable, __file__, "--one", str(size), "--jobs", str(args.jobs)]
            command += [] if args.epochs is None else ["--epochs", str(args.epochs)]
            out = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"36-run compare --task diabetes (epochs {args.epochs or 500}, jobs {args.jobs}), {args.repeats} fresh "
          f"processes per mode, interleaved; load average {load:.1f} on {os.cpu_count()} cores")
    print(f"{'seconds: median [min-max]':30}" + "".join(f"{mode:>34}" for mode in modes))
    for key in ("import", "after", *PARTS):
        label = {"import": "import", "after": "compare after import"}.get(key, LABELS.get(key))
        cells = []
        for mode in modes:
            values = [r[key] for r in results[mode]]
            cells.append(f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]")
        print(f"{label:30}" + "".join(f"{c:>34}" for c in cells))
    medians = [statistics.median(r["after"] for r in results[mode]) for mode in modes]
    print(f"programs traced: {[results[m][0]['programs'] for m in modes]}; "
          f"after import, one run per program / packed = {medians[0] / medians[1]:.2f}x")


if __name__ == "__main__":
    main()
