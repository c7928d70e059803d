"""The Sessions tab's dialogs: name a session, and the trash (deleted sessions, restored with Enter)."""
from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from taskclock.runtime.errors import DataError
from taskclock.runtime.sessions import TITLE_LIMIT, summarize
from taskclock.runtime.trash import KEEP_DAYS, Trashed, list_trash
from taskclock.runtime.untrusted import safe_line

from ..format import plain


class RenameScreen(ModalScreen[str | None]):
    """One line: the session's new name (Enter keeps it, an empty one takes the name away, Esc cancels)."""

    HELP_SECTION = "Sessions: rename"
    BINDINGS = [Binding("escape", "dismiss", "Cancel")]

    def __init__(self, current: str) -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        with Vertical(id="rename-box") as box:
            box.border_title = "Rename the session · Enter keeps it · Esc cancels"
            yield Input(safe_line(self.current), placeholder="a name (empty: its first prompt again)",
                        max_length=TITLE_LIMIT, id="rename-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value)


class TrashScreen(ModalScreen[Trashed | None]):
    """The sessions deleted in the last KEEP_DAYS days: Enter restores the highlighted one."""

    HELP_SECTION = "Sessions: trash"
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, sessions_dir: Path) -> None:
        super().__init__()
        self.items = list_trash(sessions_dir)

    def compose(self) -> ComposeResult:
        with Vertical(id="trash-box") as box:
            box.border_title = f"Trash (emptied {KEEP_DAYS} days after each delete) · Enter restores · Esc closes"
            table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="trash-table")
            table.add_columns("deleted", "session", "model", "turns")
            for index, item in enumerate(self.items):
                table.add_row(item.deleted.strftime("%Y-%m-%d %H:%M"), *self._cells(item), key=str(index))
            yield table
            yield Static("The trash is empty." if not self.items else "", id="trash-empty", markup=False)

    @staticmethod
    def _cells(item: Trashed) -> tuple[Text, Text, str]:
        try:
            summary = summarize(item.path)
        except DataError:  # not readable as a session: still restorable by its name
            return plain(item.name), plain("?"), "?"
        return plain(summary.label or item.name), plain(summary.model), summary.size

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(self.items[int(str(event.row_key.value))])
