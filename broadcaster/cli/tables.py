"""Every table the CLI prints, in one place: at a terminal, a rich table in the terminal's width
whose long words wrap rather than end in "…"; when stdout is not a terminal (a pipe, a file, a
script), tab-separated values: a header line, then one line per row, no cell ever cut."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

# In a cell, what would break the lines and columns (and a backslash, so escapes read back
# unambiguously), and the other control characters, which a terminal further down the pipe
# would otherwise obey.
_ESCAPES = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
_SPECIAL = re.compile(r"[\\\x00-\x1f\x7f-\x9f]")


def tsv_cell(value: str) -> str:
    return _SPECIAL.sub(lambda m: _ESCAPES.get(m[0], f"\\x{ord(m[0]):02x}"), value)


def print_table(out: Console, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Cells are plain text: markup in them (`[bold]`) is printed as typed."""
    if not out.is_terminal:
        for line in (columns, *rows):
            click.echo("\t".join(tsv_cell(cell) for cell in line))
        return
    table = Table(*columns)
    for column in table.columns:
        column.overflow = "fold"
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    out.print(table)
