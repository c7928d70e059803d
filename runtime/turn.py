"""Run one turn to completion and keep its events: what the CLI, batch runner and app all call."""
from __future__ import annotations

import secrets
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from . import metrics
from .backend import LoadedModel, Message, SamplingParams
from .errors import PromptError
from .events import Done, Event, Loaded


@dataclass
class TurnResult:
    model: str
    backend: str
    messages: list[Message]
    params: SamplingParams
    events: list[Event] = field(default_factory=list)
    cold: bool = False  # the model's first turn since it loaded: its figures include one-time costs

    @property
    def text(self) -> str:
        """The answer (a reasoning model's thinking is in ``thinking``)."""
        return metrics.answer_text(self.events)

    @property
    def thinking(self) -> str:
        return metrics.thinking_text(self.events)

    @property
    def done(self) -> Done | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, Done) else None

    @property
    def metrics(self) -> metrics.TurnMetrics:
        return metrics.compute(self.events)


def with_system(system: str, messages: list[Message]) -> list[Message]:
    """The conversation after the system prompt, where one is set (blank is none)."""
    system = system.strip()
    return ([{"role": "system", "content": system}] if system else []) + list(messages)


def check_prompt(messages: list[Message]) -> None:
    if not messages or not messages[-1].get("content", "").strip():
        raise PromptError("the prompt is empty", "type something to send")


# Models that have run a turn since they were loaded. A model is cold until its first turn (timed or a
# warm-up) has paid the one-time costs listed in docs/METRICS.md; the set holds no model alive.
_warm_models: weakref.WeakSet[LoadedModel] = weakref.WeakSet()


def is_cold(model: LoadedModel) -> bool:
    return model not in _warm_models


# What every warm-up turn asks, under a fresh salt (``salted``): a prompt of its own, so no cache holds any of
# the timed prompt after it beyond the chat template's fixed opening (docs/METRICS.md, "Cold and warm").
WARM_UP_PROMPT = "Count from one to ten, in words."
# A warm-up's one-time costs (graph, buffers, first kernels, page faults) are paid by its prefill and its first
# few decode steps; more tokens would only cost time (a compiled static cache is warmed at load: warmup_s).
WARM_UP_TOKENS = 8


def salted(messages: list[Message], salt: str) -> list[Message]:
    """The conversation with a unique first line, so a server's prefix cache cannot serve the prompt from an
    earlier identical request (replayed MMLU prompts otherwise lower TTFT silently)."""
    if not salt:
        return messages
    first = messages[0]
    return [{**first, "content": f"[run {salt}]\n{first['content']}"}, *messages[1:]]


def warm_up(model: LoadedModel, params: SamplingParams, turns: int = 1, *,
            cancel: threading.Event | None = None) -> list[TurnResult]:
    """Untimed turns that pay the model's one-time costs, so the next timed turn is warm; returns them. Each asks
    ``WARM_UP_PROMPT`` under a new salt for at most WARM_UP_TOKENS tokens, never the timed prompt: a warm-up on
    that would leave it in the prompt cache and the timed TTFT would skip its prefill. What bench (--warmup),
    compare (on unless --no-warmup), the Compare tab and the sweep all call."""
    done: list[TurnResult] = []
    for _ in range(turns):
        if cancel is not None and cancel.is_set():
            break
        done.append(run_turn(model, warm_up_prompt(), warm_up_params(params), cancel=cancel))
    return done


def warm_up_note(turns: int) -> str:
    """What a warm-up costs, as the console and the tabs say it while it runs."""
    return f"{turns} untimed turn{'s' if turns != 1 else ''} of at most {WARM_UP_TOKENS} tokens"


def warm_up_params(params: SamplingParams) -> SamplingParams:
    """The timed turns' sampling, at most WARM_UP_TOKENS long."""
    return params.with_overrides(max_tokens=min(params.max_tokens, WARM_UP_TOKENS))


def warm_up_prompt() -> list[Message]:
    """``WARM_UP_PROMPT`` under a new salt: never a prompt that will be timed, nor one a cache has seen."""
    return salted([{"role": "user", "content": WARM_UP_PROMPT}], secrets.token_hex(6))


def run_turn(
    model: LoadedModel,
    messages: list[Message],
    params: SamplingParams,
    *,
    cancel: threading.Event | None = None,
    on_event: Callable[[Event], None] | None = None,
    include_load: bool = False,
) -> TurnResult:
    """Drain the model's stream into a TurnResult, calling ``on_event`` for each event as it arrives.

    ``include_load`` prepends the model's Loaded event (the first turn after a load), so the turn's
    events alone yield ``load_s``. The result is marked ``cold`` when the model had not run a turn before.
    """
    check_prompt(messages)
    result = TurnResult(model.spec.name, model.spec.backend, list(messages), params, cold=is_cold(model))
    if include_load:
        result.events.append(Loaded(model.loaded_ns, model.load_s, model.spec.name))
    try:
        for event in model.stream(messages, params, cancel):
            result.events.append(event)
            if on_event is not None:
                on_event(event)
    finally:
        _warm_models.add(model)
    return result

