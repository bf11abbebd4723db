"""Every code block of the README is executed here (issue 15: pasted blocks must work).

* ``python`` blocks run in a fresh namespace each; a block whose first line is
  ``# continues the block above`` runs in the namespace of the block before it.
  Registrations a block makes are undone afterwards (other tests read the registry).
* ``bash`` blocks: the set-up block (``pip install`` / ``python -m pytest``) is what
  CI's ``.ci/run`` executes, checked here line for line. Every ``optimlab`` line of
  the other blocks runs through the CLI in a scratch folder, WITH REDUCED BUDGETS where
  the README's budget takes minutes (the table ``REDUCED`` says exactly which options
  change); shell variables (``B="..."``) are expanded. ``python benchmarks/...`` lines
  run as slow tests (``-m slow``) with reduced budgets as well.
"""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

README = Path(__file__).resolve().parents[1] / "README.md"
ROOT = README.parent
SHARED = ROOT.parent / "shared"

# Options whose README values take minutes, and the values the test runs instead.
REDUCED = {"--epochs": "3", "--seeds": "2", "--max-iters": "100", "--repeats": "1", "--shapes": "small",
           "--optimizers@bench": "sgd"}
EXTRA = {"compare": [["--epochs", "3"]], "bench": [["--steps", "1"], ["--no-isolate"], ["--pause", "0"]]}


def blocks(language):
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)


# ------------------------------------------------------------------ python
def _python_chains():
    chains = []
    for index, code in enumerate(blocks("python")):
        if code.startswith("# continues the block above") and chains:
            chains[-1].append((index, code))
        else:
            chains.append([(index, code)])
    return chains


def test_every_python_block_is_collected():
    assert sum(len(c) for c in _python_chains()) == len(blocks("python")) >= 5
    writing = README.read_text().split("## Writing an optimizer", 1)[1].split("\n## ", 1)[0]
    assert "registry.register(" in writing and "paper=" in writing and "rosenbrock=" in writing


OWN_PROCESS = "# runs in a process of its own"


def _small_mnist():
    """A few MNIST-shaped rows: ``keras.datasets.mnist.load_data`` without the network."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(400, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=400).astype(np.uint8)
    return (images[:300], labels[:300]), (images[300:], labels[300:])


@pytest.mark.parametrize("chain", _python_chains(), ids=lambda c: f"python-block-{c[0][0]}")
def test_python_block_runs(chain, tmp_path, monkeypatch):
    """Each block as pasted; ``keras.datasets.mnist.load_data`` gives small random arrays (no network),
    and a block starting with ``# runs in a process of its own`` runs in a fresh interpreter."""
    import keras

    from optimlab import registry

    monkeypatch.chdir(tmp_path)
    if chain[0][1].startswith(OWN_PROCESS):
        code = "\n".join(c for _, c in chain)
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr[-3000:]
        return
    monkeypatch.setattr(keras.datasets.mnist, "load_data", _small_mnist)
    registry.names()  # every optimizer registered before the snapshot
    saved = dict(registry._REGISTRY), dict(registry._ALIASES)
    namespace = {}
    try:
        for index, code in chain:
            exec(compile(code, f"README.md python block {index}", "exec"), namespace)
    finally:
        registry._REGISTRY.clear()
        registry._REGISTRY.update(saved[0])
        registry._ALIASES.clear()
        registry._ALIASES.update(saved[1])


# ------------------------------------------------------------------ bash
def _commands():
    """(block index, words) of every command line in the bash blocks, variables expanded."""
    found = []
    for index, code in enumerate(blocks("bash")):
        variables = {}
        for line in code.splitlines():
            line = line.split("  #")[0].strip()
            assignment = re.fullmatch(r"(\w+)=(.*)", line)
            if assignment:
                variables[assignment[1]] = shlex.split(assignment[2])[0]
                continue
            if line:
                line = re.sub(r"\$(\w+)", lambda m: variables[m[1]], line)
                found.append((index, shlex.split(line)))
    return found


def test_setup_block_is_what_ci_runs():
    setup = [words for index, words in _commands() if index == 0]
    assert setup == [["pip", "install", "-e", ".[test]"], ["python", "-m", "pytest"]]
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-2:] == ['pip install -e ".[test]"', "python -m pytest"]


def _reduced(words):
    """The command with the budget options of ``REDUCED`` (and ``EXTRA``) applied."""
    command = words[1]
    out = list(words)
    for i, word in enumerate(words[:-1]):
        key = f"{word}@{command}" if f"{word}@{command}" in REDUCED else word
        if key in REDUCED and not (command == "converge" and word == "--max-iters" and words[i + 1] != "1000"):
            out[i + 1] = REDUCED[key]
    present = set(out)
    for option in EXTRA.get(command, []):
        if option[0] not in present:
            out += option
    return out


OPTIMLAB = [(i, w) for i, w in _commands() if w[0] == "optimlab"]
SCRIPTS = [(i, w) for i, w in _commands() if w[:2] == ["python", "benchmarks/convergence_speed.py"]
           or (w[0] == "python" and w[1].startswith("benchmarks/"))]


def test_every_bash_line_is_covered():
    covered = {tuple(w) for _, w in OPTIMLAB + SCRIPTS} | {tuple(w) for i, w in _commands() if i == 0}
    assert covered == {tuple(w) for _, w in _commands()}


_NOT_MADE = set()  # output folders of README commands skipped for want of ../shared


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("readme")


MYPKG = {
    "__init__.py": "",
    "problems.py": """
import numpy as np
import keras
from optimlab.lab import Problem


def _model():
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(10)])


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 10, size=80)
    return (x[:60], y[:60]), (x[60:], y[60:])


def cifar_resnet():
    return Problem(name="cifar_resnet", model=_model, data=_data, loss="crossentropy", metrics=["accuracy"],
                   epochs=3, batch_size=20)
""",
    "opt.py": """
import optimlab


class MyAdam(optimlab.Adam):
    pass
""",
}


@pytest.fixture(scope="module")
def mypkg(scratch):
    """The README's illustrative ``mypkg`` (a tiny problem and an Adam subclass), importable from ``scratch``."""
    for name, text in MYPKG.items():
        (scratch / "mypkg").mkdir(exist_ok=True)
        (scratch / "mypkg" / name).write_text(text)
    sys.path.insert(0, str(scratch))
    yield
    sys.path.remove(str(scratch))


@pytest.mark.parametrize("index, words", OPTIMLAB, ids=[" ".join(w[:2]) + f"-{n}" for n, (_, w) in enumerate(OPTIMLAB)])
def test_optimlab_line_runs_with_reduced_budget(index, words, scratch, mypkg, monkeypatch):
    from optimlab.cli import app

    monkeypatch.chdir(scratch)
    args = _reduced(words)[1:]
    if any("../shared/" in a for a in args):
        if not SHARED.exists():
            if "--out" in args:
                _NOT_MADE.add(args[args.index("--out") + 1])
            pytest.skip(f"{SHARED} (reference data) is absent")
        args = [a.replace("../shared/", f"{SHARED}/") for a in args]
    if args[0] == "report" and set(args[1:]) & _NOT_MADE:
        pytest.skip(f"its folder is made by a command that needs {SHARED} (reference data), which is absent")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (args, result.output)


@pytest.mark.slow
@pytest.mark.parametrize("index, words", SCRIPTS, ids=[w[1] for _, w in SCRIPTS])
def test_benchmark_script_runs_with_reduced_budget(index, words, tmp_path):
    args = _reduced(["python", "script", *words[2:]])[2:]  # --repeats 1, --epochs 3
    done = subprocess.run([sys.executable, str(ROOT / words[1]), *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
