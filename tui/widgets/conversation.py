"""The scrolling transcript: user prompts, and replies that stream as plain text then render as Markdown."""
from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Markdown, Static

from taskclock.runtime.untrusted import safe_line, safe_text

from .streaming_text import StreamingText


class UserTurn(Static):
    pass


class ReplyTurn(StreamingText):
    """Plain text while streaming (cheap to repaint); swapped for Markdown once the turn ends."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.border_title = Text(safe_line(model))


class ReplyMarkdown(Markdown):
    pass


class Conversation(VerticalScroll):
    """Anchored to the bottom: growing text keeps the newest line in view without a scroll call per repaint."""

    def on_mount(self) -> None:
        self.anchor()

    def add_prompt(self, text: str) -> None:
        self.mount(UserTurn(safe_text(text), markup=False))

    def add_reply(self, model: str) -> ReplyTurn:
        reply = ReplyTurn(model)
        self.mount(reply)
        return reply

    def finish_reply(self, reply: ReplyTurn, text: str, note: str, stop_reason: str) -> None:
        """Render the finished reply as Markdown; ``note`` (stopped, error...) goes in its border."""
        final = ReplyMarkdown(safe_text(text) or "*(no output)*")
        final.border_title = reply.border_title
        final.border_subtitle = Text(safe_line(note))
        final.add_class(f"-{stop_reason}")
        self.mount(final, after=reply)
        reply.remove()

    def clear(self) -> None:
        self.remove_children()
