"""The ceiling of `taskclock load`'s client: how many streamed requests a second one client process sends on time.

`taskclock load`'s own client (runtime/loadclient.py over runtime/backends/http_async.py, the HTTP backend's
parser) sends a constant-rate open loop of requests to the deterministic parallel scripted server
(tests/parallel_server.py, in a process of its own, with slots for every request so it never queues: a 20 ms
TTFT, then 64 tokens 5 ms apart, one SSE chunk each), at rising rates, each for ``--seconds``. Per rate: the
rate achieved, the schedule error (actual send less scheduled send) p50 and p99, the loop thread's CPU share and
the task time's p50 against the server's service time (335 ms). The ceiling is the highest rate sent at ≥ 98% of
its schedule with a p99 schedule error ≤ 10 ms (target: ≥ 200 requests a second). The machine's other work
around each rate is recorded too (runtime/system.py), since on a shared machine it, not the client, sets the p99.

With ``--httpx`` it runs the same loop over httpx's asyncio client instead (same parser), for the comparison
that made the client its own (docs/BENCHMARKS.md).

    .venv/bin/python benchmarks/load_client.py [--rates 100,200,400,800] [--seconds 10] [--markdown]
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from the checkout: the imports below need these paths first, hence their `noqa: E402`.
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from parallel_server import ParallelServer, Script  # noqa: E402

from taskclock.runtime import arrivals, metrics, system  # noqa: E402
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model  # noqa: E402
from taskclock.runtime.backends.http import HttpModel  # noqa: E402
from taskclock.runtime.backends.http_async import Answer, Connections, stream_turn  # noqa: E402
from taskclock.runtime.events import Submitted, now_ns  # noqa: E402
from taskclock.runtime.loadclient import open_loop  # noqa: E402

SCRIPT = Script(slots=4096, ttft_ms=20, gap_ms=5, tokens=64)
MESSAGES = [{"role": "user", "content": "Count."}]
TARGET_RATE, TARGET_P99_MS, ON_TIME = 200, 10.0, 0.98


def httpx_sender(model: HttpModel, client):
    """The same turn over httpx's AsyncClient: its bytes through the HTTP backend's line splitter and parser."""
    from taskclock.runtime.backends.http import LineSplitter

    params = SamplingParams(max_tokens=SCRIPT.tokens)

    async def send(_: int) -> Answer:
        events = [Submitted(now_ns())]
        state, lines, end = model.stream_state(params), LineSplitter(), None
        async with client.stream("POST", model.endpoint(), json=model.request_body(MESSAGES, params)) as response:
            async for data in response.aiter_bytes():
                t = now_ns()
                for line in lines.feed(data):
                    events += state.feed(line, True, t)
                    end = t if state.finished else end
        return Answer(events + list(model.end(state, end, cancelled=False)), None)

    return send


async def one_rate(model: HttpModel, rate: float, seconds: float, use_httpx: bool, server_pid: int) -> dict:
    offsets = arrivals.schedule(arrivals.Arrival("constant"), rate, 0, duration_s=seconds)
    params = SamplingParams(max_tokens=SCRIPT.tokens)
    if use_httpx:
        import httpx

        client = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                                   timeout=60)
        send = httpx_sender(model, client)
    else:
        connections = Connections(model)

        async def send(_: int) -> Answer:
            return await stream_turn(model, connections, MESSAGES, params)

    watch = system.LoadWatch(exclude=[server_pid])
    watch.started()
    outcome = await open_loop(offsets, send)
    watch.finished()
    if use_httpx:
        await client.aclose()
    else:
        connections.close()
    sent = sorted(r.sent_ns for r in outcome.finished if r.sent_ns is not None)
    errors = [r.schedule_error_ms for r in outcome.finished if r.schedule_error_ms is not None]
    tasks = [metrics.task_time_s(r.answer.events) for r in outcome.finished if r.answer is not None]
    failed = sum(1 for r in outcome.finished if r.answer is not None and r.answer.events[-1].error)
    achieved = (len(sent) - 1) / ((sent[-1] - sent[0]) / 1e9) if len(sent) > 1 else 0.0
    return {"rate": rate, "requests": len(outcome.finished), "failed": failed, "achieved": achieved,
            "p50_ms": metrics.percentile(errors, 50), "p99_ms": metrics.percentile(errors, 99),
            "cpu": outcome.cpu_share, "task_p50_s": metrics.percentile([t for t in tasks if t], 50),
            "load": system.load_line(watch.record())}


def on_time(figures: dict) -> bool:
    return figures["achieved"] >= ON_TIME * figures["rate"] and (figures["p99_ms"] or 0) <= TARGET_P99_MS \
        and not figures["failed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="50,100,200,400,800", help="requests a second, in rising order")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long each rate sends")
    parser.add_argument("--httpx", action="store_true", help="httpx's AsyncClient instead of taskclock's client")
    parser.add_argument("--markdown", action="store_true", help="print a docs/BENCHMARKS.md section")
    args = parser.parse_args()
    rates = arrivals.parse_rates(args.rates)
    assert isinstance(rates, list), "--rates takes numbers here"
    results = []
    with ParallelServer(SCRIPT) as server:
        model = load_model(ModelSpec("parallel", "http", server.url, timeout_s=60, turn_timeout_s=120))
        assert isinstance(model, HttpModel)
        for rate in rates:
            figures = asyncio.run(one_rate(model, rate, args.seconds, args.httpx, server.proc.pid))
            results.append(figures)
            print(f"{rate:g} req/s: achieved {figures['achieved']:.1f}, schedule error p50 {figures['p50_ms']:.2f} ms "
                  f"p99 {figures['p99_ms']:.2f} ms, loop CPU {figures['cpu'] * 100:.0f}%, task p50 "
                  f"{figures['task_p50_s']:.3f} s (service {SCRIPT.service_s:.3f} s), {figures['failed']} failed; "
                  f"{figures['load']}", file=sys.stderr)
        model.close()
    ceiling = max((f["rate"] for f in results if on_time(f)), default=None)
    client = "httpx.AsyncClient" if args.httpx else "taskclock's asyncio client"
    if not args.markdown:
        print(f"ceiling ({client}): {ceiling or 'below the lowest rate'} req/s (target >= {TARGET_RATE})")
        return
    print("## Load client ceiling — `benchmarks/load_client.py`\n")
    print(f"{client}, a constant-rate open loop for {args.seconds:g} s a rate against tests/parallel_server.py in "
          f"its own process ({SCRIPT.ttft_ms:g} ms TTFT, {SCRIPT.tokens} tokens {SCRIPT.gap_ms:g} ms apart, one SSE "
          f"chunk each; service {SCRIPT.service_s * 1000:.0f} ms; no queueing).\n")
    print("| offered req/s | achieved | schedule error p50 | p99 | loop CPU | task p50 | machine's other work |")
    print("|---|---|---|---|---|---|---|")
    for f in results:
        print(f"| {f['rate']:g} | {f['achieved']:.1f} | {f['p50_ms']:.2f} ms | {f['p99_ms']:.2f} ms | "
              f"{f['cpu'] * 100:.0f}% | {f['task_p50_s']:.3f} s | {f['load']} |")
    print(f"\nCeiling: **{ceiling or 'below the lowest rate'} req/s** on time (≥ {ON_TIME:.0%} of the schedule, "
          f"p99 ≤ {TARGET_P99_MS:g} ms; target ≥ {TARGET_RATE}).")


if __name__ == "__main__":
    main()
