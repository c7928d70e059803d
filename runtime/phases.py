"""Thinking apart from answering: the one place a reply's text is split at its thinking tags.

Reasoning models (Qwen3, DeepSeek-R1 distills...) write ``<think>…</think>`` before the answer. In-process
models and servers that do not parse it themselves send the tags in the text, so the reply's tokens are split
here: the tags are dropped, the text between them is thinking, the rest is answer. An opening tag counts only
at the start of a reply (after whitespace), so an answer that merely mentions the tag, or starts with ``<``,
stays answer; text that may still become a tag is held back for at most the tag's length, and the tokens
that carried it get their phase, with their own arrival times, once it is known. Tags may be split across
tokens. When the prompt itself ends with the opening tag (templates that open the thinking for the model),
the reply starts in thinking.
"""
from __future__ import annotations

from .events import Phase, Token

DEFAULT_TAGS = ("<think>", "</think>")


def prompt_opens_thinking(prompt_text: str, tags: tuple[str, ...]) -> bool:
    """Whether a rendered prompt ends inside an opened thinking block (the chat template wrote the opening tag)."""
    return bool(tags) and prompt_text.rstrip().endswith(tags[0])


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of ``text`` that is the start of ``tag`` (text that may still become it)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class PhaseSplitter:
    """Turns one reply's token texts into phase-tagged ``Token`` events.

    ``feed`` takes one arrival (a token, or a server chunk of ``count`` tokens) and returns its events: usually
    one; none while its phase is still undecided; several when it decides earlier ones, or when one token ends
    the thinking and starts the answer (the answer's part then follows at the same time with ``count`` 0, the
    token being counted where it started). ``tags`` = () never splits.
    """

    def __init__(self, tags: tuple[str, ...] = DEFAULT_TAGS, thinking: bool = False) -> None:
        self.open, self.close = tags if tags else ("", "")
        self.phase: Phase = "thinking" if thinking else "answer"
        self._deciding = bool(tags) and not thinking  # at the start: an opening tag may still come
        self._held = ""
        self._waiting: list[tuple[int, int | None, int]] = []  # arrivals held while their phase is undecided

    def feed(self, t_ns: int, text: str, count: int = 1, token_id: int | None = None) -> list[Token]:
        if self._deciding:
            return self._decide(t_ns, text, count, token_id)
        if self.phase == "thinking" and self.close:
            return self._thinking(t_ns, text, count, token_id)
        return [Token(t_ns, text, token_id, count, self.phase)]

    def flush(self, t_ns: int) -> list[Token]:
        """At the end of the turn: held arrivals keep the phase they were in, held text is released untimed."""
        held, self._held = self._held, ""
        events = self._release()
        if held:
            events.append(Token(t_ns, held, None, 0, self.phase))
        self._deciding = False
        return events

    def _release(self) -> list[Token]:
        events = [Token(t, "", tok, n, self.phase) for t, tok, n in self._waiting]
        self._waiting = []
        return events

    def _decide(self, t_ns: int, text: str, count: int, token_id: int | None) -> list[Token]:
        buf = self._held + text
        start = buf.lstrip()
        if start.startswith(self.open):
            self._deciding, self._held, self.phase = False, "", "thinking"
            events = self._release()
            rest = start[len(self.open):]
            return events + self._thinking(t_ns, rest, count, token_id)
        if self.open.startswith(start):  # whitespace, or the start of the opening tag: not known yet
            self._held = buf
            self._waiting.append((t_ns, token_id, count))
            return []
        self._deciding, self._held = False, ""
        return self._release() + [Token(t_ns, buf, token_id, count, "answer")]

    def _thinking(self, t_ns: int, text: str, count: int, token_id: int | None) -> list[Token]:
        buf = self._held + text
        end = buf.find(self.close)
        if end >= 0:
            self._held, self.phase = "", "answer"
            events = [Token(t_ns, buf[:end], token_id, count, "thinking")]
            rest = buf[end + len(self.close):]
            return events + ([Token(t_ns, rest, None, 0, "answer")] if rest else [])
        keep = _partial_suffix(buf, self.close)
        self._held = buf[len(buf) - keep:] if keep else ""
        return [Token(t_ns, buf[:len(buf) - keep], token_id, count, "thinking")]
