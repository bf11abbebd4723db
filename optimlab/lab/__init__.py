"""The lab: analytic test functions and convergence tests (and the training lab)."""

from optimlab.lab.convergence import ConvergenceResult, convergence_test, results_table, run_grid, run_table
from optimlab.lab.functions import TestFunction, function_names, get_function

__all__ = [
    "ConvergenceResult",
    "TestFunction",
    "convergence_test",
    "function_names",
    "get_function",
    "results_table",
    "run_grid",
    "run_table",
]
