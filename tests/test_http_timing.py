"""HTTP figures true to the token, against a deterministic server on loopback whose schedule is the truth: tokens
packed into chunks are attributed to them (per-token ITL, decode rate), the chunk gap is a figure of its own,
and a turn ends when its last line arrives. Each check compares with what the server really sent and when
(``server.sent``, on taskclock's clock), so a busy machine that delays the server's sleeps moves the truth with
it."""
from __future__ import annotations

import pytest
from llama_server import content_chunk, reasoning_chunk, running_scripted_server, sse

from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.events import Token
from taskclock.runtime.metrics import percentile
from taskclock.runtime.turn import run_turn

ASK = [{"role": "user", "content": "Count."}]
GAP_S = 0.05
CHUNKS = 40
PER_CHUNK = 3  # tokens in every chunk: 120 in all, 60 tok/s at one chunk each 50 ms
END = [sse(content_chunk("", "stop"))]


@pytest.fixture
def server():
    with running_scripted_server(prompt=True) as served:
        yield served


def scripted(server):
    return load_model(ModelSpec("scripted", "http", server.url))


def paced(pieces: list[bytes], gap_s: float = GAP_S) -> list:
    """The pieces ``gap_s`` apart (the first at once)."""
    script: list = [pieces[0]]
    for piece in pieces[1:]:
        script += [gap_s, piece]
    return script


def sent_gaps_ms(server, chunks: int) -> list[float]:
    """The gaps between the content chunks as the server really sent them."""
    sent = server.sent[:chunks]
    return [(b - a) / 1e6 for a, b in zip(sent, sent[1:], strict=False)]


def test_three_tokens_a_chunk_are_counted_per_token(server):
    """The first chunk holds 3 tokens, not 1: decode is (120 − 3) tokens over the chunks' span (60.0 tok/s on
    the nominal schedule; 61.0 when the first chunk counted as one token), the per-token ITL a third of the
    chunk gap (16.67 ms), the chunk gap its own figure (50 ms)."""
    usage = {"prompt_tokens": 5, "completion_tokens": CHUNKS * PER_CHUNK}
    server.script = [*paced([sse(content_chunk(" a b c")) for _ in range(CHUNKS)]), *END,
                     sse({"choices": [], "usage": usage}), sse("[DONE]")]
    result = run_turn(scripted(server), ASK, SamplingParams(max_tokens=500))
    figures, gaps = result.metrics, sent_gaps_ms(server, CHUNKS)
    assert result.done.extra["token_count_source"] == "usage-spread"
    assert result.done.extra["arrival_counts"] == [PER_CHUNK] * CHUNKS
    span_s = sum(gaps) / 1000
    assert span_s >= (CHUNKS - 1) * GAP_S  # the schedule's pauses really happened
    truth = (CHUNKS * PER_CHUNK - PER_CHUNK) / span_s  # 60.0 on the nominal schedule
    assert figures.decode_tps == pytest.approx(truth, rel=0.005)
    assert figures.itl_p50_ms == pytest.approx(percentile(gaps, 50) / PER_CHUNK, abs=0.5)  # 16.67 nominal
    assert figures.chunk_gap_p50_ms == pytest.approx(percentile(gaps, 50), abs=1.5)  # 50 nominal
    assert figures.output_tokens == CHUNKS * PER_CHUNK


def test_a_running_count_on_every_chunk_gives_each_chunk_its_own_tokens(server):
    """vLLM's continuous_usage_stats: the count on each chunk says how many tokens it added."""
    running = [2, 5, 6, 10]
    server.script = [*paced([sse({**content_chunk(" x" * n), "usage": {"completion_tokens": total}})
                             for n, total in zip((2, 3, 1, 4), running, strict=True)]), *END, sse("[DONE]")]
    result = run_turn(scripted(server), ASK, SamplingParams(max_tokens=50))
    assert result.done.extra["token_count_source"] == "usage-per-chunk"
    assert result.done.extra["arrival_counts"] == [2, 3, 1, 4]
    arrivals = [e.t_ns for e in result.events if isinstance(e, Token) and e.count]
    # 10 tokens less the first chunk's 2 over the span of the arrivals (not 9 less 1: one token a chunk)
    assert result.metrics.decode_tps == pytest.approx(8 / ((arrivals[-1] - arrivals[0]) / 1e9))


def test_reasoning_and_answer_counts_are_spread_apart(server):
    usage = {"completion_tokens": 14, "completion_tokens_details": {"reasoning_tokens": 10}}
    server.script = [sse(reasoning_chunk("hm")), sse(reasoning_chunk("hmm")), sse(content_chunk("A")),
                     sse(content_chunk("B")), *END, sse({"choices": [], "usage": usage}), sse("[DONE]")]
    result = run_turn(scripted(server), ASK, SamplingParams(max_tokens=50))
    assert result.done.extra["arrival_counts"] == [5, 5, 2, 2]
    assert (result.metrics.thinking_tokens, result.metrics.answer_tokens) == (10, 4)


def test_fewer_tokens_than_chunks_keep_one_token_a_chunk(server):
    server.script = [sse(content_chunk("a")), sse(content_chunk("b")), sse(content_chunk("c")), *END,
                     sse({"choices": [], "usage": {"completion_tokens": 2}}), sse("[DONE]")]
    result = run_turn(scripted(server), ASK, SamplingParams(max_tokens=50))
    assert result.done.extra["token_count_source"] == "usage" and "arrival_counts" not in result.done.extra
    assert result.metrics.chunk_gap_p50_ms is None  # one token an arrival: the ITL is the chunk gap


def test_the_turn_ends_when_its_last_line_arrives(server):
    """One token a chunk, 0.1 s to the first and 45 gaps of 50 ms: 2.350 s on the nominal schedule. The task
    time is the server's last write after submission plus the loopback hop, never the guard thread's wake-up
    (a 50 ms poll before): within 5 ms, on each of three turns."""
    model = scripted(server)
    for _ in range(3):
        server.sent.clear()
        server.script = [0.1, *paced([sse(content_chunk(" w")) for _ in range(46)]), *END, sse("[DONE]")]
        result = run_turn(model, ASK, SamplingParams(max_tokens=100))
        submitted, last_sent = result.events[0].t_ns, server.sent[-1]
        assert last_sent - submitted >= 2.35e9  # the schedule really ran
        assert 0 <= result.metrics.task_time_s - (last_sent - submitted) / 1e9 <= 0.005
