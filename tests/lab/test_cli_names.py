"""Names on the command line: a typo in --task, --optimizers or --function is answered before TensorFlow loads.

The CLI checks names against the TensorFlow-free lists of :mod:`optimlab._names`;
the first test keeps those lists equal to the registries, the others drive the
command in a fresh interpreter and check that TensorFlow was never imported.
"""

import re
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_driver import drive

from optimlab import _names, bench, registry
from optimlab.lab import arguments
from optimlab.lab.convergence import functions
from optimlab.lab.training import problems
from optimlab.lab.training.runner import tuning

ROOT = Path(__file__).resolve().parents[2]


def test_static_names_equal_the_registries():
    """If this fails, add the new optimizer, alias, problem, function, sampler or shape set to optimlab/_names.py."""
    assert list(_names.OPTIMIZERS) == registry.names()
    assert _names.OPTIMIZER_ALIASES == {a: e.name for e in registry.entries() for a in e.aliases}
    assert list(_names.TASKS) == list(problems.PROBLEMS)
    assert list(_names.FUNCTIONS) == functions.function_names()
    assert _names.SAMPLERS == tuning.SAMPLERS and _names.SHAPE_SETS == tuple(bench.SHAPE_SETS)
    assert _names.PRUNERS == tuning.PRUNERS
    # The TensorFlow-free expansion of --optimizers gives what the registry gives.
    for pattern in ("adam*", "*sgd*", "ada?", "[lm]*", "all", "ADAM", "radam", "sfsgd,gd,gradient_descent"):
        expected = []
        for item in pattern.split(","):
            found = registry.names() if item == "all" else registry.names(item) if "*" in item or "?" in item \
                or "[" in item else [registry.info(item).name]
            expected += [n for n in found if n not in expected]
        assert arguments.optimizer_names(pattern) == expected, pattern
    assert arguments.optimizer_names("mypkg.opt:MyAdam,adam") == ["mypkg.opt:MyAdam", "adam"]


# Each case: arguments, the words the one-line error must hold.
MISTYPED = [
    (["compare", "--task", "diabets"], ["--task", "'diabets'", "did you mean 'diabetes'?"]),
    (["sweep", "--task", "fmnist_mpl"], ["--task", "did you mean 'fmnist_mlp'?"]),
    (["tune", "--task", "irsi"], ["--task", "did you mean 'iris'?"]),
    (["diagnose", "--task", "wien"], ["--task", "did you mean 'wine'?"]),
    (["compare", "--task", "iris", "--optimizers", "sgd,adma"], ["--optimizers", "'adma'", "did you mean 'adam'?"]),
    (["tune", "--optimizers", "lamb,nothing*"], ["--optimizers", "no optimizer matches 'nothing*'"]),
    (["sweep", "--optimizer", "momentun"], ["--optimizer", "did you mean 'momentum'?"]),
    (["sweep", "--optimizer", "adam*"], ["--optimizer takes one optimizer", "'adam*' names 3"]),
    (["diagnose", "--optimizer", "sgd,adam"], ["--optimizer takes one optimizer"]),
    (["converge", "--optimizers", "yogy"], ["--optimizers", "did you mean 'yogi'?"]),
    (["converge", "--function", "rosenbrok"], ["--function", "did you mean 'rosenbrock'?"]),
    (["bench", "--optimizers", "rmsporp"], ["--optimizers", "did you mean 'rmsprop'?"]),
    (["optimizers", "nothing*"], ["no optimizer matches 'nothing*'"]),
    (["optimizers", "adma"], ["no optimizer matches 'adma'", "did you mean 'adam'?"]),
]

def test_mistyped_names_are_answered_before_tensorflow_is_imported(tmp_path):
    """Found by a user test: `--task diabets` or `--optimizers adma` waited 5-30 s for TensorFlow to say so."""
    started = time.perf_counter()
    report = drive([args for args, _ in MISTYPED], tmp_path)
    assert time.perf_counter() - started < 20  # importing TensorFlow alone takes longer on a busy CI core
    assert report["loaded"] == []
    for (args, words), result in zip(MISTYPED, report["results"]):
        assert result["code"] == 2, (args, result)
        lines = result["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (args, result)
        for word in words:
            assert word in lines[0], (args, word, lines[0])
        assert result["seconds"] < 2, (args, result)
    assert list(tmp_path.iterdir()) == []  # no runs/ folder for a bad command


@pytest.mark.parametrize("args", [
    ["compare", "--task", "iris", "--optimizers", "adam*,all,radam,GD"],
    ["sweep", "--task", "mnist_mlp", "--optimizer", "sfsgd"],
    ["diagnose", "--task", "nowhere_pkg.problems:mine", "--optimizer", "nowhere_pkg.opt:Mine"],
    ["converge", "--function", "Rosenbrock", "--optimizers", "all"],
    ["optimizers", "adam*"],
])
def test_good_names_pass_the_names_check(args):
    """Wildcards, 'all', aliases, any case and package.module:Attr forms are not refused by the early check."""
    options = dict(zip(args[1::2], args[2::2]))
    names = {"--task": "task", "--optimizers": "optimizers", "--optimizer": "optimizer", "--function": "function"}
    if args[0] == "optimizers":
        arguments.precheck(pattern=args[1])
    else:
        arguments.precheck(**{names[k]: v for k, v in options.items()})


def test_every_unknown_name_has_one_message_format_suggestion_first():
    """Found by a user test: tasks listed a Python list with quotes and suggested after it; optimizers the reverse;
    `optimlab optimizers adma` and `--optimizers adma` suggested different names."""
    shape = r"unknown (task|optimizer|function) '(\w+)'; did you mean '(\w+)'\?; valid names: ([a-z_0-9]+(, )?)+"
    messages = []
    for call in (lambda: arguments.check_task("diabets"), lambda: arguments.optimizer_names("adma"),
                 lambda: arguments.check_function("rosenbrok")):
        with pytest.raises(arguments.LabError) as info:
            call()
        messages.append(str(info.value))
    for call in (lambda: problems.get("diabets"), lambda: registry.info("adma"),
                 lambda: functions.get_function("rosenbrok")):
        with pytest.raises(ValueError) as info:
            call()
        messages.append(str(info.value))
    for message in messages:
        assert re.search(shape, message) and "[" not in message and '"' not in message, message
    assert [re.search(shape, m).group(3) for m in messages] == ["diabetes", "adam", "rosenbrock"] * 2
    with pytest.raises(arguments.LabError, match="did you mean 'adam'"):
        arguments.check_pattern("adma")


def test_the_static_listings_equal_the_registries_and_print_without_tensorflow(tmp_path):
    """Found by a user test: `optimlab optimizers` and `functions` waited 15-18 s for TensorFlow to print static text."""
    from optimlab.lab import catalog

    stored = {"optimizers": catalog.OPTIMIZERS, "functions": catalog.FUNCTIONS, "schedules": catalog.SCHEDULES}
    assert stored == catalog.build(), \
        "the stored listings drifted from the registries: run python -m optimlab.lab.catalog"
    code = ("import sys\nimport optimlab.cli\n"
            "for args in (['optimizers'], ['optimizers', 'adam'], ['functions'], ['optimizers', 'adma']):\n"
            "    sys.argv = ['optimlab', *args]\n"
            "    try:\n        optimlab.cli.main()\n    except SystemExit as e:\n        print('EXIT', e.code)\n"
            "print('LOADED', [m for m in ('tensorflow', 'keras') if m in sys.modules])")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          cwd=tmp_path)
    assert "LOADED []" in done.stdout, done.stdout + done.stderr
    assert "schedule_free_adamw" in done.stdout and "Kingma & Ba" in done.stdout and "himmelblau" in done.stdout
    assert "did you mean 'adam'?" in done.stderr and done.stdout.count("EXIT 2") == 1
