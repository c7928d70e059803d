"""The arrival processes of `taskclock load` (runtime/arrivals.py): statistical checks with a fixed seed, and the
rates and processes the command line refuses."""
from __future__ import annotations

import math
from statistics import fmean, stdev

import pytest

from taskclock.runtime import arrivals
from taskclock.runtime.arrivals import Arrival, parse_arrival, parse_rates, schedule
from taskclock.runtime.errors import DataError

N = 20_000  # gaps: the standard error of the mean is 0.7 % of it, of the CV 0.7-1.3 % (gamma's heavier tail)


def gaps(arrival: Arrival, rate: float, seed: int = 7) -> list[float]:
    return arrivals.gaps_of(schedule(arrival, rate, seed, count=N + 1))


@pytest.mark.parametrize("rate", [0.5, 4.0, 250.0])
def test_poisson_gaps_have_mean_one_over_the_rate_and_cv_one(rate):
    values = gaps(Arrival("poisson"), rate)
    assert fmean(values) == pytest.approx(1 / rate, rel=0.03)  # > 4 standard errors
    assert stdev(values) / fmean(values) == pytest.approx(1.0, rel=0.05)
    # exponential: the share of gaps longer than the mean is 1/e
    assert sum(g > 1 / rate for g in values) / N == pytest.approx(math.exp(-1), abs=0.015)


@pytest.mark.parametrize("burstiness", [0.25, 0.5, 4.0])
def test_gamma_gaps_have_the_rates_mean_and_the_cv_their_burstiness_says(burstiness):
    arrival = parse_arrival(f"gamma:{burstiness}")
    values = gaps(arrival, 2.0)
    assert arrival.cv == pytest.approx(1 / math.sqrt(burstiness))
    assert fmean(values) == pytest.approx(0.5, rel=0.04)
    assert stdev(values) / fmean(values) == pytest.approx(arrival.cv, rel=0.08)  # > 4 standard errors at 0.25


def test_constant_gaps_are_exact_and_gamma_one_is_poisson_in_distribution():
    assert set(round(g, 12) for g in gaps(Arrival("constant"), 8.0)) == {0.125}
    one = gaps(parse_arrival("gamma:1"), 3.0)
    assert stdev(one) / fmean(one) == pytest.approx(1.0, rel=0.05)


def test_a_schedule_is_the_seeds_own_and_ends_at_its_count_or_duration():
    poisson = Arrival("poisson")
    first = schedule(poisson, 2.0, 1, count=50)
    assert first == schedule(poisson, 2.0, 1, count=50)  # every model is sent the same schedule
    assert first != schedule(poisson, 2.0, 2, count=50)
    assert first[0] == 0 and len(first) == 50 and first == sorted(first)
    timed = schedule(poisson, 20.0, 1, duration_s=10)
    assert max(timed) < 10 and len(timed) == pytest.approx(200, rel=0.25)
    assert len(schedule(poisson, 20.0, 1, count=30, duration_s=100)) == 30  # the first bound to come ends it
    assert schedule(Arrival("constant"), 4.0, 0, duration_s=1) == [0, 0.25, 0.5, 0.75]


@pytest.mark.parametrize("text, shown", [("0", "above 0"), ("-1", "above 0"), ("nan", "above 0"),
                                         ("inf", "above 0"), ("1e9", "beyond what one client can send"),
                                         ("0.00001", "less than one in"), ("fast", "is not a number"),
                                         (",", "empty")])
def test_rates_a_client_cannot_send_are_one_line(text, shown):
    with pytest.raises(DataError) as info:
        parse_rates(text)
    assert shown in str(info.value) and "\n" not in str(info.value)


def test_rates_parse_in_order_without_repeats_and_auto():
    assert parse_rates("0.5, 1,2,1,4") == [0.5, 1.0, 2.0, 4.0]
    assert parse_rates(" AUTO ") == arrivals.AutoSearch(1.0)
    assert parse_rates("auto:5") == arrivals.AutoSearch(5.0)
    for bad in ("auto:x", "auto:0", "auto:1e9"):
        with pytest.raises(DataError):
            parse_rates(bad)


@pytest.mark.parametrize("text", ["poison", "gamma", "gamma:", "gamma:x", "gamma:0", "gamma:-1", "gamma:nan",
                                  "gamma:1e6", "constant:2", "\x1b[31mred"])
def test_an_unknown_or_bad_arrival_process_is_one_line(text):
    with pytest.raises(DataError) as info:
        parse_arrival(text)
    assert "--arrival" in str(info.value) and "\x1b" not in str(info.value)


def test_arrival_processes_name_themselves_as_they_parse():
    for text in ("poisson", "constant", "gamma:0.5"):
        assert str(parse_arrival(text)) == text
