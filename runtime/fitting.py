"""Prompts of an exact length by a model's own tokenizer: what the input-length sweep and bench's fixed-length
workload (``--input-tokens``) run.

The context is cut from the packaged MMLU questions (a fixed text in which one more character adds at most one
token almost everywhere) and ends with the question asked; its first line is a salt, so no cache has seen it.
The cut is found by bisection on the model's own count of the whole prompt, chat template included
(``token_counter``: the tokenizer, else a server's count of the text alone, else an estimate; docs/METRICS.md).
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from . import mmlu
from .backend import LoadedModel, Message
from .errors import BackendError, Cancelled
from .turn import salted

CHARS_PER_TOKEN = 4  # the estimate where a server offers no tokenizer
NEAR = 8  # characters either side of the bisection's cut searched for an exact token count
STARTS = 16  # word boundaries the text may start at when no cut from the first start hits the count exactly


def filler_text() -> str:
    """Every question of the packaged MMLU copy in the copy's order, on one line, ASCII only: a fixed text
    in which one more character adds at most one token almost everywhere, so a cut can hit a token count."""
    text = " ".join(" ".join(q.question.split()) for q in mmlu.load_embedded().questions)
    return text.encode("ascii", "ignore").decode("ascii")


@dataclass(frozen=True)
class TokenCounter:
    """How a model's prompts are counted, and what the count rests on (stored with every row). Fitting one
    prompt asks dozens of counts: the cancel flag is checked before each, and a server's count is asked with
    it (runtime/backends/http.py), so Ctrl-C stops a fit at once even when the server's /tokenize is slow."""

    count: Callable[[list[Message], threading.Event], int | None]
    source: str  # tokenizer | server-text | estimate (docs/METRICS.md)
    cancel: threading.Event

    def __call__(self, messages: list[Message]) -> int:
        if self.cancel.is_set():
            raise Cancelled("stopped while a prompt was being fitted")
        n = self.count(messages, self.cancel)
        if n is None:
            raise BackendError("the model's tokenizer stopped answering while a prompt was being fitted",
                               "check the server, then resume the run")
        return n


def token_counter(model: LoadedModel, cancel: threading.Event | None = None) -> TokenCounter:
    """The model's own count of the whole prompt where it has one; else a server's count of the text alone
    (its chat template's tokens not counted); else an estimate of 4 characters a token."""
    cancel = cancel or threading.Event()
    probe: list[Message] = [{"role": "user", "content": "Hello"}]
    if model.prompt_tokens(probe, cancel) is not None:
        return TokenCounter(model.prompt_tokens, "tokenizer", cancel)
    if model.count_tokens("Hello", cancel) is not None:
        def text_tokens(messages: list[Message], cancel: threading.Event) -> int | None:
            counts = [model.count_tokens(m["content"], cancel) for m in messages]
            return None if None in counts else sum(counts)
        return TokenCounter(text_tokens, "server-text", cancel)
    return TokenCounter(lambda messages, _: sum(-(-len(m["content"]) // CHARS_PER_TOKEN) for m in messages),
                        "estimate", cancel)


def fit_length(tokens_at: Callable[[int], int], target: int, limit: int) -> tuple[int, int] | None:
    """The cut ``c`` (0 ≤ c ≤ limit) at which ``tokens_at(c) == target``, with its count: bisection for the
    longest cut that does not exceed the target, then the nearest exact hit within NEAR characters. None
    when even ``c = 0`` is over the target; the longest cut and its smaller count when the text runs out or
    no cut hits the target exactly (one more character can add two tokens: a space before a digit)."""
    lo, lo_n = 0, tokens_at(0)
    if lo_n > target:
        return None
    hi = min(limit, max(NEAR, target * CHARS_PER_TOKEN * 2))
    hi_n = tokens_at(hi)
    while hi_n <= target and hi < limit:
        lo, lo_n = hi, hi_n
        hi = min(limit, hi * 2)
        hi_n = tokens_at(hi)
    if hi_n <= target:
        return hi, hi_n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        n = tokens_at(mid)
        if n <= target:
            lo, lo_n = mid, n
        else:
            hi = mid
    if lo_n == target:
        return lo, lo_n
    for step in range(1, NEAR + 1):
        for cut in (lo - step, lo + step):
            if 0 <= cut <= limit and tokens_at(cut) == target:
                return cut, target
    return lo, lo_n


def prompt(filler: str, start: int, cut: int, question: str, salt: str) -> list[Message]:
    return salted([{"role": "user", "content": f"{filler[start:start + cut]}\n\nQuestion: {question}"}], salt)


def word_starts(filler: str) -> list[int]:
    """Where the text may start: its first STARTS words."""
    return [0, *(i + 1 for i, ch in enumerate(filler[:STARTS * 40]) if ch == " ")][:STARTS]


@dataclass(frozen=True)
class FittedPrompt:
    messages: list[Message]
    tokens: int  # by the counter; the turn's own input_tokens is what the model reports


def fit_text(count: TokenCounter, filler: str, target: int, question: str, salt: str) -> tuple[int, int, int] | str:
    """(start, cut, tokens) of the context that makes the prompt ``target`` tokens, or why none can: the
    first word start whose bisection hits the count exactly, else the closest count below it."""
    best: tuple[int, int, int] | None = None
    for start in word_starts(filler):
        def tokens_at(cut: int, start: int = start) -> int:
            return count(prompt(filler, start, cut, question, salt))

        found = fit_length(tokens_at, target, len(filler) - start)
        if found is None:
            shortest = count(prompt(filler, 0, 0, question, salt))
            return f"{target} tokens cannot hold the chat template, salt and question ({shortest} tokens)"
        cut, tokens = found
        if tokens < target and start + cut == len(filler):
            return f"the built-in text runs out at {tokens} tokens"
        if tokens == target:
            return start, cut, tokens
        if best is None or tokens > best[2]:
            best = start, cut, tokens
    assert best is not None
    return best



def beyond_context(target: int, output_tokens: int, context: int | None) -> str:
    """Why a length cannot run on a model with this context, or "" when it can (or the context is unknown)."""
    if context is None or target + output_tokens <= context:
        return ""
    return f"{target} input + {output_tokens} output tokens exceed the model's context of {context} tokens"
