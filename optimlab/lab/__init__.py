"""The laboratory: test and compare optimizers.

Two labs, each in its own folder:

* ``convergence/``: the convergence lab of seed 000. Analytic test functions
  (``functions``), the compiled convergence test (``runner``), path and
  trajectory plots (``plots``) and learning-rate tuning per function (``tuning``).
* ``training/``: the training lab. Test problems and their models
  (``problems/``), the runner that trains them and the experiments built on it
  (``runner/``: compiled loops, sweeps, paired comparisons, Optuna tuning), one
  record per run (``records``), statistics and tables read from records only
  (``analysis/``) and the HTML report (``report``).

``commands`` is the glue between the ``optimlab`` command and both labs.

The convergence lab's main entry points are re-exported here, and the
training lab's :class:`Problem` (your own model and data)::

    >>> from optimlab.lab import Problem, convergence_test, get_function
"""

from optimlab.lab.convergence.functions import TestFunction, function_names, get_function
from optimlab.lab.convergence.runner import ConvergenceResult, convergence_test, results_table, run_grid, run_table
from optimlab.lab.training.problems import Problem

__all__ = [
    "ConvergenceResult",
    "Problem",
    "TestFunction",
    "convergence_test",
    "function_names",
    "get_function",
    "results_table",
    "run_grid",
    "run_table",
]
