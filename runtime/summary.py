"""A bench run's results: per model × task statistics, the two rankings, exports and plots.

Everything here is a pure function of the result rows (results.jsonl), so `taskclock export RUN_DIR`
regenerates exactly what the run wrote. The point of the tables: rank models by decode TPS and by mean
time per task side by side, and flag where the two disagree (Conde et al., arXiv 2502.16721).
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import fmean
from typing import Any

from . import storage
from .backend import supports_batching
from .metrics import TurnMetrics, percentile
from .runfolder import RunPlan, read_plan, read_results
from .untrusted import csv_row, redact

ALL_TASKS = "all"
CSV_COLUMNS = ("model", "backend", "task", "qid", "subject", "batch_size", *(f.name for f in fields(TurnMetrics)),
               "error", "parsed", "answer", "correct", "reply")


@dataclass(frozen=True)
class CellStats:
    """One model × task: what the summary table shows. None where a figure is undefined."""

    model: str
    task: str
    done: int
    errors: int
    truncated: int  # replies cut at the token budget
    batch_size: int
    mean_input_tokens: float | None
    median_input_tokens: float | None
    mean_output_tokens: float | None
    median_output_tokens: float | None
    mean_output_words: float | None
    median_output_words: float | None
    mean_ttft_s: float | None
    mean_decode_tps: float | None
    mean_task_time_s: float | None
    total_time_s: float
    p90_task_time_s: float | None
    words_per_s: float | None
    accuracy: float | None
    no_letter_rate: float | None


@dataclass(frozen=True)
class Ranking:
    task: str
    model: str
    tps_rank: int
    time_rank: int

    @property
    def disagree(self) -> bool:
        return self.tps_rank != self.time_rank


def _values(rows: Iterable[dict], key: str) -> list[float]:
    return [r[key] for r in rows if r.get(key) is not None]


def _mean(values: Sequence[float]) -> float | None:
    return fmean(values) if values else None


def cell_stats(model: str, task: str, rows: list[dict], scored: bool) -> CellStats:
    """Figures over the rows that completed without an error; errors are counted apart."""
    ok = [r for r in rows if r.get("stop_reason") != "error"]
    times = _values(ok, "task_time_s")
    total = sum(times)
    words = sum(_values(ok, "output_words"))
    inputs, outputs, word_counts = (_values(ok, k) for k in ("input_tokens", "output_tokens", "output_words"))
    return CellStats(
        model=model, task=task, done=len(rows), errors=len(rows) - len(ok),
        truncated=sum(1 for r in ok if r.get("stop_reason") == "length"),
        batch_size=max((r.get("batch_size") or 1 for r in rows), default=1),
        mean_input_tokens=_mean(inputs), median_input_tokens=percentile(inputs, 50),
        mean_output_tokens=_mean(outputs), median_output_tokens=percentile(outputs, 50),
        mean_output_words=_mean(word_counts), median_output_words=percentile(word_counts, 50),
        mean_ttft_s=_mean(_values(ok, "ttft_s")), mean_decode_tps=_mean(_values(ok, "decode_tps")),
        mean_task_time_s=_mean(times), total_time_s=total, p90_task_time_s=percentile(times, 90),
        words_per_s=words / total if total > 0 else None,
        accuracy=sum(1 for r in ok if r.get("correct")) / len(ok) if scored and ok else None,
        no_letter_rate=sum(1 for r in ok if r.get("parsed") is None) / len(ok) if scored and ok else None,
    )


def summarize(rows: list[dict], models: Sequence[str], task_names: Sequence[str],
              scored: set[str]) -> list[CellStats]:
    """One cell per model × task that has rows, then an "all" cell per model (scored tasks only count
    towards accuracy in their own cell)."""
    cells = []
    for model in models:
        mine = [r for r in rows if r["model"] == model]
        for task in task_names:
            subset = [r for r in mine if r["task"] == task]
            if subset:
                cells.append(cell_stats(model, task, subset, task in scored))
        if mine and len(task_names) > 1:
            cells.append(cell_stats(model, ALL_TASKS, mine, False))
    return cells


def _ranks(cells: list[CellStats], key: str, reverse: bool) -> dict[str, int]:
    ranked = sorted((c for c in cells if getattr(c, key) is not None), key=lambda c: getattr(c, key), reverse=reverse)
    return {c.model: i for i, c in enumerate(ranked, 1)}


def rankings(cells: list[CellStats]) -> list[Ranking]:
    """Per task: rank 1 = highest mean decode TPS, and rank 1 = lowest mean time per task."""
    out = []
    for task in dict.fromkeys(c.task for c in cells):
        group = [c for c in cells if c.task == task]
        if len(group) < 2:
            continue
        by_tps, by_time = _ranks(group, "mean_decode_tps", True), _ranks(group, "mean_task_time_s", False)
        out.extend(Ranking(task, c.model, by_tps.get(c.model, 0), by_time.get(c.model, 0)) for c in group)
    return out


@dataclass
class RunSummary:
    plan: RunPlan
    rows: list[dict[str, Any]]
    failures: dict[str, str]
    cells: list[CellStats]
    ranks: list[Ranking]
    damaged: list[str]  # results.jsonl lines skipped as damaged ("line N: reason")

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.plan.run_id,
            "models": [m.name for m in self.plan.models],
            "tasks": [t.name for t in self.plan.tasks],
            "questions": len(self.plan.question_ids),
            "rows": len(self.rows),
            "expected_rows": self.plan.total_rows(),
            "batch_size": self.plan.batch_size,
            "mmlu_rows_skipped": self.plan.skipped_rows,
            "failed_models": self.failures,
            "damaged_lines": self.damaged,
            "cells": [asdict(c) for c in self.cells],
            "rankings": [{**asdict(r), "disagree": r.disagree} for r in self.ranks],
        }


def load_summary(folder: Path) -> RunSummary:
    plan = read_plan(folder)
    results = read_results(folder)
    task_names = [t.name for t in plan.tasks]
    cells = summarize(results.rows, [m.name for m in plan.models], task_names,
                      {t.name for t in plan.tasks if t.scored})
    return RunSummary(plan, results.rows, results.failures, cells, rankings(cells), results.damaged)


# ---- exports -------------------------------------------------------------------------------------

def results_csv(rows: list[dict]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, extrasaction="ignore",
                            lineterminator="\r\n")  # RFC 4180: a cell holding a CR is then quoted too
    writer.writeheader()
    writer.writerows(csv_row(row) for row in rows)
    return out.getvalue()


def _cell(value: Any, digits: int = 2, percent: bool = False) -> str:
    if value is None:
        return "—"
    if percent:
        return f"{value * 100:.1f}%"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SummaryColumn:
    """One column of the per model × task table; the console and the app's Batch tab pick theirs from
    TABLE_COLUMNS by key, so a column is declared once."""

    header: str
    key: str  # a CellStats field
    digits: int = 0
    percent: bool = False

    def show(self, cell: CellStats) -> str:
        return _cell(getattr(cell, self.key), self.digits, self.percent)


TABLE_COLUMNS = (
    SummaryColumn("model", "model"), SummaryColumn("task", "task"), SummaryColumn("done", "done"),
    SummaryColumn("batch", "batch_size"), SummaryColumn("in tok (mean)", "mean_input_tokens", 1),
    SummaryColumn("out tok (mean)", "mean_output_tokens", 1),
    SummaryColumn("out tok (median)", "median_output_tokens", 1),
    SummaryColumn("words (mean)", "mean_output_words", 1), SummaryColumn("TTFT s", "mean_ttft_s", 3),
    SummaryColumn("decode tok/s", "mean_decode_tps", 1), SummaryColumn("task time s (mean)", "mean_task_time_s", 3),
    SummaryColumn("p90 task s", "p90_task_time_s", 3), SummaryColumn("total s", "total_time_s", 1),
    SummaryColumn("words/s", "words_per_s", 1), SummaryColumn("accuracy", "accuracy", percent=True),
    SummaryColumn("no letter", "no_letter_rate", percent=True), SummaryColumn("errors", "errors"),
    SummaryColumn("cut at max", "truncated"),
)


def table_columns(*keys: str) -> tuple[SummaryColumn, ...]:
    """The TABLE_COLUMNS for these CellStats fields, in the order given."""
    by_key = {column.key: column for column in TABLE_COLUMNS}
    return tuple(by_key[key] for key in keys)


def cell_row(cell: CellStats, columns: Sequence[SummaryColumn] = TABLE_COLUMNS) -> list[str]:
    return [column.show(cell) for column in columns]


def _md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in body]
    return "\n".join(lines)


def ranking_rows(summary: RunSummary) -> list[list[str]]:
    return [[r.task, r.model, str(r.tps_rank or "—"), str(r.time_rank or "—"), "**yes**" if r.disagree else ""]
            for r in summary.ranks]


def unbatched_note(plan: RunPlan) -> str:
    """Names the models that ran one request at a time although the run asked for batches, or says nothing."""
    unbatched = [m.name for m in plan.models if not supports_batching(m)] if plan.batch_size > 1 else []
    return f"{', '.join(unbatched)} ran at batch size 1: their backend does not batch" if unbatched else ""


def summary_markdown(summary: RunSummary) -> str:
    plan = summary.plan
    note = unbatched_note(plan)
    batching = f" ({note})" if note else ""
    parts = [
        f"# taskclock bench run {plan.run_id}",
        "",
        f"- models: {', '.join(m.name + ' (' + m.backend + ')' for m in plan.models)}",
        f"- tasks: {', '.join(t.name for t in plan.tasks)}",
        f"- questions: {len(plan.question_ids)} (seed {plan.seed}, subjects: "
        f"{'all' if len(plan.subjects) > 5 else ', '.join(plan.subjects)}); MMLU rows skipped as malformed: "
        f"{plan.skipped_rows}",
        f"- rows: {len(summary.rows)} of {plan.total_rows()}; batch size {plan.batch_size}{batching}",
        "",
        "## Per model × task",
        "",
        _md_table([c.header for c in TABLE_COLUMNS], (cell_row(c) for c in summary.cells)),
    ]
    if summary.ranks:
        parts += ["", "## Rankings: decode TPS vs time per task",
                  "", "Rank 1 = fastest. **yes** marks a model whose two ranks disagree: tokens/s is not task speed.",
                  "", _md_table(["task", "model", "rank by decode TPS", "rank by mean task time", "disagree"],
                                ranking_rows(summary))]
    if summary.failures:
        parts += ["", "## Failed models", ""] + [f"- {m}: {e}" for m, e in summary.failures.items()]
    if summary.damaged:
        parts += ["", f"## Damaged lines in results.jsonl (skipped: {len(summary.damaged)})", ""]
        parts += [f"- {line}" for line in summary.damaged[:20]]
    return "\n".join(parts) + "\n"


def export(folder: Path) -> RunSummary:
    """Write results.csv, summary.md, summary.json and plots.txt into the run folder (atomically); returns the
    summary they were made from."""
    summary = load_summary(folder)
    outputs = {
        "results.csv": results_csv(summary.rows),
        "summary.md": summary_markdown(summary),
        "summary.json": json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n",
        "plots.txt": text_plots(summary) if summary.rows else "",
    }
    for name, text in outputs.items():
        storage.write_atomic(folder / name, redact(text))  # rows of older runs may hold a URL's password
    return summary


# ---- plots (plotext API: the plotext module for text, or a textual-plotext widget's .plt) ----------

def plot_speed_vs_time(plt, cells: list[CellStats]) -> None:
    """Decode TPS against mean task time, one point per model × task, one series per model."""
    plt.clear_data()
    for model in dict.fromkeys(c.model for c in cells):
        points = [c for c in cells if c.model == model and c.task != ALL_TASKS
                  and c.mean_decode_tps is not None and c.mean_task_time_s is not None]
        if points:
            plt.scatter([c.mean_decode_tps for c in points], [c.mean_task_time_s for c in points], label=model,
                        marker="dot")
    plt.title("decode tok/s vs mean task time (one point per model × task)")
    plt.xlabel("decode tok/s")
    plt.ylabel("task time s")


def plot_output_lengths(plt, rows: list[dict], task: str, bins: int = 20) -> None:
    """How many tokens each model writes for one task: a histogram per model."""
    plt.clear_data()
    for model in dict.fromkeys(r["model"] for r in rows):
        lengths = [r["output_tokens"] for r in rows if r["model"] == model and r["task"] == task]
        if lengths:
            plt.hist(lengths, bins, label=model)
    plt.title(f"{task}: output tokens per reply")
    plt.xlabel("output tokens")


def text_plots(summary: RunSummary, width: int = 100, height: int = 20) -> str:
    """Both plots as plain text, for the terminal and plots.txt."""
    import plotext

    def draw(plot, *args) -> str:
        plotext.clear_figure()
        plotext.plotsize(width, height)
        plotext.theme("clear")
        plot(plotext, *args)
        return plotext.uncolorize(plotext.build())

    charts = [draw(plot_speed_vs_time, summary.cells)]
    charts += [draw(plot_output_lengths, summary.rows, task.name) for task in summary.plan.tasks]
    return "\n\n".join(charts)
