"""The convergence lab (the TensorFlow guide "Optimizers with Core APIs"): optimizers on analytic functions.

* ``functions``: test functions with their known minima (the guide's quartic,
  Rosenbrock, Beale, ...), one ``register`` decorator per function.
* ``runner``: ``convergence_test`` and ``run_grid`` (a table's stackable runs
  in one compiled program, the others one program per optimizer, kept in
  :mod:`optimlab.lab.programs`), the results table.
* ``side_by_side``: the table's runs side by side in one program (a group of
  stacked runs per optimizer).
* ``stopping``: the guide's convergence and explosion rules, shared by both loops.
* ``adapters``: any optimizer object in the test (Keras 3, optimlab, the
  guide's plain objects, Keras 2's ``apply_gradients(grads_and_vars)``).
* ``plots``: loss / gradient figures, parameter paths, 2-D trajectories.
* ``tuning``: the best learning rate per optimizer and function.
"""
