"""A scroll container that stays on its newest line as its content grows, with a scrollbar that says so.

While a widget is anchored, Textual (8.2) moves its scroll position during the compositor's reflow, right
after arranging its children, and sets the scrollbar's thumb position there without asking the bar to
repaint. A reply that grows past its column and then shrinks as it settles could keep a thumb drawn for an
earlier length (at the top while the text sits at its end) until the next scroll. So after each reflow that
arranged this container, the bar repaints.
"""
from __future__ import annotations

from textual.containers import VerticalScroll
from textual.geometry import Size
from textual.layout import DockArrangeResult


class AnchoredScroll(VerticalScroll):
    def on_mount(self) -> None:
        self.anchor()

    def arrange(self, size: Size, optimal: bool = False) -> DockArrangeResult:
        if self.is_anchored:
            self.call_after_refresh(self.vertical_scrollbar.refresh)
        return super().arrange(size, optimal)
