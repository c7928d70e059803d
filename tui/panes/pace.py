"""The Pace tab: canned text streamed at a chosen TTFT and tokens/s under the live meter, to feel a latency
budget before picking hardware or a model, with a line saying whether that pace outruns a reader."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, Static

from taskclock.runtime import values
from taskclock.runtime.errors import TaskclockError
from taskclock.runtime.events import now_ns
from taskclock.runtime.replay import pace_recording, reading_line

from ..context import AppContext
from ..livepane import REPAINT_HZ
from ..widgets.playback import PlaybackChat

FIELDS = (("pace-ttft", "TTFT s", "1.5"), ("pace-tps", "tok/s", "12"), ("pace-words", "words", "200"))


class PacePane(Vertical):
    HELP_SECTION = "Pace"
    BINDINGS = [Binding("ctrl+r", "play", "Play")]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="pace-pane")

    def compose(self) -> ComposeResult:
        with Horizontal(id="pace-controls"):
            for field_id, label, value in FIELDS:
                yield Label(label, classes="pace-label")
                first = field_id == FIELDS[0][0]
                yield Input(value, id=field_id, classes="pace-field autofocus" if first else "pace-field")
            yield Button("Play", id="pace-play", variant="primary")
        yield Static("Pick a TTFT and a rate, then Enter (or Play) streams canned text at that pace.",
                     id="pace-reading", markup=False)
        yield PlaybackChat(id="pace-chat", idle="idle: pick a pace, Enter (or Play) streams it")

    def on_mount(self) -> None:
        self._ticker = self.set_interval(1 / REPAINT_HZ, self._repaint, pause=True)

    def _values(self) -> tuple[float, float, int]:
        texts = [self.query_one(f"#{field_id}", Input).value.strip() for field_id, _, _ in FIELDS]
        try:  # ASCII only, as every number typed is read (runtime/values.py); ranges: check_pace
            return values.parse_number(texts[0]), values.parse_number(texts[1]), values.parse_whole(texts[2])
        except ValueError:
            raise TaskclockError(f"not a number: TTFT {texts[0]!r}, tok/s {texts[1]!r}, words {texts[2]!r}",
                                 "type e.g. 1.5, 12 and 200") from None

    async def action_play(self) -> None:
        try:
            ttft, tps, words = self._values()
            recording = pace_recording(ttft, tps, words)
        except TaskclockError as exc:
            self.notify(str(exc), title="Pace", severity="error")
            return
        self.query_one("#pace-reading", Static).update(reading_line(tps))
        self._ticker.pause()
        await self.query_one(PlaybackChat).begin(recording, now_ns())
        self._ticker.resume()

    async def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        await self.action_play()

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        await self.action_play()

    def _repaint(self) -> None:
        if self.query_one(PlaybackChat).tick(now_ns()):
            self._ticker.pause()
