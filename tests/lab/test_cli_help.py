"""``optimlab --help`` and each command's ``--help`` at 80 columns: whole, and no type after a flag."""

import re

import typer
from typer.testing import CliRunner

from optimlab import cli

runner = CliRunner()


def _help(*args):
    result = runner.invoke(cli.app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_every_help_at_80_columns_is_whole_and_shows_no_type_after_a_flag():
    """Found by a user test: `--svg <bool>` in every command's help; Rich's panels also cut `--optim…` and defaults."""
    group = typer.main.get_command(cli.app)
    top = _help()
    for name, command in group.commands.items():
        line = next(line for line in top.splitlines() if line.strip().startswith(name + " "))
        assert not line.rstrip().endswith("..."), line  # the summary is not cut
        text = _help(name)
        assert max(len(line) for line in text.splitlines()) <= 80, (name, text)
        assert "…" not in text and "<bool>" not in text and "<bool " not in text, (name, text)
        # Found by a user test: Typer's type placeholders ("--task <str>", "--seeds <int range>"): a word that says
        # what to give (TASK, N, RATES, FOLDER) or nothing.
        assert not re.search(r"<[a-z][a-z ._|\[\]]*>", text), (name, re.findall(r"<[^>]*>", text))
        for param in command.params:
            if param.param_type_name == "option" and not param.is_flag:
                assert param.metavar and param.metavar == param.metavar.upper(), (name, param.opts, param.metavar)
        whole = " ".join(text.split())
        for param in command.params:
            if param.param_type_name != "option":
                continue
            for opt in param.opts + param.secondary_opts:
                assert re.search(rf"(^|[\s,/]){re.escape(opt)}([\s,/]|$)", whole), (name, opt)
            if param.is_flag:
                # Options and help only: "--svg  also write every plot as SVG", no type word between.
                long = max(param.opts, key=len)
                flag_line = next(line for line in text.splitlines()
                                 if re.match(rf"\s+(-\w, )?{re.escape(long)}(\s|$)", line))
                assert "<" not in flag_line and "bool" not in flag_line.lower(), (name, flag_line)
            elif param.default is not None and not isinstance(param.default, (list, tuple)):
                assert f"default: {param.default}" in whole, (name, param.opts, param.default)


def test_functions_at_80_columns_wraps_long_values_inside_their_column(monkeypatch):
    """Found by a user test: in `optimlab functions` piped at 80 columns, himmelblau's minima wrapped to column 0."""
    from rich.console import Console

    from optimlab.lab import tables
    from optimlab.lab.convergence.functions import describe_functions

    monkeypatch.setattr(tables, "console", Console(width=80))
    monkeypatch.setenv("COLUMNS", "80")  # the listing prints without the library (optimlab.lab.catalog)
    result = runner.invoke(cli.app, ["functions"])
    assert result.exit_code == 0, result.output
    title, *body = result.output.splitlines()
    headers = ("name", "dim", "minima", "min_value", "start", "domain")
    indent = 2 + max(map(len, headers)) + 2
    blocks, continued = [], 0
    for line in body:
        assert len(line) <= 80, line
        if not line.strip():
            blocks.append({})
            continue
        match = re.match(rf"  ({'|'.join(headers)}) +(\S.*)$", line)
        if match:  # "  header     value", the value starting in its column
            assert match.start(2) == indent, line
            key = match.group(1)
            blocks[-1][key] = match.group(2).rstrip()
        else:  # the rest of a long value: under the value, never from column 0
            assert re.match(rf" {{{indent}}}\S", line), line
            blocks[-1][key] += " " + line.strip()
            continued += 1
    assert continued, "no value was long enough to wrap: the test no longer tests wrapping"
    expected = describe_functions()
    assert len(blocks) == len(expected)
    for block, row in zip(blocks, expected):
        for header in headers:  # every value whole, in its block (minima one per line: no "; " between them)
            value = str(row[header]).replace("; ", " ") if header == "minima" else str(row[header])
            assert block[header].split() == value.split(), (header, block[header], row[header])


def test_an_option_shared_by_several_commands_has_one_default():
    """Options defined once in optimlab.cli (``epochs: Epochs = None``) carry their default per command: they agree."""
    import inspect
    from typing import Annotated, get_origin

    aliases = {name: value for name, value in vars(cli).items() if get_origin(value) is Annotated}
    defaults = {}
    for command in typer.main.get_command(cli.app).commands.values():
        for param in inspect.signature(command.callback).parameters.values():
            alias = next((name for name, value in aliases.items() if param.annotation is value), None)
            if alias:
                defaults.setdefault(alias, {})[command.name] = param.default
    assert {"Task", "Epochs", "Settings", "TrainingOptions"} <= set(defaults)
    assert len(defaults["Task"]) == 4 and len(defaults["Epochs"]) == 3  # compare, sweep, tune (diagnose: its own)
    for alias, per_command in defaults.items():
        assert len(set(map(repr, per_command.values()))) == 1, (alias, per_command)


def test_optimizers_details_at_80_columns_wrap_inside_their_column(monkeypatch):
    """Found by a user test: `optimlab optimizers adam | cat` wrapped long values back to column 0."""
    from rich.console import Console

    from optimlab import registry
    from optimlab.lab import tables

    monkeypatch.setattr(tables, "console", Console(width=80))
    monkeypatch.setenv("COLUMNS", "80")  # the listing prints without the library (optimlab.lab.catalog)
    result = runner.invoke(cli.app, ["optimizers", "adam*", "--details"])
    assert result.exit_code == 0, result.output
    keys = ("paper", "link", "summary", "capabilities", "defaults")
    values, continued, key = {}, 0, None
    for line in result.output.splitlines():
        assert len(line) <= 80, line
        match = re.match(rf"  ({'|'.join(keys)}) +(\S.*)$", line)
        if match:
            assert match.start(2) == 2 + len("capabilities") + 2, line
            key = match.group(1)
            values.setdefault(key, []).append(match.group(2).rstrip())
        elif line.strip() and line.startswith("  "):  # the rest of a long value, under the value
            assert re.match(r" {16}\S", line), line
            values[key][-1] += " " + line.strip()
            continued += 1
        else:  # the name line of each optimizer
            assert re.match(r"\S+ \(\w+, \d{4}\)$", line), line
    assert continued, "no value was long enough to wrap: the test no longer tests wrapping"
    entries = registry.entries("adam*")
    assert [v.split() for v in values["paper"]] == [e.paper.split() for e in entries]
    assert [v.split() for v in values["summary"]] == [e.summary.split() for e in entries]
