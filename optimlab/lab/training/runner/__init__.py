"""How the training lab trains: the compiled program of a run (``program``),
runs with their history and outcome (``loop``), measurements per evaluation
(``probes``), where runs are computed (``executors``), experiments at
deterministic keys (``experiments``) and hyperparameter tuning (``tuning``).
Optimizers are made by :mod:`optimlab.lab.factory`; traced programs are kept
in the cache of :mod:`optimlab.lab.programs`."""
