"""Metrics as pure functions of a turn's event list. Definitions: docs/METRICS.md.

Every view (CLI, batch runner, app, tests) computes figures through these functions, so a number means
the same thing everywhere. Functions return None where a figure is undefined (no tokens yet, a zero span)
rather than inventing a zero.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .events import Done, Event, Loaded, Submitted, Token

NS = 1_000_000_000
INSTANT_WINDOW_S = 1.0


def _submitted(events: Sequence[Event]) -> Submitted | None:
    return next((e for e in events if isinstance(e, Submitted)), None)


def _tokens(events: Sequence[Event]) -> list[Token]:
    """Token events that carry tokens (count-0 events only release held-back text and are not timed), each with
    the tokens it holds: where a server packed several tokens into a chunk and said so only in its final usage,
    the backend's attribution of that total to the chunks (``Done.extra["arrival_counts"]``, one count per
    arrival) replaces the one token each chunk was counted as while it streamed."""
    toks = [e for e in events if isinstance(e, Token) and e.count > 0]
    done = _done(events)
    counts = done.extra.get("arrival_counts") if done is not None else None
    if counts and len(counts) == len(toks):
        return [t if t.count == n else replace(t, count=n) for t, n in zip(toks, counts, strict=True)]
    return toks


def token_counts(events: Sequence[Event]) -> list[int]:
    """The tokens each arrival holds, in order."""
    return [t.count for t in _tokens(events)]


def counts_field(events: Sequence[Event]) -> dict[str, list[int]]:
    """``{"token_counts": [...]}`` where some arrival held several tokens (a server's chunks), else nothing: what
    session logs and run rows keep beside the offsets, so a replay and the per-token ITL count them."""
    counts = token_counts(events)
    return {"token_counts": counts} if any(c != 1 for c in counts) else {}


def _done(events: Sequence[Event]) -> Done | None:
    return next((e for e in reversed(events) if isinstance(e, Done)), None)


def output_text(events: Sequence[Event]) -> str:
    """Everything the model wrote, thinking included (without its tags)."""
    return "".join(e.text for e in events if isinstance(e, Token))


def answer_text(events: Sequence[Event]) -> str:
    """The reply without its thinking: what is shown as the answer, kept in the chat history and scored."""
    return "".join(e.text for e in events if isinstance(e, Token) and e.phase == "answer")


def thinking_text(events: Sequence[Event]) -> str:
    return "".join(e.text for e in events if isinstance(e, Token) and e.phase == "thinking")


def thought(events: Sequence[Event]) -> bool:
    """Whether the turn had a thinking phase: thinking tokens, or a server's count of hidden reasoning."""
    done = _done(events)
    return any(isinstance(e, Token) and e.phase == "thinking" for e in events) or \
        bool(done and done.extra.get("thinking_tokens"))


def thinking_tokens(events: Sequence[Event]) -> int | None:
    """Tokens spent thinking: the server's reasoning count when it sends one, else the thinking token events'
    counts; None for a turn that did not think."""
    if not thought(events):
        return None
    done = _done(events)
    reported = done.extra.get("thinking_tokens") if done else None
    if reported is not None:
        return reported
    return sum(t.count for t in _tokens(events) if t.phase == "thinking")


def answer_tokens(events: Sequence[Event]) -> int | None:
    """Output tokens that are not thinking; None for a turn that did not think (all its tokens are answer)."""
    thinking = thinking_tokens(events)
    return None if thinking is None else max(output_tokens(events) - thinking, 0)


def thinking_words(events: Sequence[Event]) -> int | None:
    return len(thinking_text(events).split()) if thought(events) else None


def _first_answer(events: Sequence[Event]) -> Token | None:
    """The answer's first arrival: its first token, or answer text released by the token that ended thinking."""
    return next((e for e in events if isinstance(e, Token) and e.phase == "answer" and (e.count > 0 or e.text)),
                None)


def ttfa_s(events: Sequence[Event]) -> float | None:
    """Time to first answer token, for a turn that thought: the first answer arrival minus submission; None
    when the turn never left thinking (or did not think: then TTFT is the time to the answer)."""
    sub, first = _submitted(events), _first_answer(events)
    if sub is None or first is None or not thought(events):
        return None
    return (first.t_ns - sub.t_ns) / NS


def thinking_s(events: Sequence[Event]) -> float | None:
    """From the first thinking token to the first answer arrival (to the last thinking token when the answer
    never came); None when no thinking token arrived."""
    thinking = [t for t in _tokens(events) if t.phase == "thinking"]
    if not thinking:
        return None
    first = _first_answer(events)
    end = first.t_ns if first is not None and first.t_ns >= thinking[0].t_ns else thinking[-1].t_ns
    return (end - thinking[0].t_ns) / NS


def output_tokens(events: Sequence[Event]) -> int:
    """Tokens generated: the backend's own count when it reports one, else the sum of token events."""
    done = _done(events)
    if done is not None and done.output_tokens is not None:
        return done.output_tokens
    return sum(t.count for t in _tokens(events))


def input_tokens(events: Sequence[Event]) -> int | None:
    done = _done(events)
    return done.input_tokens if done else None


def output_chars(events: Sequence[Event]) -> int:
    return len(output_text(events))


def output_words(events: Sequence[Event]) -> int:
    """Words of the answer plus words of the thinking (counted apart, so the two never run together)."""
    return len(answer_text(events).split()) + len(thinking_text(events).split())


def load_s(events: Sequence[Event]) -> float | None:
    loaded = next((e for e in events if isinstance(e, Loaded)), None)
    return loaded.load_s if loaded else None


def ttft_s(events: Sequence[Event]) -> float | None:
    """First token's arrival minus submission."""
    sub, toks = _submitted(events), _tokens(events)
    if sub is None or not toks:
        return None
    return (toks[0].t_ns - sub.t_ns) / NS


def decode_tps(events: Sequence[Event]) -> float | None:
    """Tokens after the first over the span from first to last token: (n-1)/(t_last-t_first)."""
    toks = _tokens(events)
    if len(toks) < 2:
        return None
    span = toks[-1].t_ns - toks[0].t_ns
    if span <= 0:
        return None
    after_first = output_tokens(events) - toks[0].count
    return after_first * NS / span


def e2e_tps(events: Sequence[Event]) -> float | None:
    """All output tokens over the span from submission to the last token: n/(t_last-submit)."""
    sub, toks = _submitted(events), _tokens(events)
    if sub is None or not toks:
        return None
    span = toks[-1].t_ns - sub.t_ns
    return output_tokens(events) * NS / span if span > 0 else None


def task_time_s(events: Sequence[Event]) -> float | None:
    """What the user waits for: done minus submission."""
    sub, done = _submitted(events), _done(events)
    if sub is None or done is None:
        return None
    return (done.t_ns - sub.t_ns) / NS


def elapsed_s(events: Sequence[Event], now_ns: int) -> float | None:
    """Running task time while a turn is in flight (task_time_s once it is done)."""
    sub = _submitted(events)
    if sub is None:
        return None
    done = _done(events)
    return ((done.t_ns if done else now_ns) - sub.t_ns) / NS


def thinking_elapsed_s(events: Sequence[Event], now_ns: int) -> float | None:
    """Running thinking time while the model thinks (no answer yet, turn not done), else ``thinking_s``."""
    first = next((t for t in _tokens(events) if t.phase == "thinking"), None)
    if first is None or _first_answer(events) is not None or _done(events) is not None:
        return thinking_s(events)
    return (now_ns - first.t_ns) / NS


def chunk_gaps_ms(events: Sequence[Event]) -> list[float]:
    """Gaps between consecutive arrivals in ms (a token, or a server chunk of several); the wait for the first
    token is not a gap."""
    toks = _tokens(events)
    return [(b.t_ns - a.t_ns) / 1e6 for a, b in zip(toks, toks[1:], strict=False)]


def per_token_gaps_ms(offsets_ms: Sequence[float], counts: Sequence[int]) -> list[float]:
    """Per-token gaps in ms from arrival offsets and the tokens each arrival holds: an arrival of k tokens after a
    gap g stands for k tokens g/k apart (what aiperf and guidellm report); with one token per arrival these are
    the gaps between arrivals."""
    return [(b - a) / n for a, b, n in zip(offsets_ms, offsets_ms[1:], counts[1:], strict=False) for _ in range(n)]


def inter_token_ms(events: Sequence[Event]) -> list[float]:
    """Per-token gaps in ms (``per_token_gaps_ms``) of a turn's arrivals."""
    toks = _tokens(events)
    return per_token_gaps_ms([t.t_ns / 1e6 for t in toks], [t.count for t in toks])


def packed(events: Sequence[Event]) -> bool:
    """Whether some arrival held more than one token (a server's chunks): then the chunk gap is a figure apart."""
    return any(t.count > 1 for t in _tokens(events))


def cut(events: Sequence[Event]) -> bool | None:
    """True for a reply that did not end by itself: cut at the output cap, or a stream that never left thinking
    (its task time is then a lower bound); None otherwise (shown only where it holds)."""
    done = _done(events)
    if done is None or done.stop_reason in ("error", "cancelled"):
        return None
    never_answered = thought(events) and _first_answer(events) is None
    return True if done.stop_reason == "length" or never_answered else None


def backend_prefill_s(events: Sequence[Event]) -> float | None:
    """The prompt-processing time the backend itself reports: llama.cpp's ``prompt_eval_ms`` in process, a
    server's ``timings.prompt_ms`` (llama.cpp's server) over HTTP; None where it reports none. Prefill of the
    tokens it did not take from a cache; the rest of TTFT is queueing, templating, network and the first step."""
    done = _done(events)
    extra = done.extra if done is not None else {}
    ms = (extra.get("llama_perf") or {}).get("prompt_eval_ms")
    if ms is None:
        ms = (extra.get("server_timings") or {}).get("prompt_ms")
    return ms / 1000 if isinstance(ms, (int, float)) and not isinstance(ms, bool) and ms >= 0 else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """Linear-interpolation percentile (numpy's default method), p in [0, 100]."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)


def instant_tps(events: Sequence[Event], now_ns: int | None = None, window_s: float = INSTANT_WINDOW_S) -> float | None:
    """Tokens per second over the last ``window_s`` seconds ending at ``now_ns``.

    Counts the tokens whose arrival ends an inter-token gap inside the window and divides by the part of
    the window the stream has covered (from the first token at the earliest). A stalled stream therefore
    decays towards zero instead of freezing at its last rate. ``now_ns`` defaults to the last token.
    """
    toks = _tokens(events)
    if len(toks) < 2 and now_ns is None:
        return None
    if not toks:
        return None
    now = toks[-1].t_ns if now_ns is None else now_ns
    start = max(now - int(window_s * NS), toks[0].t_ns)
    span = now - start
    if span <= 0:
        return None
    counted = sum(t.count for t in toks[1:] if start < t.t_ns <= now)
    return counted * NS / span


def rate_per_s(amount: int, seconds: float | None) -> float | None:
    return amount / seconds if seconds else None


def tokens_per_word(tokens: int, words: int) -> float | None:
    """How many tokens the model's tokenizer spent per output word: why token counts (and tok/s) do not
    compare across tokenizers."""
    return tokens / words if words else None


def ms_per_word(task_s: float | None, words: int) -> float | None:
    """What the user waits for each word of the reply, its first included: task time over output words. Unlike
    tok/s it neither depends on the tokenizer nor forgives a wordy reply."""
    return task_s * 1000 / words if task_s is not None and words else None


def prefill_tps(events: Sequence[Event]) -> float | None:
    n_in, ttft = input_tokens(events), ttft_s(events)
    return n_in / ttft if n_in and ttft else None


# The tables that have a figure as a column (``shown(places=...)``), beyond the lists of every figure (`taskclock
# run`, the Chat meter's final figures, session logs and their exports, every bench and sweep row):
COMPARE = "compare"  # the comparison table: `taskclock compare` and the Compare tab, the best one starred
CELL = "cell"  # its mean per model × task in a bench summary: summary.md and summary.json
LIVE = "live"  # that mean in the Batch tab's table of a run (a LIVE figure is a CELL figure too)


def shown(label: str, unit: str = "", digits: int = 0, optional: bool = False, *, short: str = "", better: str = "",
          places: tuple[str, ...] = ()) -> Any:
    """A TurnMetrics field and how every view shows it: ``label`` in the lists of figures, ``short`` (else the
    label) with the unit as its column header, ``better`` "high" or "low" where one end wins, ``places`` the
    tables that have it as a column; ``optional`` figures are listed only when a turn has them."""
    return field(metadata={"label": label, "unit": unit, "digits": digits, "optional": optional, "short": short,
                           "better": better, "places": frozenset(places)})


@dataclass(frozen=True)
class TurnMetrics:
    """Every figure of one turn, derived from its events; field names are the JSON keys, field order and
    ``shown(...)`` are how every view lists them (``figure_formats()``)."""

    load_s: float | None = shown("load time", "s", 2, optional=True)
    input_tokens: int | None = shown("input tokens", short="in tok", places=(CELL,))
    output_tokens: int = shown("output tokens", short="out tok", better="low", places=(COMPARE, LIVE))
    # reasoning models (None for a turn that did not think): output tokens split into thinking and answer
    thinking_tokens: int | None = shown("thinking tokens", optional=True)
    answer_tokens: int | None = shown("answer tokens", optional=True)
    output_words: int = shown("output words", short="words", better="low", places=(COMPARE, LIVE))
    thinking_words: int | None = shown("thinking words", optional=True)
    output_chars: int = shown("output chars")
    ttft_s: float | None = shown("TTFT", "s", 3, better="low", places=(COMPARE, CELL))
    thinking_s: float | None = shown("thinking time", "s", 3, optional=True)
    ttfa_s: float | None = shown("TTFA", "s", 3, optional=True)  # time to the first answer token
    prefill_tps: float | None = shown("prefill rate", "tok/s", 1, short="prefill", better="high")
    decode_tps: float | None = shown("decode rate", "tok/s", 1, short="decode", better="high",
                                      places=(COMPARE, LIVE))
    e2e_tps: float | None = shown("e2e rate", "tok/s", 1, short="e2e", better="high")
    task_time_s: float | None = shown("task time", "s", 3, short="task", better="low", places=(COMPARE, LIVE))
    itl_p50_ms: float | None = shown("ITL p50", "ms", 1, better="low")
    itl_p90_ms: float | None = shown("ITL p90", "ms", 1, better="low")
    itl_p99_ms: float | None = shown("ITL p99", "ms", 1, better="low")
    # a server that packs several tokens into a chunk: the gap between its chunks (the ITL figures are per token)
    chunk_gap_p50_ms: float | None = shown("chunk gap p50", "ms", 1, optional=True)
    backend_prefill_s: float | None = shown("prefill time", "s", 3, optional=True)  # as the backend reports it
    words_per_s: float | None = shown("words/s", "", 1, better="high", places=(COMPARE,))
    chars_per_s: float | None = shown("chars/s", "", 1, better="high")
    tokens_per_word: float | None = shown("tokens/word", "", 2)
    ms_per_word: float | None = shown("time per word", "ms", 1, short="time/word", better="low", places=(COMPARE, LIVE))
    gpu_peak_mem_mb: float | None = shown("GPU peak memory", "MiB", 0, optional=True)
    # llama.cpp: what NVML says this process holds at the turn's end
    gpu_process_mem_mb: float | None = shown("GPU memory (process)", "MiB", 0, optional=True)
    energy_j: float | None = shown("energy", "J", 1, optional=True)
    # True: another turn ran on the GPU meanwhile, so the GPU figures are the card's, not this turn's
    gpu_shared: bool | None = shown("GPU shared", optional=True)
    # in-process models: the CPU threads it ran with (runtime/threads.py); None for a server's turn
    decode_threads: int | None = shown("decode threads", optional=True)
    prompt_threads: int | None = shown("prompt threads", optional=True)
    stop_reason: str | None = shown("stop reason")
    cut: bool | None = shown("cut short", optional=True)  # at the output cap, or never left thinking

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FigureFormat:
    """How every view shows one figure (``shown(...)``): the one registry that tables pick their columns from."""

    key: str
    label: str
    unit: str
    digits: int
    optional: bool
    short: str = ""
    better: str = ""  # "high" or "low": which end wins; "" where neither does
    places: frozenset[str] = frozenset()

    @property
    def header(self) -> str:
        """Its column header: the short label and the unit."""
        return f"{self.short or self.label} {self.unit}".strip()

    def text(self, value: Any, unit: bool = False) -> str:
        """The value as its columns show it (``unit``: followed by its unit, as lists of figures show it); the
        unit "%" marks a fraction shown as a percentage."""
        if self.unit == "%":
            return figure(value, self.digits, percent=True)
        return figure(value, self.digits, self.unit if unit else "")


def figure(value: Any, digits: int = 2, unit: str = "", percent: bool = False) -> str:
    """A figure as every view writes it: ``—`` where it is undefined (never a fake zero), a float to ``digits``
    decimals (``percent``: a fraction as a percentage), with its unit when one is given."""
    if value is None:
        return "—"
    if percent:
        return f"{value * 100:.1f}%"
    text = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f"{text} {unit}".strip()


def figure_formats() -> tuple[FigureFormat, ...]:
    """Every TurnMetrics figure with its label, unit and decimals, in display order."""
    return tuple(FigureFormat(f.name, **f.metadata) for f in fields(TurnMetrics))


def figure_format(key: str) -> FigureFormat:
    return next(f for f in figure_formats() if f.key == key)


def figures_in(place: str) -> tuple[FigureFormat, ...]:
    """The figures that are columns of a table (COMPARE, CELL, LIVE), in display order."""
    return tuple(f for f in figure_formats() if place in f.places or (place == CELL and LIVE in f.places))


def compute(events: Sequence[Event]) -> TurnMetrics:
    gaps = inter_token_ms(events)
    task = task_time_s(events)
    tokens, chars, words = output_tokens(events), output_chars(events), output_words(events)
    done = _done(events)
    return TurnMetrics(
        input_tokens=input_tokens(events),
        output_tokens=tokens,
        output_chars=chars,
        output_words=words,
        thinking_tokens=thinking_tokens(events),
        answer_tokens=answer_tokens(events),
        thinking_words=thinking_words(events),
        thinking_s=thinking_s(events),
        ttfa_s=ttfa_s(events),
        load_s=load_s(events),
        ttft_s=ttft_s(events),
        decode_tps=decode_tps(events),
        e2e_tps=e2e_tps(events),
        prefill_tps=prefill_tps(events),
        task_time_s=task,
        itl_p50_ms=percentile(gaps, 50),
        itl_p90_ms=percentile(gaps, 90),
        itl_p99_ms=percentile(gaps, 99),
        chunk_gap_p50_ms=percentile(chunk_gaps_ms(events), 50) if packed(events) else None,
        backend_prefill_s=backend_prefill_s(events),
        cut=cut(events),
        chars_per_s=rate_per_s(chars, task),
        words_per_s=rate_per_s(words, task),
        tokens_per_word=tokens_per_word(tokens, words),
        ms_per_word=ms_per_word(task, words),
        stop_reason=done.stop_reason if done else None,
        gpu_peak_mem_mb=done.extra.get("gpu_peak_mem_mb") if done else None,
        gpu_process_mem_mb=done.extra.get("gpu_process_mem_mb") if done else None,
        energy_j=done.extra.get("energy_j") if done else None,
        gpu_shared=done.extra.get("gpu_shared") if done else None,
        decode_threads=done.extra.get("decode_threads") if done else None,
        prompt_threads=done.extra.get("prompt_threads") if done else None,
    )


def thinking_arrivals(events: Iterable[Event]) -> int:
    """How many token arrivals came before the first answer token: what a log keeps (beside the offsets and the
    thinking text) so a replay can tell the thinking arrivals from the answer's."""
    phases = [t.phase for t in _tokens(list(events))]
    return phases.index("answer") if "answer" in phases else len(phases)


def token_offsets_ms(events: Iterable[Event]) -> list[float]:
    """Each token event's arrival as ms after submission: what session logs store for recomputation."""
    events = list(events)
    sub = _submitted(events)
    if sub is None:
        return []
    return [round((t.t_ns - sub.t_ns) / 1e6, 3) for t in _tokens(events)]
