"""``optimlab report`` reads JSON records and draws: it should not wait 15-18 s for TensorFlow (issue 22)."""

import os
import subprocess
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]


def test_the_report_path_does_not_import_tensorflow():
    """Found by a user test: `optimlab report` took ~18 s for 24 records, nearly all of it TensorFlow's import."""
    code = ("import sys\nimport optimlab.lab.training.report\n"
            "print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout, done.stdout


def test_the_report_command_writes_the_report_without_importing_tensorflow(tmp_path):
    """The whole ``optimlab report`` command, not only its module: records made here, report drawn in a new process."""
    from typer.testing import CliRunner

    from optimlab.cli import app

    out = tmp_path / "runs"
    made = CliRunner().invoke(app, ["sweep", "--task", "iris", "--optimizer", "sgd", "--lrs", "0.1,0.01",
                                    "--seeds", "2", "--epochs", "2", "--out", str(out)])
    assert made.exit_code == 0, made.output
    code = ("import sys\nfrom optimlab.cli import main\nsys.argv = ['optimlab', 'report', sys.argv[1]]\n"
            "try:\n    main()\nexcept SystemExit as stop:\n    assert not stop.code, stop.code\n"
            "print('LOADED', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "LOADED []" in done.stdout and (out / "report.html").is_file(), done.stdout + done.stderr[-2000:]
