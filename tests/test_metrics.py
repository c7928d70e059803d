"""Metrics over synthetic timestamps whose right answers are known by hand."""
import pytest

from taskclock.runtime import metrics
from taskclock.runtime.events import Done, Loaded, Submitted, Token

MS = 1_000_000


def turn(token_ms, *, submit_ms=0, done_ms=None, reason="eos", text="ab ", input_tokens=10, counts=None):
    events = [Submitted(submit_ms * MS)]
    for i, t in enumerate(token_ms):
        events.append(Token(int(t * MS), text, i, counts[i] if counts else 1))
    end = done_ms if done_ms is not None else (token_ms[-1] if token_ms else submit_ms)
    events.append(Done(int(end * MS), reason, input_tokens=input_tokens))
    return events


def test_ttft_is_first_token_minus_submit():
    assert metrics.ttft_s(turn([250, 300, 350], submit_ms=50)) == pytest.approx(0.200)


def test_decode_tps_counts_intervals_after_first_token():
    # 5 tokens, first at 100 ms, last at 500 ms: 4 tokens over 0.4 s.
    assert metrics.decode_tps(turn([100, 200, 300, 400, 500])) == pytest.approx(10.0)


def test_e2e_tps_counts_all_tokens_from_submit():
    assert metrics.e2e_tps(turn([100, 200, 300, 400, 500])) == pytest.approx(5 / 0.5)


def test_task_time_is_done_minus_submit():
    assert metrics.task_time_s(turn([100, 200], submit_ms=10, done_ms=710)) == pytest.approx(0.7)


def test_itl_percentiles_exclude_the_wait_for_the_first_token():
    events = turn([1000, 1010, 1030, 1060, 1100])  # gaps 10, 20, 30, 40
    assert metrics.inter_token_ms(events) == pytest.approx([10, 20, 30, 40])
    m = metrics.compute(events)
    assert m.itl_p50_ms == pytest.approx(25)
    assert m.itl_p90_ms == pytest.approx(37)
    assert m.itl_p99_ms == pytest.approx(39.7)


def test_percentile_matches_linear_interpolation():
    assert metrics.percentile([1, 2, 3, 4], 50) == 2.5
    assert metrics.percentile([7], 99) == 7
    assert metrics.percentile([], 50) is None


def test_words_chars_and_their_rates_are_tokenizer_free():
    events = turn([100, 200, 300, 400], done_ms=1000, text="hi ")  # "hi hi hi hi "
    m = metrics.compute(events)
    assert (m.output_chars, m.output_words) == (12, 4)
    assert m.chars_per_s == pytest.approx(12.0)
    assert m.words_per_s == pytest.approx(4.0)


def test_tokens_per_word_is_what_a_word_costs_in_tokens():
    assert metrics.compute(turn([100, 200, 300], text="ab")).tokens_per_word == pytest.approx(3.0)  # "ababab"
    assert metrics.compute(turn([100, 200, 300, 400], text="hi ")).tokens_per_word == pytest.approx(1.0)
    assert metrics.compute(turn([], done_ms=50)).tokens_per_word is None  # no words: undefined, not 0


def test_time_per_word_is_the_task_time_over_the_words():
    events = turn([100, 200, 300, 400], done_ms=1000, text="hi ")  # 4 words in 1 s, the first after 0.1 s
    assert metrics.compute(events).ms_per_word == pytest.approx(250.0)
    assert metrics.compute(turn([100, 200], done_ms=300, text="x")).ms_per_word == pytest.approx(300.0)  # "xx"
    assert metrics.compute(turn([], done_ms=50)).ms_per_word is None  # no words: undefined, not 0


def test_prefill_tps_and_load_time():
    events = [Loaded(0, 1.5, "m")] + turn([500, 600], input_tokens=100)
    m = metrics.compute(events)
    assert m.prefill_tps == pytest.approx(200.0)
    assert m.load_s == 1.5


def test_chunk_counts_weigh_decode_rate():
    # Server chunks: 1 token, then 3, then 4 at 100 ms intervals: 7 tokens after the first over 0.2 s.
    events = turn([100, 200, 300], counts=[1, 3, 4])
    assert metrics.output_tokens(events) == 8
    assert metrics.decode_tps(events) == pytest.approx(35.0)


def test_backend_reported_count_wins():
    events = turn([100, 200])
    events[-1] = Done(200 * MS, "eos", input_tokens=3, output_tokens=9)
    assert metrics.output_tokens(events) == 9


def test_text_only_events_are_not_timed():
    events = turn([100, 200])
    events.insert(-1, Token(900 * MS, "tail", None, count=0))
    assert metrics.output_text(events).endswith("tail")
    assert metrics.inter_token_ms(events) == pytest.approx([100])
    assert metrics.output_tokens(events) == 2


def test_instant_tps_uses_one_second_window_and_decays_on_stall():
    ticks = [i * 10 for i in range(1, 301)]  # 100 tok/s for 3 s
    events = turn(ticks)[:-1]
    assert metrics.instant_tps(events) == pytest.approx(100.0)
    # Half a second of silence: only the last 0.5 s of tokens remain in the window.
    assert metrics.instant_tps(events, now_ns=3500 * MS) == pytest.approx(50.0, rel=0.03)
    assert metrics.instant_tps(events, now_ns=5000 * MS) == 0.0


def test_instant_tps_young_stream_uses_time_since_first_token():
    events = turn([100, 150, 200])[:-1]  # 2 gaps over 0.1 s
    assert metrics.instant_tps(events) == pytest.approx(20.0)


def test_undefined_figures_are_none_not_zero():
    m = metrics.compute([Submitted(0), Done(5 * MS, "error")])
    assert m.ttft_s is None and m.decode_tps is None and m.itl_p50_ms is None
    assert m.output_tokens == 0 and m.task_time_s == pytest.approx(0.005)


def test_token_offsets_are_ms_after_submit():
    assert metrics.token_offsets_ms(turn([100, 250.5], submit_ms=50)) == [50.0, 200.5]


def test_itl_is_per_token_where_an_arrival_holds_several_and_the_chunk_gap_is_apart():
    # chunks of 1, 3 and 2 tokens at 100, 160 and 200 ms: 60 ms over 3 tokens, 40 ms over 2
    events = turn([100, 160, 200], counts=[1, 3, 2])
    assert metrics.inter_token_ms(events) == pytest.approx([20, 20, 20, 20, 20])
    assert metrics.chunk_gaps_ms(events) == pytest.approx([60, 40])
    figures = metrics.compute(events)
    assert (figures.itl_p50_ms, figures.chunk_gap_p50_ms) == pytest.approx((20, 50))
    assert figures.decode_tps == pytest.approx(5 / 0.1)  # the 5 tokens after the first chunk's one
    assert metrics.compute(turn([100, 200])).chunk_gap_p50_ms is None  # one token an arrival: ITL says it


def test_a_backends_attribution_of_its_count_to_the_arrivals_wins():
    events = turn([100, 200, 300])
    events[-1] = Done(300 * MS, "eos", output_tokens=9, extra={"arrival_counts": [3, 3, 3]})
    assert metrics.token_counts(events) == [3, 3, 3]
    assert metrics.decode_tps(events) == pytest.approx(6 / 0.2)  # not 8 / 0.2: the first chunk held 3
    events[-1] = Done(300 * MS, "eos", output_tokens=9, extra={"arrival_counts": [3, 6]})  # does not fit: unused
    assert metrics.token_counts(events) == [1, 1, 1]


def test_a_reply_cut_at_the_cap_or_never_out_of_thinking_is_cut():
    assert metrics.compute(turn([100, 200], reason="length")).cut is True
    assert metrics.compute(turn([100, 200])).cut is None
    assert metrics.compute(turn([100, 200], reason="cancelled")).cut is None  # stopped by the user: not a cap
    thinking = [Submitted(0), Token(100 * MS, "hm", phase="thinking"), Done(200 * MS, "eos")]
    assert metrics.compute(thinking).cut is True  # ended without an answer


def test_the_backends_own_prefill_time_is_kept():
    events = turn([100, 200])
    events[-1] = Done(200 * MS, "eos", extra={"llama_perf": {"prompt_eval_ms": 42.0}})
    assert metrics.compute(events).backend_prefill_s == pytest.approx(0.042)
    events[-1] = Done(200 * MS, "eos", extra={"server_timings": {"prompt_ms": 7.5}})
    assert metrics.compute(events).backend_prefill_s == pytest.approx(0.0075)
    assert metrics.compute(turn([100])).backend_prefill_s is None
