"""Mean, standard deviation and a t-based 95% confidence interval over repeated runs (as llama-bench and
AIPerf report them): a one-shot figure on a noisy machine is not a result."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import fmean, stdev

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom; beyond that the normal's 1.96 is
# within 2%.
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)
Z_975 = 1.960


def t_quantile(dof: int) -> float:
    return T_975[dof - 1] if dof <= len(T_975) else Z_975


@dataclass(frozen=True)
class Spread:
    """n values: their mean, sample sd and the 95% CI half-width (None with fewer than two values)."""

    n: int
    mean: float
    sd: float | None
    ci95: float | None

    @property
    def low(self) -> float | None:
        return None if self.ci95 is None else self.mean - self.ci95

    @property
    def high(self) -> float | None:
        return None if self.ci95 is None else self.mean + self.ci95


def spread(values: Sequence[float]) -> Spread | None:
    if not values:
        return None
    if len(values) == 1:
        return Spread(1, values[0], None, None)
    sd = stdev(values)
    return Spread(len(values), fmean(values), sd, t_quantile(len(values) - 1) * sd / math.sqrt(len(values)))


def excludes_zero(value: Spread | None) -> bool:
    """Whether a difference's 95% interval leaves 0 out: the one test a ranking, a "fastest" or a
    disagreement must pass to stand (one value has no interval, so it never does)."""
    return value is not None and value.ci95 is not None and abs(value.mean) > value.ci95


MAX_NEEDED = 100_000  # beyond this many samples, "would tell" is not a useful number


def samples_needed(value: Spread | None) -> int | None:
    """The fewest paired samples whose 95% interval would leave 0 out, were the mean difference and its sd what
    this run saw; None where there is no spread to go by (one sample, or a zero difference)."""
    if value is None or value.sd is None or value.mean == 0:
        return None
    if value.sd == 0:
        return 2
    for n in range(2, MAX_NEEDED):
        if t_quantile(n - 1) * value.sd / math.sqrt(n) < abs(value.mean):
            return n
    return None
