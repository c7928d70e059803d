"""Text that grows at its end while a reply streams, painted through Textual's Line API.

A `Static` re-wraps and re-renders its whole text on every update and asks for a new layout of the screen,
which repaints every widget on it. On a 2-core machine that work is taken from the model being measured.
Here an append wraps only the last paragraph, repaints only the lines it changed, and the height grows in
steps of ``grow_step`` lines, so a new layout is needed once per step rather than at every repaint.
"""
from __future__ import annotations

from rich.text import Text
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget

from taskclock.runtime.untrusted import safe_text

PLACEHOLDER = "…"


class StreamingText(Widget):
    DEFAULT_CSS = """
    StreamingText {
        height: auto;
    }
    """

    def __init__(self, *, grow_step: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        self.grow_step = grow_step
        self.complete = False  # set by settle(): the height then fits the text exactly
        self._text = ""
        self._width = 0
        self._settled: list[Text] = []  # wrapped lines of the paragraphs a newline has ended
        self._settled_chars = 0  # how much of the text those lines cover
        self._tail: list[Text] = []  # wrapped lines of the paragraph still growing

    @property
    def text(self) -> str:
        return self._text

    @property
    def line_count(self) -> int:
        return len(self._settled) + len(self._tail)

    def append(self, chunk: str) -> None:
        if not chunk:
            return
        height, first_changed = self._height(), len(self._settled)
        self._text += chunk
        self._wrap_new_text()
        if self._height() != height:
            self.refresh(layout=True)
        elif self._width:
            self.refresh(Region(0, first_changed, self._width, self.line_count - first_changed))

    def show(self, text: str) -> None:
        """Show ``text``: what extends the text on screen is appended, anything else starts over."""
        if not text.startswith(self._text):
            self.clear()
        self.append(text[len(self._text):])

    def clear(self) -> None:
        self._text, self._settled, self._settled_chars, self._tail = "", [], 0, []
        self.complete = False
        self.refresh(layout=True)

    def settle(self) -> None:
        """The text is complete: fit the height to it exactly."""
        self.complete = True
        self.refresh(layout=True)

    def _height(self) -> int:
        step = 1 if self.complete else self.grow_step
        return max(1, -(-self.line_count // step) * step)

    def _wrap(self, text: str) -> list[Text]:
        visible = Text(safe_text(text))  # model output: escape codes shown, never sent to the terminal
        visible.expand_tabs(4)
        return list(visible.wrap(self.app.console, self._width, overflow="fold"))

    def _wrap_new_text(self) -> None:
        if not self._width:
            return  # not laid out yet: get_content_height wraps everything once the width is known
        cut = self._text.rfind("\n") + 1
        if cut > self._settled_chars:
            self._settled += self._wrap(self._text[self._settled_chars:cut - 1])
            self._settled_chars = cut
        self._tail = self._wrap(self._text[self._settled_chars:])

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        if width != self._width:
            self._width, self._settled, self._settled_chars = width, [], 0
            self._wrap_new_text()
        return self._height()

    def render_line(self, y: int) -> Strip:
        style = self.visual_style.rich_style
        if not self._text:
            line = Text(PLACEHOLDER if y == 0 else "")
        elif y < len(self._settled):
            line = self._settled[y]
        elif y - len(self._settled) < len(self._tail):
            line = self._tail[y - len(self._settled)]
        else:
            return Strip.blank(self.size.width, style)
        strip = Strip(line.render(self.app.console), line.cell_len).apply_style(style)
        return strip.extend_cell_length(self.size.width, style)
