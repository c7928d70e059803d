"""CPU threads for decode and prefill: measured on this machine for each model, never guessed.

Which decode count is fastest depends on the CPU and the model: on 2 vCPUs SmolLM2 decoded 1.8x faster on one
thread than on two on an Intel Xeon, and slower on one thread on an AMD EPYC of the same kind
(docs/PERFORMANCE.md). So at a model's first load a short probe times a few decode steps at each candidate
count and keeps the fastest; the choice is cached per machine, model and engine build in the user cache folder
and probed again when any of them changes. Prefill takes all usable cores (a batch of tokens keeps them all
busy). A count the user sets is used for both and skips the probe.
"""
from __future__ import annotations

import hashlib
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import storage
from .errors import StorageError, TaskclockError
from .paths import cache_dir
from .system import cpu_model, physical_cores

CACHE_FILE = "threads.json"
SAME_SPEED = 0.97  # a count this close to the fastest counts as as fast: the fewest such threads win
PROBE_ROUNDS = 3
PROBE_BUDGET_S = 2.0  # after the first full round, no new round starts past this (large models)
CACHE_ENTRIES = 64  # the most recent choices kept: models and builds come and go (tests make a model per run)


@dataclass(frozen=True)
class ThreadChoice:
    """The threads a model runs with and why: ``rates`` holds the probe's decode tok/s per count tried."""

    decode: int
    prompt: int
    why: str
    rates: dict[int, float] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What run folders keep (system.json) and `doctor` reads."""
        return {"decode": self.decode, "prompt": self.prompt, "why": self.why}


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity), which is what prefill can keep busy."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def candidate_counts(physical: int, usable: int) -> list[int]:
    """1, 2, 4, … below the physical cores, then the physical cores and every usable CPU: a handful of probes
    even on a large machine."""
    counts = {1, physical, usable}
    power = 2
    while power < physical:
        counts.add(power)
        power *= 2
    return sorted(counts)


def best_count(rates: dict[int, float]) -> int:
    """The fewest threads within ``SAME_SPEED`` of the fastest: where more threads buy nothing, the cores are
    left to the UI and the rest of the machine."""
    fastest = max(rates.values())
    return min(n for n, rate in rates.items() if rate >= fastest * SAME_SPEED)


def probe(measure: Callable[[int], float], counts: Sequence[int], rounds: int = PROBE_ROUNDS,
          budget_s: float = PROBE_BUDGET_S) -> dict[int, float]:
    """Median decode tok/s per count. The counts alternate within each round, in reverse order every other
    round, so a machine that speeds up or slows down meanwhile moves them all alike."""
    seen: dict[int, list[float]] = {n: [] for n in counts}
    start = time.monotonic()
    for round_no in range(rounds):
        if round_no and time.monotonic() - start > budget_s:
            break
        for n in counts if round_no % 2 == 0 else list(reversed(counts)):
            seen[n].append(measure(n))
    return {n: statistics.median(rates) for n, rates in seen.items()}


def user_choice(threads: int) -> ThreadChoice:
    return ThreadChoice(threads, threads, f"set by the user (threads = {threads}): no probe")


def unprobed(decode: int, prompt: int, why: str) -> ThreadChoice:
    """Where a probe would measure nothing useful (the work runs on a GPU): the engine's own counts."""
    return ThreadChoice(decode, prompt, why)


def measured_why(rates: dict[int, float], when: str) -> str:
    tried = ", ".join(f"{n} → {rate:.1f} tok/s" for n, rate in sorted(rates.items()))
    return f"fastest decode measured on this machine ({tried}; {when}); prefill on all {usable_cpus()} CPUs"


def probe_key(*parts: object) -> str:
    """A cache key for one model on one engine build on this machine: the CPU, its core and usable-CPU counts,
    and the caller's parts (model file, library versions)."""
    text = "|".join(str(p) for p in (cpu_model(), physical_cores(), usable_cpus(), *parts))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def _cache_path():
    return cache_dir() / CACHE_FILE


def _read_cache() -> dict[str, Any]:
    """The cached choices; a missing, damaged or foreign file is no cache (it is probed again and rewritten)."""
    path = _cache_path()
    if not os.path.lexists(path):
        return {}
    try:
        data = storage.read_json(path, "thread cache")
    except TaskclockError:
        return {}
    return data if isinstance(data, dict) else {}


def cached(key: str) -> ThreadChoice | None:
    entry = _read_cache().get(key)
    try:
        rates = {int(n): float(r) for n, r in entry["rates"].items()}  # type: ignore[index]
        decode, when = int(entry["decode"]), str(entry["measured"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError, AttributeError):
        return None
    if decode not in rates or not 1 <= decode <= usable_cpus():
        return None
    return ThreadChoice(decode, usable_cpus(), measured_why(rates, f"cached from {when}"), rates)


def _store(key: str, label: str, choice: ThreadChoice, when: str) -> None:
    """Keep the choice for the next load; a cache that cannot be written costs only a probe next time."""
    data = _read_cache()
    data.pop(key, None)  # re-inserted last: the oldest entries are the ones dropped
    data[key] = {"model": label, "decode": choice.decode, "rates": {str(n): r for n, r in choice.rates.items()},
                 "measured": when}
    data = dict(list(data.items())[-CACHE_ENTRIES:])
    try:
        storage.ensure_dir(_cache_path().parent)
        storage.write_atomic(_cache_path(), json.dumps(data, indent=1) + "\n")
    except StorageError:
        pass


def forget_all() -> None:
    """Drop every cached choice, so each model's next load measures again (`taskclock doctor --reprobe`)."""
    try:
        _cache_path().unlink(missing_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot remove {_cache_path()}: {exc.strerror or exc}", "check the cache folder") from None


def choose(key: str, label: str, measure: Callable[[int], float]) -> ThreadChoice:
    """The cached choice for ``key``, else a probe of every candidate count through ``measure`` (one count's
    decode tok/s), stored under ``key`` with ``label`` (what the entry is about, for a person reading the file)."""
    known = cached(key)
    if known is not None:
        return known
    rates = probe(measure, candidate_counts(physical_cores(), usable_cpus()))
    when = time.strftime("%Y-%m-%d %H:%M")
    choice = ThreadChoice(best_count(rates), usable_cpus(), measured_why(rates, f"probed {when}"), rates)
    _store(key, label, choice, when)
    return choice
