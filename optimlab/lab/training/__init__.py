"""The training lab: optimizers on models and data, compared over paired seeds.

Its parts, separate as in DeepOBS (problems, runner, analysis), in the same
shape as the convergence lab (functions, loop, plots, report):

* ``problems/``: what is trained: data, model, loss, metric, budget and
  options. ``problems.register`` is the one registry (name -> Problem) that
  ``--task`` reads; ``problems.builtin`` registers the built-in problems and
  loads their data, ``problems.deepobs`` the DeepOBS set; ``problems.models``
  builds the models, ``problems.custom`` checks and loads your own problem.
* ``runner/``: how it is trained: the compiled training loops (``loop``), the
  measurements taken at each evaluation (``probes``), runs at
  deterministic keys, sweeps and paired comparisons (``experiments``), and
  Optuna tuning (``tuning``).
* ``records``: one self-describing JSON record per run, written atomically.
* ``analysis/``: statistics (``stats``), the tables read from records only
  (``tables``, re-exported here as ``analysis.runs_table``, ``analysis.summary``, ...),
  the diagnostic flags (``diagnostics``) and the answer in one sentence per
  problem (``verdict``).
* ``plots``: the figures, from the analysis tables and the records.
* ``report``: one self-contained HTML report from a folder of records, the
  figures of ``plots`` embedded.

"The Boston housing book chapter" in these docs is the book chapter that
implements optimizers on the Boston housing regression (an MLP, gradient
descent, learning-rate sweeps, gradient clipping, minibatches, momentum, Adam);
the ``boston`` problem reproduces its data split and model.
"""
