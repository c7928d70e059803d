"""The Batch tab's Context mode: `taskclock sweep` interactively, an input-length sweep (runtime/sweep.py) as a
live table per model × length, the lengths a model skipped with their reason, and the charts of TTFT and task
time against input tokens. The figures are the sweep summary's medians (sweep.summarize) of the rows so far."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Static

from taskclock.runtime import metrics, sweep
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.runner import Outcome

from ...fields import plan_counts, plan_number
from ...format import plain
from ...live import LiveSweep
from ...widgets.chart import SizedPlot
from ...widgets.columns import set_columns
from . import BatchView, Listing, StartRun, text_bar

SWEEP_COLUMNS = {column.key: column for column in sweep.COLUMNS}  # as the console and summary.md show them
# (phase, SweepCell field): cold is the real prefill, cached the same context served from the cache; a figure
# of both phases names its phase
FIGURES = (("cold", "ttft_s"), ("cached", "ttft_s"), ("cold", "prefill_tps"), ("cold", "decode_tps"),
           ("cold", "task_time_s"))
# A narrow screen keeps the two TTFTs and the task time: the figures that grow with the input.
NARROW_FIGURES = (("cold", "ttft_s"), ("cached", "ttft_s"), ("cold", "task_time_s"))


def header(phase: str, key: str) -> str:
    short = SWEEP_COLUMNS[key].short_header
    return f"{short} {phase}" if sum(k == key for _, k in FIGURES) > 1 else short


COLUMNS = ("model", "in tok", "state", "progress", *(header(*figure) for figure in FIGURES))
NARROW_COLUMNS = ("model", "in tok", "done", *(header(*figure) for figure in NARROW_FIGURES))


def figure(cells: dict[tuple, sweep.SweepCell], model: str, target: int, phase: str, key: str) -> str:
    cell = cells.get((model, target, phase))
    return metrics.figure(None) if cell is None else SWEEP_COLUMNS[key].show(cell)


class ContextView(BatchView[LiveSweep]):
    KIND = sweep.KIND
    TITLE = "Context"

    # ---- widgets ------------------------------------------------------------------------------------

    def fields(self) -> Iterable[Widget]:
        yield self.field("input tokens", "context-input", sweep.DEFAULT_LENGTHS)
        yield self.field("output tokens", "context-output", str(sweep.DEFAULT_OUTPUT_TOKENS))
        yield self.field("repeats", "context-repeats", "1")

    def results(self) -> Iterable[Widget]:
        self.table = DataTable(id="context-table", zebra_stripes=True, cursor_type="row", classes="batch-run-table")
        self.table.add_columns(*COLUMNS)
        yield self.table
        self.skips = Static("", id="context-skips")
        yield self.skips

    def charts(self) -> Iterable[Widget]:
        self.plots = {key: SizedPlot(id=f"context-{key}", classes="batch-chart") for key, _ in sweep.CHARTS}
        yield from self.plots.values()

    def set_narrow(self, narrow: bool) -> None:
        super().set_narrow(narrow)
        set_columns(self.table, NARROW_COLUMNS if narrow else COLUMNS)

    # ---- runs ---------------------------------------------------------------------------------------

    def start(self, specs: list[ModelSpec], runs_dir: Path) -> StartRun:
        """Its options checked here as `taskclock sweep` checks them."""
        lengths = plan_counts(self.value("context-input"), "input_tokens", sweep.DEFAULT_LENGTHS)
        output_tokens = plan_number(self.value("context-output"), "output_tokens")
        repeats = plan_number(self.value("context-repeats"), "repeats")
        return self._run(lambda: sweep.prepare(models=specs, input_tokens=lengths, output_tokens=output_tokens,
                                               repeats=repeats, warmup=1, runs_dir=runs_dir))

    def resume(self, folder: Path) -> StartRun:
        return self._run(lambda: (folder, sweep.read_plan(folder)))

    def _run(self, prepare: Callable[[], tuple[Path, sweep.SweepPlan]]) -> StartRun:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveSweep, Callable[[], Outcome]]:
            folder, plan = prepare()
            live = LiveSweep.of_folder(folder, plan)
            live.running = True
            runner = sweep.SweepRunner(folder, plan, cancel=cancel, on_progress=live.record, loader=loader)
            return live, runner.run

        return start

    def export(self, folder: Path) -> object:
        return sweep.export(folder)

    def started(self, live: LiveSweep) -> str:
        return (f"running {live.folder.name}: input tokens {', '.join(map(str, live.plan.input_tokens))} "
                f"× {live.plan.repeats} repeat(s) × {len(live.plan.models)} model(s), cold and cached")

    def listed(self, folder: Path) -> Listing:
        result = sweep.load_summary(folder)
        return Listing(result.plan.models, ",".join(map(str, result.plan.input_tokens)), len(result.rows),
                       result.expected_rows())

    # ---- showing a run ------------------------------------------------------------------------------

    def open(self, folder: Path) -> LiveSweep:
        return LiveSweep.of_folder(folder, sweep.read_plan(folder))

    def repaint(self, live: LiveSweep) -> None:
        """The table per model × length, the skipped lengths and both charts, as rows arrive."""
        self.fill_table(live)
        self.show_skips(live)
        cells = live.cells()
        for key, label in sweep.CHARTS:
            self.plots[key].draw(sweep.plot_vs_input, cells, key, label)

    def fill_table(self, live: LiveSweep) -> None:
        """One row per model × input length: its state, rows done and the medians."""
        self.table.clear()
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
                if self.narrow:
                    self.table.add_row(plain(spec.name), str(target), "skip" if skipped else f"{done}/{total}",
                                       *(figure(cells, spec.name, target, phase, k) for phase, k in NARROW_FIGURES))
                else:
                    self.table.add_row(plain(spec.name), str(target), plain(state), text_bar(done, total),
                                       *(figure(cells, spec.name, target, phase, k) for phase, k in FIGURES))

    def show_skips(self, live: LiveSweep) -> None:
        """Every skipped length with its one-line reason (sweep.skip_line, as the console prints it)."""
        lines = [sweep.skip_line({"model": model, "requested_tokens": target, "reason": reason})
                 for (model, target), reason in live.skips.items()]
        self.skips.update(Text("\n").join(plain(f"skipped {line}") for line in lines))
        self.skips.set_class(not lines, "-empty")
