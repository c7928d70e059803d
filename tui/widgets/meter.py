"""The live meter: TTFT counting up then frozen, instantaneous TPS with its sparkline, running task time; for a
reasoning model, the thinking time counting up ("thinking… 4.2 s") and then the time to the first answer token.

Every figure is a runtime.metrics function of the turn's recorded events; the UI clock (``now_ns``) only
decides how far a running count has got, never when a token arrived. The owner repaints it on a timer,
so many tokens between two repaints cost one repaint; the meter itself redraws at most METER_HZ times a second
(and at once when its state changes): figures are read, not watched, and on 2 cores every frame the UI draws
is taken from the model (docs/PERFORMANCE.md).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Static

from taskclock.runtime import metrics
from taskclock.runtime.events import Event, Token
from taskclock.runtime.metrics import figure

from ..format import plain, shown_lines, with_reading

SPARK_POINTS = 60  # the sparkline's last readings: 12 s at METER_HZ
METER_HZ = 5
BOLD = Style(bold=True)
# The compact bar (a narrow terminal, below tui/app.py's NARROW_WIDTH): the figures it keeps, in this order,
# each as "short name value" (a figure missing from the meter's values is left out).
# (A reasoning model's thinking time is "thinking…" while it thinks, "thinking" once it answers, "thinking time"
# in the finished turn's figures.)
BAR_ITEMS = {"TTFT": "TTFT {}", "thinking…": "thinking… {}", "thinking": "thought {}", "thinking time": "thought {}",
             "TTFA": "TTFA {}", "TPS now": "now {}", "decode rate": "decode {}", "task time": "task {}",
             "output tokens": "{} tokens", "output words": "{} words"}
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


def _thinking_rows(thinking_s: float | None, ttfa_s: float | None, still: bool) -> dict[str, str]:
    """While a reasoning model thinks: its thinking time so far; then that time and the time to the answer."""
    if thinking_s is None:
        return {}
    if still:
        return {"thinking…": figure(thinking_s, 1, "s"), "TTFA": "…"}
    return {"thinking": figure(thinking_s, 1, "s"), "TTFA": figure(ttfa_s, 3, "s")}


class Figures(Widget):
    """Label/value rows, painted line by line: a new value repaints its own row only, never the rest of the
    meter; the box resizes (a layout) only when the set of figures changes, at the start and end of a turn."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._rows: list[tuple[str, str]] = []
        self.styles.height = 0

    def show(self, values: dict[str, str]) -> None:
        rows = list(values.items())
        if [label for label, _ in rows] != [label for label, _ in self._rows]:
            if len(rows) != len(self._rows):
                self.styles.height = len(rows)  # a row per figure (a layout only when the set of figures changes)
            self.refresh()
        else:
            for y, (row, old) in enumerate(zip(rows, self._rows, strict=True)):
                if row != old:
                    self.refresh(Region(0, y, self.size.width, 1))
        self._rows = rows

    def render_line(self, y: int) -> Strip:
        style, width = self.visual_style.rich_style, self.size.width
        if y >= len(self._rows):
            return Strip.blank(width, style)
        label, text = self._rows[y]
        gap = max(1, width - cell_len(label) - cell_len(text))
        strip = Strip([Segment(label, style + BOLD), Segment(" " * gap + text, style)])
        return strip.crop_extend(0, width, style)


class Bar(Widget):
    """The meter's figures as one line, wrapped onto a second where the width runs out (Compare's narrow
    columns); painted line by line like Figures, and laid out again only when its line count changes."""

    SEPARATOR = " · "

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._items: list[str] = []
        self._lines: list[str] = []

    def show(self, values: dict[str, str]) -> None:
        self._items = [form.format(values[label]) for label, form in BAR_ITEMS.items() if label in values]
        self._rewrap()

    def on_resize(self) -> None:
        self._rewrap()

    def _rewrap(self) -> None:
        lines = self._wrap(self.size.width)
        self.refresh(layout=len(lines) != len(self._lines))
        self._lines = lines

    def _wrap(self, width: int) -> list[str]:
        lines: list[str] = []
        for item in self._items:
            if lines and cell_len(lines[-1] + self.SEPARATOR + item) <= width:
                lines[-1] += self.SEPARATOR + item
            else:
                lines.append(item)
        return lines or [""]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._wrap(width))

    def render_line(self, y: int) -> Strip:
        style, width = self.visual_style.rich_style, self.size.width
        text = self._lines[y] if y < len(self._lines) else ""
        return Strip([Segment(text, style)]).crop_extend(0, width, style)


class Spark(Widget):
    """A one-colour bar chart of recent rates, bottom-aligned, eight levels per row, under a caption row that
    gives its scale (the top of the chart), so a slow stream never looks like a fast one. Textual's Sparkline
    blends a colour per bar (docs/PERFORMANCE.md); this one is a few strings, rebuilt when the data changes."""

    LEVELS = " ▁▂▃▄▅▆▇█"

    def __init__(self, caption: str = "tok/s, last seconds", **kwargs) -> None:
        super().__init__(**kwargs)
        self.caption = caption
        self._data: list[float] = []
        self._rows: list[str] = []
        self._built_for = Size(0, 0)

    def show(self, values: Sequence[float]) -> None:
        self._data = list(values)
        self._rows = []
        self.refresh()

    def _columns(self, width: int) -> list[float]:
        """One value per column: the largest in each of ``width`` even buckets when there are more points."""
        data = self._data
        if len(data) <= width:
            return data
        return [max(data[i * len(data) // width:(i + 1) * len(data) // width]) for i in range(width)]

    def _build(self) -> list[str]:
        width, height = self.size.width, self.size.height - 1
        columns = self._columns(width)
        top = max(columns, default=0.0)
        eighths = [round(value / top * height * 8) if top > 0 else 0 for value in columns]
        rows = [f"{self.caption} · max {top:.1f}" if top > 0 else self.caption]
        for row in range(height):  # top row first
            floor = (height - 1 - row) * 8
            rows.append("".join(self.LEVELS[min(8, max(0, level - floor))] for level in eighths))
        return rows

    def render_line(self, y: int) -> Strip:
        style, width = self.visual_style.rich_style, self.size.width
        if not self._rows or self._built_for != self.size:
            self._rows, self._built_for = self._build(), self.size
        text = self._rows[y] if y < len(self._rows) else ""
        return Strip([Segment(text, style)]).extend_cell_length(width, style)


IDLE = "idle: type a prompt, Enter sends"  # the Chat tab's words; a tab without a prompt box passes its own


class Meter(Vertical):
    """``values`` holds the figures shown, label → text (the side panel shows them all, the bar a few of them),
    so tests can read the meter.

    A side panel by default. With the ``-inline`` class it sits above a reply (Compare's columns) as its state
    and the key figures on a bar. On a narrow screen (the screen's ``-narrow`` class) it is a
    compact bar: its state, the key figures, its caption."""

    SCOPED_CSS = False  # the narrow rules select on the screen's class, outside the meter
    DEFAULT_CSS = """
    Meter {
        width: 38;
        padding: 0 1;
        border-left: vkey $primary 50%;
        background: $surface;

        #meter-state {
            text-style: bold;
            color: $accent;
            margin-bottom: 1;
        }
        #meter-spark {
            margin-top: 1;
            height: 5;
            color: $primary;
        }
        #meter-caption {
            margin-top: 1;
            color: $text-muted;
        }
    }
    Meter #meter-bar {
        display: none;
        width: 1fr;
        height: auto;
    }
    /* the compact form: above a reply in Compare's columns (-inline), and on a narrow screen; the reply keeps
       the room (the comparison table under Compare's columns has every figure) */
    Meter.-inline, Screen.-narrow Meter {
        width: 1fr;
        height: auto;
        border-left: none;

        #meter-state {
            margin-bottom: 0;
        }
        #meter-figures, #meter-spark {
            display: none;
        }
        #meter-bar {
            display: block;
        }
    }
    Meter.-inline {
        max-height: 55%;
        overflow-y: auto;
        border-bottom: hkey $primary 30%;
    }
    Screen.-narrow Meter #meter-caption {
        margin-top: 0;
    }
    """

    def __init__(self, idle: str = IDLE, **kwargs) -> None:
        """``idle``: what the meter says before a turn, in the words of the tab it sits in."""
        super().__init__(**kwargs)
        self.idle = idle
        self.values: dict[str, str] = {}
        self.repaints = 0
        self._state = ""
        self._shown_ns = 0  # when show_live last drew
        self._history: deque[float] = deque(maxlen=SPARK_POINTS)

    def compose(self) -> ComposeResult:
        yield Static(id="meter-state")
        yield Figures(id="meter-figures")
        yield Bar(id="meter-bar")
        yield Spark(id="meter-spark")
        yield Static(id="meter-caption", markup=False)

    def on_mount(self) -> None:
        self.reset()
        self.caption("")

    def caption(self, text: str) -> None:
        """A line under the chart that the owner keeps (the Chat tab's settings)."""
        caption = self.query_one("#meter-caption", Static)
        caption.update(text)
        caption.display = bool(text)

    def _show(self, state: str, values: dict[str, str]) -> None:
        self.values = values
        if state != self._state:  # a Static update relays out the screen: only when the words change
            self._state = state
            self.query_one("#meter-state", Static).update(plain(state))  # may name a model
        self.query_one(Figures).show(values)
        self.query_one(Bar).show(values)

    def reset(self, state: str | None = None) -> None:
        self._history.clear()
        self._shown_ns = 0
        self.query_one(Spark).show([])
        self._show(self.idle if state is None else state, {})

    def start(self) -> None:
        self.reset("waiting for the first token")

    def show_live(self, events: Sequence[Event], now_ns: int) -> None:
        ttft = metrics.ttft_s(events)
        waiting = ttft is None
        thinking, answer = metrics.thinking_elapsed_s(events, now_ns), metrics.ttfa_s(events)
        still_thinking = thinking is not None and answer is None
        state = "waiting for the first token" if waiting else "thinking" if still_thinking else "streaming"
        if state == self._state and now_ns - self._shown_ns < metrics.NS // METER_HZ:
            return
        self._shown_ns = now_ns
        rate = metrics.instant_tps(events, now_ns)
        if rate is not None:
            self._history.append(rate)
            self.query_one(Spark).show(self._history)
        self._show(
            state,
            {
                "TTFT": figure(metrics.elapsed_s(events, now_ns) if waiting else ttft, 3, "s")
                + (" …" if waiting else ""),
                **_thinking_rows(thinking, answer, still_thinking),
                "TPS now": figure(rate, 1, "tok/s"),
                "task time": figure(metrics.elapsed_s(events, now_ns), 1, "s"),
                "output tokens": figure(metrics.output_tokens(events)),
                "output words": figure(metrics.output_words(events)),
                "words/s": with_reading(metrics.rate_per_s(metrics.output_words(events),
                                                           metrics.elapsed_s(events, now_ns))),
            },
        )
        self.repaints += 1

    def show_final(self, events: Sequence[Event], cold: bool = False) -> None:
        """The finished turn's figures; ``cold``: the model's first turn since its load (docs/METRICS.md)."""
        figures = metrics.compute(events).as_dict()
        values = {
            shown.label: with_reading(figures[shown.key]) if shown.key == "words_per_s"
            else shown.text(figures[shown.key], unit=True)
            for shown in shown_lines(figures) if shown.key != "stop_reason"
        }
        self.query_one(Spark).show(_tps_curve(events))
        state = STATES.get(figures["stop_reason"], "done")
        self._show(f"{state} · cold (first turn after load)" if cold else state, values)
