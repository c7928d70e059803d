"""Service-level objectives for `taskclock load`: what a request must meet to count, SLO attainment and goodput.

``--slo ttft=1,task=10,itl=50ms`` (any subset; seconds unless a value ends in ``ms``) sets an upper bound per
figure, each measured from the request's **scheduled arrival**, which is when its user started waiting:

- ``ttft``: arrival to the first token (queue delay + TTFT);
- ``ttfa``: arrival to the first answer token (queue delay + TTFA; TTFT for a reply that did not think);
- ``task``: arrival to the end of the reply (queue delay + task time);
- ``itl``: the reply's mean time per token after the first (vLLM's TPOT, aiperf's inter-token latency).

A request meets the SLO when it finished without an error and every bound holds; a request that errored, was
never sent or was dropped when its rate saturated meets none. **SLO attainment** is the share of a rate's
counted requests that meet it, **goodput** the requests a second that do (vLLM's ``--goodput``). Docs:
docs/METRICS.md ("Load").
"""
from __future__ import annotations

import difflib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .errors import DataError
from .untrusted import safe_line

# key → what it bounds, as the docs and the tables name it
KEYS = {"ttft": "time to first token", "ttfa": "time to first answer token", "task": "task time",
        "itl": "time per token"}
FIX = "pass e.g. --slo ttft=1,task=10,itl=50ms (seconds, or ms; any of " + ", ".join(KEYS) + ")"
MAX_BOUND_S = 86_400.0


@dataclass(frozen=True)
class Slo:
    """Upper bounds in seconds, by key (only those given)."""

    bounds: tuple[tuple[str, float], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.bounds)

    def __str__(self) -> str:
        return ",".join(f"{key}={shown_bound(seconds)}" for key, seconds in self.bounds)

    def phrase(self) -> str:
        """"within TTFT 1 s and task time 10 s", for the verdict."""
        names = {"ttft": "TTFT", "ttfa": "TTFA", "task": "task time", "itl": "time per token"}
        return "within " + " and ".join(f"{names[key]} {shown_bound(s, ' ')}" for key, s in self.bounds)

    def misses(self, row: dict[str, Any]) -> list[str]:
        """The keys a finished request's row misses ("error" for one that did not finish)."""
        if row.get("stop_reason") in ("error", "cancelled") or row.get("task_time_s") is None:
            return ["error"]
        return [key for key, bound in self.bounds if (value := measured(row, key)) is None or value > bound]

    def met(self, row: dict[str, Any]) -> bool:
        return not self.misses(row)


def shown_bound(seconds: float, space: str = "") -> str:
    return f"{seconds * 1000:g}{space}ms" if seconds < 1 else f"{seconds:g}{space}s"


def measured(row: dict[str, Any], key: str) -> float | None:
    """A row's figure for an SLO key, in seconds (queue delay added to the waits: they run from arrival)."""
    wait = row.get("queue_delay_s") or 0.0
    if key == "itl":
        tps = row.get("decode_tps")
        return 1 / tps if tps else None
    if key == "ttfa":
        value = row.get("ttfa_s") if row.get("ttfa_s") is not None else row.get("ttft_s")
    else:
        value = row.get({"ttft": "ttft_s", "task": "task_time_s"}[key])
    return None if value is None else wait + value


def _seconds(key: str, text: str) -> float:
    value = text.strip().lower()
    scale = 1.0
    if value.endswith("ms"):
        value, scale = value[:-2], 1e-3
    elif value.endswith("s"):
        value = value[:-1]
    try:
        seconds = float(value) * scale
    except ValueError:
        raise DataError(f"--slo: {key}={safe_line(text)!r} is not a time", FIX) from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_BOUND_S:
        raise DataError(f"--slo: {key} must be a time above 0 and at most a day, not {safe_line(text)}", FIX)
    return seconds


def parse_slo(text: str) -> Slo:
    """``ttft=1,task=10,itl=50ms`` as an Slo; an unknown key (with the nearest known one), a bad time or a key
    given twice is one DataError."""
    bounds: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, eq, value = (s.strip() for s in part.partition("="))
        key = key.lower()
        if key not in KEYS:
            near = difflib.get_close_matches(key, KEYS, n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            raise DataError(f"--slo: unknown objective {safe_line(key)!r}{hint}", FIX)
        if not eq or not value:
            raise DataError(f"--slo: {key} needs a bound, as in {key}=1", FIX)
        if key in bounds:
            raise DataError(f"--slo: {key} is given twice", FIX)
        bounds[key] = _seconds(key, value)
    if not bounds:
        raise DataError("--slo is empty", FIX)
    return Slo(tuple((key, bounds[key]) for key in KEYS if key in bounds))


def read_slo(text: str) -> Slo:
    """An Slo as run.toml stores it ("" for none)."""
    return parse_slo(text) if text else Slo()


def attainment(slo: Slo, rows: Iterable[dict[str, Any]], counted: int) -> float | None:
    """The share of ``counted`` requests (finished or not) whose rows meet the SLO; None without an SLO."""
    if not slo or counted <= 0:
        return None
    return sum(slo.met(row) for row in rows) / counted


def goodput(slo: Slo, rows: Iterable[dict[str, Any]], duration_s: float | None) -> float | None:
    """Requests a second that met the SLO over the rate's duration; None without an SLO or a duration."""
    if not slo or not duration_s:
        return None
    return sum(slo.met(row) for row in rows) / duration_s
