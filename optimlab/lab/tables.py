"""The command's console output: tables that never cut a value, numbers, progress bars, static listings.

:func:`show` prints a table, or, when it is wider than the console (80
columns when the output is piped), one block of ``name  value`` lines per row
where a long value wraps under itself. :func:`fmt` and :func:`percent` write
numbers for those tables; :func:`progress_for` draws the one progress bar of
a command's runs on standard error. The listings (``optimlab optimizers``,
``functions``) read :mod:`optimlab.lab.catalog`, the registries' static copy, so
they print in a fraction of a second. Nothing here imports TensorFlow. Example::

    show("two rows", ("name", "value"), [("a", "1"), ("b", "2")], numeric=("value",))
"""

import contextlib
import fnmatch
import math
import re

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from optimlab._names import did_you_mean
from optimlab.lab import catalog
from optimlab.lab.arguments import LabError

console = Console()  # tables and summaries (standard output)
progress_console = Console(stderr=True)  # progress bars


def fmt(value, digits=4):
    """A number with ``digits`` significant digits; ``-`` for missing or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}g}"
    return str(value)


def percent(share):
    return "-" if share is None or (isinstance(share, float) and math.isnan(share)) else f"{share:.0%}"


_NUMBER = re.compile(r"^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$")


def same_notation(cells):
    """Numbers of one column in one notation: if any is written ``1e-05``, all are (``0.5`` -> ``5e-01``).

    Each keeps its significant digits; integers, ``-`` and text stay as they are.
    """
    if not any(_NUMBER.match(c) and "e" in c for c in cells):
        return list(cells)
    out = []
    for cell in cells:
        if _NUMBER.match(cell) and "e" not in cell and "." in cell:
            digits = len(cell.replace("-", "").replace(".", "").lstrip("0")) or 1
            cell = f"{float(cell):.{digits - 1}e}"
        out.append(cell)
    return out


def trimmed(out, renderable):
    """Print ``renderable`` without the spaces Rich pads every line's last cell with (piped output, logs)."""
    for line in out.render_lines(renderable, out.options, pad=False):
        text = Text.assemble(*((segment.text, segment.style) for segment in line if not segment.control))
        text.rstrip()
        out.print(text, soft_wrap=True, highlight=False)


def say(text, out=None, markup=False):
    """Print a sentence, wrapped at words, without the space Rich leaves at the end of each wrapped line."""
    out = out or console
    trimmed(out, Text.from_markup(text) if markup else Text(text))


def show(title, headers, rows, numeric=(), out=None):
    """Print a table that never cuts a value, on ``out`` (default: :data:`console`).

    ``numeric`` names the columns that hold numbers (never wrapped, and in one
    notation: :func:`same_notation`). When the table does not fit the
    console's width, each row is printed as a block of ``header  value`` lines
    instead (the detail view), where a long value wraps inside its own column.
    No line ends in spaces.
    """
    out = out or console
    rows = [list(row) for row in rows]
    for i, header in enumerate(headers):
        if header in numeric:
            for row, cell in zip(rows, same_notation([str(r[i]) for r in rows])):
                row[i] = cell
    table = Table(*headers, title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False,
                  pad_edge=False, collapse_padding=True)
    for column in table.columns:
        column.no_wrap = column.header in numeric
        column.overflow = "fold"
    for row in rows:
        table.add_row(*row)
    natural = Measurement.get(out, out.options.update_width(10**6), table).maximum
    if natural <= out.width:
        trimmed(out, table)
        return
    out.print(title, overflow="fold")
    for row in rows:
        out.print("")
        details(out, zip(headers, row))


def details(out, rows):
    """``key  value`` lines, indented by two, where a long value wraps under itself (never from column 0)."""
    block = Table.grid(padding=(0, 2))
    block.add_column(no_wrap=True)
    block.add_column(overflow="fold")
    for key, value in rows:
        block.add_row(Text(key), Text(str(value)))
    trimmed(out, Padding(block, (0, 0, 0, 2), expand=False))


def list_optimizers(pattern, full, out):
    """The optimizers matching ``pattern``: one line each, or in full (``full``, or one name given)."""
    entries = [e for e in catalog.OPTIMIZERS if fnmatch.fnmatch(e["name"], pattern.lower())]
    if not entries:
        names = [e["name"] for e in catalog.OPTIMIZERS]
        raise LabError(f"no optimizer matches {pattern!r}{did_you_mean(pattern, names)} "
                       f"(try 'adam*' or see optimlab optimizers)")
    if full or (len(entries) == 1 and not any(c in pattern for c in "*?[")):
        for e in entries:
            out.print(f"[bold]{e['name']}[/bold] ({e['class']}, {e['year']})", highlight=False)
            details(out, [("paper", e["paper"]), ("link", e["link"]), ("summary", e["summary"]),
                          ("capabilities", ", ".join(e["capabilities"]) or "-"), ("defaults", ", ".join(e["defaults"]))])
        return
    rows = [(e["name"], e["class"], str(e["year"]), ", ".join(e["capabilities"]) or "-") for e in entries]
    show(f"{len(rows)} optimizers (optimlab optimizers NAME or --details for the paper and defaults)",
         ("name", "class", "year", "capabilities"), rows, ("year",), out)


def list_functions(out):
    """The convergence lab's analytic test functions: minima (one per line, never split), start, domain."""
    headers = catalog.FUNCTION_COLUMNS
    rows = [tuple(r[h].replace("; ", "\n") if h == "minima" else r[h] for h in headers) for r in catalog.FUNCTIONS]
    show("analytic test functions (optimlab converge --function NAME)", headers, rows, ("dim", "min_value"), out)


def _counts(running, diverged, retried, pruned=0):
    """``"2 running, 1 diverged"`` (``", 1 retried"`` after a lost worker, ``", 3 pruned"`` by a tuner's pruner):
    the progress bar's counts in words."""
    text = f"{running} running, {diverged} diverged"
    return text + (f", {retried} retried" if retried else "") + (f", {pruned} pruned" if pruned else "")


@contextlib.contextmanager
def progress_for(runner, total, label, done=0):
    """One progress bar (on stderr) for all runs, here, in worker processes or on a cluster.

    It starts at ``done`` (work finished by an earlier, interrupted command) and
    shows runs done of the total, how many are running, how many diverged (a
    result, not a fault), were pruned (tune) and were retried after losing their worker,
    and the time left. Its label is ``label`` until a run ends, then the name
    of the optimizer whose run ended last, never cut (``schedule_free_adamw``).
    It fits 80 columns, e.g. ``adam ━━━━━ 12/36 2 running, 1 diverged 0:00:41``.
    The ``runner`` (a training-lab Runner) reports to it and is closed after.
    """
    columns = (TextColumn("{task.description}"), BarColumn(bar_width=5), MofNCompleteColumn(),
               TextColumn("{task.fields[counts]}"), TimeRemainingColumn())
    counts = {"running": 0, "diverged": 0, "retried": 0, "pruned": 0}
    with Progress(*columns, console=progress_console, transient=False) as progress:
        task = progress.add_task(label, total=total, completed=done, counts=_counts(**counts))

        def update(**fields):
            progress.update(task, counts=_counts(**counts), **fields)

        def on_start():
            counts["running"] += 1
            update()

        def on_retry():
            counts["running"] = max(0, counts["running"] - 1)
            counts["retried"] += 1
            update()

        def on_run(record, computed):
            if computed:
                counts["running"] = max(0, counts["running"] - 1)
            counts["diverged"] += record["status"] == "diverged"
            counts["pruned"] += record["status"] == "pruned"
            finished = progress.tasks[task].completed + 1
            # A pruned trial's saved epochs pay for more trials than planned: the total grows, never overflows.
            update(advance=1, description=record["spec"]["optimizer"],
                   total=max(progress.tasks[task].total or 0, finished))

        runner.on_run, runner.on_start, runner.on_retry = on_run, on_start, on_retry
        try:
            yield
        finally:
            runner.close()
