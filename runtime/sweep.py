"""The input-length sweep: how TTFT and task time grow with the prompt, from a cold start and from a cache.

For each model and each requested input length, a prompt of exactly that many tokens by the model's own
tokenizer (chat template included) is cut from the packaged MMLU questions, with one short question at the
end. Each repeat runs two turns: **cold**, whose first line is a salt no earlier request carried, so neither
llama.cpp's prompt cache nor a server's prefix cache can serve the context; then **cached**, the same salted
context again with only the question changed. With long inputs the wait is prefill, so TTFT and task time
grow with the input while decode tok/s hardly moves: the figure that tokens/s hides.

A run lives in a folder like bench's (runtime/runfolder.py): ``run.toml`` (``kind = "sweep"``, the lengths,
the run's salt and every model option), ``results.jsonl`` (one ``sweep`` row per turn, a ``skip`` record per
length a model cannot hold, with the reason) and ``system.json``. Ctrl-C loses only the turn in flight, and
resuming runs exactly the missing rows (a missing cached row first re-primes the cache with its cold turn).
"""
from __future__ import annotations

import math
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from statistics import median
from typing import Any

from . import runfolder, tables, values
from .backend import LoadedModel, ModelSpec, SamplingParams, load_model
from .errors import Cancelled, DataError
from .fitting import FittedPrompt, TokenCounter, beyond_context, filler_text, fit_text, prompt, token_counter
from .record import turn_fields
from .runfolder import (
    RunResults,
    check_models,
    create,
    models_toml,
    new_run_id,
    read_system,
    row_salt,
    sweep_key,
    toml_table,
)
from .runner import Progress, Runner
from .tables import (
    LATENCY_COLUMNS,
    Latency,
    SummaryColumn,
    cell_row,
    latency,
    latency_row,
    md_table,
    results_csv,
    series_color,
    series_marker,
    text_chart,
)
from .turn import run_turn, warm_up, warm_up_note
from .untrusted import safe_line

KIND = "sweep"
PHASES = ("cold", "cached")
DEFAULT_LENGTHS = "256,1024,4096"  # the CLI's and the Batch tab's Context mode's defaults
DEFAULT_OUTPUT_TOKENS = 32
# The short question that ends each prompt; the cached turn changes only this, so the context before it is
# the cold turn's, token for token.
QUESTIONS = {"cold": "Which subject is the first question above about? Answer in one word.",
             "cached": "Which subject is the last question above about? Answer in one word."}
CSV_COLUMNS = ("model", "backend", "phase", "requested_tokens", "repeat", "prompt_tokens", "token_source",
               "input_tokens", "cached_tokens", "ttft_s", "prefill_tps", "decode_tps", "task_time_s",
               "output_tokens", "stop_reason", "decode_threads", "prompt_threads", "error", "reply")


@dataclass
class SweepPlan:
    """A sweep's whole configuration, as stored in run.toml."""

    run_id: str
    created: str
    kind: str  # always "sweep": what tells this folder from a bench run's
    input_tokens: list[int]
    output_tokens: int
    repeats: int
    warmup: int
    salt: str  # per run: each request's salt is derived from it, so a resumed run salts as the first did
    models: list[ModelSpec] = field(default_factory=list)

    def params(self) -> SamplingParams:
        """Greedy, so the reply (and so decode and task time) is the same at every length and repeat."""
        return SamplingParams(max_tokens=self.output_tokens, temperature=0.0)

    def total_rows(self) -> int:
        return len(self.models) * len(self.input_tokens) * self.repeats * len(PHASES)


def plan_to_toml(plan: SweepPlan) -> str:
    head = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name != "models"}
    return "\n".join(["# taskclock sweep run: `taskclock sweep --resume <this folder>` continues it\n",
                      toml_table("run", head), *models_toml(plan.models)])


def read_plan(folder: Path) -> SweepPlan:
    """The sweep's plan; a damaged run.toml, or a bench run's, is one DataError."""
    path, data = runfolder.read_run_toml(folder, KIND)
    head = runfolder.check_head(path, data.get("run"), SweepPlan, ("models",))
    plan = SweepPlan(**head, models=runfolder.read_models(path, data))
    runfolder.check_plan_values(path, plan.total_rows(), input_tokens=plan.input_tokens,
                                output_tokens=plan.output_tokens, repeats=plan.repeats, warmup=plan.warmup)
    return plan


def prepare(*, models: list[ModelSpec], input_tokens: Sequence[int], output_tokens: int, repeats: int,
            warmup: int, runs_dir: Path) -> tuple[Path, SweepPlan]:
    """Check the plan, create the run folder and write its run.toml and system.json."""
    check_models(models)
    if not input_tokens:
        raise DataError("no input lengths given", f"pass e.g. --input-tokens {DEFAULT_LENGTHS}")
    values.check_plan(input_tokens=list(input_tokens), output_tokens=output_tokens, repeats=repeats, warmup=warmup)
    plan = SweepPlan(run_id=new_run_id(), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), kind=KIND,
                     input_tokens=sorted(set(input_tokens)), output_tokens=output_tokens, repeats=repeats,
                     warmup=warmup, salt=secrets.token_hex(4), models=models)
    values.check_rows(plan.total_rows())
    return create(runs_dir, plan.run_id, plan_to_toml(plan)), plan


# ---- the sweep's two prompts ---------------------------------------------------------------------

def fit_prompts(count: TokenCounter, filler: str, target: int, salt: str) -> dict[str, FittedPrompt] | str:
    """The cold and the cached prompt of ``target`` tokens under one salt, or why there are none. The cached
    prompt keeps the cold one's context and is refitted only if its question counts differently."""
    out: dict[str, FittedPrompt] = {}
    context: tuple[int, int, int] | None = None
    for phase in PHASES:
        question = QUESTIONS[phase]
        if context is not None:
            start, cut, _ = context
            messages = prompt(filler, start, cut, question, salt)
            if count(messages) == target:
                out[phase] = FittedPrompt(messages, target)
                continue
        fitted = fit_text(count, filler, target, question, salt)
        if isinstance(fitted, str):
            return fitted
        context = fitted
        start, cut, tokens = fitted
        out[phase] = FittedPrompt(prompt(filler, start, cut, question, salt), tokens)
    return out


def sweep_row(spec: ModelSpec, phase: str, target: int, repeat: int, fitted: FittedPrompt, source: str,
              events: Sequence[Any]) -> dict[str, Any]:
    row = turn_fields(spec.name, spec.backend, events)
    if phase == "cached":
        row["prefill_tps"] = uncached_prefill_tps(row)
    return {"kind": KIND, **row, "phase": phase, "requested_tokens": target, "repeat": repeat,
            "prompt_tokens": fitted.tokens, "token_source": source}


def uncached_prefill_tps(row: dict[str, Any]) -> float | None:
    """A cached turn's prefill rate: the tokens the cache did not serve over TTFT, where the backend says how many
    it served; else None, since the whole input over TTFT counts cached tokens no prefill read."""
    n_in, cached, ttft = row.get("input_tokens"), row.get("cached_tokens"), row.get("ttft_s")
    return (n_in - cached) / ttft if n_in is not None and cached is not None and n_in > cached and ttft else None


def length_label(target: int) -> str:
    """A length as progress reports name it (in Progress.task, where a bench names its task set)."""
    return f"{target} tokens"


# ---- the runner ----------------------------------------------------------------------------------

class SweepRunner(Runner[int]):
    """Runs a sweep plan into its folder; safe to call again on the same folder (it resumes). Its progress lines
    are the input lengths."""

    kind = KIND
    row_kind = KIND

    def __init__(self, folder: Path, plan: SweepPlan, *, cancel: threading.Event | None = None,
                 on_progress: Callable[[Progress], None] | None = None,
                 loader: Callable[[ModelSpec], LoadedModel] = load_model) -> None:
        super().__init__(folder, plan.models, cancel=cancel, on_progress=on_progress, loader=loader)
        self.plan = plan
        self.filler = filler_text()
        self.done: set[tuple] = set()
        self.skipped: set[tuple[str, int]] = set()
        self.left: Counter[tuple[str, int]] = Counter()  # rows left per model × length: reports never rescan

    def resume(self, results: RunResults) -> None:
        self.done = {sweep_key(r) for r in results.rows}
        self.skipped = {(s["model"], s["requested_tokens"]) for s in results.skips}

    def plan_model(self, spec: ModelSpec) -> list[int]:
        for n in self.plan.input_tokens:  # planned when the model's turn comes; Ctrl-C stops it at once
            if self.cancel.is_set():
                return []
            self.left[spec.name, n] = self._count_left(spec, n)
        pending = [n for n in self.plan.input_tokens if self._left(spec, n)]
        for n in self.plan.input_tokens:
            skipped = (spec.name, n) in self.skipped
            self.report(spec, n, "skipped" if skipped else "waiting" if n in pending else "done")
        return pending

    def label(self, line: int) -> str:
        return length_label(line)

    def progress(self, spec: ModelSpec, line: int) -> tuple[int, int]:
        total = self.plan.repeats * len(PHASES)
        return total - self._left(spec, line), total

    def _keys(self, spec: ModelSpec, target: int, repeat: int) -> dict[str, tuple]:
        return {phase: (spec.name, phase, target, repeat) for phase in PHASES}

    def _count_left(self, spec: ModelSpec, target: int) -> int:
        if (spec.name, target) in self.skipped:
            return 0
        return sum(key not in self.done for repeat in range(self.plan.repeats)
                   for key in self._keys(spec, target, repeat).values())

    def _left(self, spec: ModelSpec, target: int) -> int:
        return self.left[spec.name, target]

    def _skip(self, spec: ModelSpec, target: int, reason: str) -> None:
        self.append({"kind": "skip", "model": spec.name, "requested_tokens": target, "reason": reason})
        self.skipped.add((spec.name, target))
        self.left[spec.name, target] = 0
        self.report(spec, target, "skipped", error=reason)

    def run_loaded(self, model: LoadedModel, spec: ModelSpec, lines: list[int]) -> bool:
        """Every pending length; a tokenizer or chat template that fails while a prompt is fitted raises, and the
        failure policy records it (runtime/runner.py)."""
        count = token_counter(model, self.cancel)
        context = model.context_size(self.cancel)
        if self.plan.warmup:
            self.report(spec, lines[0], "warmup", note=f"warming up ({warm_up_note(self.plan.warmup)})")
            warm_up(model, self.plan.params(), self.plan.warmup, cancel=self.cancel)
        for target in lines:
            if self.cancel.is_set():
                return False
            reason = beyond_context(target, self.plan.output_tokens, context)
            if reason:
                self._skip(spec, target, reason)
            elif not self._run_length(model, spec, count, target):
                self.report(spec, target, "stopped")
                return False
        return True

    def _run_length(self, model: LoadedModel, spec: ModelSpec, count: TokenCounter, target: int) -> bool:
        """Every pending repeat at one length; False when cancelled (the turn in flight is dropped)."""
        self.report(spec, target, "running")
        params = self.plan.params()
        for repeat in range(self.plan.repeats):
            keys = self._keys(spec, target, repeat)
            if all(key in self.done for key in keys.values()):
                continue
            try:
                fitted = fit_prompts(count, self.filler, target, row_salt(self.plan.salt, spec.name, target, repeat))
            except Cancelled:
                return False
            if isinstance(fitted, str):
                self._skip(spec, target, fitted)
                return True
            for phase in PHASES:  # a cached row still to run needs its cold turn first, kept or not
                if self.cancel.is_set():
                    return False
                events = run_turn(model, fitted[phase].messages, params, cancel=self.cancel).events
                if self.cancel.is_set():
                    return False
                if keys[phase] not in self.done:
                    self.done.add(keys[phase])
                    self.left[spec.name, target] -= 1
                    self.keep(spec, target, sweep_row(spec, phase, target, repeat, fitted[phase], count.source, events))
        self.report(spec, target, "done")
        return True


# ---- the summary ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class SweepCell:
    """One model × input length × phase: medians over the repeats that ended without an error."""

    model: str
    requested_tokens: int
    phase: str
    done: int
    errors: int
    input_tokens: float | None  # as the model reported them
    cached_tokens: float | None  # where a server reports its prefix cache
    ttft_s: float | None
    prefill_tps: float | None
    decode_tps: float | None
    task_time_s: float | None
    latency: Latency | None = None  # p50/p90/p99 over the repeats (ITL over every token)


def _median(rows: Sequence[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return median(values) if values else None


def summarize(rows: Sequence[dict], models: Sequence[str], lengths: Sequence[int]) -> list[SweepCell]:
    cells = []
    for model in models:
        for target in lengths:
            for phase in PHASES:
                mine = [r for r in rows if r["model"] == model and r["requested_tokens"] == target
                        and r["phase"] == phase]
                if not mine:
                    continue
                ok = [r for r in mine if r.get("stop_reason") != "error"]
                medians = {key: _median(ok, key) for key in ("input_tokens", "cached_tokens", "ttft_s",
                                                            "prefill_tps", "decode_tps", "task_time_s")}
                cells.append(SweepCell(model, target, phase, len(mine), len(mine) - len(ok), **medians,
                                       latency=latency(ok)))
    return cells


@dataclass
class SweepSummary:
    plan: SweepPlan
    rows: list[dict[str, Any]]
    cells: list[SweepCell]
    skips: list[dict[str, Any]]
    failures: dict[str, str]
    damaged: list[str]
    system: dict[str, Any] | None = None

    def expected_rows(self) -> int:
        """The plan's rows less those of the lengths skipped."""
        return self.plan.total_rows() - len(self.skips) * self.plan.repeats * len(PHASES)

    def token_sources(self) -> dict[str, str]:
        """How each model's prompts were counted (from its rows)."""
        return {r["model"]: r["token_source"] for r in self.rows}

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.plan.run_id, "kind": KIND, "models": [m.name for m in self.plan.models],
                "input_tokens": self.plan.input_tokens, "output_tokens": self.plan.output_tokens,
                "repeats": self.plan.repeats, "rows": len(self.rows), "expected_rows": self.expected_rows(),
                "token_sources": self.token_sources(), "system": self.system,
                "cells": [asdict(c) for c in self.cells],
                "skipped": [{"model": s["model"], "input_tokens": s["requested_tokens"], "reason": s["reason"]}
                            for s in self.skips],
                "failed_models": self.failures, "damaged_lines": self.damaged}


def load_summary(folder: Path) -> SweepSummary:
    plan = read_plan(folder)
    results = runfolder.read_results(folder, KIND)
    cells = summarize(results.rows, [m.name for m in plan.models], plan.input_tokens)
    skips = list({(s["model"], s["requested_tokens"]): s for s in results.skips}.values())
    return SweepSummary(plan, results.rows, cells, skips, results.failures, results.damaged, read_system(folder))


# The table's columns (SweepCell fields; its medians of TurnMetrics figures as the figure registry shows them):
# summary.md's headers, the console's short ones.
COLUMNS = (SummaryColumn("model", "model"), SummaryColumn("input tokens", "requested_tokens", short="in tok"),
           SummaryColumn("prompt", "phase"), SummaryColumn("runs", "done"),
           SummaryColumn.of("input_tokens", "in tok (measured)", short="measured"),
           SummaryColumn("cached tok", "cached_tokens", short="cached"), SummaryColumn.of("ttft_s"),
           SummaryColumn.of("prefill_tps", short="prefill/s"), SummaryColumn.of("decode_tps", short="decode/s"),
           SummaryColumn.of("task_time_s"), SummaryColumn("errors", "errors", short="err"))


def skip_line(skip: dict[str, Any]) -> str:
    return f"{skip['model']} at {skip['requested_tokens']} tokens: {skip['reason']}"


CHART_FRAME_ROWS = 5  # a plotext chart's rows that are not plot area: title, frame, x ticks and x label
AXIS_COLUMNS = 8  # a plotext chart's columns left of the plot area (y ticks) and the frame's


def plot_vs_input(plt, cells: Sequence[SweepCell], key: str, label: str) -> None:
    """One figure against the requested input tokens, one line per model × prompt (cold, cached), drawn for the
    chart's size (``plt.plotsize()``, which the caller sets first).

    The lengths sit on a log2 axis (usually powers of two, so evenly apart); each line's points carry its marker,
    drawn over every line and set a little apart at one length, so no line hides another; and the top of the
    y axis leaves the legend's rows free, so the legend covers no point."""
    plt.clear_data()
    series = [(safe_line(f"{model} · {phase}"), points) for model, phase in dict.fromkeys((c.model, c.phase)
                                                                                             for c in cells)
              if (points := [(c.requested_tokens, getattr(c, key)) for c in cells
                             if c.model == model and c.phase == phase and getattr(c, key) is not None])]
    plt.title(f"{label} vs input tokens (median of repeats)")
    plt.xlabel("input tokens")
    plt.ylabel(label)
    if not series:
        return
    width, height = plt.plotsize()
    lengths = sorted({x for _, points in series for x, _ in points})
    span = max(math.log2(lengths[-1] / lengths[0]), 1.0)
    columns = max(width - AXIS_COLUMNS - 2 * len(series), 10)
    dodge = 1.5 * span / columns  # a character and a half between neighbouring lines' points at one length
    middle = (len(series) - 1) / 2

    def at(x: int, index: int) -> float:
        return math.log2(x) + (index - middle) * dodge

    for index, (_, points) in enumerate(series):
        plt.plot([at(x, index) for x, _ in points], [y for _, y in points], marker="braille",
                 color=series_color(index))
    for index, (name, points) in enumerate(series):  # names are outside text: control codes made visible
        plt.scatter([at(x, index) for x, _ in points], [y for _, y in points], marker=series_marker(index),
                    color=series_color(index), label=name)
    plt.xticks([math.log2(n) for n in lengths], [str(n) for n in lengths])
    plt.xlim(at(lengths[0], 0) - dodge, at(lengths[-1], len(series) - 1) + dodge)
    top = max(y for _, points in series for _, y in points)
    rows = height - CHART_FRAME_ROWS
    legend = len(series) + 1  # its rows and one row of air
    if top > 0 and rows > legend + 1:
        plt.ylim(0, top * (rows - 1) / (rows - 1 - legend))


CHARTS = (("ttft_s", "TTFT s"), ("task_time_s", "task time s"))  # (SweepCell field, label): console, files, app


def text_plots(summary: SweepSummary, width: int = 100, height: int = 20) -> str:
    return "\n\n".join(text_chart(plot_vs_input, summary.cells, key, label, width=width, height=height)
                       for key, label in CHARTS)


def summary_markdown(summary: SweepSummary) -> str:
    plan = summary.plan
    parts = tables.markdown_head(f"taskclock sweep run {plan.run_id}", summary.system)
    sources = ", ".join(f"{m}: {s}" for m, s in summary.token_sources().items()) or "—"
    parts += [
        f"- models: {', '.join(m.name + ' (' + m.backend + ')' for m in plan.models)}",
        f"- input tokens: {', '.join(map(str, plan.input_tokens))}; at most {plan.output_tokens} output tokens "
        f"(greedy); {plan.repeats} repeat(s); {plan.warmup} untimed warm-up turn(s) per model",
        f"- rows: {len(summary.rows)} of {summary.expected_rows()} ({len(summary.skips)} length(s) skipped); "
        f"prompts counted by: {sources}",
        "- cold: the context starts with a salt no earlier request had; cached: the same context again, only "
        "the question changed",
        "",
        "## TTFT and task time by input length",
        "",
        "Medians over the repeats; prefill tok/s = input tokens / TTFT, on cached rows the tokens the cache did not "
        "serve / TTFT where the backend reports its cache, else —.",
        "",
        md_table([column.header for column in COLUMNS], (cell_row(c, COLUMNS) for c in summary.cells)),
    ]
    parts += ["", "## Latency percentiles", "", "Over the repeats: TTFT, per-token ITL (every token) and task time.",
              "", md_table(["model", "input tokens", "prompt", *(column.header for column in LATENCY_COLUMNS)],
                           ([c.model, str(c.requested_tokens), c.phase, *latency_row(c.latency)]
                            for c in summary.cells if c.latency is not None))]
    if summary.skips:
        parts += ["", "## Skipped", ""] + [f"- {skip_line(s)}" for s in summary.skips]
    parts += tables.closing_sections(summary.failures, summary.damaged, text_plots(summary) if summary.cells else "")
    return "\n".join(parts) + "\n"


def export(folder: Path) -> SweepSummary:
    """Write results.csv, summary.md, summary.json and plots.txt into the run folder (atomically)."""
    summary = load_summary(folder)
    tables.write_exports(folder, summary, results_csv(summary.rows, CSV_COLUMNS), summary_markdown(summary),
                         text_plots(summary) if summary.cells else "")
    return summary

