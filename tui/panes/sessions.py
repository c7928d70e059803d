"""The Sessions tab: past chat sessions with their turn counts and medians, each opened read-only; searched by
prompt, filtered by model, renamed, deleted to the trash (runtime/trash.py) and restored."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Markdown, Select, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import metrics
from taskclock.runtime.errors import TaskclockError
from taskclock.runtime.sessions import (
    SessionSummary,
    context_notes,
    export_all,
    is_compare,
    list_sessions,
    plot_ttft_per_turn,
    read_session,
    rename_session,
    to_markdown,
    ttft_per_turn,
)
from taskclock.runtime.trash import KEEP_DAYS, Trashed, empty_trash, restore, trash_session
from taskclock.runtime.untrusted import safe_line, safe_text

from ..context import AppContext
from ..format import plain
from ..livepane import describe_error, post_from_thread, read_in_worker
from ..messages import SessionRead, SessionReadFailed, SessionsListed, SessionsListFailed, TrashEmptied
from ..screens.replay import Marks, TurnPicker
from ..screens.session_tools import RenameScreen, TrashScreen
from ..widgets.columns import set_columns

# Each session's medians (SessionSummary.median_<key>) of these figures, as the figure registry shows them (the
# line above the table says they are medians).
MEDIANS = tuple(metrics.figure_format(key) for key in ("ttft_s", "decode_tps", "task_time_s"))
COLUMNS = ("date", "session", "model", "turns", *(shown.label for shown in MEDIANS))
# A narrow screen (tui/app.py NARROW_WIDTH) keeps what a session felt like: its TTFT and task time, the date
# without its year, a shorter name and model (the decode rate is in the session's own view).
NARROW_MEDIANS = tuple(shown for shown in MEDIANS if shown.key != "decode_tps")
NARROW_COLUMNS = ("date", "session", "model", "turns", *(shown.label for shown in NARROW_MEDIANS))
PROMPT_WIDTH = {False: 36, True: 18}  # by narrowness
MODEL_WIDTH = {False: 28, True: 14}  # a server URL with its model id is longer than both
ANY_MODEL = ""  # the model filter's "all models"
# The session viewer reads a log whole but draws a page at a time: Textual's Markdown takes ~0.3 s for a page of
# 10 turns on this 2-core machine, and 30-45 s for a 54 MB log drawn whole.
PAGE_TURNS = 10
TEXT_SHOWN_MAX = 4000  # characters of one prompt or reply drawn (a long reply, ~1000 tokens); the export has all


def first_line(text: str, width: int) -> str:
    """A prompt as one short cell: its first line, cut with an ellipsis."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 1] + "…"


def short_model(name: str, width: int) -> str:
    """A model name in at most ``width`` characters: a server model by its id (``URL#id``), cut in its middle so
    both ends show."""
    if "://" in name and "#" in name:
        name = name.split("#", 1)[1]
    return cut_middle(name, width)


def cut_middle(text: str, width: int) -> str:
    """``text`` cut to ``width`` in its middle, keeping both ends."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head):]


class SessionsPane(Vertical):
    HELP_SECTION = "Sessions"
    HELP_OPENS = (TurnPicker, TrashScreen)  # their keys (Space marks, s plays, b branches; Enter restores)
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("p", "replay", "Turns (replay, branch)"),
                Binding("n", "rename", "Rename"), Binding("delete,d", "delete", "Delete"),
                Binding("t", "trash", "Trash", show=False), Binding("slash", "search", "Search", show=False)]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="sessions-pane")
        self.folder = context.sessions_dir
        self.summaries: list[SessionSummary] = []
        self.replay_marks: Marks = {}  # turns marked for a side-by-side replay, across sessions
        self.narrow = False  # the table's column set: NARROW_COLUMNS on a narrow screen

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble("Sessions in ", plain(self.folder), "  ·  medians per session  ·  Enter opens "
                                   "one (read-only)"), id="sessions-folder")
        with Horizontal(id="sessions-filters"):
            yield Input(placeholder="search prompts… (/)", id="sessions-search")
            yield Select([], prompt="any model", id="sessions-model")
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="sessions-table", classes="autofocus")
        table.add_columns(*COLUMNS)
        yield table
        yield Static("No sessions yet: chat in the Chat tab and each reply is logged here.", id="sessions-empty")

    def on_mount(self) -> None:
        """A launch empties what the trash has kept longer than a week, and says so."""
        folder = self.folder
        post_from_thread(self, lambda: TrashEmptied(empty_trash(folder)), SessionsListFailed, group="empty-trash")

    def on_trash_emptied(self, message: TrashEmptied) -> None:
        message.stop()
        if message.names:
            shown = ", ".join(message.names[:5]) + (f" and {len(message.names) - 5} more" if len(message.names) > 5
                                                    else "")
            self.notify(f"Emptied the trash of {len(message.names)} session(s) deleted over {KEEP_DAYS} days ago: "
                        f"{shown}", title="Sessions", timeout=12)

    def on_show(self) -> None:
        self.action_refresh()

    def on_resize(self) -> None:
        """Pick the table's column set for the screen's width (the screen's -narrow class, tui/app.py)."""
        narrow = self.screen.has_class("-narrow")
        if narrow == self.narrow:
            return
        self.narrow = narrow
        set_columns(self.query_one(DataTable), NARROW_COLUMNS if narrow else COLUMNS)
        self._fill(self.summaries)

    def action_refresh(self) -> None:
        folder = self.folder
        post_from_thread(self, lambda: SessionsListed(list_sessions(folder)), SessionsListFailed,
                         group="scan-sessions")

    def on_sessions_listed(self, message: SessionsListed) -> None:
        message.stop()
        self.summaries = message.summaries
        models = sorted({model for s in message.summaries for model in s.models})
        picker = self.query_one("#sessions-model", Select)
        chosen = picker.value
        picker.set_options([(plain(model), model) for model in models])
        if chosen in models:  # the filter stays on while its model is listed
            picker.value = chosen
        self._fill(self.summaries)

    def on_sessions_list_failed(self, message: SessionsListFailed) -> None:
        message.stop()
        self.notify(f"Cannot list sessions in {self.folder}: {message.error}", severity="error")

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sessions-search":
            event.stop()
            self._fill(self.summaries)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "sessions-search":  # Enter: on to the sessions found
            event.stop()
            self.query_one(DataTable).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "sessions-model":
            event.stop()
            self._fill(self.summaries)

    def shown(self) -> list[SessionSummary]:
        """The sessions the search box and the model filter let through."""
        query = self.query_one("#sessions-search", Input).value
        model = self.query_one("#sessions-model", Select).value
        wanted = ANY_MODEL if model is Select.NULL else str(model)
        return [s for s in self.summaries if s.matches(query, wanted)]

    def _fill(self, summaries: list[SessionSummary]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        shown = self.shown()
        for s in shown:
            # outside text (prompts, names, models): never markup
            name = plain(first_line(s.label, PROMPT_WIDTH[self.narrow]), style="bold" if s.title else "")
            model = plain(short_model(safe_line(s.model), MODEL_WIDTH[self.narrow]))
            medians = [figure.text(getattr(s, f"median_{figure.key}"), unit=True)
                       for figure in (NARROW_MEDIANS if self.narrow else MEDIANS)]
            table.add_row(s.started[5:] if self.narrow else s.started, name, model,
                          s.short_size if self.narrow else s.size, *medians, key=str(s.path))
        empty = self.query_one("#sessions-empty", Static)
        empty.display = not shown
        if summaries and not shown:
            empty.update("No session matches the search or the model filter.")
        elif not summaries:
            empty.update("No sessions yet: chat in the Chat tab and each reply is logged here.")

    def highlighted(self) -> Path | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return Path(str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value))

    def action_search(self) -> None:
        self.query_one("#sessions-search", Input).focus()

    def action_replay(self) -> None:
        """Pick a turn of the highlighted session to replay at its recorded pace, or branch the chat from
        (screens/replay.py)."""
        path = self.highlighted()
        if path is None:
            self.notify("No session to replay yet", severity="warning")
            return
        self.app.push_screen(TurnPicker(path, self.replay_marks))

    def action_rename(self) -> None:
        path = self.highlighted()
        if path is None:
            self.notify("No session to rename", severity="warning")
            return
        current = next((s.title for s in self.summaries if s.path == path), "")

        def renamed(title: str | None) -> None:
            if title is None:
                return
            try:
                kept = rename_session(path, title)
            except TaskclockError as exc:
                self.notify(str(exc), title="Rename", severity="error")
                return
            self.notify(f"Renamed {path.name} to {kept!r}" if kept else f"{path.name} has no name now",
                        title="Rename")
            self.action_refresh()

        self.app.push_screen(RenameScreen(current), renamed)

    def action_delete(self) -> None:
        """Move the highlighted session (and its exports) to the trash: t lists the trash and restores."""
        path = self.highlighted()
        if path is None:
            self.notify("No session to delete", severity="warning")
            return
        if path in self.open_logs():
            self.notify("That is the session the Chat tab is writing: start a new chat (Ctrl+N) first, then delete "
                        "it", title="Delete", severity="warning")
            return
        try:
            trash_session(path)
        except TaskclockError as exc:
            self.notify(str(exc), title="Delete", severity="error")
            return
        self.notify(f"Moved {path.name} to the trash (kept {KEEP_DAYS} days): t opens the trash, Enter there "
                    "restores it", title="Delete", timeout=10)
        self.action_refresh()

    def open_logs(self) -> set[Path]:
        """The session logs a tab is appending to now (deleting one would leave the tab writing a fresh file)."""
        logs = (getattr(pane, "session", None) for pane in self.app.query("#chat-pane, #compare-pane"))
        return {log.path for log in logs if log is not None}

    def action_trash(self) -> None:
        def restored(item: Trashed | None) -> None:
            if item is None:
                return
            try:
                back = restore(item)
            except TaskclockError as exc:
                self.notify(str(exc), title="Trash", severity="error")
                return
            self.notify(f"Restored {back.name}", title="Trash")
            self.action_refresh()

        self.app.push_screen(TrashScreen(self.folder), restored)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.app.push_screen(SessionScreen(Path(str(event.row_key.value))))


class SessionScreen(ModalScreen):
    """One past session, read-only: TTFT per turn (a chat with two or more), then a page of PAGE_TURNS turns at
    a time: their summary table and every prompt and reply, each cut at TEXT_SHOWN_MAX characters. The log is
    read in a worker (read_in_worker), so however large it is the screen answers at once."""

    HELP_SECTION = "Session viewer"
    BINDINGS = [Binding("escape,q", "dismiss", "Close"), Binding("ctrl+s", "export", "Export"),
                Binding("n", "page(1)", "Next turns"), Binding("p", "page(-1)", "Earlier turns")]

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self.turns: list[dict[str, Any]] | None = None  # None until the worker has read the log
        self.page = 0
        self.markdown = ""  # what the page shows (outside text made safe): prompts, replies, file name

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="session-view") as view:
            view.border_title = plain(f"{self.path.name} (read-only) · Ctrl+S exports · Esc closes")
            yield Static(f"reading {safe_line(self.path.name)}…", id="session-status", markup=False)
            chart = PlotextPlot(id="session-ttft")
            chart.display = False
            yield chart
            why = Static("", id="session-ttft-why", markup=False)  # why a wait jumped
            why.display = False
            yield why
            yield Markdown(id="session-markdown")

    def on_mount(self) -> None:
        path = self.path
        read_in_worker(self, lambda: read_session(path))

    def on_session_read(self, message: SessionRead) -> None:
        message.stop()
        self.turns = turns = message.turns
        chart = self.query_one("#session-ttft", PlotextPlot)
        # one point is not a trend, and a compare's records are different models, not later turns
        chart.display = not is_compare(turns) and len(ttft_per_turn(turns)) >= 2
        plot_ttft_per_turn(chart.plt, turns)
        notes = context_notes(turns) if chart.display else []
        why = self.query_one("#session-ttft-why", Static)
        why.update("\n".join(notes))
        why.display = bool(notes)
        self.show_page(0)

    def on_session_read_failed(self, message: SessionReadFailed) -> None:
        message.stop()
        self.notify(describe_error(message.error), severity="error")
        self.dismiss()

    def show_page(self, page: int) -> None:
        turns = self.turns or []
        pages = max(1, -(-len(turns) // PAGE_TURNS))
        self.page = page = min(max(page, 0), pages - 1)
        first = page * PAGE_TURNS
        shown = turns[first:first + PAGE_TURNS]
        title = self.path.name if pages == 1 else f"{self.path.name} · turns {first + 1}–{first + len(shown)}"
        self.markdown = safe_text(to_markdown(shown, title=title, first=first + 1, text_limit=TEXT_SHOWN_MAX))
        self.query_one(Markdown).update(self.markdown)
        status = self.query_one("#session-status", Static)
        status.display = pages > 1
        status.update(f"page {page + 1} of {pages} ({len(turns)} turns) · n: next turns · p: earlier turns")

    def action_page(self, step: int) -> None:
        if self.turns is not None:
            self.show_page(self.page + step)

    def action_export(self) -> None:
        try:
            written = export_all(self.path)
        except TaskclockError as exc:
            self.notify(str(exc), title="Export", severity="error", timeout=10)
            return
        self.notify(f"Wrote {', '.join(p.name for p in written)} in {self.path.parent}", title="Export", timeout=10)
