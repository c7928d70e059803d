"""The open-loop client of `taskclock load`: sends each request at its scheduled arrival on one asyncio loop, keeps
at most ``max_in_flight`` in flight, and keeps its own schedule error.

Every request records three moments (``time.perf_counter_ns()``): when it was due (its scheduled arrival), when
the in-flight cap let it go (``released``; the arrival itself where no cap held it) and when it was sent (its
``Submitted``). **Queue delay** is sent − due: how long its user waited before the request left (the cap, and
the client's own lateness). **Schedule error** is sent − released: the client's lateness alone, which an open
loop must keep small or it measures itself; the run reports its p99 and warns past 10 ms, and warns when the
loop's thread was busy most of the time (its CPU saturated). Docs: docs/METRICS.md ("Load").
"""
from __future__ import annotations

import asyncio
import resource
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .backends.http_async import Answer
from .events import now_ns

LEAD_NS = 20_000_000  # the first arrival is this far after the loop starts, so it is not late by the start-up
CANCEL_POLL_S = 0.05
SCHEDULE_WARN_MS = 10.0  # a p99 schedule error beyond this: the client, not the server, shaped the load
CPU_WARN = 0.9  # the loop's thread busy this share of the time: the client was near its ceiling
_RUSAGE = getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)  # the loop's own thread where the OS says


@dataclass
class Sent:
    """One request the client sent and what came back (``answer``; None when it was dropped in flight)."""

    index: int
    due_ns: int
    released_ns: int
    answer: Answer | None = None

    @property
    def sent_ns(self) -> int | None:
        return self.answer.events[0].t_ns if self.answer is not None else None

    @property
    def queue_delay_s(self) -> float | None:
        return None if self.sent_ns is None else (self.sent_ns - self.due_ns) / 1e9

    @property
    def schedule_error_ms(self) -> float | None:
        return None if self.sent_ns is None else (self.sent_ns - max(self.due_ns, self.released_ns)) / 1e6


@dataclass
class LoopOutcome:
    """What one open loop did: its requests (finished, dropped), when it started, how much of the loop thread's
    time it used, and why it ended early (``stopped``: "saturated", "cancelled", or "")."""

    start_ns: int
    finished: list[Sent] = field(default_factory=list)
    dropped: list[Sent] = field(default_factory=list)
    unsent: int = 0
    most_in_flight: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    stopped: str = ""

    @property
    def cpu_share(self) -> float | None:
        return self.cpu_s / self.wall_s if self.wall_s > 0 else None


def _cpu_s() -> float:
    usage = resource.getrusage(_RUSAGE)
    return usage.ru_utime + usage.ru_stime


async def open_loop(offsets: Sequence[float], send: Callable[[int], Awaitable[Answer]], *,
                    max_in_flight: int = 0, cancel: threading.Event | None = None,
                    on_finished: Callable[[Sent, int], bool] | None = None) -> LoopOutcome:
    """Send request ``i`` (``send(i)``) at ``offsets[i]`` seconds after the start, at most ``max_in_flight`` at
    once (0: no cap). ``on_finished`` sees each request as it ends (and how many are still in flight) and returns
    False to stop the loop (a rate that saturated): the requests in flight are then dropped and the rest never
    sent; so are they on ``cancel``."""
    cancel = cancel or threading.Event()
    slots = asyncio.Semaphore(max_in_flight) if max_in_flight > 0 else None
    outcome = LoopOutcome(start_ns=now_ns() + LEAD_NS)
    running: dict[asyncio.Task, Sent] = {}
    stop = asyncio.Event()
    failures: list[BaseException] = []  # a send that raised: a bug or a broken model, for the runner's failure policy
    created = in_flight = 0
    cpu_before, wall_before = _cpu_s(), time.perf_counter()

    async def one(request: Sent) -> None:
        nonlocal in_flight
        try:
            request.answer = await send(request.index)
        except Exception as exc:
            failures.append(exc)
            stop.set()
            return
        finally:
            in_flight -= 1
            if slots is not None:
                slots.release()
        outcome.finished.append(request)
        if on_finished is not None and not on_finished(request, in_flight) and not outcome.stopped:
            outcome.stopped = "saturated"
            stop.set()

    async def watch_cancel() -> None:
        while not stop.is_set():
            if cancel.is_set():
                outcome.stopped = outcome.stopped or "cancelled"
                stop.set()
                return
            await asyncio.sleep(CANCEL_POLL_S)

    async def schedule() -> None:
        nonlocal created, in_flight
        for index, offset in enumerate(offsets):
            due = outcome.start_ns + round(offset * 1e9)
            delay = (due - now_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            if slots is not None:
                await slots.acquire()
            if stop.is_set():
                return
            created += 1
            in_flight += 1
            outcome.most_in_flight = max(outcome.most_in_flight, in_flight)
            request = Sent(index, due, max(due, now_ns()))
            task = asyncio.create_task(one(request))
            running[task] = request
            task.add_done_callback(running.pop)

    watcher = asyncio.create_task(watch_cancel())
    scheduler = asyncio.create_task(schedule())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([scheduler, stopped], return_when=asyncio.FIRST_COMPLETED)
    while running and not stop.is_set():  # every request sent: wait for the last to end, or a stop
        await asyncio.wait([*running, stopped], return_when=asyncio.FIRST_COMPLETED)
    scheduler.cancel()
    for task, request in list(running.items()):
        task.cancel()
        outcome.dropped.append(request)
    await asyncio.gather(*running, scheduler, return_exceptions=True)
    stop.set()
    await asyncio.gather(watcher, stopped, return_exceptions=True)
    if failures:
        raise failures[0]
    outcome.unsent = len(offsets) - created
    outcome.wall_s = time.perf_counter() - wall_before
    outcome.cpu_s = _cpu_s() - cpu_before
    return outcome
