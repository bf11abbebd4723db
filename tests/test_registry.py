"""The registry: every optimizer class is registered, lookups behave, the README table is in sync."""

import doctest
import inspect
import re
from pathlib import Path

import pytest

import optimlab
from optimlab import registry
from optimlab.optimizer import Optimizer

ROOT = Path(__file__).resolve().parents[1]


def optimizer_classes():
    """Every public Optimizer subclass defined in optimlab.optimizers (walked, not listed)."""
    found, todo = set(), [Optimizer]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("optimlab.optimizers.") and not sub.__name__.startswith("_"):
                found.add(sub)
    return found


def test_every_optimizer_class_is_registered():
    registered = {entry.cls for entry in optimlab.entries()}
    classes = optimizer_classes()
    assert classes, "no optimizer classes found"
    missing = sorted(cls.__name__ for cls in classes - registered)
    assert not missing, f"not registered: {missing}"


def test_every_registered_class_is_exported():
    for entry in optimlab.entries():
        assert getattr(optimlab, entry.cls.__name__) is entry.cls
        assert entry.cls.__name__ in optimlab.__all__


def test_every_optimizer_has_a_reference_test():
    """tests/optimizers/test_<name>.py, or test_<module>.py for a module holding several optimizers."""
    folder = ROOT / "tests" / "optimizers"

    def covered(entry):
        module = entry.cls.__module__.rsplit(".", 1)[-1]
        return (folder / f"test_{entry.name}.py").exists() or (folder / f"test_{module}.py").exists()

    missing = [e.name for e in optimlab.entries() if not covered(e)]
    assert not missing, f"no reference test in tests/optimizers for {missing}"


@pytest.mark.parametrize("entry", optimlab.entries(), ids=optimlab.names())
def test_entry_is_complete(entry):
    assert entry.name == entry.name.lower()
    assert re.match(r"https?://", entry.url)
    assert 1800 < entry.year < 2100
    assert entry.paper and entry.summary
    assert str(entry.year) in entry.summary, "the summary line names the authors and year"
    assert entry.capabilities <= set(registry.CAPABILITIES)
    for recipe in (entry.quadratic, entry.rosenbrock):
        assert recipe.steps > 0 and recipe.tol > 0
        entry.cls(**recipe.kwargs)
    if entry.has("lazy_sparse"):
        assert entry.has("sparse"), "lazy_sparse implies sparse"
    if entry.has("sparse"):
        assert entry.cls.sparse_update_step is not Optimizer.sparse_update_step, "sparse needs its own sparse_update_step"
    doc = inspect.getdoc(entry.cls)
    for section in ("Args:", "Example:", "http"):
        assert section in doc, f"{entry.cls.__name__} docstring lacks {section!r}"
    assert re.search(r"keras|torch|optax", doc, re.I), f"{entry.cls.__name__} docstring has no convention note"


def test_get_builds_with_arguments():
    opt = optimlab.get("adam", learning_rate=0.01, beta_1=0.8)
    assert isinstance(opt, optimlab.Adam)
    assert float(opt.learning_rate) == pytest.approx(0.01)
    assert float(opt.beta_1) == pytest.approx(0.8)


def test_names_are_case_insensitive_and_aliases_resolve():
    assert optimlab.info("ADAM").cls is optimlab.Adam
    assert optimlab.info("gradient_descent").name == "gd"
    assert isinstance(optimlab.get("GradientDescent"), optimlab.GradientDescent)


def test_names_with_wildcards():
    names = optimlab.names()
    assert names == sorted(names)
    assert "adam" in optimlab.names("adam*") and "adamw" in optimlab.names("adam*")
    assert all(n.startswith("adam") for n in optimlab.names("adam*"))
    assert optimlab.names("no-such-optimizer*") == []
    assert [e.name for e in optimlab.entries("rms*")] == optimlab.names("rms*")


def test_unknown_name_lists_the_valid_names():
    with pytest.raises(ValueError, match="unknown optimizer 'adamm'") as info:
        optimlab.get("adamm")
    assert "adamw" in str(info.value) and "sgd" in str(info.value)
    with pytest.raises(TypeError, match="must be a string"):
        optimlab.info(3)


def test_defaults_come_from_the_signature():
    defaults = optimlab.info("rmsprop").defaults
    assert defaults["rho"] == 0.9 and defaults["centered"] is False
    assert "name" not in defaults


def test_unknown_capability_and_double_registration_are_refused():
    with pytest.raises(ValueError, match="unknown capabilities"):
        registry.register("x", paper="p", year=2000, url="u", quadratic=({}, 1, 1.0), rosenbrock=({}, 1, 1.0),
                          capabilities=("warp_speed",))
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("adam", paper="p", year=2000, url="u", quadratic=({}, 1, 1.0),
                          rosenbrock=({}, 1, 1.0))(type("Again", (Optimizer,), {}))


def test_readme_table_is_in_sync():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Optimizers", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"<!-- optimizers:begin -->\n(.*?)\n<!-- optimizers:end -->", section, re.S)
    assert match, "README's Optimizers section lacks the optimizers:begin/end markers"
    assert match.group(1) == registry.markdown_table(), "regenerate with: optimlab optimizers --markdown"


@pytest.mark.parametrize("entry", optimlab.entries(), ids=optimlab.names())
def test_docstring_example_runs(entry):
    """The runnable example of every optimizer's docstring gives the output it shows."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(entry.cls, entry.cls.__name__) if t.examples]
    assert tests, f"{entry.cls.__name__} has no example"
    for test in tests:
        runner.run(test)
    assert runner.failures == 0, f"{entry.cls.__name__}'s example fails (run python -m doctest -v on its module)"


def test_fused_capability_is_declared_exactly_where_a_fast_path_exists():
    from optimlab import fused

    for entry in optimlab.entries():
        has_path = fused.has_fast_path(entry.cls())
        assert entry.has("fused") == has_path, f"{entry.name}: fast path {has_path}, declared {entry.has('fused')}"


def test_fused_capability_is_derived_never_declared():
    """``fused`` comes from the fast-path registration beside the update rule; declaring it is refused."""
    with pytest.raises(ValueError, match="derived"):
        registry.register("x", paper="p", year=2000, url="u", quadratic=({}, 1, 1.0), rosenbrock=({}, 1, 1.0),
                          capabilities=("fused",))
    assert "fused" in optimlab.info("adamw").capabilities  # AdamW keeps Adam's update rule, so Adam's fast path
    assert "fused" not in optimlab.info("nadam").capabilities
