"""Keras 3's own test files for Muon, Lion and the optimizer base, run with optimlab's classes (issue 24).

Every test method of ``keras/src/optimizers/muon_test.py``, ``lion_test.py`` and
``optimizer_test.py``, read from the installed Keras wheel at test time (never
copied here), runs with optimlab's classes swapped in:

* ``muon_test`` and ``lion_test``: the module's ``Muon`` / ``Lion`` is optimlab's
  same-named class with the Keras-convention arguments of the README's drop-in
  table (``KERAS_ARGS`` of tests/test_keras_goldens.py);
* ``optimizer_test``: the module's ``optimizers`` package is a view in which each
  optimizer class optimlab has (``SGD``, ``Adam``, ``AdamW``, ...) is optimlab's,
  unchanged (the checks there count, clip, accumulate and save rather than
  compare numbers with Keras), and ``get`` resolves names with optimlab's registry;
  everything else (``schedules``, ``serialize``, ...) is Keras's.

Methods that cannot pass are in ``EXPECTED_FAILURES`` with the reason, as strict
xfails: one that starts passing fails the suite, so the list stays exact.

With Keras 3.15: muon_test 12 of 12 pass (5 before issue 24 gave Muon Keras's
API), lion_test 7 of 8, optimizer_test 40 of 42.
"""

import importlib
import types
import unittest
import warnings

import keras
import pytest

import optimlab
from test_keras_goldens import _keras_style

SUITES = {"muon": "Muon", "lion": "Lion", "optimizer": "optimizers"}  # test file -> the name swapped in it

EXPECTED_FAILURES = {
    ("lion", "test_invalid_beta_1"): (
        "convention: optimlab's Lion accepts beta_1=0 (signSGD, the paper's limit; Keras refuses it) and words "
        "its out-of-range ValueError in optimlab's form (tests/test_keras_conventions.py compares both)"
    ),
    ("optimizer", "test_clip_args"): (
        "convention: optimlab applies clipvalue together with clipnorm or global_clipnorm, in Keras 2's order; "
        "Keras 3 refuses any two clipping arguments (clipnorm with global_clipnorm is refused by both)"
    ),
    ("optimizer", "test_setting_lr_to_callable_untracks_lr_var"): (
        "design: every optimlab hyperparameter owns one float64 variable whatever its form (Adam: iterations, "
        "learning_rate, beta_1, beta_2, epsilon: 5, where Keras has 2), and a schedule set later keeps the "
        "learning_rate variable, so that the saved state does not depend on the form of a value"
    ),
}


def _module(suite):
    with warnings.catch_warnings():  # Keras's own pytest marks (requires_trainable_backend) are unknown here
        warnings.simplefilter("ignore")
        return importlib.import_module(f"keras.src.optimizers.{suite}_test")


def _methods(suite):
    """``(TestCase class, method name)`` of every test method the file defines, in the file's order of classes."""
    module = _module(suite)
    loader = unittest.TestLoader()
    cases = [c for c in vars(module).values() if isinstance(c, type) and issubclass(c, unittest.TestCase)
             and c.__module__ == module.__name__]
    return [(case, name) for case in cases for name in loader.getTestCaseNames(case)]


def _params():
    params = []
    for suite in SUITES:
        try:
            methods = _methods(suite)
        except ImportError:  # a Keras install without its tests: the test below reports it
            continue
        for _, name in methods:
            reason = EXPECTED_FAILURES.get((suite, name))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(suite, name, marks=marks, id=f"{suite}-{name}"))
    return params


def _optimlab_get(identifier):
    """``keras.optimizers.get`` with optimlab's classes: None, an optimizer, a name, or ``{"class_name", "config"}``."""
    if identifier is None or isinstance(identifier, keras.optimizers.Optimizer):
        return identifier
    if isinstance(identifier, dict):
        return optimlab.info(identifier["class_name"]).cls.from_config(identifier.get("config", {}))
    return optimlab.get(identifier)


class _OptimlabOptimizers(types.ModuleType):
    """``keras.src.optimizers`` with optimlab's same-named classes and a ``get`` that makes them."""

    get = staticmethod(_optimlab_get)

    def __getattr__(self, name):
        ours = getattr(optimlab, name, None) if name[:1].isupper() else None
        if isinstance(ours, type) and issubclass(ours, keras.optimizers.Optimizer):
            return ours
        return getattr(importlib.import_module("keras.src.optimizers"), name)


def _swap(module, name, monkeypatch):
    """Replace ``name`` in Keras's test ``module`` by optimlab's counterpart; check it was Keras's."""
    original = getattr(module, name)
    assert getattr(original, "__module__", getattr(original, "__name__", "")).startswith("keras.")
    replacement = _OptimlabOptimizers("optimizers") if name == "optimizers" else _keras_style(name)
    monkeypatch.setattr(module, name, replacement)


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("suite, method", _params())
def test_keras_suite_method_passes_with_optimlab(suite, method, monkeypatch):
    module = _module(suite)
    _swap(module, SUITES[suite], monkeypatch)
    case = next(case for case, name in _methods(suite) if name == method)
    result = unittest.TestResult()
    with warnings.catch_warnings():
        case(method).run(result)
    problems = result.failures + result.errors
    assert not problems, problems[0][1]
    assert result.testsRun == 1 and not result.skipped


@pytest.mark.parametrize("suite", SUITES)
def test_keras_suite_is_installed_and_expected_failures_name_its_methods(suite):
    try:
        names = {name for _, name in _methods(suite)}
    except ImportError as error:
        pytest.skip(f"this Keras install ships no optimizer tests ({error})")
    assert names, f"{suite}_test.py defines no test methods"
    stale = [m for s, m in EXPECTED_FAILURES if s == suite and m not in names]
    assert not stale, f"EXPECTED_FAILURES names methods {suite}_test.py no longer has: {stale}"


def test_the_view_serves_optimlab_classes_and_keras_helpers():
    view = _OptimlabOptimizers("optimizers")
    assert view.SGD is optimlab.SGD and view.AdamW is optimlab.AdamW
    assert view.schedules is importlib.import_module("keras.src.optimizers.schedules")
    assert isinstance(view.get({"class_name": "adam", "config": {"weight_decay": 0.05}}), optimlab.Adam)
    assert view.get("adam").weight_decay is None and view.get(None) is None
    with pytest.raises(ValueError):
        view.get("typo")
