"""The timestamped event stream every backend produces and every view consumes.

A turn is: ``Submitted`` (when the request is handed to the backend), one ``Token`` per produced token
(or per chunk, for servers that do not say how many tokens a chunk holds), then exactly one ``Done``.
``Loaded`` is recorded once per model load and prepended to the first turn's events so ``load_s`` can be
derived from the same list. Timestamps are ``time.perf_counter_ns()`` taken where the event is produced
(the token's arrival), never when it is displayed.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TypedDict

StopReason = Literal["eos", "length", "stop", "cancelled", "error"]
Phase = Literal["thinking", "answer"]  # what a token is part of: the model's reasoning, or its reply

now_ns = time.perf_counter_ns


@dataclass(frozen=True, slots=True)
class Loaded:
    t_ns: int
    load_s: float
    model: str
    kind: str = "loaded"


@dataclass(frozen=True, slots=True)
class Submitted:
    t_ns: int
    kind: str = "submitted"


@dataclass(frozen=True, slots=True)
class Token:
    """One produced token (``count`` = 1) or one server chunk holding ``count`` tokens.

    ``count`` = 0 marks text released at the end of a turn (held back for a possible stop string or an
    incomplete character): it belongs to the reply but is not a token arrival, so it is not timed.
    ``phase`` says whether the token is thinking (reasoning before the answer, runtime/phases.py) or answer.
    """

    t_ns: int
    text: str
    token_id: int | None = None
    count: int = 1
    phase: Phase = "answer"
    kind: str = "token"


class DoneExtra(TypedDict, total=False):
    """Figures a backend reports about itself, kept beside taskclock's own (docs/METRICS.md)."""

    gpu_peak_mem_mb: float  # CUDA/NVML: peak GPU memory during the turn (-> TurnMetrics)
    gpu_process_mem_mb: float  # llama.cpp on CUDA: what NVML says this process holds (-> TurnMetrics)
    energy_j: float  # NVML: energy the GPU used during the turn (-> TurnMetrics)
    gpu_shared: bool  # another turn used the GPU meanwhile: the GPU figures are the card's (-> TurnMetrics)
    model_mem_mb: float  # transformers on CUDA: memory the loaded model holds
    llama_perf: dict[str, float]  # llama.cpp's own counters for the turn
    decode_threads: int  # in process on the CPU: threads for one token at a time (-> TurnMetrics)
    prompt_threads: int  # in process on the CPU: threads for the prompt and batches (-> TurnMetrics)
    cached_prompt_tokens: int  # HTTP: prompt tokens the server served from its prefix cache
    batch_size: int  # requests in the padded batch this one ran in
    # HTTP: "usage-per-chunk" (the server's running count on every chunk), "usage-spread" (its final count
    # spread over the chunks), "usage" (its count, below the chunk count) or "chunks" (one per content chunk)
    token_count_source: str
    arrival_counts: list[int]  # HTTP: the tokens each timed arrival holds, where the server's counts say (-> metrics)
    thinking_tokens: int  # HTTP: the server's usage.completion_tokens_details.reasoning_tokens (-> TurnMetrics)
    thinking_count_source: str  # HTTP, a turn that thought: "usage" (reasoning_tokens) or "chunks"
    server_timings: dict[str, Any]  # HTTP: the server's own timings (llama.cpp's `timings`)


@dataclass(frozen=True, slots=True)
class Done:
    t_ns: int
    stop_reason: StopReason
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None
    extra: DoneExtra = field(default_factory=lambda: DoneExtra())
    kind: str = "done"


Event = Loaded | Submitted | Token | Done

_KINDS = {"loaded": Loaded, "submitted": Submitted, "token": Token, "done": Done}


def event_to_dict(event: Event) -> dict[str, Any]:
    return asdict(event)


def event_from_dict(data: dict[str, Any]) -> Event:
    cls = _KINDS[data["kind"]]
    return cls(**data)
