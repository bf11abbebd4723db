"""Tables that never cut a value, and the listings that need no TensorFlow (``optimlab optimizers``, ``functions``).

:func:`show` prints a table, or, when it is wider than the console (80
columns when the output is piped), one block of ``name  value`` lines per row
where a long value wraps under itself. The listings read :mod:`optimlab._catalog`,
the registries' static copy, so they print in a fraction of a second. Example::

    from rich.console import Console
    show("two rows", ("name", "value"), [("a", "1"), ("b", "2")], numeric=("value",), out=Console())
"""

import fnmatch

from rich import box
from rich.measure import Measurement
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from optimlab import _catalog
from optimlab._names import did_you_mean
from optimlab.lab.arguments import LabError


def show(title, headers, rows, numeric, out):
    """Print a table that never cuts a value.

    ``numeric`` names the columns that hold numbers (never wrapped). When the
    table does not fit the console's width, each row is printed as a block of
    ``header  value`` lines instead (the detail view), where a long value
    wraps inside its own column.
    """
    table = Table(*headers, title=title, box=box.SIMPLE_HEAD, title_justify="left", show_edge=False,
                  pad_edge=False, collapse_padding=True)
    for column in table.columns:
        column.no_wrap = column.header in numeric
        column.overflow = "fold"
    for row in rows:
        table.add_row(*row)
    natural = Measurement.get(out, out.options.update_width(10**6), table).maximum
    if natural <= out.width:
        out.print(table)
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
    out.print(Padding(block, (0, 0, 0, 2), expand=False))


def list_optimizers(pattern, full, out):
    """The optimizers matching ``pattern``: one line each, or in full (``full``, or one name given)."""
    entries = [e for e in _catalog.OPTIMIZERS if fnmatch.fnmatch(e["name"], pattern.lower())]
    if not entries:
        names = [e["name"] for e in _catalog.OPTIMIZERS]
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
    """The convergence lab's analytic test functions: minima, start, domain."""
    headers = _catalog.FUNCTION_COLUMNS
    show("analytic test functions (optimlab converge --function NAME)", headers,
         [tuple(r[h] for h in headers) for r in _catalog.FUNCTIONS], ("dim", "min_value"), out)
