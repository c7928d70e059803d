"""The asyncio client of `taskclock load` (runtime/backends/http_async.py, runtime/loadclient.py): the same turn as
the HTTP backend's own thread reads, against every hostile server mode; its keep-alive connections; and the open
loop's schedule, cap, stop and cancel, against the deterministic parallel scripted server."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest
from hostile_server import CAUSE, EXPECT, LOAD_ERROR, MODES, REPLY, running_hostile_server
from parallel_server import ParallelServer, Script

from taskclock.runtime import metrics
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.backends.http_async import Connections, stream_turn
from taskclock.runtime.events import Done
from taskclock.runtime.loadclient import open_loop

HI = [{"role": "user", "content": "hi"}]
# This client inflates a gzip body 64 KiB at a time, so it reads the line-break bomb's first line (an empty data
# line) before its reply reaches the 64 MiB cap; the thread path's httpx inflates a whole read at once.
ASYNC_CAUSE = {**CAUSE, "gzip_bomb_lines": "malformed SSE line"}


def run(coroutine):
    return asyncio.run(coroutine)


async def one_turn(model, params, connections=None):
    connections = connections or Connections(model)
    try:
        return await stream_turn(model, connections, HI, params)
    finally:
        connections.close()


@pytest.fixture(scope="module")
def hostile():
    with running_hostile_server() as server:
        yield server


@pytest.mark.parametrize("mode", sorted(m for m in MODES if EXPECT[m] != LOAD_ERROR))
def test_every_hostile_mode_ends_as_the_thread_path_ends_it(hostile, mode):
    source, _, name = hostile.url(mode).partition("#")
    model = load_model(ModelSpec("hostile", "http", source, api_model=name, timeout_s=1.5, turn_timeout_s=3.0))
    params = SamplingParams(max_tokens=1000 if mode == "slow_endless" else 16)
    try:
        threaded = list(model.stream(HI, params))
        answer = run(one_turn(model, params))
    finally:
        model.close()
    done, mine = threaded[-1], answer.events[-1]
    assert isinstance(mine, Done) and isinstance(done, Done)
    assert mine.stop_reason == done.stop_reason, (mine.error, done.error)
    assert (mine.error is None) == (EXPECT[mode] == REPLY), mine.error
    if mode in ASYNC_CAUSE:
        assert ASYNC_CAUSE[mode] in (mine.error or ""), mine.error
    if EXPECT[mode] == REPLY:
        assert metrics.answer_text(answer.events) == metrics.answer_text(threaded)
        assert metrics.output_tokens(answer.events) == metrics.output_tokens(threaded)
    assert "\x1b" not in (mine.error or "")


@pytest.fixture(scope="module")
def parallel():
    with ParallelServer(Script(slots=4, ttft_ms=40, gap_ms=10, tokens=8)) as server:
        yield server


def test_a_turn_times_each_token_at_its_arrival_and_keeps_its_connection(parallel):
    model = load_model(ModelSpec("parallel", "http", parallel.url))
    connections = Connections(model)

    async def three():
        answers = [await stream_turn(model, connections, HI, SamplingParams(max_tokens=8)) for _ in range(3)]
        kept = len(connections.idle)
        connections.close()
        return answers, kept

    answers, kept = run(three())
    assert kept == 1  # one connection carried all three
    for answer in answers:
        figures = metrics.compute(answer.events)
        assert figures.output_tokens == 8 and figures.stop_reason == "eos"
        assert figures.ttft_s == pytest.approx(0.040, abs=0.030)
        assert figures.itl_p50_ms == pytest.approx(10, abs=5)  # the server's gap, read as it came
        assert answer.first_byte_ns is not None and answer.events[0].t_ns <= answer.first_byte_ns
    model.close()


async def _closing_server(replies: list[bytes]):
    """A server that answers one request per connection with keep-alive headers, then closes the connection
    without saying so: the next request on a kept connection finds it closed."""
    async def handle(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        body = b'data: {"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n'
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        replies.append(body)
        await asyncio.sleep(0.05)
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_kept_connection_the_server_closed_is_retried_once_on_a_new_one(scripted_server):
    model = load_model(ModelSpec("scripted", "http", scripted_server.url))

    async def twice():
        replies: list[bytes] = []
        server = await _closing_server(replies)
        port = server.sockets[0].getsockname()[1]
        model.url = f"http://127.0.0.1:{port}/v1"
        connections = Connections(model)
        first = await stream_turn(model, connections, HI, SamplingParams(max_tokens=4))
        await asyncio.sleep(0.2)  # the server has closed the kept connection by now
        second = await stream_turn(model, connections, HI, SamplingParams(max_tokens=4))
        server.close()
        connections.close()
        return first, second, replies

    first, second, replies = run(twice())
    assert [metrics.answer_text(a.events) for a in (first, second)] == ["ok", "ok"]
    assert second.events[-1].error is None and len(replies) == 2
    model.close()


def open_loop_on(server, offsets, **options):
    model = load_model(ModelSpec("parallel", "http", server.url))
    params = SamplingParams(max_tokens=server.script.tokens)

    async def go():
        connections = Connections(model)
        try:
            return await open_loop(offsets, lambda i: stream_turn(model, connections, HI, params), **options)
        finally:
            connections.close()

    try:
        return run(go())
    finally:
        model.close()


def test_an_open_loop_sends_on_schedule_and_its_cap_holds_the_rest_back():
    with ParallelServer(Script(slots=16, ttft_ms=20, gap_ms=10, tokens=6)) as server:
        free = open_loop_on(server, [i * 0.02 for i in range(40)])
        assert len(free.finished) == 40 and not free.dropped and free.unsent == 0
        assert sorted(r.index for r in free.finished) == list(range(40))
        errors = [r.schedule_error_ms for r in free.finished]
        assert metrics.percentile(errors, 50) < 5  # at 50 req/s the client is nowhere near its ceiling
        capped = open_loop_on(server, [0.0] * 12, max_in_flight=3)
        assert server.stats()["most_busy"] <= 16
    waits = sorted(r.queue_delay_s for r in capped.finished)
    service = 0.02 + 5 * 0.01
    # twelve at once, three at a time: four waves, the last waiting three services for its turn
    assert waits[-1] == pytest.approx(3 * service, abs=0.06)
    assert all(r.schedule_error_ms < 50 for r in capped.finished)  # the wait is the cap's, not lateness


def test_a_loop_stops_when_told_to_and_drops_what_is_in_flight(parallel):
    seen = []

    def on_finished(request, in_flight):
        seen.append(request.index)
        return len(seen) < 3

    outcome = open_loop_on(parallel, [i * 0.01 for i in range(50)], on_finished=on_finished)
    assert outcome.stopped == "saturated" and 3 <= len(outcome.finished) < 10  # others may end in the same tick
    assert outcome.unsent + len(outcome.dropped) + len(outcome.finished) == 50 and outcome.unsent > 0


def test_a_cancel_ends_the_loop_within_its_poll(parallel):
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    began = time.monotonic()
    outcome = open_loop_on(parallel, [i * 0.05 for i in range(200)], cancel=cancel)
    assert outcome.stopped == "cancelled" and time.monotonic() - began < 3
    assert outcome.unsent > 150
