"""A hidden tab's place until just after the first frame is drawn: then its pane is made (its module imported)
and mounted in its stead. Textual's ``Lazy`` defers only the mount; the pane and its module would still be needed
at compose, and importing the hidden tabs' modules was a third of the time to the first frame."""
from __future__ import annotations

from collections.abc import Callable

from textual.widget import Widget


class LaterPane(Widget):
    DEFAULT_CSS = "LaterPane { display: none; }"

    def __init__(self, make: Callable[[], Widget]) -> None:
        super().__init__()
        self._make = make

    def on_mount(self) -> None:
        self.call_after_refresh(self._mount_pane)

    async def _mount_pane(self) -> None:
        parent = self.parent
        if not isinstance(parent, Widget):  # the app closed first
            return
        await parent.mount(self._make(), after=self)
        await self.remove()
