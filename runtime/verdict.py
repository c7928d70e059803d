"""The verdict on two models that did the same work: which finishes sooner, why, and whether the run can tell.

Shared by the bench rankings (a task set's questions, runtime/summary.py) and compare (one prompt, repeated or
not, runtime/compare.py), so the console, summary.md, the Batch tab and Compare say the same thing in the same
words. Definitions: docs/METRICS.md, "The verdict".

**Why.** The task-time gap between the model that finishes later (*a*) and the one that finishes sooner (*b*)
is split into causes that add up to it, per pair of replies to the same question, then averaged:

- *TTFT*: waiting for the first token (split into the backend's own prefill and the rest, where both report it);
- *thinking*: the reasoning phase of a reasoning model, first thinking token to first answer token;
- *saying more*: the extra answer tokens at *a*'s pace per token, (n_a − n_b) · p_a, phrased in words too,
  since tokenizers differ;
- *writing slower*: *b*'s tokens at the difference in pace, n_b · (p_a − p_b);

where a reply's pace p is its writing time (task time less TTFT and thinking) per answer token. The residual is
the gap between the tables' mean task times less the parts (replies without a partner on the other side).

**Can the run tell.** The gap and the tok/s difference are paired over the same questions (or repeats) and
given a t-based 95% interval (runtime/stats.py); an order stands only where the interval leaves 0 out.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from statistics import fmean
from typing import Any

from .stats import Spread, excludes_zero, samples_needed, spread

MORE = 1.05  # a ratio below this prints as "1.0×": not a difference worth naming
TTFT, THINKING, SAYING_MORE, WRITING_SLOWER = "TTFT", "thinking", "saying more", "writing slower"
PREFILL, BEFORE_PREFILL = "prefill", "before prefill"
UNFINISHED = ("error", "cancelled")


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def count(value: float) -> str:
    """A count or a mean count: whole where it is whole (one reply), else to one decimal (a mean)."""
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


@dataclass(frozen=True)
class Sample:
    """One finished reply's figures, as the attribution reads them (from a bench row or a compare row: both are
    TurnMetrics dicts)."""

    task_s: float
    ttft_s: float  # the whole task time when no token came
    thinking_s: float  # 0 for a reply that did not think (or whose reasoning the server hid: then it is in TTFT)
    tokens: int  # answer tokens: output less thinking
    words: int  # answer words
    decode_tps: float | None
    prefill_s: float | None  # the backend's own
    cut: bool

    @property
    def writing_s(self) -> float:
        return self.task_s - self.ttft_s - self.thinking_s

    @property
    def pace_s(self) -> float | None:
        """Writing time per answer token."""
        return self.writing_s / self.tokens if self.tokens else None


def sample(row: dict[str, Any]) -> Sample | None:
    """A row's reply as a Sample; None for one that errored, was stopped or has no task time."""
    task = row.get("task_time_s")
    if task is None or row.get("stop_reason") in UNFINISHED:
        return None
    ttft = row.get("ttft_s")
    ttft = task if ttft is None else ttft
    thinking = row.get("thinking_s") or 0.0
    tokens = (row.get("output_tokens") or 0) - (row.get("thinking_tokens") or 0)
    words = (row.get("output_words") or 0) - (row.get("thinking_words") or 0)
    return Sample(task, ttft, thinking, max(tokens, 0), max(words, 0), row.get("decode_tps"),
                  row.get("backend_prefill_s"), bool(row.get("cut")) or row.get("stop_reason") == "length")


def pairs(later: Sequence[dict], sooner: Sequence[dict], key: Callable[[dict], Hashable]
          ) -> list[tuple[Sample, Sample]]:
    """The finished replies of the two models to the same questions (``key``: a question and repeat), paired."""
    theirs = {key(row): s for row in sooner if (s := sample(row)) is not None}
    return [(mine, theirs[key(row)]) for row in later if (mine := sample(row)) is not None and key(row) in theirs]


def _mean(values: Sequence[float]) -> float:
    return fmean(values) if values else 0.0


def _split_writing(a: Sample, b: Sample) -> tuple[float, float]:
    """(saying more, writing slower) of one pair: they add up to a's writing time less b's."""
    if a.pace_s is None or b.pace_s is None:  # one wrote no answer token: the whole difference is in what it said
        return a.writing_s - b.writing_s, 0.0
    return (a.tokens - b.tokens) * a.pace_s, b.tokens * (a.pace_s - b.pace_s)


@dataclass(frozen=True)
class Attribution:
    """The task-time gap between ``later`` and ``sooner`` and its causes, in seconds (means over the pairs)."""

    later: str
    sooner: str
    gap_s: float  # mean task time of later less sooner's, as the tables show them
    parts: dict[str, float]  # cause → seconds, in the order of the module docstring; thinking only where one thought
    ttft_parts: dict[str, float]  # prefill and before prefill, where every reply reports its backend's prefill
    residual_s: float
    n: int  # pairs
    means: dict[str, tuple[float, float]]  # figure → (later's mean, sooner's mean) over the pairs

    def share(self, seconds: float) -> float | None:
        return seconds / self.gap_s if self.gap_s else None

    @property
    def largest(self) -> str:
        return max(self.parts, key=lambda cause: self.parts[cause])


def attribute(later: str, sooner: str, paired: Sequence[tuple[Sample, Sample]], gap_s: float) -> Attribution | None:
    """Split ``gap_s`` (later's mean task time less sooner's) into its causes over the paired replies; None when
    no question has a reply from both."""
    if not paired:
        return None
    a, b = [p[0] for p in paired], [p[1] for p in paired]
    writing = [_split_writing(x, y) for x, y in paired]
    parts = {TTFT: _mean([x.ttft_s - y.ttft_s for x, y in paired])}
    if any(s.thinking_s for s in a + b):
        parts[THINKING] = _mean([x.thinking_s - y.thinking_s for x, y in paired])
    parts[SAYING_MORE] = _mean([more for more, _ in writing])
    parts[WRITING_SLOWER] = _mean([slower for _, slower in writing])
    ttft_parts: dict[str, float] = {}
    if all(s.prefill_s is not None for s in a + b):
        prefill = _mean([(x.prefill_s or 0.0) - (y.prefill_s or 0.0) for x, y in paired])
        ttft_parts = {PREFILL: prefill, BEFORE_PREFILL: parts[TTFT] - prefill}

    def means(figure: Callable[[Sample], float | None]) -> tuple[float, float]:
        return (_mean([v for s in a if (v := figure(s)) is not None]),
                _mean([v for s in b if (v := figure(s)) is not None]))

    figures = {"ttft_s": means(lambda s: s.ttft_s), "thinking_s": means(lambda s: s.thinking_s),
               "tokens": means(lambda s: s.tokens), "words": means(lambda s: s.words),
               "decode_tps": means(lambda s: s.decode_tps), "pace_ms": means(lambda s: s.pace_s and s.pace_s * 1000)}
    return Attribution(later, sooner, gap_s, parts, ttft_parts, gap_s - sum(parts.values()), len(paired), figures)


def _unsigned_zero(value: float, digits: int) -> float:
    """``value`` rounded as it will be shown, so a rounding to zero shows no minus sign."""
    return round(value, digits) + 0.0


def _share(attribution: Attribution, seconds: float) -> str:
    share = attribution.share(seconds)
    return "—" if share is None else f"{_unsigned_zero(share * 100, 0):.0f}%"


def cause(attribution: Attribution) -> str:
    """A predicate (its subject the later model) naming the largest cause with its share of the gap, e.g.
    "starts 0.30 s later (TTFT, 85% of the gap)" or "writes 9.6× more words (93% of the gap)"."""
    largest = attribution.largest
    seconds, means = attribution.parts[largest], attribution.means
    share = _share(attribution, seconds)
    if largest == TTFT:
        return f"starts {seconds:.2f} s later (TTFT, {share} of the gap)"
    if largest == THINKING:
        return f"thinks {seconds:.2f} s longer (thinking, {share} of the gap)"
    if largest == WRITING_SLOWER:
        (pace_a, pace_b), (tps_a, tps_b) = means["pace_ms"], means["decode_tps"]
        return (f"writes slower ({pace_a:.1f} vs {pace_b:.1f} ms a token, decode {tps_a:.1f} vs {tps_b:.1f} tok/s; "
                f"{share} of the gap)")
    (words_a, words_b), (tokens_a, tokens_b) = means["words"], means["tokens"]
    if words_b and words_a / words_b >= MORE:
        return f"writes {words_a / words_b:.1f}× more words ({count(words_a)} vs {count(words_b)}; {share} of the gap)"
    if tokens_b and tokens_a / tokens_b >= MORE:
        words = f"{words_a / words_b:.1f}×" if words_b else f"{count(words_a)} vs {count(words_b)}"
        return (f"spends {tokens_a / tokens_b:.1f}× more tokens on {words} the words ({count(tokens_a)} vs "
                f"{count(tokens_b)} tokens; {share} of the gap)")
    return (f"writes more ({count(tokens_a)} vs {count(tokens_b)} tokens, {count(words_a)} vs {count(words_b)} words; "
            f"{share} of the gap)")


def _signed(seconds: float) -> str:
    return f"{_unsigned_zero(seconds, 2):+.2f} s"


def breakdown(attribution: Attribution) -> str:
    """Every part with its share, e.g. "gap 0.35 s = TTFT +0.30 s (85%) + saying more +0.04 s (12%) + writing
    slower +0.01 s (3%), residual +0.00 s"."""
    items = []
    for name, seconds in attribution.parts.items():
        item = f"{name} {_signed(seconds)} ({_share(attribution, seconds)})"
        if name == TTFT and attribution.ttft_parts:
            item += " [" + ", ".join(f"{sub} {_signed(s)}" for sub, s in attribution.ttft_parts.items()) + "]"
        items.append(item)
    return f"gap {attribution.gap_s:.2f} s = " + " + ".join(items) + f", residual {_signed(attribution.residual_s)}"


# ---- noise ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    """A paired difference (later less sooner) with its 95% interval, and the unit it is in."""

    spread: Spread | None
    unit: str  # "s" or "tok/s"
    digits: int

    @property
    def stands(self) -> bool:
        return excludes_zero(self.spread)

    @property
    def n(self) -> int:
        return self.spread.n if self.spread else 0

    def interval(self) -> str:
        """"± 0.21 s", or "one sample" where there is no interval."""
        if self.spread is None or self.spread.ci95 is None:
            return "one sample"
        return f"±{self.spread.ci95:.{self.digits}f} {self.unit}"

    def noise(self) -> str:
        """"within noise (n=4, ±0.21 s)": the mark a ranking gets where its difference's interval holds 0;
        "one sample" where there is no interval to go by."""
        if self.spread is None or self.spread.ci95 is None:
            return "one sample"
        return f"within noise (n={self.n}, {self.interval()})"

    def measured(self) -> str:
        """"0.35 s ± 0.05 s (n=4)"."""
        if self.spread is None:
            return "—"
        mean = f"{abs(self.spread.mean):.{self.digits}f} {self.unit}"
        return mean if self.spread.ci95 is None else f"{mean} ± {self.spread.ci95:.{self.digits}f} {self.unit} " \
                                                    f"(n={self.n})"

    def needed(self, what: str) -> str:
        """How many paired samples would tell, from the spread this run saw."""
        n = samples_needed(self.spread)
        if self.spread is None or self.spread.sd is None:
            return f"more {what} would give an interval"
        if n is None:
            return f"no number of {what} would at this spread"
        return f"about {n} {what} would, at this spread"


def difference(values: Sequence[float], unit: str, digits: int) -> Difference:
    return Difference(spread(values), unit, digits)


def task_time_difference(paired: Sequence[tuple[Sample, Sample]]) -> Difference:
    return difference([a.task_s - b.task_s for a, b in paired], "s", 2)


def tps_difference(paired: Sequence[tuple[Sample, Sample]]) -> Difference:
    """Decode tok/s of sooner less later's (positive where the later model is the faster per token)."""
    return difference([b.decode_tps - a.decode_tps for a, b in paired
                       if a.decode_tps is not None and b.decode_tps is not None], "tok/s", 1)


@dataclass(frozen=True)
class Cut:
    """How many of a model's replies were cut short (at the cap, or never out of thinking), of how many."""

    model: str
    cut: int
    of: int
    cap: int | None  # the output cap, where known

    def mark(self) -> str:
        """"cut 8/8", or "" where no reply was cut."""
        return f"cut {self.cut}/{self.of}" if self.cut else ""

    def phrase(self) -> str:
        """"gemma3-270m hit the 384-token cap in 8 of 8 replies: its real task time is longer"."""
        cap = f"the {self.cap}-token cap" if self.cap else "its output cap"
        replies = "its reply" if self.of == 1 else f"{self.cut} of {self.of} replies"
        return f"{self.model} hit {cap} in {replies}: its real task time is longer"


def cuts(model: str, rows: Sequence[dict], cap: int | None) -> Cut:
    finished = [s for row in rows if (s := sample(row)) is not None]
    return Cut(model, sum(s.cut for s in finished), len(finished), cap)


def explained(attribution: Attribution | None, time: Difference, what: str) -> str:
    """What follows a ranking, from its separator on: the cause of the gap with the run's interval on it (": it
    starts 0.30 s later (TTFT, 85% of the gap); 0.35 s ± 0.05 s (n=4): gap 0.35 s = …"); one sample and what
    would give an interval; or, where the interval holds 0, that the run cannot tell the two apart, how many
    ``what`` (questions or repeats) would, and the cause of the gap it measured."""
    if attribution is None:
        return ": no question has a finished reply from both"
    if time.n <= 1:
        return f": it {cause(attribution)}; {breakdown(attribution)}; one sample ({time.needed(what)})"
    if time.stands:
        return f": it {cause(attribution)}; {time.measured()}: {breakdown(attribution)}"
    return (f", {time.noise()}: this run cannot tell {attribution.later} and {attribution.sooner} apart on task "
            f"time ({time.needed(what)}); of the {attribution.gap_s:.2f} s it measured, {attribution.later} "
            f"{cause(attribution)}: {breakdown(attribution)}")
