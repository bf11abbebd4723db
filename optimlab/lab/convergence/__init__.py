"""The convergence lab (seed 000): optimizers on analytic functions.

* ``functions``: test functions with their known minima (the seed's quartic,
  Rosenbrock, Beale, ...).
* ``runner``: ``convergence_test`` and ``run_grid``: one compiled program per
  optimizer, the seed's convergence and explosion rules, the results table.
* ``plots``: loss / gradient figures, parameter paths, 2-D trajectories.
* ``tuning``: the best learning rate per optimizer and function.
"""
