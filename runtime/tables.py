"""The tables and plots every run summary is built from (bench: runtime/summary.py, sweep: runtime/sweep.py).

One column type for the figures of a summary cell (a figure's mean per cell is declared by its registry entry,
runtime/metrics.py ``shown``), written by the one formatter (``metrics.figure``), shared by the console tables,
summary.md and the Batch tab; the latency percentiles every summary gives per cell;
Markdown tables, results.csv, the sections every summary.md has (the machine and how busy it was, failed models,
damaged lines), text plots (plotext) with their series markers and colours, and the exports written into the run
folder.
"""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import metrics, storage, system
from .stats import Spread
from .untrusted import csv_row, redact


@dataclass(frozen=True)
class SummaryColumn:
    """One column of a summary table: the cell field it shows and how. The console and the app's Batch tab pick
    theirs by key, so a column is declared once; ``short`` is its header where width is short (the console, the
    Batch tab)."""

    header: str
    key: str  # a field of the summary's cell (summary.CellStats, sweep.SweepCell), or mean_<figure>
    digits: int = 0
    percent: bool = False
    short: str = ""
    figure: str = ""  # a TurnMetrics figure whose mean per cell it shows (CellStats.means)

    @classmethod
    def of(cls, key: str, header: str = "", short: str = "") -> SummaryColumn:
        """A cell field that holds a TurnMetrics figure of the same key (a sweep's medians), shown as the
        registry says."""
        shown = metrics.figure_format(key)
        return cls(header or shown.header, key, shown.digits, short=short)

    @classmethod
    def mean_of(cls, shown: metrics.FigureFormat) -> SummaryColumn:
        """A figure's mean per cell, headed as the registry says (its short header where width is short), to a
        decimal at least (a mean of counts is not a count)."""
        return cls(f"{shown.header} (mean)", f"mean_{shown.key}", max(shown.digits, 1), short=shown.header,
                   figure=shown.key)

    @property
    def short_header(self) -> str:
        return self.short or self.header

    def value(self, cell: Any) -> Any:
        return cell.mean(self.figure) if self.figure else getattr(cell, self.key)

    def show(self, cell: object) -> str:
        value = self.value(cell)
        if isinstance(value, Spread):  # ``mean ± CI`` (95%, t-based) where there were repeats, else the mean
            mean = metrics.figure(value.mean, self.digits)
            return mean if value.ci95 is None else f"{mean} ± {metrics.figure(value.ci95, self.digits)}"
        return metrics.figure(value, self.digits, percent=self.percent)


def cell_row(cell: object, columns: Sequence[SummaryColumn]) -> list[str]:
    return [column.show(cell) for column in columns]


@dataclass(frozen=True)
class Latency:
    """p50, p90 and p99 of TTFT, per-token ITL (pooled over every token of the rows, from their offsets and
    counts) and task time over a cell's rows; None where no row has the figure."""

    ttft_p50_s: float | None
    ttft_p90_s: float | None
    ttft_p99_s: float | None
    itl_p50_ms: float | None
    itl_p90_ms: float | None
    itl_p99_ms: float | None
    task_p50_s: float | None
    task_p90_s: float | None
    task_p99_s: float | None


PERCENTILES = (50, 90, 99)


def latency(rows: Iterable[dict]) -> Latency:
    ok = [r for r in rows if r.get("stop_reason") != "error"]
    gaps = [gap for r in ok for gap in metrics.per_token_gaps_ms(
        r.get("token_offsets_ms") or [], r.get("token_counts") or [1] * len(r.get("token_offsets_ms") or []))]
    ttft, task = ([r[key] for r in ok if r.get(key) is not None] for key in ("ttft_s", "task_time_s"))
    figures = [ttft, gaps, task]
    return Latency(*(metrics.percentile(values, p) for values in figures for p in PERCENTILES))


# The Latency columns summary.md, the console and the Batch tab's wide layout show.
LATENCY_COLUMNS = (SummaryColumn("TTFT p50 s", "ttft_p50_s", 3), SummaryColumn("TTFT p90 s", "ttft_p90_s", 3),
                   SummaryColumn("TTFT p99 s", "ttft_p99_s", 3), SummaryColumn("ITL p50 ms", "itl_p50_ms", 1),
                   SummaryColumn("ITL p90 ms", "itl_p90_ms", 1), SummaryColumn("ITL p99 ms", "itl_p99_ms", 1),
                   SummaryColumn("task p50 s", "task_p50_s", 3), SummaryColumn("task p90 s", "task_p90_s", 3),
                   SummaryColumn("task p99 s", "task_p99_s", 3))


def latency_row(value: Latency) -> list[str]:
    return cell_row(value, LATENCY_COLUMNS)


def md_table(header: Sequence[str], body: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v).replace("|", "\\|") for v in row) + " |" for row in body]
    return "\n".join(lines)


def results_csv(rows: list[dict], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore",
                            lineterminator="\r\n")  # RFC 4180: a cell holding a CR is then quoted too
    writer.writeheader()
    writer.writerows(csv_row(row) for row in rows)
    return out.getvalue()


def markdown_head(title: str, machine: dict[str, Any] | None) -> list[str]:
    """A summary.md's title, a note where other work kept the machine busy, and the machine the run measured
    (system.json)."""
    parts = [f"# {title}", ""]
    if note := system.run_busy_note(machine):
        parts += [f"**Note: {note}.**", ""]
    if machine:
        parts += ["## System", "", *system.describe(machine), ""]
    return parts


def closing_sections(failures: dict[str, str], damaged: list[str], plots: str = "") -> list[str]:
    """The sections every summary.md ends with: the models that failed (the run's failure records), the
    results.jsonl lines skipped as damaged, then the text plots where there are any."""
    parts: list[str] = []
    if failures:
        parts += ["", "## Failed models", ""] + [f"- {m}: {e}" for m, e in failures.items()]
    if damaged:
        parts += ["", f"## Damaged lines in results.jsonl (skipped: {len(damaged)})", ""]
        parts += [f"- {line}" for line in damaged[:20]]
    if plots:
        parts += ["", "## Plots", "", "```text", plots, "```"]
    return parts


def write_exports(folder: Path, summary: Any, results_csv: str, markdown: str, plots: str) -> None:
    """A summary's files (results.csv, summary.md, summary.json from its ``to_dict``, plots.txt) written into its
    run folder, each atomically; rows of older runs may hold a URL's password, so every file is redacted."""
    outputs = {"results.csv": results_csv, "summary.md": markdown,
               "summary.json": json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n", "plots.txt": plots}
    for name, text in outputs.items():
        storage.write_atomic(folder / name, redact(text))


# ---- plots (plotext API: the plotext module for text, or a textual-plotext widget's .plt) ----------

SERIES_COLORS = ("blue+", "red+", "green+", "magenta+", "cyan+", "orange+")
MARKERS = "ox+*#@%&"  # one per line, so the lines stay apart in plain text, where colour is gone


def series_color(index: int) -> str:
    return SERIES_COLORS[index % len(SERIES_COLORS)]


def series_marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def text_chart(plot, *args, width: int = 100, height: int = 20) -> str:
    """One of the plot functions drawn as plain text (plotext without colour), for the terminal and files."""
    import plotext

    plotext.clear_figure()
    plotext.plotsize(width, height)
    plotext.theme("clear")
    plot(plotext, *args)
    return plotext.uncolorize(plotext.build())
