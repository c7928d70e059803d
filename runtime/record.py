"""The one turn record: how every stored turn is laid out (session logs, bench rows, sweep rows), with one
builder and one reader.

A record holds the turn's figures flat (every ``TurnMetrics`` field, docs/METRICS.md) and what rebuilds its events
for a replay: the answer (``reply``), a thinking turn's ``thinking`` text and ``thinking_arrivals`` (how many of
the first arrivals were thinking), each arrival's offset (``token_offsets_ms``) and, where an arrival held several
tokens (a server's chunks), each arrival's count (``token_counts``; absent: 1 each). Then the backend's own figures
a run summarizes (``cached_tokens``; rows before the thread probe also hold ``threads``), the stop reason and the
error. Each writer adds its context beside these: a session turn its time, prompt, messages, parameters and whether
it was cold; a bench row its task and question; a sweep row its phase and length. Docs: docs/REPLAY.md.

Session logs written before this layout nested the figures under ``"metrics"``: ``read_turn`` lifts them, so
every reader sees one layout, whichever version wrote the file.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from . import metrics
from .events import Done, Event
from .untrusted import redact

TEXT: tuple[type, ...] = (str,)
TEXT_OR_NONE: tuple[type, ...] = (str, type(None))
COUNT: tuple[type, ...] = (int, type(None))
FIGURE: tuple[type, ...] = (int, float, type(None))
_BY_ANNOTATION = {"int": COUNT, "int | None": COUNT, "float | None": FIGURE, "float": FIGURE,
                  "bool | None": (bool, type(None)), "str | None": TEXT_OR_NONE}
METRIC_KEYS = tuple(f.name for f in fields(metrics.TurnMetrics))
# The types every field of the turn's own part may hold (a run folder's reader checks rows against them): each
# figure's from its TurnMetrics declaration, so a new metric needs no entry here.
FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "model": TEXT, "backend": TEXT, "reply": TEXT, "error": TEXT_OR_NONE, "thinking": TEXT, "thinking_arrivals": COUNT,
    "cached_tokens": COUNT, "threads": COUNT,  # threads: rows written before decode_threads/prompt_threads
    **{f.name: _BY_ANNOTATION[str(f.type)] for f in fields(metrics.TurnMetrics)},
}


def turn_fields(model: str, backend: str, events: Sequence[Event]) -> dict[str, Any]:
    """The turn's part of every record, from its events (the reply is the answer only: a reasoning model's
    thinking is kept apart and never scored)."""
    done = next((e for e in reversed(events) if isinstance(e, Done)), None)
    extra = done.extra if done is not None else {}
    return {
        "model": model,
        "backend": backend,
        **metrics.compute(events).as_dict(),
        "cached_tokens": extra.get("cached_prompt_tokens"),  # prompt tokens a server served from its prefix cache
        "error": redact(done.error) if done is not None and done.error else None,
        "reply": metrics.answer_text(events),
        **({"thinking": metrics.thinking_text(events), "thinking_arrivals": metrics.thinking_arrivals(events)}
           if metrics.thought(events) else {}),
        "token_offsets_ms": metrics.token_offsets_ms(events),
        **metrics.counts_field(events),  # each arrival's tokens, as the backend attributed a chunk's
    }


def read_turn(record: dict[str, Any]) -> dict[str, Any]:
    """A stored turn in the current layout, whichever version wrote it: an earlier session record's nested
    ``metrics`` are lifted beside its other fields (only the figures' own keys, and never over a field of the
    record's own)."""
    nested = record.get("metrics")
    if not isinstance(nested, dict):
        return record
    lifted = {key: nested[key] for key in METRIC_KEYS if key in nested}
    return {**lifted, **{key: value for key, value in record.items() if key != "metrics"}}


def is_turn(record: object) -> bool:
    """Whether a stored record is a turn of either layout (figures flat or under ``metrics``)."""
    return isinstance(record, dict) and (isinstance(record.get("metrics"), dict) or "token_offsets_ms" in record)
