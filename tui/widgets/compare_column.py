"""One model's column in the Compare tab: its name, the shared live meter, and its reply as it streams."""
from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical

from taskclock.runtime import metrics
from taskclock.runtime.events import Event
from taskclock.runtime.untrusted import safe_line

from .anchored_scroll import AnchoredScroll
from .meter import Meter
from .streaming_text import StreamingText


class CompareColumn(Vertical):
    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = Text(safe_line(title))

    def compose(self) -> ComposeResult:
        yield Meter(classes="-inline")
        with AnchoredScroll(classes="compare-reply-scroll"):  # growing text keeps its newest line in view
            yield StreamingText(classes="compare-reply")

    @property
    def meter(self) -> Meter:
        return self.query_one(Meter)

    @property
    def reply(self) -> str:
        return self._text.text

    @property
    def _text(self) -> StreamingText:
        return self.query_one(StreamingText)

    def waiting(self, state: str) -> None:
        self.meter.reset(state)
        self._text.clear()

    def show_live(self, events: Sequence[Event], now_ns: int) -> None:
        self.meter.show_live(events, now_ns)
        self._text.show(metrics.answer_text(events) or metrics.thinking_text(events))  # the thinking until the answer

    def show_final(self, events: Sequence[Event], note: str = "", cold: bool = False) -> None:
        self.meter.show_final(events, cold)
        self._text.show(metrics.answer_text(events) or "(no output)")
        self._text.settle()
        self.border_subtitle = Text(safe_line(note))
