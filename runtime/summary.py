"""A bench run's results: per model × task statistics, the two rankings, exports and plots.

Everything here is a pure function of the result rows (results.jsonl), so `taskclock export RUN_DIR`
regenerates exactly what the run wrote. The point of the tables: rank models by decode TPS and by mean
time per task side by side, and flag where the two disagree (Conde et al., arXiv 2502.16721).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from statistics import fmean
from typing import Any

from . import tables, verdict
from .metrics import CELL, TurnMetrics, figures_in, percentile
from .runfolder import RunPlan, read_plan, read_results, read_system
from .stats import Spread, spread
from .tables import (
    LATENCY_COLUMNS,
    Latency,
    SummaryColumn,
    latency,
    latency_row,
    md_table,
    series_color,
    text_chart,
)
from .untrusted import safe_line

ALL_TASKS = "all"
# The TurnMetrics figures that are numbers (not flags or words): each cell keeps the mean of each (CellStats.means).
MEAN_KEYS = tuple(f.name for f in fields(TurnMetrics)
                  if not {"bool", "str"} & set(str(f.type).replace("|", " ").split()))
CSV_COLUMNS = ("model", "backend", "task", "qid", "subject", "batch_size", "repeat",
               *(f.name for f in fields(TurnMetrics)), "cached_tokens", "error", "parsed", "answer",
               "correct", "reply")


@dataclass(frozen=True)
class CellStats:
    """One model × task: what the summary table shows. None where a figure is undefined."""

    model: str
    task: str
    done: int
    errors: int
    truncated: int  # replies cut short: at the token budget, or never out of thinking (metrics.cut)
    batch_size: int
    means: dict[str, float | None]  # every number TurnMetrics has (MEAN_KEYS), by its key: the mean of the rows
    median_input_tokens: float | None
    median_output_tokens: float | None
    median_output_words: float | None
    total_time_s: float
    p90_task_time_s: float | None
    words_per_s: float | None
    accuracy: float | None
    no_letter_rate: float | None
    # the batch-size table: per repeat of the set, then mean, sd and 95% CI over the repeats
    repeats: int = 1
    set_input_tokens: float | None = None
    set_output_tokens: float | None = None
    cached_tokens: float | None = None  # mean per request, where the server reports its prefix cache
    tpot_ms: float | None = None
    aggregate_tps: float | None = None
    set_time: Spread | None = None
    tps_spread: Spread | None = None
    task_time: Spread | None = None
    # reasoning models, only when a row of the cell thought (a row that did not counts as all answer)
    mean_thinking_tokens: float | None = None
    mean_answer_tokens: float | None = None
    mean_thinking_words: float | None = None
    mean_answer_words: float | None = None
    mean_ttfa_s: float | None = None
    cap: int | None = None  # the output cap its replies ran under
    latency: Latency | None = None

    def mean(self, key: str) -> float | None:
        """The mean of a TurnMetrics figure over the cell's rows that completed."""
        return self.means[key]

    @property
    def cut_mark(self) -> str:
        """"8/8": replies cut short of those that finished (docs/METRICS.md, ``cut``)."""
        return f"{self.truncated}/{self.done - self.errors}"


@dataclass(frozen=True)
class Ranking:
    """One model's two ranks in a task set (0 where its figure is missing), with the figures ranked."""

    task: str
    model: str
    tps_rank: int
    time_rank: int
    batch_size: int = 1
    decode_tps: float | None = None
    task_time_s: float | None = None
    words: float | None = None
    mark: str = ""  # DISAGREE, a "within noise (…)" where the ranks differ by less than the run can tell, or ""
    interval: str = ""  # with "within noise": the task-time gap's 95% interval ("±0.21 s")

    @property
    def by_tps(self) -> int | None:
        return self.tps_rank or None

    @property
    def by_time(self) -> int | None:
        return self.time_rank or None

    @property
    def disagree(self) -> bool:
        """The two ranks differ, and the run can tell: paired intervals of both differences leave 0 out."""
        return self.mark == DISAGREE


@dataclass(frozen=True)
class TaskRanking:
    """The rankings of one task set at one batch size, and the one-line verdict on them."""

    task: str
    batch_size: int
    ranks: list[Ranking]
    verdict: str


def _values(rows: Iterable[dict], key: str) -> list[float]:
    return [r[key] for r in rows if r.get(key) is not None]


def _mean(values: Sequence[float]) -> float | None:
    return fmean(values) if values else None


def set_time_s(rows: list[dict], walls: dict[str, float]) -> float:
    """Wall time of one pass over a set: each batched or concurrent segment's wall time (``walls`` by
    segment id; the longest request where its record is missing) plus the task times of the rows run one
    after another."""
    grouped: dict[str, list[float]] = {}
    alone = 0.0
    for row in rows:
        if row.get("segment"):
            grouped.setdefault(row["segment"], []).append(row.get("task_time_s") or 0.0)
        else:
            alone += row.get("task_time_s") or 0.0
    return alone + sum(walls.get(segment, max(times)) for segment, times in grouped.items())


def repeat_figures(rows: list[dict], walls: dict[str, float]) -> tuple[Spread | None, Spread | None, Spread | None]:
    """Set time, aggregate output tok/s and mean task time per repeat, spread over the repeats."""
    set_times, tps, task_means = [], [], []
    for repeat in sorted({r.get("repeat") or 0 for r in rows}):
        mine = [r for r in rows if (r.get("repeat") or 0) == repeat]
        ok = [r for r in mine if r.get("stop_reason") != "error"]
        wall = set_time_s(mine, walls)
        set_times.append(wall)
        if wall > 0:
            tps.append(sum(_values(ok, "output_tokens")) / wall)
        if _values(ok, "task_time_s"):
            task_means.append(fmean(_values(ok, "task_time_s")))
    return spread(set_times), spread(tps), spread(task_means)


def thinking_stats(rows: list[dict]) -> dict[str, float | None]:
    """The thinking/answer split of a cell's rows (CellStats' mean_thinking_* fields), when any row thought.
    A row that did not think spent no tokens thinking, its output is answer and its TTFT its TTFA."""
    if not any(r.get("thinking_tokens") is not None for r in rows):
        return {}

    def split(row: dict, part: str, total: str) -> tuple[float, float] | None:
        """(thinking, answer): the answer is the rest of the output, as metrics.answer_tokens defines it."""
        if row.get(total) is None:
            return None
        thinking = row.get(part) or 0
        return thinking, max(row[total] - thinking, 0)

    tokens = [t for t in (split(r, "thinking_tokens", "output_tokens") for r in rows) if t]
    words = [w for w in (split(r, "thinking_words", "output_words") for r in rows) if w]
    ttfa = [r["ttfa_s"] if r.get("thinking_tokens") is not None else r.get("ttft_s") for r in rows]
    return {"mean_thinking_tokens": _mean([t for t, _ in tokens]), "mean_answer_tokens": _mean([a for _, a in tokens]),
            "mean_thinking_words": _mean([t for t, _ in words]), "mean_answer_words": _mean([a for _, a in words]),
            "mean_ttfa_s": _mean([v for v in ttfa if v is not None])}


def cell_stats(model: str, task: str, rows: list[dict], scored: bool,
               walls: dict[str, float] | None = None, cap: int | None = None) -> CellStats:
    """Figures over the rows that completed without an error; errors are counted apart. ``total_time_s`` is
    the wall time of the set (mean over repeats); ``cap`` the output cap the rows ran under."""
    ok = [r for r in rows if r.get("stop_reason") != "error"]
    times = _values(ok, "task_time_s")
    set_time, tps_spread, task_time = repeat_figures(rows, walls or {})
    repeats = set_time.n if set_time else 1
    total = set_time.mean if set_time else 0.0
    words = sum(_values(ok, "output_words"))
    decode = [v for v in _values(ok, "decode_tps") if v > 0]
    inputs, outputs, word_counts = (_values(ok, k) for k in ("input_tokens", "output_tokens", "output_words"))
    return CellStats(
        model=model, task=task, done=len(rows), errors=len(rows) - len(ok),
        truncated=sum(1 for r in ok if (s := verdict.sample(r)) is not None and s.cut), cap=cap,
        batch_size=max((r.get("batch_size") or 1 for r in rows), default=1),
        means={key: _mean(_values(ok, key)) for key in MEAN_KEYS},
        median_input_tokens=percentile(inputs, 50), median_output_tokens=percentile(outputs, 50),
        median_output_words=percentile(word_counts, 50), total_time_s=total, p90_task_time_s=percentile(times, 90),
        words_per_s=words / repeats / total if total > 0 else None,
        accuracy=sum(1 for r in ok if r.get("correct")) / len(ok) if scored and ok else None,
        no_letter_rate=sum(1 for r in ok if r.get("parsed") is None) / len(ok) if scored and ok else None,
        repeats=repeats, set_input_tokens=sum(inputs) / repeats if inputs else None,
        set_output_tokens=sum(outputs) / repeats if outputs else None,
        cached_tokens=_mean(_values(ok, "cached_tokens")), tpot_ms=_mean([1000 / v for v in decode]),
        aggregate_tps=tps_spread.mean if tps_spread else None, set_time=set_time, tps_spread=tps_spread,
        task_time=task_time, latency=latency(ok), **thinking_stats(ok),
    )


def summarize(rows: list[dict], models: Sequence[str], task_names: Sequence[str],
              scored: set[str], walls: dict[str, float] | None = None,
              caps: dict[str, int] | None = None) -> list[CellStats]:
    """One cell per model × batch size × task that has rows, then an "all" cell per model × batch size
    (scored tasks only count towards accuracy in their own cell). ``walls``: segment wall times by id;
    ``caps``: each task's output cap."""
    cells = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        for size in sorted({r.get("batch_size") or 1 for r in mine}):
            sized = [r for r in mine if (r.get("batch_size") or 1) == size]
            for task in task_names:
                subset = [r for r in sized if r["task"] == task]
                if subset:
                    cells.append(cell_stats(model, task, subset, task in scored, walls, (caps or {}).get(task)))
            if sized and len(task_names) > 1:
                cells.append(cell_stats(model, ALL_TASKS, sized, False, walls))
    return cells


def _ranks(cells: list[CellStats], key: str, reverse: bool) -> dict[str, int]:
    ranked = sorted((c for c in cells if c.mean(key) is not None), key=lambda c: c.mean(key) or 0.0, reverse=reverse)
    return {c.model: i for i, c in enumerate(ranked, 1)}


def pair_key(row: dict) -> tuple:
    """What makes two rows answers to the same question: the task (the "all" cell holds several), question and
    repeat."""
    return row["task"], row["qid"], row.get("repeat") or 0


@dataclass(frozen=True)
class Versus:
    """Two models of one task set, ``later`` by mean task time, on the questions both answered."""

    later: str
    sooner: str
    paired: list[tuple[verdict.Sample, verdict.Sample]]
    time: verdict.Difference
    tps: verdict.Difference

    @property
    def stands(self) -> bool:
        """Both the task-time gap and the tok/s difference are more than the run's noise."""
        return self.time.stands and self.tps.stands


def versus(later: str, sooner: str, rows: dict[str, list[dict]]) -> Versus:
    paired = verdict.pairs(rows.get(later, []), rows.get(sooner, []), pair_key)
    return Versus(later, sooner, paired, verdict.task_time_difference(paired), verdict.tps_difference(paired))


def _marked(rank: Ranking, ranks: list[Ranking], group: dict[str, CellStats], rows: dict[str, list[dict]]
            ) -> Ranking:
    """The ranking with its mark: DISAGREE where the model's ranks differ and some model it swaps places with
    is apart from it by more than the run's noise on both figures; a "within noise (…)" where every swap is
    within it; else none."""
    if not (rank.tps_rank and rank.time_rank) or rank.tps_rank == rank.time_rank:
        return rank
    swaps = [o for o in ranks if o.tps_rank and o.time_rank and o.model != rank.model
             and (o.tps_rank < rank.tps_rank) != (o.time_rank < rank.time_rank)]
    def later_first(other: str) -> tuple[str, str]:
        return (rank.model, other) if (group[rank.model].mean("task_time_s") or 0) >= (group[other].mean("task_time_s")
                                                                                    or 0) else (other, rank.model)

    pairs = [versus(*later_first(o.model), rows) for o in swaps]
    if any(p.stands for p in pairs):
        return replace(rank, mark=DISAGREE)
    widest = max(pairs, key=lambda p: abs(p.time.spread.mean) if p.time.spread else 0.0, default=None)
    if widest is None:
        return rank
    return replace(rank, mark=widest.time.noise(), interval=widest.time.interval())


def rankings(cells: list[CellStats], rows: Sequence[dict] = (), what: str = "questions or repeats"
             ) -> list[TaskRanking]:
    """Per task and batch size with two models or more: rank 1 = highest mean decode TPS, and rank 1 = lowest
    mean time per task, each model's mark (a disagreement stands only beyond the run's noise, paired over the
    questions in ``rows``), and the verdict on them. The console, summary.md and the Batch tab render these."""
    out: list[TaskRanking] = []
    for task, size in dict.fromkeys((c.task, c.batch_size) for c in cells):
        group = {c.model: c for c in cells if c.task == task and c.batch_size == size}
        if len(group) < 2:
            continue
        mine = [r for r in rows if (r.get("batch_size") or 1) == size and (task == ALL_TASKS or r["task"] == task)]
        by_model = {m: [r for r in mine if r["model"] == m] for m in group}
        by_tps, by_time = _ranks(list(group.values()), "decode_tps", True), \
            _ranks(list(group.values()), "task_time_s", False)
        ranks = [Ranking(task, c.model, by_tps.get(c.model, 0), by_time.get(c.model, 0), size, c.mean("decode_tps"),
                         c.mean("task_time_s"), c.mean("output_words")) for c in group.values()]
        ranks = [_marked(r, ranks, group, by_model) for r in ranks]
        out.append(TaskRanking(task, size, ranks, _verdict(task, size, ranks, group, by_model, what)))
    return out


def _verdict(task: str, size: int, ranks: list[Ranking], cells: dict[str, CellStats], rows: dict[str, list[dict]],
             what: str) -> str:
    """One line: the model ranked highest by tok/s among those that slip by task time and why the model that
    overtakes it finishes sooner, or where the rankings agree, why the second finishes after the first; each
    with the run's interval on it, and the replies cut short (runtime/verdict.py)."""
    label = task if size == 1 else f"{task} at batch {size}"
    both = [r for r in ranks if r.tps_rank and r.time_rank]
    if len(both) < 2:
        return f"{label}: too few figures to rank both ways (a one-token reply has no decode tok/s)"
    slipped = sorted((r for r in both if r.tps_rank < r.time_rank), key=lambda r: r.tps_rank)
    by_time = sorted(both, key=lambda r: r.time_rank)
    if slipped:
        fast = slipped[0]
        overtakers = [r for r in both if r.tps_rank > fast.tps_rank and r.time_rank < fast.time_rank]
        first = min(overtakers or both, key=lambda r: r.time_rank)
        pair = versus(fast.model, first.model, rows)
        noisy = pair.tps.n and not pair.tps.stands
        head = (f"{label}: {fast.model} is {verdict.ordinal(fast.tps_rank)} by tok/s"
                f"{' (' + pair.tps.noise() + ')' if noisy else ''} but {verdict.ordinal(fast.time_rank)} by task time")
    else:
        first, second = by_time[0], by_time[1]
        pair = versus(second.model, first.model, rows)
        tps = f"; their tok/s differ {pair.tps.noise()}" if pair.tps.n and not pair.tps.stands else ""
        head = (f"{label}: rankings agree on this run ({first.model} is 1st by tok/s and by task time{tps}); "
                f"{second.model} finishes later")
    gap = (cells[pair.later].mean("task_time_s") or 0.0) - (cells[pair.sooner].mean("task_time_s") or 0.0)
    line = head + verdict.explained(verdict.attribute(pair.later, pair.sooner, pair.paired, gap), pair.time, what)
    for model in (r.model for r in ranks):
        cell = cells[model]
        if cell.truncated:
            line += "; " + verdict.Cut(model, cell.truncated, cell.done - cell.errors, cell.cap).phrase()
    return line


@dataclass
class RunSummary:
    plan: RunPlan
    rows: list[dict[str, Any]]
    failures: dict[str, str]
    cells: list[CellStats]
    rankings: list[TaskRanking]
    damaged: list[str]  # results.jsonl lines skipped as damaged ("line N: reason")
    system: dict[str, Any] | None = None

    @property
    def ranks(self) -> list[Ranking]:
        return [r for group in self.rankings for r in group.ranks]

    def sizes(self) -> list[int]:
        return sorted({c.batch_size for c in self.cells})

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.plan.run_id,
            "models": [m.name for m in self.plan.models],
            "tasks": [t.name for t in self.plan.tasks],
            "questions": len(self.plan.question_ids),
            "rows": len(self.rows),
            "expected_rows": self.plan.total_rows(),
            "batch_size": self.plan.batch_size,
            "batch_sizes": self.plan.sizes(),
            "repeats": self.plan.repeats,
            "no_prefix_cache": bool(self.plan.prefix_salt),
            "system": self.system,
            "mmlu_rows_skipped": self.plan.skipped_rows,
            "failed_models": self.failures,
            "damaged_lines": self.damaged,
            "cells": [cell_dict(c) for c in self.cells],
            "rankings": [{**asdict(r), "disagree": r.disagree} for r in self.ranks],
            "verdicts": [{"task": g.task, "batch_size": g.batch_size, "verdict": g.verdict} for g in self.rankings],
        }


def load_summary(folder: Path) -> RunSummary:
    plan = read_plan(folder)
    results = read_results(folder)
    walls = {s["segment"]: s["wall_s"] for s in results.segments}
    task_names = [t.name for t in plan.tasks]
    cells = summarize(results.rows, [m.name for m in plan.models], task_names,
                      {t.name for t in plan.tasks if t.scored}, walls, plan.caps())
    return RunSummary(plan, results.rows, results.failures, cells, rankings(cells, results.rows), results.damaged,
                      read_system(folder))


# ---- exports -------------------------------------------------------------------------------------

def results_csv(rows: list[dict]) -> str:
    return tables.results_csv(rows, CSV_COLUMNS)


# The per model × task table: each CELL figure's mean (the figure registry, runtime/metrics.py), then the cell's
# own figures. summary.md has every column; the console's tables and the Batch tab pick theirs by key.
TABLE_COLUMNS = (
    SummaryColumn("model", "model"), SummaryColumn("task", "task"), SummaryColumn("done", "done"),
    SummaryColumn("batch", "batch_size"), *(SummaryColumn.mean_of(shown) for shown in figures_in(CELL)),
    SummaryColumn("out tok (median)", "median_output_tokens", 1, short="out tok (med)"),
    SummaryColumn("p90 task s", "p90_task_time_s", 3), SummaryColumn("total s", "total_time_s", 1),
    SummaryColumn("words/s", "words_per_s", 1),
    SummaryColumn("accuracy", "accuracy", percent=True, short="acc"),
    SummaryColumn("no letter", "no_letter_rate", percent=True), SummaryColumn("errors", "errors"),
    SummaryColumn("cut", "cut_mark"),
    SummaryColumn("think tok (mean)", "mean_thinking_tokens", 1, short="think tok"),
    SummaryColumn("answer tok (mean)", "mean_answer_tokens", 1, short="answer tok"),
    SummaryColumn("think words (mean)", "mean_thinking_words", 1, short="think words"),
    SummaryColumn("answer words (mean)", "mean_answer_words", 1, short="answer words"),
    SummaryColumn("TTFA s (mean)", "mean_ttfa_s", 3, short="TTFA s"),
)
THINKING_KEYS = frozenset(("mean_thinking_tokens", "mean_answer_tokens", "mean_thinking_words",
                           "mean_answer_words", "mean_ttfa_s"))


def shown_columns(cells: Sequence[CellStats], columns: Sequence[SummaryColumn] = TABLE_COLUMNS,
                  ) -> tuple[SummaryColumn, ...]:
    """``columns`` without the thinking/answer split unless some cell thought: runs of models that do not
    think keep their tables as they were."""
    if any(c.mean_thinking_tokens is not None for c in cells):
        return tuple(columns)
    return tuple(c for c in columns if c.key not in THINKING_KEYS)


def table_columns(*keys: str) -> tuple[SummaryColumn, ...]:
    """The TABLE_COLUMNS for these CellStats fields, in the order given."""
    by_key = {column.key: column for column in TABLE_COLUMNS}
    return tuple(by_key[key] for key in keys)


def cell_row(cell: CellStats, columns: Sequence[SummaryColumn] = TABLE_COLUMNS) -> list[str]:
    return tables.cell_row(cell, columns)


def cell_dict(cell: CellStats) -> dict[str, Any]:
    """A cell as summary.json holds it: its fields, with the mean of every CELL figure as ``mean_<figure>``."""
    fields_ = {key: value for key, value in asdict(cell).items() if key != "means"}
    return {**fields_, **{f"mean_{shown.key}": cell.mean(shown.key) for shown in figures_in(CELL)}}


# The paper's table, one row per model × task × batch size; "± x" is the 95% CI over --repeats.
BATCH_COLUMNS = (
    SummaryColumn("model", "model"), SummaryColumn("task", "task"), SummaryColumn("batch", "batch_size"),
    SummaryColumn("repeats", "repeats", short="reps"),
    SummaryColumn("in tok (set)", "set_input_tokens", short="in tok"),
    SummaryColumn("out tok (set)", "set_output_tokens", short="out tok"),
    SummaryColumn("cached tok (mean)", "cached_tokens", 1, short="cached"),
    SummaryColumn("time/out tok ms", "tpot_ms", 1, short="ms/tok"),
    SummaryColumn("total s (set)", "set_time", 2, short="total s"),
    SummaryColumn("aggregate out tok/s", "tps_spread", 1, short="agg tok/s"),
    SummaryColumn("task time s (mean)", "task_time", 3, short="task s"),
    SummaryColumn("p90 task s", "p90_task_time_s", 3, short="p90 s"),
)


def spread_rows(cells: Iterable[CellStats]) -> list[list[str]]:
    """Mean, sd and 95% CI over repeats, spelled out, for cells that were repeated."""
    out = []
    for cell in cells:
        for name, value, digits in (("total s (set)", cell.set_time, 3), ("aggregate out tok/s", cell.tps_spread, 2),
                                    ("task time s (mean)", cell.task_time, 4)):
            if value is not None and value.sd is not None and value.ci95 is not None:
                out.append([cell.model, cell.task, str(cell.batch_size), name, str(value.n), f"{value.mean:.{digits}f}",
                            f"{value.sd:.{digits}f}", f"{value.mean - value.ci95:.{digits}f} – "
                                                      f"{value.mean + value.ci95:.{digits}f}"])
    return out


# The rankings table, one row per model in a task set: each rank beside the figure it ranks.
RANKING_COLUMNS = (
    SummaryColumn("task", "task"), SummaryColumn("batch", "batch_size"), SummaryColumn("model", "model"),
    SummaryColumn.of("decode_tps", short="tok/s"), SummaryColumn("rank by tok/s", "by_tps", short="by tok/s"),
    SummaryColumn.of("task_time_s", "task time s (mean)", short="task s"),
    SummaryColumn("rank by task time", "by_time", short="by task s"),
    SummaryColumn("words (mean)", "words", 1, short="words"), SummaryColumn("ranks", "mark"),
)
DISAGREE = "disagree"


def ranking_row(rank: Ranking, narrow: bool = False) -> list[str]:
    """``narrow``: "within noise (n=4, ±0.21 s)" shortened to "noise ±0.21" (seconds, as the task s column), so
    the table fits 80 columns; the verdict under it says it in full."""
    if narrow and rank.interval:
        rank = replace(rank, mark=f"noise {rank.interval.removesuffix(' s')}")
    return tables.cell_row(rank, RANKING_COLUMNS)


def fixed_notes(summary: RunSummary) -> list[str]:
    """What a fixed-length run (``--input-tokens``) asked and where an engine did not do it, one line each."""
    plan = summary.plan
    if not plan.input_tokens:
        return []
    sources = ", ".join(sorted({f"{r['model']}: {r['token_source']}" for r in summary.rows if r.get("token_source")}))
    notes = [f"fixed-length workload: {plan.input_tokens} input tokens by each model's own count ({sources or '—'}), "
             f"{plan.output_tokens} output tokens with ignore_eos (and min_tokens over HTTP)"]
    for model in (m.name for m in plan.models):
        mine = [r for r in summary.rows if r["model"] == model and r.get("stop_reason") != "error"]
        short = [r for r in mine if r.get("stop_reason") in ("eos", "stop") and (r.get("output_tokens") or 0)
                 < plan.output_tokens]
        if short:
            notes.append(f"{model}: {len(short)} of {len(mine)} replies ended before {plan.output_tokens} tokens: its "
                         "engine does not honour ignore_eos, so they are shorter than asked")
        under = [r for r in mine if (r.get("prompt_tokens") or plan.input_tokens) < plan.input_tokens]
        if under:
            notes.append(f"{model}: {len(under)} prompt(s) hold fewer than {plan.input_tokens} tokens (no cut of the "
                         "text hits the count exactly)")
    return notes


def summary_markdown(summary: RunSummary) -> str:
    plan = summary.plan
    columns = shown_columns(summary.cells)
    parts = tables.markdown_head(f"taskclock bench run {plan.run_id}", summary.system)
    cache = (f"prompts salted per request (`--no-prefix-cache`, salt {plan.prefix_salt})" if plan.prefix_salt
             else "prompts replayed as they are (a server's prefix cache may serve them)")
    parts += [
        f"- models: {', '.join(m.name + ' (' + m.backend + ')' for m in plan.models)}",
        f"- tasks: {', '.join(t.name for t in plan.tasks)}",
        f"- questions: {len(plan.question_ids)} (seed {plan.seed}, subjects: "
        f"{'all' if len(plan.subjects) > 5 else ', '.join(plan.subjects)}); MMLU rows skipped as malformed: "
        f"{plan.skipped_rows}",
        f"- rows: {len(summary.rows)} of {plan.total_rows()}; batch sizes {', '.join(map(str, plan.sizes()))}, "
        f"{plan.repeats} repeat(s) (transformers models run padded batches, HTTP models keep that many requests "
        f"in flight, llama.cpp in-process models run at batch 1 only)",
        f"- {cache}",
        f"- sampling: temperature {plan.temperature:g}, top-p {plan.top_p:g}, seed {plan.seed}; output caps: "
        f"{', '.join(f'{task} {cap}' for task, cap in plan.caps().items())}; system prompt: "
        f"{json.dumps(plan.system, ensure_ascii=False) if plan.system else 'none'}",
        *(f"- {note}" for note in fixed_notes(summary)),
        "",
        "## Per model × task",
        "",
        md_table([c.header for c in columns], (cell_row(c, columns) for c in summary.cells)),
        "",
        "## Per batch size",
        "",
        "Per pass over the question set: input and output tokens, the wall time of the whole set (total s) and "
        "all output tokens / that time (aggregate). With repeats, ± is the 95% confidence interval (t-based).",
        "",
        md_table([c.header for c in BATCH_COLUMNS], (cell_row(c, BATCH_COLUMNS) for c in summary.cells)),
    ]
    parts += ["", "## Latency percentiles", "",
              "Per model × task: TTFT, per-token ITL (every token of the cell's replies; a chunk of k tokens after a "
              "gap g counts as k gaps of g / k) and task time at p50, p90 and p99.", "",
              md_table(["model", "task", "batch", *(column.header for column in LATENCY_COLUMNS)],
                       ([c.model, c.task, str(c.batch_size), *latency_row(c.latency)] for c in summary.cells
                        if c.latency is not None))]
    repeated = spread_rows(summary.cells)
    if repeated:
        parts += ["", "### Spread over repeats", "",
                  md_table(["model", "task", "batch", "figure", "n", "mean", "sd", "95% CI"], repeated)]
    if summary.rankings:
        rows = [[f"**{v}**" if v == DISAGREE else v for v in ranking_row(r)] for r in summary.ranks]
        parts += ["", "## Rankings: decode TPS vs time per task",
                  "", f"Rank 1 = fastest. **{DISAGREE}** marks a model whose two ranks differ by more than the "
                      "run's noise (paired 95% intervals over the same questions leave 0 out): tokens/s is not task "
                      "speed; *within noise* marks ranks that differ by less than the run can tell.", "",
                  md_table([c.header for c in RANKING_COLUMNS], rows), "", "### Verdict", ""]
        parts += [f"- {group.verdict}" for group in summary.rankings]
    parts += tables.closing_sections(summary.failures, summary.damaged)
    return "\n".join(parts) + "\n"


def export(folder: Path) -> RunSummary:
    """Write results.csv, summary.md, summary.json and plots.txt into the run folder (atomically); returns the
    summary they were made from."""
    summary = load_summary(folder)
    tables.write_exports(folder, summary, results_csv(summary.rows), summary_markdown(summary),
                         text_plots(summary) if summary.rows else "")
    return summary


# ---- plots (plotext API: the plotext module for text, or a textual-plotext widget's .plt) ----------
# Every chart has axis titles, and every point or bar is named (model · task) where it is drawn, so no
# legend is needed and none covers the data.

def _name(model: str, task: str, size: int | None = None) -> str:
    """A point's or bar's label; names are outside text, so their control codes are made visible."""
    return safe_line(f"{model} · {task}" + (f" · batch {size}" if size else ""))


def _label_point(plt, x: float, y: float, text: str, color: str, rightward: bool) -> None:
    """A label that carries its point's marker: "• text" running right of the point, or "text •" running
    left of it (for points in the right half, so no label runs off the chart)."""
    if rightward:
        plt.text(f"• {text}", x, y, alignment="left", color=color)
    else:
        plt.text(f"{text} •", x, y, alignment="right", color=color)


def plot_speed_vs_time(plt, cells: list[CellStats]) -> None:
    """Decode TPS against mean task time, one labelled point per model × task (a colour per model)."""
    plt.clear_data()
    points = [(c, tps, time_s) for c in cells if c.task != ALL_TASKS
              and (tps := c.mean("decode_tps")) is not None and (time_s := c.mean("task_time_s")) is not None]
    sizes = {c.batch_size for c, _, _ in points}
    xs = [tps for _, tps, _ in points]
    middle = (min(xs) + max(xs)) / 2 if xs else 0.0
    for index, model in enumerate(dict.fromkeys(c.model for c, _, _ in points)):
        mine, color = [p for p in points if p[0].model == model], series_color(index)
        plt.scatter([tps for _, tps, _ in mine], [time_s for _, _, time_s in mine], marker="dot", color=color)
        for c, tps, time_s in mine:
            _label_point(plt, tps, time_s, _name(c.model, c.task, c.batch_size if len(sizes) > 1 else None), color,
                         rightward=tps <= middle)
    plt.title("decode tok/s vs task time")  # short: the charts share the tab's width
    plt.xlabel("decode tok/s")
    plt.ylabel("task time s")


def plot_words(plt, cells: list[CellStats]) -> None:
    """Verbosity beside speed: mean output words per reply, one bar per model · task, named on its axis."""
    plt.clear_data()
    bars: dict[str, float] = {}
    for c in cells:  # the smallest batch size's cell where a sweep has several: words do not depend on it
        if c.task != ALL_TASKS and (words := c.mean("output_words")) is not None:
            bars.setdefault(_name(c.model, c.task), words)
    if bars:
        names = list(bars)[::-1]  # plotext draws the first bar at the bottom
        plt.bar(names, [bars[name] for name in names], orientation="horizontal", width=0.3)
    plt.title("words per reply")
    plt.xlabel("words (mean)")
    plt.ylabel("model · task")


def plot_time_vs_batch(plt, cells: list[CellStats]) -> None:
    """Total task time for the set against batch size, one line per model × task (the paper's figure), each
    named at its last point."""
    plt.clear_data()
    series = list(dict.fromkeys((c.model, c.task) for c in cells if c.task != ALL_TASKS))
    for index, (model, task) in enumerate(series):
        points = sorted((c.batch_size, c.total_time_s) for c in cells if c.model == model and c.task == task)
        color = series_color(index)
        plt.plot([size for size, _ in points], [total for _, total in points], marker="dot", color=color)
        _label_point(plt, *points[-1], _name(model, task), color, rightward=False)
    plt.title("set time vs batch size")
    plt.xlabel("batch size")
    plt.ylabel("total s (set)")


def plot_output_lengths(plt, rows: list[dict], task: str) -> None:
    """How many tokens each model writes for one task: a box per model (quartiles, whiskers to the extremes),
    named on the x axis."""
    plt.clear_data()
    lengths: dict[str, list[int]] = {}
    for r in rows:
        if r["task"] == task and r.get("output_tokens") is not None:
            lengths.setdefault(r["model"], []).append(r["output_tokens"])
    if lengths:
        plt.box([safe_line(model) for model in lengths], list(lengths.values()), width=0.3)
        plt.xlim(0.5, len(lengths) + 0.5)  # the outer boxes whole, not cut by the frame
    plt.title(safe_line(f"{task}: output tokens per reply"))
    plt.xlabel("model")
    plt.ylabel("output tokens")


def text_plots(summary: RunSummary, width: int = 100, height: int = 20) -> str:
    """The plots as plain text, for the terminal and plots.txt."""
    def draw(plot, *args) -> str:
        return text_chart(plot, *args, width=width, height=height)

    charts = [draw(plot_speed_vs_time, summary.cells), draw(plot_words, summary.cells)]
    if len(summary.sizes()) > 1:
        charts.insert(0, draw(plot_time_vs_batch, summary.cells))
    charts += [draw(plot_output_lengths, summary.rows, task.name) for task in summary.plan.tasks]
    return "\n\n".join(charts)
