"""The command's console output as a pipe or a log receives it (issue 22): no padding at line ends, one number
notation per column, names never cut, a coordinate pair never split across lines."""

import io
import re

from rich.console import Console

from cli_driver import last_bar_line

from optimlab.lab import catalog, tables


def _screen(width=80):
    return Console(file=io.StringIO(), width=width)  # not a terminal: what `optimlab ... | tee log` gets


def test_piped_tables_and_detail_views_end_no_line_in_spaces():
    """Found by a user test: every table line was padded with spaces to its column's width."""
    for width in (120, 40):  # the table, then the detail view (too wide for 40 columns)
        out = _screen(width)
        tables.show("two rows", ("name", "value", "note"), [("a", "1", "short"), ("longer name", "22", "x")],
                    numeric=("value",), out=out)
        text = out.file.getvalue()
        assert "longer name" in text and "22" in text
        assert [line for line in text.splitlines() if line != line.rstrip()] == [], text
    out = _screen()
    tables.list_optimizers("adam", False, out)
    tables.list_functions(out)
    assert not re.search(r" +$", out.file.getvalue(), re.MULTILINE)


def test_piped_sentences_wrap_at_words_without_a_space_at_line_ends():
    """Found by a user test of tune: its budget and answer sentences, wrapped at 80 columns, ended lines in a space."""
    out = _screen()
    sentence = ("momentum lr=0.658133 momentum=0.985864 has the lowest median test cross-entropy on iris ahead of adam "
                "amsgrad=true beta_1=0.982552 [bold] stays as written")
    tables.say(sentence, out=out)
    text = out.file.getvalue()
    assert len(text.splitlines()) == 2 and not re.search(r" +$", text, re.MULTILINE), text
    assert " ".join(text.split()) == sentence  # every word, once, in order; brackets are not markup
    out = _screen()
    tables.say("[bold]exploding[/bold] from epoch 3", out=out, markup=True)
    assert out.file.getvalue() == "exploding from epoch 3\n"


def test_numbers_of_one_column_are_written_in_one_notation():
    """Found by a user test: "0.001" above "1e-05" in one column read as different kinds of number."""
    assert tables.same_notation(["0.5", "1e-05", "-", "12", "0.932129", "-0.25"]) == \
        ["5e-01", "1e-05", "-", "12", "9.32129e-01", "-2.5e-01"]
    assert tables.same_notation(["0.5", "0.001", "12"]) == ["0.5", "0.001", "12"]  # no e-notation: unchanged
    out = _screen(120)
    tables.show("rates", ("optimizer", "lr", "final loss"), [("adam", "0.001", "0.25"), ("sgd", "1e-05", "1.5e-09")],
                numeric=("lr", "final loss"), out=out)
    text = out.file.getvalue()
    assert "1e-03" in text and "2.5e-01" in text and "0.001" not in text, text


def test_the_progress_bar_names_the_optimizer_whole_within_80_columns(monkeypatch):
    """Found by a user test: the label was cut to 14 characters ("compare rmspro")."""
    def drive(runner):
        for name in ("rmsprop", "schedule_free_adamw"):
            runner.on_start()
            runner.on_run({"status": "ok", "spec": {"optimizer": name}}, True)
        for _ in range(12):
            runner.on_retry()

    last = last_bar_line(monkeypatch, 1000, drive)
    assert "schedule_free_adamw" in last and "2/1000" in last and "retried" in last, last
    assert len(last.rstrip()) <= 80 and "…" not in last, last


def test_the_functions_listing_never_splits_a_coordinate_pair():
    """Found by a user test: himmelblau's minima broke "(3.5844," from "-1.8481)" across two lines."""
    pairs = [pair for row in catalog.FUNCTIONS for pair in row["minima"].split("; ")]
    assert "(3.5844, -1.8481)" in pairs
    for width in (80, 60):
        out = _screen(width)
        tables.list_functions(out)
        lines = out.file.getvalue().splitlines()
        for pair in pairs:
            assert any(pair in line for line in lines), (width, pair)
