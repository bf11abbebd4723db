"""How the training lab trains: compiled loops (``loop``), experiments at
deterministic keys (``experiments``) and hyperparameter tuning (``tuning``)."""
