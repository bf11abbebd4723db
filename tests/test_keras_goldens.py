"""Keras 3's own golden checks, run through optimlab's public classes (issue 14).

Keras ships its optimizer tests with the wheel (``keras/src/optimizers/*_test.py``):
golden values over several steps and weight-decay checks. Each check here runs one
of those test methods with the module's optimizer class replaced by optimlab's
same-named class, given the Keras-convention arguments of the README's drop-in
table. The goldens are Keras's, read from the installed package at test time.
"""

import importlib
import unittest

import pytest

import optimlab

# The README's drop-in table: optimlab arguments that give Keras's arithmetic.
KERAS_ARGS = {
    "Adam": {"epsilon_hat": True},
    "AdamW": {"epsilon_hat": True},
    "Ftrl": {"lazy_sparse": False},
    "Muon": {"momentum_form": "sum", "rms_rate": 0.2, "flatten_higher_rank": False, "adam_lr_ratio": 1.0,
             "adam_beta_2": 0.999, "adam_epsilon": 1e-7, "adam_epsilon_hat": True, "learning_rate": 0.001,
             "weight_decay": 0.004, "adam_weight_decay": 0.004},
}
MODULES = {"Adadelta": "adadelta", "Adafactor": "adafactor", "Adagrad": "adagrad", "Adam": "adam", "Adamax": "adamax",
           "AdamW": "adamw", "Ftrl": "ftrl", "Lamb": "lamb", "Lion": "lion", "Nadam": "nadam",
           "RMSprop": "rmsprop", "SGD": "sgd", "ScheduleFreeAdamW": "schedule_free_adamw"}
# Keras 3.15's Adafactor takes the relative step for either value of relative_step; optimlab's True does.
FORCED = {"Adafactor": {"relative_step": True}}
CHECKS = [(name, "test_correctness_with_golden") for name in MODULES if name != "ScheduleFreeAdamW"]
CHECKS += [(name, "test_weight_decay") for name in ("Adam", "AdamW", "Adagrad", "RMSprop", "SGD", "Lion", "Nadam")]
CHECKS += [(name, check) for name in ("Adam", "SGD", "Ftrl") for check in ("test_clip_norm", "test_clip_value")]


def _keras_style(name):
    """optimlab's class ``name`` with the Keras-convention arguments as defaults (the user may override them)."""
    cls, defaults, forced = getattr(optimlab, name), KERAS_ARGS.get(name, {}), FORCED.get(name, {})

    def make(*args, **kwargs):
        return cls(*args, **{**defaults, **kwargs, **forced})

    return make


@pytest.mark.filterwarnings("ignore::pytest.PytestUnknownMarkWarning")
@pytest.mark.parametrize("name, method", CHECKS, ids=[f"{n}-{m[5:]}" for n, m in CHECKS])
def test_keras_golden_check_passes_with_optimlab(name, method, monkeypatch):
    try:
        module = importlib.import_module(f"keras.src.optimizers.{MODULES[name]}_test")
    except ImportError as error:
        pytest.skip(f"this Keras install ships no optimizer tests ({error})")
    case_cls = next(c for c in vars(module).values() if isinstance(c, type) and issubclass(c, unittest.TestCase) and hasattr(c, method))
    assert getattr(module, name).__module__.startswith("keras.")  # the class the test would otherwise use
    monkeypatch.setattr(module, name, _keras_style(name))
    result = unittest.TestResult()
    case_cls(method).run(result)
    problems = result.failures + result.errors
    assert not problems, problems[0][1]
    assert result.testsRun == 1 and not result.skipped
