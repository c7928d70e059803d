"""A chart drawn at its own size: its plot function runs at each render, after the size is known, so plots that
lay themselves out by size (room for the legend, points set apart) fit the chart they are drawn in."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual_plotext import PlotextPlot


class SizedPlot(PlotextPlot):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._draw: tuple[Callable[..., None], tuple[Any, ...]] | None = None

    def draw(self, plot: Callable[..., None], *args: Any) -> None:
        """Draw ``plot(plt, *args)`` (a runtime plot function) now and at every later render."""
        self._draw = (plot, args)
        self.refresh()

    def render(self):
        if self._draw is not None and self.size.area:
            plot, args = self._draw
            self.plt.plotsize(self.size.width, self.size.height)
            plot(self.plt, *args)
        return super().render()
