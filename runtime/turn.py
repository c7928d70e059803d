"""Run one turn to completion and keep its events: what the CLI, batch runner and app all call."""
from __future__ import annotations

import threading
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

    @property
    def text(self) -> str:
        return metrics.output_text(self.events)

    @property
    def done(self) -> Done | None:
        last = self.events[-1] if self.events else None
        return last if isinstance(last, Done) else None

    @property
    def metrics(self) -> metrics.TurnMetrics:
        return metrics.compute(self.events)


def check_prompt(messages: list[Message]) -> None:
    if not messages or not messages[-1].get("content", "").strip():
        raise PromptError("the prompt is empty", "type something to send")


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
    events alone yield ``load_s``.
    """
    check_prompt(messages)
    result = TurnResult(model.spec.name, model.spec.backend, list(messages), params)
    if include_load:
        result.events.append(Loaded(model.loaded_ns, model.load_s, model.spec.name))
    for event in model.stream(messages, params, cancel):
        result.events.append(event)
        if on_event is not None:
            on_event(event)
    return result

