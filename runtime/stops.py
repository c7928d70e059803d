"""Stop strings, applied the same way for every backend.

Text that might be the start of a stop string is held back until it either completes the stop string
(then it is dropped and the turn ends) or cannot (then it is released), so a reply never shows part of a
stop string.
"""
from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self._held = ""

    def feed(self, piece: str) -> tuple[str, bool]:
        """Return (text safe to show now, whether a stop string was reached)."""
        if not self.stops:
            return piece, False
        buf = self._held + piece
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self._held = ""
            return buf[: min(hits)], True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(buf)), 0, -1):
                if buf.endswith(stop[:n]):
                    keep = max(keep, n)
                    break
        self._held = buf[len(buf) - keep:] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        """Release held text at the end of a turn that did not stop on a stop string."""
        held, self._held = self._held, ""
        return held
