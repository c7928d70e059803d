"""The Batch tab's Context mode: an input-length sweep (runtime/sweep.py) as a live table per model × length,
the lengths a model skipped with their reason, and the charts of TTFT and task time against input tokens.

The runner reports into a LiveSweep from its thread; the pane repaints from it on LivePane's throttled timer,
so the figures are the sweep summary's medians (sweep.summarize) of the rows on disk so far.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual.widgets import DataTable, Static

from taskclock.runtime import runfolder, sweep
from taskclock.runtime.runner import Progress
from taskclock.runtime.tables import figure as shown

from ..format import plain

# (header, phase, SweepCell field): cold is the real prefill, cached the same context served from the cache
FIGURES = (("TTFT cold", "cold", "ttft_s"), ("TTFT cached", "cached", "ttft_s"), ("prefill/s", "cold", "prefill_tps"),
           ("decode/s", "cold", "decode_tps"), ("task s", "cold", "task_time_s"))
COLUMNS = ("model", "in tok", "state", "progress", *(header for header, _, _ in FIGURES))
# A narrow screen keeps the two TTFTs and the task time: the figures that grow with the input.
NARROW_FIGURES = (("cold s", "cold", "ttft_s"), ("cached s", "cached", "ttft_s"), ("task s", "cold", "task_time_s"))
NARROW_COLUMNS = ("model", "in tok", "done", *(header for header, _, _ in NARROW_FIGURES))
DIGITS = {column.key: column.digits for column in sweep.COLUMNS}  # as the console and summary.md show them


@dataclass
class LiveSweep:
    """Written by the runner's thread, read by the UI timer: the latest report per model × length, the rows,
    and the lengths skipped with their reason."""

    folder: Path
    plan: sweep.SweepPlan
    reports: dict[tuple[str, str], Progress] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    skips: dict[tuple[str, int], str] = field(default_factory=dict)  # (model, input tokens) → the reason
    running: bool = False  # a runner reports into it: a length with no report yet is waiting, not incomplete
    dirty: bool = True

    @classmethod
    def of_folder(cls, folder: Path, plan: sweep.SweepPlan) -> LiveSweep:
        """What the folder holds already: its rows, skips and failed models."""
        live = cls(folder, plan)
        results = runfolder.read_results(folder, sweep.KIND)
        live.rows = list(results.rows)
        for skip in results.skips:
            live.skips[(skip["model"], skip["requested_tokens"])] = skip["reason"]
        for model, error in results.failures.items():
            for target in plan.input_tokens:
                label = sweep.length_label(target)
                live.reports[(model, label)] = Progress(model, label, 0, 0, "failed", error=error)
        return live

    def record(self, report: Progress) -> None:
        key = (report.model, report.task)
        self.reports[key] = report
        if report.row is not None:
            self.rows.append(report.row)
        if report.state == "skipped" and report.error:
            target = next(n for n in self.plan.input_tokens if sweep.length_label(n) == report.task)
            self.skips[(report.model, target)] = report.error
        self.dirty = True

    def expected_rows(self) -> int:
        return self.plan.total_rows() - len(self.skips) * self.plan.repeats * len(sweep.PHASES)

    def cells(self) -> list[sweep.SweepCell]:
        return sweep.summarize(self.rows, [m.name for m in self.plan.models], self.plan.input_tokens)


def figure(cells: dict[tuple, sweep.SweepCell], model: str, target: int, phase: str, key: str) -> str:
    cell = cells.get((model, target, phase))
    return shown(None if cell is None else getattr(cell, key), DIGITS[key])


def fill_table(table: DataTable, live: LiveSweep, *, narrow: bool, bar) -> None:
    """One row per model × input length: its state, rows done (``bar(done, total)``) and the medians."""
    table.clear()
    cells = {(c.model, c.requested_tokens, c.phase): c for c in live.cells()}
    total = live.plan.repeats * len(sweep.PHASES)
    for spec in live.plan.models:
        for target in live.plan.input_tokens:
            skipped = (spec.name, target) in live.skips
            done = sum(r["model"] == spec.name and r["requested_tokens"] == target for r in live.rows)
            report = live.reports.get((spec.name, sweep.length_label(target)))
            state = ("skipped" if skipped else report.shown if report else "done" if done >= total
                     else "waiting" if live.running else "incomplete")
            if not skipped and report is not None and report.state == "failed" and report.error:
                state = f"failed: {report.error}"
            if narrow:
                table.add_row(plain(spec.name), str(target), "skip" if skipped else f"{done}/{total}",
                              *(figure(cells, spec.name, target, phase, k) for _, phase, k in NARROW_FIGURES))
            else:
                table.add_row(plain(spec.name), str(target), plain(state), bar(done, total),
                              *(figure(cells, spec.name, target, phase, k) for _, phase, k in FIGURES))


def show_skips(note: Static, live: LiveSweep) -> None:
    """Every skipped length with its one-line reason (sweep.skip_line, as the console prints it)."""
    lines = [sweep.skip_line({"model": model, "requested_tokens": target, "reason": reason})
             for (model, target), reason in live.skips.items()]
    note.update(Text("\n").join(plain(f"skipped {line}") for line in lines))
    note.set_class(not lines, "-empty")
