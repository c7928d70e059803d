"""Side-by-side trials: several models answer one prompt with the same sampling, then a row per model.

Models run one after another by default, so they do not compete for the same cores or GPU and distort
each other's figures; ``concurrent=True`` runs them all at once (what a shared server sees) and is
labelled as such wherever the result is shown. One prompt run once is one sample: ``repeats`` runs it again
(each model in turn, per repeat), the rows then hold means and the verdict an interval over the repeats. The
verdict names the model that finishes first and the one fastest per token, and why the other finishes later,
the point of taskclock (runtime/verdict.py, docs/METRICS.md).
"""
from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any

from . import metrics, system, verdict
from .backend import LoadedModel, Message, SamplingParams
from .errors import ModelLoadError, ModelNotFound
from .events import Event
from .sessions import turn_record
from .turn import TurnResult, check_prompt, run_turn, salted, warm_up

MIN_MODELS = 2


# The compared figures (the figure registry, runtime/metrics.py: those shown in COMPARE), each with the end that wins.
COLUMNS = metrics.figures_in(metrics.COMPARE)
UNFINISHED = verdict.UNFINISHED


def mode_name(concurrent: bool) -> str:
    return "concurrent" if concurrent else "sequential"


def check_model_count(names: Sequence[str], maximum: int | None = None) -> None:
    if len(names) < MIN_MODELS:
        raise ModelNotFound(f"compare needs at least {MIN_MODELS} models, got {len(names)}", "pass --models A,B")
    if maximum is not None and len(names) > maximum:
        raise ModelNotFound(f"compare shows at most {maximum} models side by side, got {len(names)}",
                            "pick fewer models")


def mean_figures(results: Sequence[TurnResult]) -> dict[str, Any]:
    """Every TurnMetrics figure of one model's repeats: the mean where it is a number in each of them, else the
    first repeat's value (its stop reason); one repeat's figures as they are."""
    figures = [r.metrics.as_dict() for r in results]
    if len(figures) == 1:
        return figures[0]
    out = dict(figures[0])
    for key in out:
        values = [f[key] for f in figures]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            out[key] = fmean(values)
    return out


def numbered(names: Sequence[str]) -> list[str]:
    """``names`` with a number after each repeat (``smollm2``, ``smollm2 #2``): how a comparison's table, verdict
    and columns tell one model run twice apart."""
    labels: list[str] = []
    for index, name in enumerate(names):
        seen = sum(1 for earlier in names[:index] if earlier == name)
        labels.append(f"{name} #{seen + 1}" if seen else name)
    return labels


@dataclass
class Comparison:
    """``results``: each model's first timed turn (what its column shows); ``samples``: all its timed turns, one
    per repeat (``results`` alone when there were no repeats)."""

    results: list[TurnResult]
    concurrent: bool
    compare_id: str
    samples: list[list[TurnResult]] = field(default_factory=list)
    cap: int | None = None  # the output cap the turns ran under
    load: dict[str, Any] | None = None  # the machine's other work before and during (system.LoadWatch.record)

    def __post_init__(self) -> None:
        self.samples = self.samples or [[r] for r in self.results]

    @property
    def repeats(self) -> int:
        return min((len(s) for s in self.samples), default=0)

    def labels(self) -> list[str]:
        """Model names, numbered where one model appears twice (``smollm2``, ``smollm2 #2``)."""
        return numbered([result.model for result in self.results])

    def rows(self) -> list[dict[str, Any]]:
        """Per model: its label, backend and every TurnMetrics figure (the JSON keys; means over its repeats),
        plus any error, whether its first turn was cold (the model's first since its load), how many repeats
        the row holds and how many were cut short (``cut_replies``)."""
        rows = []
        for label, result, samples in zip(self.labels(), self.results, self.samples, strict=True):
            done = result.done
            cut = verdict.cuts(label, [r.metrics.as_dict() for r in samples], self.cap)
            rows.append({"model": label, "backend": result.backend, **mean_figures(samples),
                         "error": done.error if done else None, "cold": result.cold, "repeats": len(samples),
                         "cut_replies": cut.cut})
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
            pick = min if column.better == "low" else max
            best = pick(v for v, _ in values)
            out[column.key] = [model for v, model in values if v == best]
        return out

    def _figures(self, label: str) -> list[dict[str, Any]]:
        """A model's figures per repeat, keyed by the repeat for pairing."""
        index = self.labels().index(label)
        return [{**r.metrics.as_dict(), "repeat": n} for n, r in enumerate(self.samples[index])]

    def verdict(self) -> str | None:
        """One line: which model finished first and which had the highest decode tok/s; why the other one (the
        faster per token where they differ, else the second to finish) finishes later, with the gap split into
        its causes; whether the repeats can tell (one run is one sample); the replies cut at the cap
        (runtime/verdict.py). None when no reply finished."""
        winners = self.winners()
        fastest, first = winners["decode_tps"], winners["task_time_s"]
        if not fastest or not first:
            return None
        rows = {r["model"]: r for r in self.rows()}
        quick, done = rows[fastest[0]], rows[first[0]]
        mean = f", mean of {self.repeats}" if self.repeats > 1 else ""
        line = (f"fastest to finish: {' and '.join(first)} ({done['task_time_s']:.2f} s{mean}); "
                f"highest tok/s: {' and '.join(fastest)} ({quick['decode_tps']:.1f} tok/s)")
        finished = sorted((r for r in rows.values() if r["stop_reason"] not in UNFINISHED
                           and r["task_time_s"] is not None), key=lambda r: r["task_time_s"])
        if set(fastest) & set(first):
            later = next((r["model"] for r in finished if r["model"] not in first), None)
            line += f"; {later} finishes later" if later else ""
        else:
            later = fastest[0]
            line += ", which finishes later"
        if later is not None:
            paired = verdict.pairs(self._figures(later), self._figures(first[0]), lambda r: r["repeat"])
            gap = rows[later]["task_time_s"] - done["task_time_s"]
            tps = verdict.tps_difference(paired)
            line += verdict.explained(verdict.attribute(later, first[0], paired, gap),
                                      verdict.task_time_difference(paired), "repeats")
            if tps.n > 1 and not tps.stands:
                line += f"; their tok/s differ {tps.noise()}"
        elif self.repeats == 1:  # a tie: still one sample
            line += "; one sample (more repeats would give an interval)"
        for label in self.labels():
            cut = verdict.cuts(label, [r.metrics.as_dict() for r in self.samples[self.labels().index(label)]],
                               self.cap)
            if cut.cut:
                line += "; " + cut.phrase()
        return line

    def as_dict(self) -> dict[str, Any]:
        return {"compare_id": self.compare_id, "mode": mode_name(self.concurrent), "repeats": self.repeats,
                "models": self.rows(), "winners": self.winners(), "verdict": self.verdict(), "load": self.load}

    def session_records(self) -> list[dict[str, Any]]:
        """One session-log line per model and repeat, like chat turns, tagged so the rows of one trial stay
        together; the first carries the machine's load."""
        records = [turn_record(result, kind="compare", compare_id=self.compare_id, mode=mode_name(self.concurrent),
                               position=index, **({"repeat": repeat} if len(samples) > 1 else {}))
                   for repeat in range(max((len(s) for s in self.samples), default=0))
                   for index, samples in enumerate(self.samples) if repeat < len(samples)
                   for result in (samples[repeat],)]
        if records and self.load is not None:
            records[0]["load"] = self.load
        return records


def run_compare(
    models: Sequence[LoadedModel],
    messages: list[Message],
    params: SamplingParams,
    *,
    concurrent: bool = False,
    warmup: int = 0,
    repeats: int = 1,
    cancel: threading.Event | None = None,
    on_event: Callable[[int, Event], None] | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_warmup: Callable[[int], None] | None = None,
    include_load: Sequence[bool] | bool = False,
) -> Comparison:
    """Run every model on ``messages`` ``repeats`` times and compare.

    ``warmup`` untimed turns per model come first (all before any timed turn; ``on_warmup(i)`` as model i's
    begin); with none, a model's first turn since its load is cold (``TurnResult.cold``). Repeats run each model
    in turn, repeat by repeat, and with more than one every repeat's prompt starts with a salt line of its own,
    so no prompt cache serves a repeat from the one before. ``on_start(i, repeat)`` is called when model i's
    timed turn begins and ``on_event(i, event)`` for each of its events, from the thread that runs it (several
    threads at once when concurrent). ``include_load`` (one flag, or one per model) puts each model's load time
    in its first row.
    """
    check_prompt(messages)
    watch = system.LoadWatch.for_models(m.spec for m in models)
    if repeats < 1:
        raise ModelLoadError(f"repeats must be at least 1, not {repeats}", "pass 1 or more")
    if concurrent and len({id(m) for m in models}) < len(models):
        raise ModelLoadError("one loaded model cannot answer twice at once", "load it once per column")
    loads = [include_load] * len(models) if isinstance(include_load, bool) else list(include_load)
    for index, model in enumerate(models):
        if warmup and on_warmup is not None:
            on_warmup(index)
        warm_up(model, params, warmup, cancel=cancel)
    samples: list[list[TurnResult]] = [[] for _ in models]
    watch.started()

    def timed(index: int, repeat: int, prompt: list[Message]) -> TurnResult:
        if on_start is not None:
            on_start(index, repeat)
        forward = (lambda event: on_event(index, event)) if on_event is not None else None
        return run_turn(models[index], prompt, params, cancel=cancel, on_event=forward,
                        include_load=loads[index] and repeat == 0)

    for repeat in range(repeats):
        if cancel is not None and cancel.is_set():
            break
        prompt = salted(messages, secrets.token_hex(6)) if repeats > 1 else messages
        for index, result in enumerate(_one_round(timed, len(models), repeat, prompt, concurrent, cancel)):
            samples[index].append(result)
    watch.finished()
    ran = [s for s in samples if s]
    return Comparison([s[0] for s in ran], concurrent, uuid.uuid4().hex[:12], ran, params.max_tokens, watch.record())


def _one_round(timed: Callable[[int, int, list[Message]], TurnResult], count: int, repeat: int,
               prompt: list[Message], concurrent: bool, cancel: threading.Event | None) -> list[TurnResult]:
    """Every model's turn of one repeat: all at once, or one after another until a stop (the models not yet
    run are left out rather than cut at once)."""
    if not concurrent:
        finished = []
        for index in range(count):
            if cancel is not None and cancel.is_set():
                break
            finished.append(timed(index, repeat, prompt))
        return finished
    results: list[TurnResult | None] = [None] * count
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            results[index] = timed(index, repeat, prompt)
        except BaseException as exc:  # re-raised on the caller's thread
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), name=f"compare-{i}", daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [r for r in results if r is not None]
