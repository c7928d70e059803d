"""Turning token ids into text pieces one token at a time, without splitting multi-byte characters."""
from __future__ import annotations

import codecs
from collections.abc import Callable, Sequence
from typing import Protocol


class Detokenizer(Protocol):
    def push(self, token_id: int) -> str:
        """Text this token completes (may be empty while a character is incomplete)."""

    def flush(self) -> str:
        """Whatever is still held back at the end of the turn."""


class IncrementalDetokenizer:
    """Decode a growing id list piece by piece at constant cost per token.

    Decodes a short window (from the last emitted boundary) twice and returns the difference, holding
    text back while it ends in an incomplete UTF-8 sequence (U+FFFD), as vLLM and TGI do.
    """

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self._prefix, self._read = self._read, len(self.ids)
            return after[len(before):]
        return ""

    def flush(self) -> str:
        """Whatever is still held back at the end of the turn."""
        before = self._decode(self.ids[self._prefix:self._read])
        after = self._decode(self.ids[self._prefix:])
        self._prefix = self._read = len(self.ids)
        return after[len(before):]


class ByteDetokenizer:
    """For runtimes that turn one token into bytes (llama.cpp): decode them as UTF-8 incrementally, so a
    character split across tokens is released whole."""

    def __init__(self, token_bytes: Callable[[int], bytes]) -> None:
        self._token_bytes = token_bytes
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        return self._decoder.decode(self._token_bytes(token_id))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
