"""One request's reply as a backend produces it, and the events that end it, the same way for every backend.

Backends feed it token ids (or text chunks, for servers) and decide when generation ends; the reply owns
the rest: the phase of each token (thinking or answer, runtime/phases.py), stop strings (held back, then
dropped; they apply to the answer only), the detokenizer's held-back text released at the end,
the produced-token count, the stop reason's precedence (an error, then a stop string, then the backend's
reason), and the backend's own figures in ``Done.extra``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .events import Done, DoneExtra, Event, StopReason, Token, now_ns
from .phases import PhaseSplitter
from .stops import StopMatcher
from .textstream import Detokenizer


class Reply:
    def __init__(self, stop: Sequence[str] | StopMatcher, detokenizer: Detokenizer | None = None,
                 phases: PhaseSplitter | None = None) -> None:
        self.stops = stop if isinstance(stop, StopMatcher) else StopMatcher(tuple(stop))
        self.detokenizer = detokenizer
        self.phases = phases or PhaseSplitter(())
        self.produced = 0
        self.stopped = False  # a stop string was reached

    def token(self, t_ns: int, token_id: int) -> list[Token]:
        """One generated token's events (usually one; see PhaseSplitter), shown up to any stop string."""
        assert self.detokenizer is not None, "a Reply fed token ids needs a detokenizer"
        self.produced += 1
        return self.text(t_ns, self.detokenizer.push(token_id), 1, token_id)

    def text(self, t_ns: int, text: str, count: int = 1, token_id: int | None = None) -> list[Token]:
        """One arrival's text (a token's, or a server chunk of ``count`` tokens): split into phases, with stop
        strings applied to the answer."""
        return [self._stopped(event) for event in self.phases.feed(t_ns, text, count, token_id)]

    def _stopped(self, event: Token) -> Token:
        if event.phase == "thinking":
            return event
        if self.stopped:  # text after a stop string is never shown
            return replace(event, text="")
        shown, self.stopped = self.stops.feed(event.text)
        return replace(event, text=shown) if shown != event.text else event

    def end(self, reason: StopReason, input_tokens: int | None, output_tokens: int | None = None, *,
            error: str | None = None, extra: DoneExtra | None = None, t_ns: int | None = None) -> list[Event]:
        """The closing events: text still held back (unless a stop string ended the turn), then ``Done``.

        ``output_tokens`` defaults to the tokens fed through ``token()``; ``t_ns`` to now.
        """
        final: StopReason = "error" if error else "stop" if self.stopped else reason
        end_ns = now_ns() if t_ns is None else t_ns
        events: list[Event] = []
        if final != "stop":
            pending = self.detokenizer.flush() if self.detokenizer is not None else ""
            held = self.text(end_ns, pending, 0) if pending else []
            held += [self._stopped(event) for event in self.phases.flush(end_ns)]
            held.append(Token(end_ns, self.stops.flush(), None, count=0))
            events += _joined(held)
        count = self.produced if output_tokens is None and self.detokenizer is not None else output_tokens
        events.append(Done(end_ns, final, input_tokens, count, error=error, extra=extra or DoneExtra()))
        return events


def _joined(events: list[Token]) -> list[Token]:
    """The end's events without empty ones, untimed text of one phase joined into one event."""
    joined: list[Token] = []
    for event in events:
        if not (event.text or event.count):
            continue
        last = joined[-1] if joined else None
        if last is not None and last.count == event.count == 0 and last.phase == event.phase:
            joined[-1] = replace(last, text=last.text + event.text)
        else:
            joined.append(event)
    return joined
