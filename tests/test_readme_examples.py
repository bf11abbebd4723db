"""The README's "Writing an optimizer" examples are real code: run every block."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def section_blocks():
    text = README.read_text()
    section = text.split("## Writing an optimizer", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def test_section_has_a_modern_and_a_legacy_example():
    blocks = section_blocks()
    assert len(blocks) == 2
    assert "optimlab.Optimizer" in blocks[0] and "def update_step" in blocks[0]
    assert "from optimlab.legacy import Optimizer" in blocks[1] and "_resource_apply_dense" in blocks[1]


@pytest.mark.parametrize("index", [0, 1], ids=["modern", "legacy"])
def test_example_runs(index):
    exec(compile(section_blocks()[index], f"README.md block {index}", "exec"), {})
