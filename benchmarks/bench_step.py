"""Optimizer step time against peers; the same as `optimlab bench` (see optimlab/bench.py).

    python benchmarks/bench_step.py --optimizers adam,sgd,rmsprop --shapes large,small
"""

from optimlab.cli import app

if __name__ == "__main__":
    app(["bench"] + __import__("sys").argv[1:])
