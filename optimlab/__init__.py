"""optimlab: optimizers from TensorFlow's core APIs on Keras 3, and a lab to compare them."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from optimlab.optimizer import Optimizer  # noqa: E402
from optimlab import optimizers as _optimizers  # noqa: E402,F401  (registers every optimizer)
from optimlab.registry import get, info, names, entries  # noqa: E402
from optimlab import sam, schedules, wrappers  # noqa: E402
from optimlab.sam import SAMModel, sam_gradients  # noqa: E402
from optimlab.wrappers import SWA, Lookahead, PerVariableOptimizer, decoupled_weight_decay, lr_multipliers  # noqa: E402

# Every registered optimizer class is exported at the top level: optimlab.Adam, ...
for _entry in entries():
    globals()[_entry.cls.__name__] = _entry.cls

__version__ = "0.1.0"
__all__ = ["Optimizer", "get", "info", "names", "entries"] + sorted(e.cls.__name__ for e in entries())
__all__ += ["sam", "schedules", "wrappers", "SAMModel", "sam_gradients", "SWA", "Lookahead", "PerVariableOptimizer"]
__all__ += ["decoupled_weight_decay", "lr_multipliers"]
