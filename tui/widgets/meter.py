"""The live meter: TTFT counting up then frozen, instantaneous TPS with its sparkline, running task time.

Every figure is a runtime.metrics function of the turn's recorded events; the UI clock (``now_ns``) only
decides how far a running count has got, never when a token arrived. The owner repaints it on a timer,
so many tokens between two repaints cost one repaint.
"""
from __future__ import annotations

from collections import deque
from typing import Sequence

from rich.table import Table
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Sparkline, Static

from runtime import metrics
from runtime.events import Event, Token

from ..format import fmt, shown_lines

SPARK_POINTS = 60
STATES = {"eos": "done", "length": "done (max tokens)", "stop": "done (stop string)", "cancelled": "stopped",
          "error": "error"}


def _tps_curve(events: Sequence[Event], points: int = SPARK_POINTS) -> list[float]:
    """Instantaneous TPS sampled evenly over a finished turn: the same curve however the UI was timed."""
    tokens = [e.t_ns for e in events if isinstance(e, Token) and e.count > 0]
    if len(tokens) < 2:
        return []
    first, last = tokens[0], tokens[-1]
    step = (last - first) / (points - 1)
    return [metrics.instant_tps(events, int(first + i * step)) or 0.0 for i in range(points)]


class Figures(Widget):
    """Label/value rows in a fixed-size box, so new values repaint these cells without relaying out the screen."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.values: dict[str, str] = {}

    def show(self, values: dict[str, str]) -> None:
        self.values = values
        self.refresh()

    def render(self) -> Table:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(style="bold")
        grid.add_column(justify="right")
        for label, text in self.values.items():
            grid.add_row(label, text)
        return grid


class Meter(Vertical):
    """``values`` holds exactly what is on screen, label → text, so tests can read the meter."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.values: dict[str, str] = {}
        self.repaints = 0
        self._state = ""
        self._history: deque[float] = deque(maxlen=SPARK_POINTS)

    def compose(self) -> ComposeResult:
        yield Static(id="meter-state")
        yield Figures(id="meter-figures")
        yield Static("tok/s, last seconds", id="spark-label")
        yield Sparkline([], id="meter-spark")

    def on_mount(self) -> None:
        self.reset()

    def _show(self, state: str, values: dict[str, str]) -> None:
        self.values = values
        if state != self._state:  # a Static update relays out the screen: only when the words change
            self._state = state
            self.query_one("#meter-state", Static).update(state)
        self.query_one(Figures).show(values)

    def reset(self, state: str = "idle: type a prompt, Enter sends") -> None:
        self._history.clear()
        self.query_one(Sparkline).data = []
        self._show(state, {})

    def start(self) -> None:
        self.reset("waiting for the first token")

    def show_live(self, events: Sequence[Event], now_ns: int) -> None:
        ttft = metrics.ttft_s(events)
        waiting = ttft is None
        rate = metrics.instant_tps(events, now_ns)
        if rate is not None:
            self._history.append(rate)
            self.query_one(Sparkline).data = list(self._history)
        self._show(
            "waiting for the first token" if waiting else "streaming",
            {
                "TTFT": fmt(metrics.elapsed_s(events, now_ns) if waiting else ttft, "s", 3) + (" …" if waiting else ""),
                "TPS now": fmt(rate, "tok/s", 1),
                "task time": fmt(metrics.elapsed_s(events, now_ns), "s", 1),
                "output tokens": fmt(metrics.output_tokens(events)),
                "output words": fmt(metrics.output_words(events)),
            },
        )
        self.repaints += 1

    def show_final(self, events: Sequence[Event]) -> None:
        figures = metrics.compute(events).as_dict()
        values = {
            label: fmt(figures[key], unit, digits)
            for label, key, unit, digits in shown_lines(figures)
            if key != "stop_reason"
        }
        self.query_one(Sparkline).data = _tps_curve(events)
        self._show(STATES.get(figures["stop_reason"], "done"), values)
