"""Why the model with the higher tokens/s can take longer per task: the reason said in one phrase.

Shared by the bench rankings (mean figures per task set, runtime/summary.py) and compare (one prompt,
runtime/compare.py), so both verdicts give the same reason for the same figures. The reasons, in the order
tried: it writes more words (verbosity, docs/METRICS.md "words ratio"), its first token comes later, it
spends more tokens (a tokenizer that cuts the same words finer).
"""
from __future__ import annotations

from dataclasses import dataclass

MORE = 1.05  # a ratio below this prints as "1.0×": not a reason worth naming


@dataclass(frozen=True)
class Figures:
    """One model's figures for a task (means over a task set, or one reply)."""

    name: str
    words: float | None
    ttft_s: float | None
    tokens: float | None


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def count(value: float) -> str:
    """A count or a mean count: whole where it is whole (one reply), else to one decimal (a mean)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def why_slower(fast: Figures, first: Figures) -> str:
    """A predicate (no subject) saying why ``fast``, ahead by tokens/s, finishes after ``first``."""
    words = ratio(fast.words, first.words)
    if words is not None and words >= MORE and fast.words is not None and first.words is not None:
        return f"writes {words:.1f}× more words than {first.name} ({count(fast.words)} vs {count(first.words)})"
    if fast.ttft_s is not None and first.ttft_s is not None and fast.ttft_s > first.ttft_s:
        return f"starts later than {first.name} (TTFT {fast.ttft_s:.3f} s vs {first.ttft_s:.3f} s)"
    tokens = ratio(fast.tokens, first.tokens)
    if tokens is not None and tokens >= MORE and fast.tokens is not None and first.tokens is not None:
        return (f"spends {tokens:.1f}× more tokens than {first.name} ({count(fast.tokens)} vs "
                f"{count(first.tokens)})")
    return f"takes longer than {first.name} over these replies however fast its tokens come"
