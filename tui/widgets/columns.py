"""One way to swap a DataTable's column set (a narrow screen's short set, a table whose columns depend on its
rows), so each table that does it neither rebuilds columns it already has nor writes the swap again."""
from __future__ import annotations

from collections.abc import Sequence

from textual.widgets import DataTable


def set_columns(table: DataTable, headers: Sequence[str]) -> bool:
    """Give ``table`` these columns, dropping its rows, unless it has them already; True when they changed."""
    if tuple(headers) == tuple(str(column.label) for column in table.columns.values()):
        return False
    table.clear(columns=True)
    table.add_columns(*headers)
    return True
