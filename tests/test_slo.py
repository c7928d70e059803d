"""SLOs, attainment and goodput (runtime/slo.py), worked out by hand."""
from __future__ import annotations

import pytest

from taskclock.runtime.errors import DataError
from taskclock.runtime.slo import attainment, goodput, parse_slo


def row(ttft=0.5, task=4.0, wait=0.0, tps=50.0, ttfa=None, stop="eos"):
    return {"ttft_s": ttft, "task_time_s": task, "queue_delay_s": wait, "decode_tps": tps, "ttfa_s": ttfa,
            "stop_reason": stop}


def test_an_slo_parses_seconds_and_milliseconds_in_its_own_order():
    slo = parse_slo("task=10, TTFT=1s,itl=50ms")
    assert slo.bounds == (("ttft", 1.0), ("task", 10.0), ("itl", 0.05))
    assert str(slo) == "ttft=1s,task=10s,itl=50ms"
    assert parse_slo(str(slo)) == slo  # run.toml keeps it as text
    assert slo.phrase() == "within TTFT 1 s and task time 10 s and time per token 50 ms"


def test_each_bound_is_measured_from_the_scheduled_arrival():
    slo = parse_slo("ttft=1,task=5,itl=25ms")
    assert slo.met(row())
    assert slo.misses(row(wait=0.6)) == ["ttft"]  # 0.6 s in the queue + 0.5 s TTFT
    assert slo.misses(row(wait=1.5)) == ["ttft", "task"]
    assert slo.misses(row(tps=20.0)) == ["itl"]  # 50 ms a token
    assert slo.misses(row(stop="error")) == ["error"]
    assert parse_slo("ttfa=2").misses(row(ttfa=2.5)) == ["ttfa"]
    assert parse_slo("ttfa=2").met(row(ttft=1.0))  # no thinking: TTFA is TTFT


def test_attainment_counts_requests_that_never_finished_and_goodput_is_per_second():
    slo = parse_slo("task=5")
    rows = [row(), row(task=6.0), row(), row(stop="error")]
    assert attainment(slo, rows, counted=5) == pytest.approx(2 / 5)  # the fifth was dropped unsent
    assert goodput(slo, rows, duration_s=4.0) == pytest.approx(0.5)
    assert attainment(parse_slo("task=5"), [], counted=0) is None


@pytest.mark.parametrize("text, shown", [("tft=1", "did you mean ttft?"), ("latency=3", "unknown objective"),
                                         ("ttft", "needs a bound"), ("ttft=", "needs a bound"),
                                         ("ttft=fast", "is not a time"), ("ttft=0", "above 0"),
                                         ("task=-1", "above 0"), ("task=nan", "above 0"), ("task=1e9", "a day"),
                                         ("ttft=1,ttft=2", "given twice"), ("", "empty"), (" , ", "empty")])
def test_a_typo_in_an_slo_is_one_line(text, shown):
    with pytest.raises(DataError) as info:
        parse_slo(text)
    assert shown in str(info.value) and "\n" not in str(info.value)
