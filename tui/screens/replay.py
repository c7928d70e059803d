"""Replay in the app: pick recorded turns of a session, replay one like a chat reply or several side by side, or
branch the chat from one (its conversation so far goes to the Chat tab as a new session).

Marks for a side-by-side replay live in a dict the Sessions tab keeps, so turns from several sessions (one
recorded on a GPU box, one on this laptop) can be marked one session at a time and replayed together.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static

from taskclock.runtime.errors import DataError
from taskclock.runtime.events import now_ns
from taskclock.runtime.metrics import figure
from taskclock.runtime.replay import Recording, read_turns, recording_from_record, turn_label
from taskclock.runtime.untrusted import safe_line

from ..livepane import REPAINT_HZ, describe_error, read_in_worker
from ..messages import BranchChat, SessionRead, SessionReadFailed
from ..panes.compare import SLOTS
from ..widgets.playback import PlaybackChat, PlaybackColumn

Marks = dict[tuple[str, int], Recording]  # (session path, turn number) → the marked turn
MARK = "●"
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
ROWS_AT_ONCE = 200  # the turn picker's rows added between two looks at the keys


class ReplayScreen(Screen):
    """Recorded turns streamed at their recorded pace, all started together: one in a chat-like view under
    the meter, two or more in Compare-tab columns, each under its own meter."""

    HELP_SECTION = "Replay"
    BINDINGS = [
        Binding("escape,q", "close", "Close"),
        Binding("r", "restart", "Replay again"),
        Binding("plus,equals_sign", "speed(1)", "Faster"),
        Binding("minus", "speed(-1)", "Slower"),
    ]
    DEFAULT_CSS = """
    ReplayScreen #replay-head { height: auto; padding: 0 1; background: $panel; color: $text-muted; }
    ReplayScreen #replay-columns { height: 1fr; }
    """

    def __init__(self, recordings: list[Recording], speed: float = 1.0) -> None:
        super().__init__()
        self.recordings = recordings
        self.speed = speed
        self.started_ns = 0

    def _head(self) -> str:
        notes = sorted({note for r in self.recordings for note in r.notes})
        head = f"Replaying {len(self.recordings)} recorded turn(s) at {self.speed:g}× their recorded pace"
        return " · ".join([head, *notes]) + "  ·  r replays again, +/- change the speed, Esc closes"

    def compose(self) -> ComposeResult:
        yield Static(self._head(), id="replay-head", markup=False)
        if len(self.recordings) == 1:
            yield PlaybackChat(id="replay-chat")
        else:
            with Horizontal(id="replay-columns"):
                for index, recording in enumerate(self.recordings):
                    yield PlaybackColumn(recording, id=f"replay-column-{index}")
        yield Footer()

    async def on_mount(self) -> None:
        self._ticker = self.set_interval(1 / REPAINT_HZ, self._repaint, pause=True)
        await self.start()

    async def start(self) -> None:
        """Start every turn on one clock reading, so side-by-side turns begin together."""
        self.started_ns = now_ns()
        for chat in self.query(PlaybackChat):
            await chat.begin(self.recordings[0], self.started_ns, self.speed)
        for column in self.query(PlaybackColumn):
            column.begin(self.started_ns, self.speed)
        self._ticker.resume()

    @property
    def finished(self) -> bool:
        return all(view.current is not None and view.current.shown_final for view in self.views())

    def views(self) -> list[PlaybackChat | PlaybackColumn]:
        return [*self.query(PlaybackChat), *self.query(PlaybackColumn)]

    def _repaint(self) -> None:
        now = now_ns()
        if all([view.tick(now) for view in self.views()]):
            self._ticker.pause()

    async def action_restart(self) -> None:
        self._ticker.pause()
        await self.start()

    async def action_speed(self, step: int) -> None:
        """One step along SPEEDS, then play again from the start at the new speed."""
        index = min(range(len(SPEEDS)), key=lambda i: abs(SPEEDS[i] - self.speed))
        self.speed = SPEEDS[max(0, min(len(SPEEDS) - 1, index + step))]
        self.query_one("#replay-head", Static).update(self._head())
        await self.action_restart()

    def action_close(self) -> None:
        self._ticker.pause()
        self.dismiss()


class TurnPicker(ModalScreen):
    """The turns of one session: Enter replays the highlighted one; Space marks turns (from any session) and
    s replays the marked ones side by side; b branches the chat from the highlighted turn."""

    HELP_SECTION = "Sessions: p picker"
    HELP_OPENS = (ReplayScreen,)
    BINDINGS = [
        Binding("escape", "dismiss", "Close"),
        Binding("space", "mark", "Mark / unmark"),
        Binding("s", "side_by_side", "Replay marked side by side"),
        Binding("b", "branch", "Branch the chat from here"),
    ]
    DEFAULT_CSS = """
    TurnPicker { align: center middle; }
    TurnPicker > Vertical { width: 90%; height: 80%; border: round $primary; background: $surface; }
    TurnPicker DataTable { height: 1fr; }
    TurnPicker #picker-marks { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, path: Path, marks: Marks, speed: float = 1.0) -> None:
        super().__init__()
        self.path = Path(path)
        self.marks = marks
        self.speed = speed
        self.turns: list[dict[str, Any]] = []

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = (f"Replay: {safe_line(self.path.name)} · Enter replays · Space marks · s side by side"
                                " · b branches")
            table: DataTable = DataTable(cursor_type="row", zebra_stripes=True, id="picker-table")
            table.add_column("", width=len(MARK))  # as wide as a mark from the start: one drawn at once
            table.add_columns("turn", "kind", "model", "prompt", "TTFT", "decode", "tokens")
            yield table
            yield Static(id="picker-marks", markup=False)

    def on_mount(self) -> None:
        path = self.path
        read_in_worker(self, lambda: read_turns(path))  # a large log must not freeze the app while it is read

    def on_session_read_failed(self, message: SessionReadFailed) -> None:
        message.stop()
        self.notify(describe_error(message.error), title="Replay", severity="error")
        self.dismiss()

    async def on_session_read(self, message: SessionRead) -> None:
        """Fill the table ROWS_AT_ONCE rows at a time, letting keys through in between: 10,000 turns take over a
        second to add, and Esc must close the picker meanwhile."""
        message.stop()
        self.turns = message.turns
        table = self.query_one(DataTable)
        for number, record in enumerate(self.turns, 1):
            cells = [MARK if self._key(number) in self.marks else "", str(number), safe_line(record.get("kind", "?")),
                     safe_line(record.get("model", "?")), safe_line(record.get("prompt", ""))[:60],
                     figure(record.get("ttft_s"), 3, "s"), figure(record.get("decode_tps"), 1, "tok/s"),
                     figure(record.get("output_tokens"))]
            table.add_row(*(Text(cell) for cell in cells), key=str(number))  # Text: never parsed as markup
            if number % ROWS_AT_ONCE == 0:
                await asyncio.sleep(0)
                if not self.is_attached:  # closed meanwhile
                    return
        self._show_marks()
        table.focus()

    def _key(self, number: int) -> tuple[str, int]:
        return str(self.path), number

    def _highlighted(self) -> int | None:
        table = self.query_one(DataTable)
        return table.cursor_row + 1 if self.turns and table.row_count else None

    def _recording(self, number: int) -> Recording | None:
        record = self.turns[number - 1]
        try:
            return recording_from_record(record, turn_label(self.path, number, record))
        except DataError as exc:
            self.notify(str(exc), title="Replay", severity="error")
            return None

    def _show_marks(self) -> None:
        names = ", ".join(r.label for r in self.marks.values()) or "none"
        self.query_one("#picker-marks", Static).update(f"marked for side by side ({len(self.marks)}): {names}")

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        recording = self._recording(event.cursor_row + 1)
        if recording is not None:
            self.app.push_screen(ReplayScreen([recording], self.speed))

    def action_mark(self) -> None:
        number = self._highlighted()
        if number is None:
            return
        key = self._key(number)
        if key in self.marks:
            del self.marks[key]
        else:
            recording = self._recording(number)
            if recording is None:
                return
            self.marks[key] = recording
        table = self.query_one(DataTable)
        table.update_cell(str(number), table.ordered_columns[0].key, Text(MARK if key in self.marks else ""))
        self._show_marks()

    def action_branch(self) -> None:
        """The conversation before the highlighted turn goes to the Chat tab as a new session, with the turn's
        prompt back in the box to edit and send; this session's log is left as it is."""
        number = self._highlighted()
        if number is None:
            return
        record = self.turns[number - 1]
        messages = record.get("messages")
        if record.get("kind") != "chat" or not isinstance(messages, list) or not messages:
            self.notify("Only a chat turn can be branched from: this one is not part of a conversation",
                        title="Branch", severity="warning")
            return
        history = [{"role": str(m.get("role")), "content": str(m.get("content", ""))} for m in messages[:-1]
                   if isinstance(m, dict) and m.get("role") in ("user", "assistant")]
        self.app.post_message(BranchChat(history, str(record.get("prompt", "")),
                                         {"session": self.path.name, "turn": number}))
        self.dismiss()

    def action_side_by_side(self) -> None:
        if not 2 <= len(self.marks) <= SLOTS:
            self.notify(f"Mark 2 to {SLOTS} turns with Space (from this or other sessions), then press s",
                        title="Replay", severity="warning")
            return
        self.app.push_screen(ReplayScreen(list(self.marks.values()), self.speed))
