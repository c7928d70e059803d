"""Side-by-side trials: several models answer one prompt with the same sampling, then a row per model.

Models run one after another by default, so they do not compete for the same cores or GPU and distort
each other's figures; ``concurrent=True`` runs them all at once (what a shared server sees) and is
labelled as such wherever the result is shown. The verdict names the model that finishes first and the one
fastest per token, and says why when they differ, which is the point of taskclock (docs/METRICS.md).
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .backend import LoadedModel, Message, SamplingParams
from .errors import ModelLoadError, ModelNotFound
from .events import Event
from .sessions import turn_record
from .turn import TurnResult, check_prompt, run_turn, warm_up
from .verdict import Figures, why_slower

MIN_MODELS = 2


@dataclass(frozen=True)
class Column:
    """One compared figure; ``best`` says which end wins."""

    key: str
    label: str
    unit: str
    digits: int
    best: str  # "low" or "high"


COLUMNS = (
    Column("ttft_s", "TTFT", "s", 3, "low"),
    Column("decode_tps", "decode", "tok/s", 1, "high"),
    Column("task_time_s", "task", "s", 3, "low"),
    Column("output_tokens", "tokens", "", 0, "low"),  # most concise; tokenizers differ, see words
    Column("output_words", "words", "", 0, "low"),
    Column("words_per_s", "words/s", "", 1, "high"),
)
UNFINISHED = ("error", "cancelled")


def _figures(row: dict[str, Any]) -> Figures:
    return Figures(row["model"], row["output_words"], row["ttft_s"], row["output_tokens"])


def mode_name(concurrent: bool) -> str:
    return "concurrent" if concurrent else "sequential"


def check_model_count(names: Sequence[str], maximum: int | None = None) -> None:
    if len(names) < MIN_MODELS:
        raise ModelNotFound(f"compare needs at least {MIN_MODELS} models, got {len(names)}", "pass --models A,B")
    if maximum is not None and len(names) > maximum:
        raise ModelNotFound(f"compare shows at most {maximum} models side by side, got {len(names)}",
                            "pick fewer models")


@dataclass
class Comparison:
    results: list[TurnResult]
    concurrent: bool
    compare_id: str

    def labels(self) -> list[str]:
        """Model names, numbered where one model appears twice (``smollm2``, ``smollm2 #2``)."""
        labels: list[str] = []
        for result in self.results:
            seen = sum(1 for r in self.results[: len(labels)] if r.model == result.model)
            labels.append(f"{result.model} #{seen + 1}" if seen else result.model)
        return labels

    def rows(self) -> list[dict[str, Any]]:
        """Per model: its label, backend and every TurnMetrics figure (the JSON keys), plus any error and
        whether the turn was cold (the model's first since its load)."""
        rows = []
        for label, result in zip(self.labels(), self.results, strict=True):
            done = result.done
            rows.append({"model": label, "backend": result.backend, **result.metrics.as_dict(),
                         "error": done.error if done else None, "cold": result.cold})
        return rows

    def winners(self) -> dict[str, list[str]]:
        """Column key → the winning model(s) (ties share). Replies that errored or were stopped cannot win:
        ending early is not finishing sooner."""
        rows = [r for r in self.rows() if r["stop_reason"] not in UNFINISHED]
        out: dict[str, list[str]] = {}
        for column in COLUMNS:
            values = [(r[column.key], r["model"]) for r in rows if r[column.key] is not None]
            if not values:
                out[column.key] = []
                continue
            pick = min if column.best == "low" else max
            best = pick(v for v, _ in values)
            out[column.key] = [model for v, model in values if v == best]
        return out

    def verdict(self) -> str | None:
        """One line: which model finished first and which had the highest decode tok/s, and, when they are
        not the same, why the faster per token took longer (runtime/verdict.py). None when no reply finished."""
        winners = self.winners()
        fastest, first = winners["decode_tps"], winners["task_time_s"]
        if not fastest or not first:
            return None
        rows = {r["model"]: r for r in self.rows()}
        quick, done = rows[fastest[0]], rows[first[0]]
        line = (f"fastest to finish: {' and '.join(first)} ({done['task_time_s']:.2f} s); "
                f"highest tok/s: {' and '.join(fastest)} ({quick['decode_tps']:.1f} tok/s)")
        if set(fastest) & set(first):
            return line
        return f"{line}, which {why_slower(_figures(quick), _figures(done))}"

    def as_dict(self) -> dict[str, Any]:
        return {"compare_id": self.compare_id, "mode": mode_name(self.concurrent),
                "models": self.rows(), "winners": self.winners(), "verdict": self.verdict()}

    def session_records(self) -> list[dict[str, Any]]:
        """One session-log line per model, like chat turns, tagged so the rows of one trial stay together."""
        return [turn_record(result, kind="compare", compare_id=self.compare_id,
                            mode=mode_name(self.concurrent), position=index)
                for index, result in enumerate(self.results)]


def run_compare(
    models: Sequence[LoadedModel],
    messages: list[Message],
    params: SamplingParams,
    *,
    concurrent: bool = False,
    warmup: int = 0,
    cancel: threading.Event | None = None,
    on_event: Callable[[int, Event], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    include_load: Sequence[bool] | bool = False,
) -> Comparison:
    """Run every model on ``messages`` and compare.

    ``warmup`` untimed turns per model come first (all before any timed turn); with none, a model's first
    turn since its load is cold (``TurnResult.cold``). ``on_start(i)`` is called
    when model i's timed turn begins and ``on_event(i, event)`` for each of its events, from the thread that
    runs it (several threads at once when concurrent). ``include_load`` (one flag, or one per model) puts
    each model's load time in its row.
    """
    check_prompt(messages)
    if concurrent and len({id(m) for m in models}) < len(models):
        raise ModelLoadError("one loaded model cannot answer twice at once", "load it once per column")
    loads = [include_load] * len(models) if isinstance(include_load, bool) else list(include_load)
    for model in models:
        warm_up(model, params, warmup, cancel=cancel)

    def timed(index: int) -> TurnResult:
        if on_start is not None:
            on_start(index)
        forward = (lambda event: on_event(index, event)) if on_event is not None else None
        return run_turn(models[index], messages, params, cancel=cancel, on_event=forward,
                        include_load=loads[index])

    if concurrent:
        results: list[TurnResult | None] = [None] * len(models)
        failures: list[BaseException] = []

        def worker(index: int) -> None:
            try:
                results[index] = timed(index)
            except BaseException as exc:  # re-raised on the caller's thread
                failures.append(exc)

        threads = [threading.Thread(target=worker, args=(i,), name=f"compare-{i}", daemon=True)
                   for i in range(len(models))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        finished = [r for r in results if r is not None]
    else:
        finished = []
        for index in range(len(models)):
            if cancel is not None and cancel.is_set():
                break  # stopped: the models not yet run are left out rather than cut at once
            finished.append(timed(index))
    return Comparison(finished, concurrent, uuid.uuid4().hex[:12])
