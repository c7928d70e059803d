"""Live state: what a run's thread writes and the UI timer reads, for every tab that streams a run.

The thread only appends (events, progress reports, rows) and sets ``dirty``; the pane's timer (tui/livepane.py)
reads a copy at most REPAINT_HZ times a second. No pane is imported here, so messages (tui/messages.py) can
carry these objects without a dependency pointing up at the panes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from taskclock.runtime import runfolder
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.events import Event
from taskclock.runtime.runner import Progress

if TYPE_CHECKING:  # imported where used: the Chat tab's live state is read at start, these runs only later
    from taskclock.runtime import load, load_summary, sweep


@dataclass
class LiveTurn:
    """A Chat turn: the generation thread appends events, the UI timer reads a copy."""

    model: str
    events: list[Event] = field(default_factory=list)


@dataclass
class LiveCompare:
    """A Compare run: the generation thread appends events and marks columns started, the UI timer reads."""

    specs: list[ModelSpec]
    concurrent: bool
    warmup: int  # untimed turns per model first
    repeats: int = 1
    events: list[list[Event]] = field(default_factory=list)  # each model's turn now streaming (or its last)
    running: set[int] = field(default_factory=set)  # started and not yet shown as finished

    def __post_init__(self) -> None:
        self.events = [[] for _ in self.specs]

    def started(self, index: int, repeat: int) -> None:
        self.events[index] = []  # a new repeat: its column shows this turn from its start
        self.running.add(index)

    def record(self, index: int, event: Event) -> None:
        self.events[index].append(event)


class LiveRun(Protocol):
    """A run folder's run as a Batch tab view shows it: the runner's thread calls ``record`` with each progress
    report; ``running`` says a runner reports into it (a cell with no report yet is waiting, not incomplete)."""

    folder: Path
    running: bool
    dirty: bool

    def record(self, report: Progress) -> None: ...

    def progress(self) -> tuple[int, int]:
        """Rows done and rows the run will have."""
        ...


@dataclass
class LiveBench:
    """A task-set run (runtime/bench.py): the latest report and the rows per model × task."""

    folder: Path
    plan: runfolder.RunPlan
    reports: dict[tuple[str, str], Progress] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    dirty: bool = True
    running: bool = False

    @classmethod
    def of_rows(cls, folder: Path, plan: runfolder.RunPlan, rows: list[dict],
                failures: dict[str, str] | None = None) -> LiveBench:
        """A run's rows so far, and the models that failed (each of their cells says so)."""
        live = cls(folder, plan)
        for row in rows:
            live.rows.setdefault((row["model"], row["task"]), []).append(row)
        for model, error in (failures or {}).items():
            for task in plan.tasks:
                live.reports[(model, task.name)] = Progress(model, task.name, 0, 0, "failed", error=error)
        return live

    def record(self, report: Progress) -> None:
        key = (report.model, report.task)
        self.reports[key] = report
        if report.row is not None:
            self.rows.setdefault(key, []).append(report.row)
        self.dirty = True

    def all_rows(self) -> list[dict]:
        return [row for rows in self.rows.values() for row in rows]

    def progress(self) -> tuple[int, int]:
        return sum(len(rows) for rows in self.rows.values()), self.plan.total_rows()


@dataclass
class LiveSweep:
    """An input-length sweep (runtime/sweep.py): the latest report per model × length, the rows, and the lengths
    skipped with their reason."""

    folder: Path
    plan: sweep.SweepPlan
    reports: dict[tuple[str, str], Progress] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    skips: dict[tuple[str, int], str] = field(default_factory=dict)  # (model, input tokens) → the reason
    running: bool = False
    dirty: bool = True

    @classmethod
    def of_folder(cls, folder: Path, plan: sweep.SweepPlan) -> LiveSweep:
        """What the folder holds already: its rows, skips and failed models."""
        from taskclock.runtime import sweep

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
        from taskclock.runtime import sweep

        key = (report.model, report.task)
        self.reports[key] = report
        if report.row is not None:
            self.rows.append(report.row)
        if report.state == "skipped" and report.error:
            target = next(n for n in self.plan.input_tokens if sweep.length_label(n) == report.task)
            self.skips[(report.model, target)] = report.error
        self.dirty = True

    def expected_rows(self) -> int:
        from taskclock.runtime import sweep

        return self.plan.total_rows() - len(self.skips) * self.plan.repeats * len(sweep.PHASES)

    def progress(self) -> tuple[int, int]:
        return len(self.rows), self.expected_rows()

    def cells(self) -> list[sweep.SweepCell]:
        from taskclock.runtime import sweep

        return sweep.summarize(self.rows, [m.name for m in self.plan.models], self.plan.input_tokens)


@dataclass
class LiveLoad:
    """Written by the runner's thread, read by the UI timer: the latest report per model × line and the summary
    of the rates closed so far (re-read when ``stale``)."""

    folder: Path
    plan: load.LoadPlan
    reports: dict[tuple[str, str], Progress] = field(default_factory=dict)
    summary: load_summary.LoadSummary | None = None
    running: bool = False
    dirty: bool = True
    stale: bool = True

    @classmethod
    def of_folder(cls, folder: Path, plan: load.LoadPlan) -> LiveLoad:
        from taskclock.runtime import load

        live = cls(folder, plan)
        for model, error in runfolder.read_results(folder, load.KIND).failures.items():
            live.reports[(model, "")] = Progress(model, "", 0, 0, "failed", error=error)
        return live

    def record(self, report: Progress) -> None:
        self.reports[(report.model, report.task)] = report
        self.stale = self.stale or report.state == "done"
        self.dirty = True

    def current(self) -> load_summary.LoadSummary:
        """The summary of the rates on disk, read again once a rate has closed since the last read."""
        if self.stale or self.summary is None:
            from taskclock.runtime import load_summary

            self.summary = load_summary.load_summary(self.folder)
            self.stale = False
        return self.summary

    def progress(self) -> tuple[int, int]:
        """Requests done and planned over the lines reported so far."""
        reports = [r for r in self.reports.values() if r.task]
        return sum(r.done for r in reports), sum(r.total for r in reports)
