"""The thread every transformers generate() runs on, and the streamer that timestamps its tokens.

Shared by single turns (``hf.py``) and padded batches (``hf_batch.py``).
"""
from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

from ..backend import SamplingParams
from ..events import now_ns

END = object()  # put on a streamer's queue when generate() has finished (or failed)


class TimestampStreamer:
    """A generate() streamer that records (perf_counter_ns, token ids) as each step's tokens appear."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prompt_seen = False

    def put(self, value) -> None:
        t = now_ns()
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self.queue.put((t, value.reshape(-1).tolist()))

    def end(self) -> None:
        self.queue.put(END)


class GenerationWorker:
    """One long-lived thread that runs every generate() of a model, one after another.

    torch keeps state per thread: the OpenMP thread team on CPU, and under torch.compile's
    "reduce-overhead" mode the CUDA graph trees, which are thread-local. A fresh thread per turn would
    re-record the graphs that compile() warmed up, and is slower on CPU too (docs/PERFORMANCE.md).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the worker's thread and return what it returns (or raise what it raised) here: for work
        that must see the thread's own torch state (the thread probe)."""
        outcome: list[tuple[bool, Any]] = []

        def job() -> None:
            try:
                outcome.append((True, fn()))
            except BaseException as exc:  # handed back to the caller, never lost in the thread
                outcome.append((False, exc))

        self.submit(job).wait()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def submit(self, job) -> threading.Event:
        """Queue ``job``; the returned event is set when it has run (or failed)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        done = threading.Event()
        self._jobs.put((job, done))
        return done

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                job()
            finally:
                done.set()

    def close(self) -> None:
        """Ends the thread once queued work is done, and waits for it: a thread torch has worked in that is
        still alive when the interpreter exits aborts the process ("terminate called without an active
        exception")."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


def start_generation(worker: GenerationWorker, model, params: SamplingParams, streamer: TimestampStreamer,
                     threads: tuple[int, int] | None = None,
                     **kwargs: Any) -> tuple[threading.Event, list[BaseException]]:
    """Run ``model.generate(**kwargs)`` on the model's generation thread with the shared sampling settings.

    ``threads`` (prompt, decode): torch's CPU threads for the prefill, and from the first new token on. A failure
    is collected in the returned list and ends the streamer, so the consumer never waits forever.
    """
    import torch

    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        torch.manual_seed(params.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if params.ignore_eos:  # transformers masks the end-of-sequence tokens until this many new tokens
        kwargs["min_new_tokens"] = kwargs["max_new_tokens"]
    failure: list[BaseException] = []

    if threads is not None and threads[1] != threads[0]:
        kwargs["logits_processor"] = decode_threads_switch(threads[1])

    def work() -> None:
        try:
            if threads is not None:
                torch.set_num_threads(threads[0])
            with torch.inference_mode():
                model.generate(streamer=streamer, **kwargs)
        except BaseException as exc:  # reported through the stream, never lost in the thread
            failure.append(exc)
            streamer.end()

    return worker.submit(work), failure


def decode_threads_switch(decode: int):
    """A logits processor that sets torch's threads to ``decode`` once, at the first new token: generate() calls
    it right after the prefill's forward pass, on the generation thread."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class DecodeThreads(LogitsProcessor):
        switched = False

        def __call__(self, input_ids, scores):
            if not self.switched:
                torch.set_num_threads(decode)
                self.switched = True
            return scores

    return LogitsProcessorList([DecodeThreads()])
