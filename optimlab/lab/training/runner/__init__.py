"""How the training lab trains: compiled loops (``loop``), measurements per
evaluation (``probes``), experiments at deterministic keys (``experiments``)
and hyperparameter tuning (``tuning``)."""
