"""The lab's optimizer factory, its program cache, and the --set check that answers before TensorFlow."""

import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest

import optimlab
from optimlab.lab import arguments, factory, programs

ROOT = Path(__file__).resolve().parents[2]


def test_names_expand_as_the_early_check_does_and_import_own_classes():
    assert factory.names("adam*,radam,GD") == arguments.optimizer_names("adam*,radam,GD")
    assert factory.names("keras.optimizers:Lion,sgd") == ["keras.optimizers:Lion", "sgd"]
    with pytest.raises(TypeError, match="must be a keras.optimizers.Optimizer subclass"):
        factory.names("numpy:ndarray")
    with pytest.raises(arguments.LabError, match="did you mean 'adam'"):
        factory.names("adma")
    assert factory.check_names(["radam", "keras.optimizers:Lion"]) == ["rectified_adam", "keras.optimizers:Lion"]


def test_one_maker_for_registered_names_own_classes_and_schedules():
    sgd = factory.make_optimizer("sgd", {"learning_rate": 0.1, "momentum": 0.9, "clipnorm": None})
    assert isinstance(sgd, optimlab.SGD) and sgd.clipnorm is None
    assert isinstance(factory.make_optimizer("keras.optimizers:Lion", {"learning_rate": 0.01}), keras.optimizers.Lion)
    scheduled = factory.make_optimizer("adam", {"learning_rate": 0.1}, ("CosineDecay", {"decay_steps": 10}))
    assert scheduled.get_config()["learning_rate"]["class_name"] == "CosineDecay"
    made = factory.factories("gd, adam")
    assert list(made) == ["gd", "adam"] and float(made["adam"](0.25).learning_rate) == 0.25
    assert factory.default_learning_rate("keras.optimizers:Lion") == 0.001
    assert "clipnorm" in factory.hyperparameters_of(optimlab.Adam) and "amsgrad" in factory.own_keywords(optimlab.Adam)


def test_the_program_cache_matches_context_and_structure_and_keeps_the_latest():
    cache = programs.ProgramCache(keep=2)
    fresh = programs.optimizer_structure(optimlab.SGD(0.1))
    assert not programs.built(fresh)
    cache.add("a", fresh, "program a")
    assert cache.find("a", programs.optimizer_structure(optimlab.SGD(0.5))) == "program a"  # lr is a variable
    assert cache.find("a", programs.optimizer_structure(optimlab.SGD(0.1, clipnorm=1.0))) is None
    assert cache.find("b", fresh) is None
    cache.add("b", fresh, "program b")
    cache.find("a", fresh)  # a is now the most recently used
    cache.add("c", fresh, "program c")
    assert len(cache) == 2 and cache.find("b", fresh) is None and cache.find("a", fresh) == "program a"


def test_a_misspelt_set_key_is_answered_before_tensorflow_loads():
    code = ("import sys\nfrom optimlab.lab import arguments\n"
            "try:\n    arguments.precheck(optimizers='adam,gd', settings=['betta_1=0.8'])\n"
            "except arguments.LabError as error:\n    print(error)\n"
            "arguments.precheck(optimizer='sgd', settings=['momentum=0.9', 'clipnorm=1'], options=['mixup=0.2'])\n"
            "print('LOADED', [m for m in ('tensorflow', 'keras') if m in sys.modules])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert "LOADED []" in done.stdout, done.stdout + done.stderr
    assert "--set betta_1: adam has no hyperparameter 'betta_1'; did you mean 'beta_1'?" in done.stdout
    assert "adam's own: amsgrad, beta_1" in done.stdout
