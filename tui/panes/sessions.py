"""The Sessions tab: past chat sessions with their turn counts and medians, each opened read-only."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Markdown, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import metrics
from taskclock.runtime.errors import DataError, TaskclockError
from taskclock.runtime.sessions import (
    SessionSummary,
    export_all,
    is_compare,
    list_sessions,
    plot_ttft_per_turn,
    read_session,
    to_markdown,
    ttft_per_turn,
)
from taskclock.runtime.untrusted import safe_text

from ..context import AppContext
from ..format import plain
from ..livepane import post_from_thread
from ..messages import SessionsListed, SessionsListFailed
from ..screens.replay import Marks, TurnPicker
from ..widgets.columns import set_columns

# Each session's medians (SessionSummary.median_<key>) of these figures, as the figure registry shows them.
MEDIANS = tuple(metrics.figure_format(key) for key in ("ttft_s", "decode_tps", "task_time_s"))
COLUMNS = ("date", "first prompt", "model", "turns", *(f"median {shown.label}" for shown in MEDIANS))
# A narrow screen (tui/app.py NARROW_WIDTH) keeps what a session felt like: its TTFT and task time, the date
# without its year, a shorter prompt, and short headers (the decode rate is in the session's own view).
NARROW_MEDIANS = tuple(shown for shown in MEDIANS if shown.key != "decode_tps")
NARROW_COLUMNS = ("date", "first prompt", "model", "turns", *(shown.label for shown in NARROW_MEDIANS))
PROMPT_WIDTH = {False: 40, True: 20}  # by narrowness


def first_line(text: str, width: int) -> str:
    """A prompt as one short cell: its first line, cut with an ellipsis."""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[:width - 1] + "…"


class SessionsPane(Vertical):
    HELP_SECTION = "Sessions"
    HELP_OPENS = (TurnPicker,)  # its keys (Space marks, s plays) work in the picker, not on this table
    BINDINGS = [Binding("r", "refresh", "Refresh"), Binding("p", "replay", "Replay a turn")]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="sessions-pane")
        self.folder = context.sessions_dir
        self.summaries: list[SessionSummary] = []
        self.replay_marks: Marks = {}  # turns marked for a side-by-side replay, across sessions
        self.narrow = False  # the table's column set: NARROW_COLUMNS on a narrow screen

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble("Sessions in ", plain(self.folder), "  ·  Enter opens one (read-only)"),
                     id="sessions-folder")
        table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="sessions-table")
        table.add_columns(*COLUMNS)
        yield table
        yield Static("No sessions yet: chat in the Chat tab and each reply is logged here.", id="sessions-empty")

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
        self._fill(message.summaries)

    def on_sessions_list_failed(self, message: SessionsListFailed) -> None:
        message.stop()
        self.notify(f"Cannot list sessions in {self.folder}: {message.error}", severity="error")

    def _fill(self, summaries: list[SessionSummary]) -> None:
        self.summaries = summaries
        table = self.query_one(DataTable)
        table.clear()
        for s in summaries:
            prompt = plain(first_line(s.first_prompt, PROMPT_WIDTH[self.narrow]))  # outside text: never markup
            medians = [shown.text(getattr(s, f"median_{shown.key}"), unit=True)
                       for shown in (NARROW_MEDIANS if self.narrow else MEDIANS)]
            table.add_row(s.started[5:] if self.narrow else s.started, prompt, plain(s.model), s.size, *medians,
                          key=str(s.path))
        self.query_one("#sessions-empty").display = not summaries

    def action_replay(self) -> None:
        """Pick a turn of the highlighted session to replay at its recorded pace (screens/replay.py)."""
        table = self.query_one(DataTable)
        if not table.row_count:
            self.notify("No session to replay yet", severity="warning")
            return
        row_key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        self.app.push_screen(TurnPicker(Path(str(row_key.value)), self.replay_marks))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        path = Path(str(event.row_key.value))
        try:
            turns = read_session(path)
        except DataError as exc:
            self.notify(str(exc), severity="error")
            return
        self.app.push_screen(SessionScreen(path, turns))


class SessionScreen(ModalScreen):
    """One past session, read-only: TTFT per turn (a chat with two or more), its summary table, then every
    prompt and reply."""

    HELP_SECTION = "Session viewer"
    BINDINGS = [Binding("escape,q", "dismiss", "Close"), Binding("ctrl+s", "export", "Export")]

    def __init__(self, path: Path, turns: list[dict[str, Any]]) -> None:
        super().__init__()
        self.path = path
        self.turns = turns
        self.markdown = safe_text(to_markdown(turns, title=path.name))  # outside text: prompts, replies, file name

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="session-view") as view:
            view.border_title = plain(f"{self.path.name} (read-only) · Ctrl+S exports · Esc closes")
            chart = PlotextPlot(id="session-ttft")
            # one point is not a trend, and a compare's records are different models, not later turns
            chart.display = not is_compare(self.turns) and len(ttft_per_turn(self.turns)) >= 2
            plot_ttft_per_turn(chart.plt, self.turns)
            yield chart
            yield Markdown(self.markdown)

    def action_export(self) -> None:
        try:
            written = export_all(self.path)
        except TaskclockError as exc:
            self.notify(str(exc), title="Export", severity="error", timeout=10)
            return
        self.notify(f"Wrote {', '.join(p.name for p in written)} in {self.path.parent}", title="Export", timeout=10)
