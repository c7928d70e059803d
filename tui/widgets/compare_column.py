"""One model's column in the Compare tab: its name, the shared live meter, and its reply as it streams."""
from __future__ import annotations

from typing import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from runtime import metrics
from runtime.events import Event

from .meter import Meter


class CompareColumn(Vertical):
    def __init__(self, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = title
        self.painted = 0  # how many events the reply text on screen reflects

    def compose(self) -> ComposeResult:
        yield Meter()
        with VerticalScroll(classes="compare-reply-scroll"):
            yield Static("", markup=False, classes="compare-reply")

    @property
    def meter(self) -> Meter:
        return self.query_one(Meter)

    @property
    def reply(self) -> str:
        return str(self.query_one(".compare-reply", Static).content)

    def waiting(self, state: str) -> None:
        self.painted = 0
        self.meter.reset(state)
        self._show_text("")

    def show_live(self, events: Sequence[Event], now_ns: int) -> None:
        self.meter.show_live(events, now_ns)
        if len(events) != self.painted:
            self.painted = len(events)
            self._show_text(metrics.output_text(events))

    def show_final(self, events: Sequence[Event], note: str = "") -> None:
        self.meter.show_final(events)
        self._show_text(metrics.output_text(events) or "(no output)")
        self.border_subtitle = note

    def _show_text(self, text: str) -> None:
        self.query_one(".compare-reply", Static).update(text)
        self.query_one(VerticalScroll).scroll_end(animate=False)
