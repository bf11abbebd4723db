"""The laboratory: test and compare optimizers.

Two labs, each in its own folder, with the same shape (test problems, runner,
figures, analysis):

* ``convergence/``: the convergence lab of the TensorFlow guide "Optimizers
  with Core APIs". Analytic test functions (``functions``), the compiled
  convergence test (``runner``), how any optimizer object is driven
  (``adapters``), path and trajectory plots (``plots``) and learning-rate
  tuning per function (``tuning``).
* ``training/``: the training lab. Test problems and their models
  (``problems/``), the runner that trains them and the experiments built on it
  (``runner/``: the compiled program, loops, sweeps, paired comparisons, Optuna
  tuning), one record per run (``records``), statistics and tables read from
  records only (``analysis/``) and the HTML report (``report``).

Shared by both: ``factory`` (optimizer names, aliases, wildcards and
``package.module:Class`` become optimizers), ``programs`` (the one trace-once
cache of compiled programs). For the ``optimlab`` command: ``arguments``
(checks and parsers that need no TensorFlow), ``catalog`` (the registries'
static copy behind the listings and the ``--set`` check), ``tables`` (console
output), ``commands`` (the glue, one function per command) and
``training_commands`` (compare, sweep, tune, diagnose).

The convergence lab's main entry points are re-exported here, and the
training lab's :class:`Problem` (your own model and data)::

    >>> from optimlab.lab import Problem, convergence_test, get_function
"""

import importlib

# Loaded on first use, so that light modules of the lab (``optimlab.lab.arguments``, used by the
# command line before anything heavy) do not import TensorFlow with the package.
_EXPORTS = {
    "TestFunction": "optimlab.lab.convergence.functions",
    "function_names": "optimlab.lab.convergence.functions",
    "get_function": "optimlab.lab.convergence.functions",
    "ConvergenceResult": "optimlab.lab.convergence.runner",
    "convergence_test": "optimlab.lab.convergence.runner",
    "results_table": "optimlab.lab.convergence.runner",
    "run_grid": "optimlab.lab.convergence.runner",
    "run_table": "optimlab.lab.convergence.runner",
    "Problem": "optimlab.lab.training.problems",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'optimlab.lab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
