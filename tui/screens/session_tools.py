"""The Sessions tab's dialogs: name a session, and the trash (deleted sessions, restored with Enter)."""
from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Static

from taskclock.runtime.errors import TaskclockError
from taskclock.runtime.sessions import TITLE_LIMIT, SessionSummary, summarize
from taskclock.runtime.trash import KEEP_DAYS, Trashed, list_trash
from taskclock.runtime.untrusted import safe_line

from ..format import plain
from ..livepane import describe_error, post_from_thread
from ..messages import SessionsListFailed, TrashListed


def _summaries(sessions_dir: Path) -> list[tuple[Trashed, SessionSummary | None]]:
    """Each trashed log with its summary, or None when it cannot be read as a session."""
    items: list[tuple[Trashed, SessionSummary | None]] = []
    for item in list_trash(sessions_dir):
        try:
            items.append((item, summarize(item.path)))
        except TaskclockError:  # not readable as a session: still restorable by its name
            items.append((item, None))
    return items


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
    """The sessions deleted in the last KEEP_DAYS days: Enter restores the highlighted one. The trash is read in
    a worker (a large log's summary takes seconds), so Esc answers at once."""

    HELP_SECTION = "Sessions: trash"
    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, sessions_dir: Path) -> None:
        super().__init__()
        self.sessions_dir = sessions_dir
        self.items: list[Trashed] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="trash-box") as box:
            box.border_title = f"Trash (emptied {KEEP_DAYS} days after each delete) · Enter restores · Esc closes"
            table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="trash-table")
            table.add_columns("deleted", "session", "model", "turns")
            yield table
            yield Static("reading the trash…", id="trash-empty", markup=False)

    def on_mount(self) -> None:
        folder = self.sessions_dir
        post_from_thread(self, lambda: TrashListed(_summaries(folder)), SessionsListFailed, group="list-trash")

    def on_trash_listed(self, message: TrashListed) -> None:
        message.stop()
        table = self.query_one(DataTable)
        self.items = [item for item, _ in message.items]
        for index, (item, summary) in enumerate(message.items):
            cells = (plain(item.name), plain("?"), "?") if summary is None else \
                (plain(summary.label or item.name), plain(summary.model), summary.size)
            table.add_row(item.deleted.strftime("%Y-%m-%d %H:%M"), *cells, key=str(index))
        self.query_one("#trash-empty", Static).update("" if self.items else "The trash is empty.")
        table.focus()

    def on_sessions_list_failed(self, message: SessionsListFailed) -> None:
        message.stop()
        self.notify(describe_error(message.error), title="Trash", severity="error")
        self.dismiss(None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.dismiss(self.items[int(str(event.row_key.value))])
