"""One model's column in the Compare tab: its name, the shared live meter, and its reply as it streams."""
from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll

from runtime import metrics
from runtime.events import Event

from .meter import Meter
from .streaming_text import StreamingText


class CompareColumn(Vertical):
    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = title
        self.painted = 0  # how many events the reply text on screen reflects

    def compose(self) -> ComposeResult:
        yield Meter()
        with VerticalScroll(classes="compare-reply-scroll"):
            yield StreamingText(classes="compare-reply")

    def on_mount(self) -> None:
        self.query_one(VerticalScroll).anchor()  # growing text keeps its newest line in view

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
        self.painted = 0
        self.meter.reset(state)
        self._text.clear()

    def show_live(self, events: Sequence[Event], now_ns: int) -> None:
        self.meter.show_live(events, now_ns)
        if len(events) != self.painted:
            self._text.append(metrics.output_text(events[self.painted:]))
            self.painted = len(events)

    def show_final(self, events: Sequence[Event], note: str = "") -> None:
        self.meter.show_final(events)
        final, shown = metrics.output_text(events) or "(no output)", self._text.text
        if not final.startswith(shown):  # the events are the turn's record, not the live list painted so far
            self._text.clear()
            shown = ""
        self._text.append(final[len(shown):])
        self._text.settle()
        self.border_subtitle = note
