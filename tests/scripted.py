"""A scripted event source for UI tests only: a LoadedModel that replays words with known timestamps.

Never reachable from the CLI. ``pace_tps=None`` stamps synthetic, evenly spaced times without waiting (the
meter's figures are then exact and deterministic, for snapshots); a rate makes it produce in real time
(for checking the UI does not slow the producer). ``thinking`` words come first, in the thinking phase, as a
reasoning model's would.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator

from taskclock.runtime.backend import Message, ModelSpec, SamplingParams
from taskclock.runtime.events import Done, Event, Submitted, Token, now_ns

MS = 1_000_000
REPLY = ("Sure. **Task time** is what you wait for: the time from pressing Enter until the last word. "
         "A model that answers in fewer tokens can finish first even at a lower tokens per second.").split(" ")


class ScriptedModel:
    def __init__(self, spec: ModelSpec, words: list[str] | None = None, ttft_ms: int = 150, gap_ms: int = 20,
                 pace_tps: float | None = None, tokens: int | None = None, thinking: list[str] | None = None) -> None:
        self.spec = spec
        self.load_s = 0.5
        self.loaded_ns = now_ns()
        self.threads = None
        self.words = words or REPLY
        self.ttft_ms, self.gap_ms, self.pace_tps = ttft_ms, gap_ms, pace_tps
        self.tokens = tokens or len(self.words)
        self.thinking = thinking or []

    def _texts(self, max_tokens: int) -> list[str]:
        count = min(self.tokens, max(max_tokens - len(self.thinking), 0))
        thinking = [("" if i == 0 else " ") + word for i, word in enumerate(self.thinking[:max_tokens])]
        return thinking + [("" if i == 0 else " ") + self.words[i % len(self.words)] for i in range(count)]

    def _token(self, t_ns: int, i: int, text: str) -> Token:
        return Token(t_ns, text, phase="thinking" if i < len(self.thinking) else "answer")

    def stream(self, messages: list[Message], params: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Event]:
        texts = self._texts(params.max_tokens)
        start = now_ns()
        yield Submitted(start)
        if self.pace_tps is None:
            times = [start + (self.ttft_ms + i * self.gap_ms) * MS for i in range(len(texts))]
            yield from (self._token(t, i, text) for i, (t, text) in enumerate(zip(times, texts, strict=True)))
            yield Done(times[-1] + MS, "eos", input_tokens=len(messages) * 10, output_tokens=len(texts))
            return
        period = 1 / self.pace_tps
        began = time.perf_counter()
        for i, text in enumerate(texts):
            if cancel is not None and cancel.is_set():
                yield Done(now_ns(), "cancelled", output_tokens=i)
                return
            delay = began + (i + 1) * period - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield self._token(now_ns(), i, text)
        yield Done(now_ns(), "eos", output_tokens=len(texts))

    def count_tokens(self, text: str, cancel=None) -> int:
        return len(text.split())

    def close(self) -> None:
        pass


def scripted_loader(**options):
    """A loader for TaskclockApp: every spec loads instantly as a ScriptedModel."""
    return lambda spec: ScriptedModel(spec, **options)
