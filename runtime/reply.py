"""One request's reply as a backend produces it, and the events that end it, the same way for every backend.

Backends feed it token ids (or text chunks, for servers) and decide when generation ends; the reply owns
the rest: stop strings (held back, then dropped), the detokenizer's held-back text released at the end,
the produced-token count, the stop reason's precedence (an error, then a stop string, then the backend's
reason), and the backend's own figures in ``Done.extra``.
"""
from __future__ import annotations

from collections.abc import Sequence

from .events import Done, DoneExtra, Event, StopReason, Token, now_ns
from .stops import StopMatcher
from .textstream import Detokenizer


class Reply:
    def __init__(self, stop: Sequence[str] | StopMatcher, detokenizer: Detokenizer | None = None) -> None:
        self.stops = stop if isinstance(stop, StopMatcher) else StopMatcher(tuple(stop))
        self.detokenizer = detokenizer
        self.produced = 0
        self.stopped = False  # a stop string was reached

    def token(self, t_ns: int, token_id: int) -> Token:
        """One generated token, counted and shown up to any stop string it completes."""
        assert self.detokenizer is not None, "a Reply fed token ids needs a detokenizer"
        self.produced += 1
        shown, self.stopped = self.stops.feed(self.detokenizer.push(token_id))
        return Token(t_ns, shown, token_id)

    def end(self, reason: StopReason, input_tokens: int | None, output_tokens: int | None = None, *,
            error: str | None = None, extra: DoneExtra | None = None, t_ns: int | None = None) -> list[Event]:
        """The closing events: text still held back (unless a stop string ended the turn), then ``Done``.

        ``output_tokens`` defaults to the tokens fed through ``token()``; ``t_ns`` to now.
        """
        final: StopReason = "error" if error else "stop" if self.stopped else reason
        events: list[Event] = []
        if final != "stop":
            pending = self.detokenizer.flush() if self.detokenizer is not None else ""
            tail = self.stops.feed(pending)[0] + self.stops.flush()
            if tail:
                events.append(Token(now_ns() if t_ns is None else t_ns, tail, None, count=0))
        count = self.produced if output_tokens is None and self.detokenizer is not None else output_tokens
        events.append(Done(now_ns() if t_ns is None else t_ns, final, input_tokens, count, error=error,
                           extra=extra or DoneExtra()))
        return events
