"""Values and output paths on the command line (issue 22): answered before TensorFlow, naming the flag.

An output place is proven writable by creating and removing a file there, never
by ``os.access``: the tests run as root in CI, where ``os.access`` says yes to
folders that refuse every new file (under /proc or /sys, an immutable folder).
Each command case runs through ``optimlab.cli.main()`` in one fresh
interpreter, which then says whether it imported TensorFlow.
"""

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli_driver import drive

from optimlab import _catalog_data
from optimlab.lab import arguments


def _refuses_files(folder):
    """Whether creating a folder in ``folder`` fails for this process (root included)."""
    probe = Path(folder) / "optimlab-probe"
    try:
        probe.mkdir()
    except OSError:
        return True
    probe.rmdir()
    return False


@contextlib.contextmanager
def refusing_folder(tmp_path):
    """A folder that refuses new files even to root: immutable (chattr +i), else one under /proc/1 or /sys."""
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(frozen)], capture_output=True).returncode == 0:
        try:
            yield frozen
        finally:
            subprocess.run([chattr, "-i", str(frozen)], capture_output=True)
        return
    for folder in ("/proc/1", "/sys/kernel", "/sys"):
        if Path(folder).is_dir() and _refuses_files(folder):
            yield Path(folder)
            return
    pytest.skip("no folder here refuses new files to this user")


def test_writability_is_proven_by_a_file_not_by_os_access(tmp_path, monkeypatch):
    """Found by a user test: as root, an --out under a folder that refuses files passed, then failed after 18 s."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)  # what root is told
    with refusing_folder(tmp_path) as folder:
        for path in (folder / "out", folder / "new" / "deeper"):
            with pytest.raises(arguments.LabError, match=r"^--out '.*' is not writable: "):
                arguments.check_writable(path)
            assert not path.exists()


def test_the_probe_leaves_nothing_behind_and_names_a_file_in_the_way(tmp_path):
    arguments.check_writable(tmp_path / "a" / "b" / "c")
    assert list(tmp_path.iterdir()) == []  # the folders made for the probe are removed again
    (tmp_path / "kept").mkdir()
    arguments.check_writable(tmp_path / "kept")
    assert list(tmp_path.iterdir()) == [tmp_path / "kept"] and list((tmp_path / "kept").iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(arguments.LabError, match=f"is not writable: '{blocker}' is a file"):
        arguments.check_writable(blocker / "x" / "y")
    with pytest.raises(arguments.LabError, match="^--plot '.*p.png' is not writable: .* is a file"):
        arguments.check_plot(str(blocker / "p.png"))


def test_every_output_place_is_probed_before_tensorflow(tmp_path):
    """--out, --plot, the report folder, a sqlite --storage file's folder and bench --out: one line, exit 2."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    under = str(blocker / "sub")
    records = tmp_path / "done" / "records" / "p" / "o"
    records.mkdir(parents=True)
    (records / "r.json").write_text("{}")
    cases = [
        (["compare", "--task", "iris", "--out", under], "--out"),
        (["sweep", "--out", under], "--out"),
        (["tune", "--out", under], "--out"),
        (["diagnose", "--out", under], "--out"),
        (["bench", "--out", under], "--out"),
        (["converge", "--plot", str(blocker / "paths.png")], "--plot"),
        (["tune", "--storage", f"sqlite:///{blocker}/t.db", "--out", str(tmp_path / "o")], "--storage"),
    ]
    with refusing_folder(tmp_path) as folder:
        cases += [(["compare", "--out", str(folder / "o")], "--out"),
                  (["converge", "--plot", str(folder / "p.png")], "--plot")]
        if folder.parent == tmp_path:  # an immutable folder holding records: the report cannot be written there
            shutil.rmtree(tmp_path / "done")
            subprocess.run(["chattr", "-i", str(folder)], check=True)
            (folder / "records" / "p" / "o").mkdir(parents=True)
            (folder / "records" / "p" / "o" / "r.json").write_text("{}")
            subprocess.run(["chattr", "+i", str(folder)], check=True)
            cases.append((["report", str(folder)], "report folder"))
        before = sorted(tmp_path.rglob("*"))
        report = drive([args for args, _ in cases], tmp_path)
        assert sorted(tmp_path.rglob("*")) == before  # nothing written, no probe left
    assert report["loaded"] == []
    for (args, flag), result in zip(cases, report["results"]):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1, (args, result)
        assert lines[0].startswith(f"error: {flag} ") and "not writable" in lines[0], (args, lines)


# Each case: arguments, the one-line error (start of the line after "error: ").
BAD_VALUES = [
    (["compare", "--valid-fraction", "1.5"], "--valid-fraction must be in [0, 1); got 1.5"),
    (["diagnose", "--valid-fraction", "-0.1"], "--valid-fraction must be in [0, 1); got -0.1"),
    (["tune", "--sampler", "tpee"], "--sampler: unknown sampler 'tpee'; did you mean 'tpe'?"),
    (["tune", "--lr-low", "1", "--lr-high", "0.1"], "--lr-low and --lr-high must satisfy 0 < low < high"),
    (["converge", "--init", "1,x"], "--init must be comma-separated numbers"),
    (["converge", "--init", "nan"], "--init must be finite numbers"),
    (["converge", "--lrs", "-1"], "--lrs values must be positive numbers"),
    (["bench", "--shapes", "lagre"], "--shapes: unknown shape set 'lagre'; did you mean 'large'?"),
    (["compare", "--option", "mixup=-1"], "--option mixup must be a finite number >= 0"),
    (["sweep", "--option", "label_smoothing=1"], "--option label_smoothing must be in [0, 1); got 1"),
    (["tune", "--option", "batchnorm=2"], "--option batchnorm must be true or false; got 2"),
    (["compare", "--option", "mixupp=0.2"], "--option takes KEY=VALUE"),
    (["compare", "--option", "schedule=CosineDecy:decay_steps=9"],
     "--option schedule: unknown schedule 'CosineDecy'; did you mean 'CosineDecay'?"),
    (["sweep", "--option", "schedule=CosineDecay:decay_step=9"],
     "--option schedule: CosineDecay takes no argument 'decay_step'; did you mean 'decay_steps'?"),
    (["tune", "--option", "schedule=WarmupDecay:warmup_steps=5"], "--option schedule: WarmupDecay needs decay_steps"),
    (["compare", "--option", "schedule=PiecewiseConstantDecay:values=1"],  # its first argument is not a rate
     "--option schedule: unknown schedule 'PiecewiseConstantDecay'"),
    (["compare", "--set", "momentum"], "--set takes KEY=NUMBER"),
    (["compare", "--optimizers", "sgd", "--set", "momentun=0.9"], "--set momentun: sgd has no hyperparameter"),
]


def test_every_value_is_checked_before_tensorflow_with_the_flags_name(tmp_path):
    """Found by a user test: --sampler, --valid-fraction, converge --init and --option values waited 15-20 s for
    TensorFlow, and --valid-fraction's message named valid_fraction, not the flag."""
    started = time.perf_counter()
    report = drive([args for args, _ in BAD_VALUES], tmp_path)
    assert time.perf_counter() - started < 20  # TensorFlow alone takes longer on a busy CI core
    assert report["loaded"] == []
    for (args, expected), result in zip(BAD_VALUES, report["results"]):
        lines = result["stderr"].strip().splitlines()
        assert result["code"] == 2 and len(lines) == 1, (args, result)
        assert lines[0].startswith(f"error: {expected}"), (args, lines[0])
    assert list(tmp_path.iterdir()) == []


def test_the_catalogs_schedules_are_the_ones_a_run_can_follow():
    """Every schedule the early check accepts is built by the factory with its required arguments (and only those)."""
    from optimlab.lab import factory

    assert [entry["name"] for entry in _catalog_data.SCHEDULES] == list(factory.schedule_classes())
    for entry in _catalog_data.SCHEDULES:
        args = {key: 3 for key in entry["required"]}
        arguments.check_schedule(entry["name"], args)
        schedule = factory.make_schedule(entry["name"], 0.1, args)
        assert float(schedule(1)) > 0, entry["name"]


def test_values_in_range_pass_the_early_checks():
    arguments.precheck(valid_fraction=0.0, sampler="grid", lr_range=(1e-5, 1.0), init="1,-2", lrs="1e-3",
                       lrs_default=False, shapes="large,small",
                       options=["mixup=0", "label_smoothing=0.1", "batchnorm=true", "schedule=CosineDecay:decay_steps=9"])
