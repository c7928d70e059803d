"""When an open-loop load's requests arrive: the arrival processes of `taskclock load` and the rates it runs.

An open loop sends each request at its arrival time whether or not earlier ones have finished, as users of a
service do; a closed loop (bench --batch-sizes) waits for a request to end before the next, so it can never
overload a server and hides its queue. The gaps between arrivals at rate λ (requests a second) are:

- ``constant``: exactly 1/λ;
- ``poisson``: exponential with mean 1/λ (independent users: coefficient of variation 1);
- ``gamma:B``: gamma with shape B and mean 1/λ, vLLM's ``--burstiness B``: B = 1 is Poisson, B < 1 burstier
  (CV = 1/√B: ``gamma:0.25`` has CV 2), B > 1 smoother, towards constant.

A schedule is the arrival offsets in seconds from the first (which arrives at 0), drawn from a seeded generator,
so the same seed sends every model the same schedule. Docs: docs/METRICS.md ("Load").
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .errors import DataError
from .untrusted import safe_line

KINDS = ("constant", "poisson", "gamma")
MAX_RATE = 10_000.0  # requests a second: far beyond what one client process sends (docs/BENCHMARKS.md)
MIN_RATE = 1e-3  # one request in 17 minutes: below this a rate is a typo
MIN_BURSTINESS, MAX_BURSTINESS = 0.01, 100.0


@dataclass(frozen=True)
class Arrival:
    """An arrival process; ``burstiness`` is the gamma shape (1 for Poisson, unused for constant)."""

    kind: str = "poisson"
    burstiness: float = 1.0

    def __str__(self) -> str:
        return f"gamma:{self.burstiness:g}" if self.kind == "gamma" else self.kind

    @property
    def cv(self) -> float:
        """The coefficient of variation of the gaps (sd / mean)."""
        if self.kind == "constant":
            return 0.0
        return 1.0 if self.kind == "poisson" else 1 / math.sqrt(self.burstiness)

    def gap(self, rate: float, rng: random.Random) -> float:
        """One gap in seconds, with mean 1/rate."""
        if self.kind == "constant":
            return 1 / rate
        if self.kind == "poisson":
            return rng.expovariate(rate)
        return rng.gammavariate(self.burstiness, 1 / (rate * self.burstiness))


def parse_arrival(text: str) -> Arrival:
    """``poisson``, ``constant`` or ``gamma:B``; anything else is one DataError."""
    name, _, value = text.strip().lower().partition(":")
    fix = "pass --arrival poisson, constant or gamma:B (B the burstiness, e.g. gamma:0.5)"
    if name not in KINDS:
        raise DataError(f"--arrival: unknown arrival process {safe_line(text)!r}", fix)
    if name != "gamma":
        if value:
            raise DataError(f"--arrival: {name} takes no parameter ({safe_line(text)!r})", fix)
        return Arrival(name)
    try:
        burstiness = float(value)
    except ValueError:
        raise DataError(f"--arrival: gamma needs its burstiness as a number, not {safe_line(value)!r}", fix) from None
    if not MIN_BURSTINESS <= burstiness <= MAX_BURSTINESS:  # NaN fails this too
        raise DataError(f"--arrival: the burstiness must be between {MIN_BURSTINESS:g} and {MAX_BURSTINESS:g}, "
                        f"not {safe_line(value)}", fix)
    return Arrival("gamma", burstiness)


def check_rate(rate: float, option: str = "--rates") -> float:
    """A rate of requests a second that one client can send: finite, positive and at most MAX_RATE."""
    if not math.isfinite(rate) or rate <= 0:
        raise DataError(f"{option}: a rate must be a finite number of requests a second above 0, not {rate:g}",
                        "pass e.g. --rates 0.5,1,2,4")
    if rate < MIN_RATE:
        raise DataError(f"{option}: a rate of {rate:g} requests a second is less than one in "
                        f"{1 / MIN_RATE / 60:.0f} minutes", f"pass a rate of at least {MIN_RATE:g}")
    if rate > MAX_RATE:
        raise DataError(f"{option}: {rate:g} requests a second is beyond what one client can send "
                        f"(at most {MAX_RATE:g})", "pass a lower rate, or split the load over several clients "
                                                   "(docs/HTTP.md)")
    return rate


@dataclass(frozen=True)
class AutoSearch:
    """``--rates auto`` (or ``auto:R``): search for the highest rate that meets the SLO, starting at ``start``."""

    start: float = 1.0


def parse_rates(text: str) -> list[float] | AutoSearch:
    """``--rates 0.5,1,2,4`` as rates in the order given (repeats dropped), or an AutoSearch for ``auto[:R]``."""
    name, colon, start = text.strip().lower().partition(":")
    if name == "auto":
        if not colon:
            return AutoSearch()
        try:
            return AutoSearch(check_rate(float(start)))
        except ValueError:
            raise DataError(f"--rates: auto:{safe_line(start)!r} does not start at a number",
                            "pass auto, or auto:R with R the first rate, e.g. auto:5") from None
    rates: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            rate = float(part)
        except ValueError:
            raise DataError(f"--rates: {safe_line(part)!r} is not a number", "pass e.g. --rates 0.5,1,2,4 or auto") \
                from None
        rates.append(check_rate(rate))
    if not rates:
        raise DataError("--rates is empty", "pass e.g. --rates 0.5,1,2,4 or auto")
    return list(dict.fromkeys(rates))


def schedule(arrival: Arrival, rate: float, seed: int, *, count: int | None = None,
             duration_s: float | None = None) -> list[float]:
    """The arrival offsets (s, the first at 0) of ``count`` requests, or of those arriving within ``duration_s``,
    or whichever bound comes first; the same arguments give the same schedule."""
    if count is None and duration_s is None:
        raise ValueError("a schedule needs a count or a duration")
    rng = random.Random(f"{seed}:{rate!r}:{arrival}")  # each rate its own stream, the same for every model
    offsets: list[float] = []
    t = 0.0
    while (count is None or len(offsets) < count) and (duration_s is None or t < duration_s):
        offsets.append(t)
        t += arrival.gap(rate, rng)
    return offsets


def gaps_of(offsets: list[float]) -> list[float]:
    return [b - a for a, b in zip(offsets, offsets[1:], strict=False)]
