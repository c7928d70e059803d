"""The multi-line prompt box: Enter sends, Ctrl+J (or Shift+Enter where the terminal reports it) breaks the line,
Up/Down in an empty box step through the prompts sent before."""
from __future__ import annotations

from textual import events
from textual.binding import Binding
from textual.widgets import TextArea

from ..messages import SendPrompt

NEWLINE_KEYS = ("ctrl+j", "shift+enter")
HISTORY_KEYS = {"up": -1, "down": 1}


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
        self.sent: list[str] = []  # prompts sent, oldest first (TextArea.history is its undo)
        self._recalled: int | None = None  # index into sent of the prompt on show, while browsing

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "enter" or event.key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            self.action_send() if event.key == "enter" else self.action_newline()
            return
        if event.key in HISTORY_KEYS and self._browsing():
            event.stop()
            event.prevent_default()
            self.recall(HISTORY_KEYS[event.key])
            return
        await super()._on_key(event)

    def _browsing(self) -> bool:
        """Up/Down recall prompts in an empty box, or while it still shows a recalled prompt unedited."""
        if not self.text:
            return True
        return self._recalled is not None and self.text == self.sent[self._recalled]

    def recall(self, step: int) -> None:
        if not self.sent:
            return
        index = len(self.sent) if self._recalled is None else self._recalled
        index = max(0, min(len(self.sent), index + step))
        self._recalled = index if index < len(self.sent) else None
        self.load_text("" if self._recalled is None else self.sent[index])
        self.move_cursor(self.document.end)

    def action_send(self) -> None:
        text = self.text
        if text.strip() and (not self.sent or self.sent[-1] != text):
            self.sent.append(text)
        self._recalled = None
        self.post_message(SendPrompt(text))

    def action_newline(self) -> None:
        self.insert("\n")
