"""Helpers shared by the CLI tests: commands run through ``optimlab.cli.main()`` in one fresh interpreter,
and the progress bar's last line at 80 columns."""

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from rich.console import Console

from optimlab.lab import tables

ROOT = Path(__file__).resolve().parents[2]

# Runs each case through optimlab.cli.main() in one fresh interpreter, then says what it imported.
DRIVER = """
import contextlib, io, json, sys, time
import optimlab.cli
results = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["optimlab", *args]
    err = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stderr(err):
        try:
            optimlab.cli.main()
            code = 0
        except SystemExit as exit:
            code = exit.code
    results.append({"code": code, "stderr": err.getvalue(), "seconds": time.perf_counter() - started})
print(json.dumps({"results": results, "loaded": [m for m in ("tensorflow", "keras") if m in sys.modules]}))
"""


def drive(cases, cwd):
    """Each case's exit status, stderr and seconds, and whether TensorFlow was imported."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "80"}
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=cwd)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def last_bar_line(monkeypatch, total, drive):
    """The progress bar's last line at 80 columns after ``drive(runner)`` reported runs to it."""
    screen = io.StringIO()
    monkeypatch.setattr(tables, "progress_console", Console(file=screen, width=80, force_terminal=True))

    class FakeRunner:
        def close(self):
            pass

    runner = FakeRunner()
    with tables.progress_for(runner, total, "compare"):
        drive(runner)
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen.getvalue()).replace("\r", "\n").strip().splitlines()[-1]
