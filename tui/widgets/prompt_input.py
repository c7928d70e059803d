"""The multi-line prompt box: Enter sends, Ctrl+J (or Shift+Enter where the terminal reports it) breaks the line."""
from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import TextArea

from ..messages import SendPrompt

NEWLINE_KEYS = ("ctrl+j", "shift+enter")


class PromptInput(TextArea):
    HELP_SECTION = "Prompt"
    # Listed for the footer and help; the keys are handled in _on_key, in order with the typed text.
    # (A priority binding would run ahead of characters still queued, sending half a fast-typed prompt.)
    BINDINGS = [
        Binding("enter", "send", "Send"),
        Binding(",".join(NEWLINE_KEYS), "newline", "Newline"),
    ]

    def __init__(self, **kwargs) -> None:
        super().__init__(soft_wrap=True, show_line_numbers=False, tab_behavior="focus", **kwargs)

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter" or event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_send() if event.key == "enter" else self.action_newline()
            return
        await super()._on_key(event)

    def action_send(self) -> None:
        self.post_message(SendPrompt(self.text))

    def action_newline(self) -> None:
        self.insert("\n")
