"""The training lab: optimizers on models and data, compared over paired seeds.

Its parts, separate as in DeepOBS (problems, runner, analysis):

* ``problems/``: what is trained: data, model, loss, metric, budget and
  options (``problems.models`` builds the models, ``problems.custom`` checks
  and loads your own problem, ``problems.deepobs`` holds the DeepOBS set).
* ``runner/``: how it is trained: the compiled training loops (``loop``), the
  measurements taken at each evaluation (``probes``), runs at
  deterministic keys, sweeps and paired comparisons (``experiments``), and
  Optuna tuning (``tuning``).
* ``records``: one self-describing JSON record per run, written atomically.
* ``analysis/``: statistics (``stats``), the tables read from records only
  (``tables``, re-exported here as ``analysis.runs_table``, ``analysis.summary``, ...)
  and the diagnostic flags (``diagnostics``).
* ``report``: figures and one self-contained HTML report from a folder of records.
"""
