"""The scrolling transcript: user prompts, and replies that stream as plain text then render as Markdown with
their own one-line figures under them (and a reasoning model's thinking, collapsed, between the two)."""
from __future__ import annotations

from rich.text import Text
from textual.widget import Widget
from textual.widgets import Collapsible, Markdown, Static

from taskclock.runtime.untrusted import safe_line, safe_text

from .anchored_scroll import AnchoredScroll
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


class ReplyFigures(Static):
    """TTFT · decode tok/s · task time · tokens · words of the reply above it."""


class ThinkingText(Static):
    pass


class ReplyThinking(Collapsible):
    """A reasoning model's thinking under its reply, collapsed: plain text, never markup."""

    def __init__(self, thinking: str) -> None:
        words = len(thinking.split())
        super().__init__(ThinkingText(safe_text(thinking), markup=False), title=f"thinking ({words} words)",
                         collapsed=True)


class Divider(Static):
    """A line across the transcript where the model changed."""


REPLY_PARTS = (ReplyTurn, ReplyMarkdown, ReplyThinking, ReplyFigures)


class Conversation(AnchoredScroll):
    """Anchored to the bottom: growing text keeps the newest line in view without a scroll call per repaint."""

    def add_prompt(self, text: str) -> None:
        self.mount(UserTurn(safe_text(text), markup=False))

    def add_reply(self, model: str) -> ReplyTurn:
        reply = ReplyTurn(model)
        self.mount(reply)
        self.anchor()  # back to the newest line, also after the user scrolled up
        return reply

    def finish_reply(self, reply: ReplyTurn, text: str, note: str, stop_reason: str, figures: str = "",
                     thinking: str = "") -> None:
        """Render the finished reply as Markdown; ``note`` (stopped, error...) goes in its border, ``thinking``
        collapsed under it, ``figures`` on a line under those."""
        final = ReplyMarkdown(safe_text(text) or "*(no output)*")
        final.border_title = reply.border_title
        final.border_subtitle = Text(safe_line(note))
        final.add_class(f"-{stop_reason}")
        self.mount(final, after=reply)
        last: Widget = final
        if thinking:
            last = ReplyThinking(thinking)
            self.mount(last, after=final)
        if figures:
            self.mount(ReplyFigures(figures, markup=False), after=last)
        reply.remove()

    def add_recorded(self, role: str, text: str) -> None:
        """A message of a recorded conversation (a branch's history): a prompt, or a reply as Markdown."""
        if role == "user":
            self.add_prompt(text)
        else:
            self.mount(ReplyMarkdown(safe_text(text) or "*(no output)*"))

    def add_divider(self, text: str) -> None:
        self.mount(Divider(f"── {text} ──", markup=False))

    def remove_last_reply(self) -> None:
        """Take the last reply and its figures away (regenerate), keeping the prompt above it."""
        for widget in self._after_last_prompt():
            if isinstance(widget, REPLY_PARTS):
                widget.remove()

    def remove_last_exchange(self) -> None:
        """Take the last prompt and its reply away (edit and resend)."""
        prompts = list(self.query_children(UserTurn))
        if prompts:
            prompts[-1].remove()
        self.remove_last_reply()

    def _after_last_prompt(self) -> list:
        children = list(self.children)
        last = max((i for i, w in enumerate(children) if isinstance(w, UserTurn)), default=-1)
        return children[last + 1:]

    def clear(self) -> None:
        self.remove_children()
