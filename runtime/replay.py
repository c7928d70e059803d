"""Recorded turns turned back into event streams, paced by their recorded offsets; and paced canned text.

A session log keeps each token's arrival offset (ms after submission). Replaying rebuilds the turn's events
with those offsets (divided by ``speed``) on a fresh clock, so the same runtime.metrics functions that
measured it live compute its figures again: at speed 1 they are the recorded ones (offsets are stored to
the microsecond), at speed X every time is exactly 1/X of it. The replayed events carry the scheduled
times, not the moments a slow terminal happened to show them. Definitions: docs/REPLAY.md.
"""
from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast, get_args

from . import values
from .errors import DataError
from .events import Done, DoneExtra, Event, Loaded, Phase, StopReason, Submitted, Token, now_ns
from .metrics import NS
from .sessions import read_session
from .untrusted import safe_line, safe_text

# Reading and token figures shared by pace, the placeholder text of imports, and docs/METRICS.md.
WORDS_PER_TOKEN = 0.75  # English prose in BPE tokenizers: ~4 characters, 3/4 of a word per token
READING_WORDS_PER_S = 4.0  # silent reading of English non-fiction: ~238 words/min (Brysbaert 2019)
CANNED_TEXT = (
    "Latency is something you feel before you can name it. The first word sets the mood: if it comes "
    "at once, the tool seems awake; if the screen stays empty for two seconds, you start to wonder whether "
    "anything is happening at all. After that, the pace matters less than you might think, as long as the "
    "text arrives faster than you read it. A reply that streams at the speed of reading feels like a "
    "person talking; one that crawls below it makes you wait on every word; one far above it simply "
    "appears, and then the only thing left to wait for is the end. That is why taskclock measures task "
    "time, the whole wait from pressing Enter to the last word, and not only tokens per second: a model "
    "that says less can finish first even when each of its tokens is slower."
)


@dataclass(frozen=True)
class Recording:
    """One turn ready to replay: its events with times from submission at speed 1, and what it recorded."""

    label: str
    model: str
    prompt: str
    schedule: list[Event]
    recorded: dict[str, Any]
    placeholder_text: bool = False  # the source had no text: the words are stand-ins of the right count
    synthesized: bool = False  # the source had no per-token times: even gaps from its TTFT and decode rate

    @property
    def notes(self) -> list[str]:
        out = []
        if self.placeholder_text:
            out.append("placeholder text: the source recorded no text, only its token count")
        if self.synthesized:
            out.append("even token gaps: the source recorded only TTFT and decode rate, not each token's time")
        return out


# ---- reading logs ----------------------------------------------------------------------------------

def read_turns(path: Path) -> list[dict[str, Any]]:
    """Every replayable record of a session log (chat, compare, import) or bench results file or run folder."""
    return read_session(path, bench_rows=True)


def pick_turn(turns: Sequence[dict[str, Any]], number: int | None) -> tuple[int, dict[str, Any]]:
    """The 1-based turn ``number`` (default: the last one) and its number."""
    number = len(turns) if number is None else number
    if not 1 <= number <= len(turns):
        raise DataError(f"there is no turn {number}: the file has {len(turns)}", f"pass --turn 1 to {len(turns)}")
    return number, turns[number - 1]


def finite_number(value: Any) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def whole_count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def split_text(text: str, parts: int) -> list[str]:
    """``text`` cut into ``parts`` pieces of near-equal length, in order: the recorded text spread over the
    recorded arrivals (logs keep the reply whole, not each token's piece)."""
    if parts <= 0:
        return []
    return [text[len(text) * i // parts:len(text) * (i + 1) // parts] for i in range(parts)]


def canned_text(words: int) -> str:
    """``words`` words of CANNED_TEXT, starting over when they run out."""
    pool = CANNED_TEXT.split()
    return " ".join(pool[i % len(pool)] for i in range(words))


def placeholder_for(tokens: int) -> str:
    """Stand-in text for a turn recorded without its text: as many words as ``tokens`` tokens carry."""
    return canned_text(max(1, round(tokens * WORDS_PER_TOKEN))) if tokens > 0 else ""


OFFSET_MAX_MS = values.RECORDED_MAX_S * 1000


def _offsets(record: dict[str, Any]) -> tuple[list[float], bool]:
    """Token offsets in ms from submission, and whether they had to be synthesized from summary figures. Stored
    or synthesized, they must rise from 0 to at most a recorded turn's length (values.RECORDED_MAX_S): beyond,
    a clock in ns would overflow."""
    stored = record.get("token_offsets_ms")
    synthesized = not isinstance(stored, list)
    if isinstance(stored, list):
        offsets = stored
    else:
        tokens, ttft = whole_count(record.get("output_tokens")), finite_number(record.get("ttft_s"))
        rate = finite_number(record.get("decode_tps"))
        if not tokens or ttft is None or ttft < 0:
            return [], True
        gap_ms = 1000 / rate if rate and rate > 0 else 0.0
        offsets = [ttft * 1000 + i * gap_ms for i in range(tokens if gap_ms else 1)]
    if not all(values.recorded(v, OFFSET_MAX_MS) for v in offsets) or offsets != sorted(offsets):
        what = "TTFT and decode rate give token times that are" if synthesized else "token_offsets_ms are"
        raise DataError(f"the turn's {what} not rising non-negative numbers of at most {OFFSET_MAX_MS:.0f} ms",
                        "the log is damaged")
    return [float(v) for v in offsets], synthesized


def _phases(record: dict[str, Any], answer: str, arrivals: int) -> list[tuple[Phase, str, int, int]]:
    """(phase, text, first arrival, end) per phase: a turn that thought recorded its thinking text and how many
    of its first arrivals were thinking (``thinking_arrivals``); the rest, and any other turn, is answer."""
    thinking, split_at = record.get("thinking"), whole_count(record.get("thinking_arrivals"))
    if not isinstance(thinking, str) or split_at is None or split_at > arrivals:
        return [("answer", answer, 0, arrivals)]
    return [("thinking", thinking, 0, split_at), ("answer", answer, split_at, arrivals)]


def recording_from_record(record: dict[str, Any], label: str) -> Recording:
    """A stored turn in the current layout (runtime/record.py; ``read_turns`` gives them so) as a Recording: its
    arrivals at their offsets with their counts; a run row of the days before offsets were kept at even gaps.

    Every string is treated as hostile: the text that is replayed has passed through safe_text."""
    output_tokens = whole_count(record.get("output_tokens"))
    if output_tokens is not None and output_tokens > values.TOKENS_MAX:  # as many even gaps or stand-in words
        raise DataError(f"the turn records {output_tokens} output tokens, more than {values.TOKENS_MAX}",
                        "the log is damaged")
    offsets, synthesized = _offsets(record)
    counts = record.get("token_counts")
    if not (isinstance(counts, list) and len(counts) == len(offsets) and all(whole_count(c) for c in counts)):
        counts = [1] * len(offsets)
    reply = record.get("reply")
    placeholder = bool(record.get("placeholder_text")) or not isinstance(reply, str)
    text = reply if isinstance(reply, str) else placeholder_for(output_tokens or len(offsets))
    model = safe_line(record.get("model", "?"))
    events: list[Event] = []
    load = finite_number(record.get("load_s"))
    if load is not None:
        events.append(Loaded(0, load, model))
    events.append(Submitted(0))
    token_ns = [round(ms * 1_000_000) for ms in offsets]
    for phase, words, lo, hi in _phases(record, text, len(offsets)):
        pieces = split_text(safe_text(words), hi - lo)
        events += [Token(t, piece, count=c, phase=phase)
                   for t, piece, c in zip(token_ns[lo:hi], pieces, counts[lo:hi], strict=True)]
        if lo == hi and words:  # text but no arrivals of its own: shown, never timed
            events.append(Token(token_ns[hi - 1] if hi else 0, safe_text(words), count=0, phase=phase))
    task = finite_number(record.get("task_time_s"))
    if task is not None and not values.recorded(task):
        raise DataError(f"the turn's task_time_s is not a number of seconds from 0 to {values.RECORDED_MAX_S:.0f}",
                        "the log is damaged")
    done_ns = max(round(task * NS) if task is not None else 0, token_ns[-1] if token_ns else 0)
    recorded_stop = record.get("stop_reason")
    stop: StopReason = next((s for s in get_args(StopReason) if s == recorded_stop), "eos")
    error = record.get("error")
    extra = cast(DoneExtra, {key: record[key] for key in ("gpu_peak_mem_mb", "energy_j")
                             if finite_number(record.get(key)) is not None})
    if whole_count(record.get("thinking_tokens")):  # the recorded count (a server's may not be the chunks')
        extra["thinking_tokens"] = record["thinking_tokens"]
    events.append(Done(done_ns, stop, whole_count(record.get("input_tokens")),
                       output_tokens, safe_line(error) if error else None, extra))
    prompt = record.get("prompt")
    return Recording(label, model, safe_text(prompt) if isinstance(prompt, str) else "", events, record,
                     placeholder_text=placeholder, synthesized=synthesized)


def turn_label(path: Path, number: int, record: dict[str, Any]) -> str:
    return f"{safe_line(record.get('model', '?'))} · {safe_line(Path(path).name)} #{number}"


def replayable(record: dict[str, Any]) -> bool:
    """Whether a record passes replay's rules (what ``import`` checks each request against before writing it)."""
    try:
        recording_from_record(record, "")
    except DataError:
        return False
    return True


def load_recording(path: Path, number: int | None = None) -> tuple[int, int, Recording]:
    """Turn ``number`` of a log (default: the last) as a Recording, with its number and the turn count."""
    turns = read_turns(path)
    number, record = pick_turn(turns, number)
    return number, len(turns), recording_from_record(record, turn_label(path, number, record))


# ---- pacing ----------------------------------------------------------------------------------------

def rebase(schedule: Sequence[Event], start_ns: int, speed: float = 1.0) -> list[Event]:
    """The schedule's events on a clock that starts at ``start_ns``, every offset divided by ``speed``."""
    values.check_speed(speed)
    return [replace(event, t_ns=start_ns + round(event.t_ns / speed)) for event in schedule]


class Playback:
    """Rebased events handed out as their time comes: what has "arrived" by a given moment."""

    def __init__(self, schedule: Sequence[Event], start_ns: int, speed: float = 1.0) -> None:
        self.events = rebase(schedule, start_ns, speed)
        self._times = [event.t_ns for event in self.events]

    def due(self, now: int) -> list[Event]:
        return self.events[:bisect.bisect_right(self._times, now)]

    def finished(self, now: int) -> bool:
        return not self._times or now >= self._times[-1]


def play(schedule: Sequence[Event], speed: float, on_event: Callable[[Event], None],
         cancel: threading.Event | None = None) -> list[Event]:
    """Release each event at its rebased time (sleeping in between); returns the events released."""
    events = rebase(schedule, now_ns(), speed)
    released: list[Event] = []
    for event in events:
        while (wait := (event.t_ns - now_ns()) / NS) > 0:
            if cancel is None:
                time.sleep(wait)
            elif cancel.wait(wait):
                return released
        released.append(event)
        on_event(event)
    return released


# ---- pace ------------------------------------------------------------------------------------------

def pace_recording(ttft_s: float, tps: float, words: int) -> Recording:
    """``words`` words of canned text as tokens (WORDS_PER_TOKEN each): the first after ``ttft_s``, then
    ``tps`` tokens a second (ranges: values.check_pace)."""
    values.check_pace(ttft_s, tps, words)
    tokens = max(1, round(words / WORDS_PER_TOKEN))
    offsets = [round((ttft_s + i / tps) * NS) for i in range(tokens)]
    pieces = split_text(canned_text(words), tokens)
    schedule: list[Event] = [Submitted(0), *(Token(t, p) for t, p in zip(offsets, pieces, strict=True))]
    schedule.append(Done(offsets[-1], "eos", output_tokens=tokens))
    label = f"pace: TTFT {ttft_s:g} s, {tps:g} tok/s"
    return Recording(label, "pace", "", schedule, {"ttft_s": ttft_s, "decode_tps": tps if tokens > 1 else None})


def reading_line(tps: float) -> str:
    """Whether text at ``tps`` tokens a second outruns a silent reader (READING_WORDS_PER_S)."""
    words_per_s = tps * WORDS_PER_TOKEN
    ratio = words_per_s / READING_WORDS_PER_S
    figures = (f"{tps:g} tok/s ≈ {words_per_s:.1f} words/s "
               f"(at {WORDS_PER_TOKEN:g} words/token) vs ~{READING_WORDS_PER_S:g} words/s silent reading")
    if ratio >= 1:
        return f"{figures}: {ratio:.1f}× a reader, so the text outruns a reader"
    return f"{figures}: {ratio:.0%} of a reader, so a reader waits on the text"
