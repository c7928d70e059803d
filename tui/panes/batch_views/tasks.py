"""The Batch tab's Task sets mode: `taskclock bench` interactively. A table per model × task with the two
rankings (decode tok/s, time per task) and a verdict per task under it, the latency percentiles on a wide
screen, the per-batch-size table for a batch-size sweep, and the charts of a run once it is opened."""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import bench, metrics, mmlu, runfolder, summary, tables, tasks
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.runner import Outcome

from ...fields import plan_counts, plan_number
from ...format import plain
from ...live import LiveBench
from ...screens.settings import settings_line
from ...widgets.columns import set_columns
from . import BatchView, Listing, StartRun, text_bar

DEFAULT_LIMIT = 20  # interactive default; the CLI's is the paper's 660
BUILTIN_MMLU = "built-in"  # the MMLU field's word for the copy inside the package (mmlu.load(None))
# The mean of every LIVE figure (the figure registry, runtime/metrics.py), then the cell's accuracy and cuts.
LIVE_FIGURES = summary.table_columns(*(f"mean_{shown.key}" for shown in metrics.figures_in(metrics.LIVE)),
                                     "accuracy", "cut_mark")
LIVE_COLUMNS = ("model", "task", "state", "progress", *(column.short_header for column in LIVE_FIGURES))
# A narrow screen keeps the figures that make the point.
NARROW_FIGURES = summary.table_columns("mean_output_words", "mean_decode_tps", "mean_task_time_s", "accuracy",
                                       "cut_mark")
NARROW_COLUMNS = ("model", "task", "done", *(column.short_header for column in NARROW_FIGURES))

Prepared = tuple[Path, runfolder.RunPlan, mmlu.MMLUData]


class TaskSetsView(BatchView[LiveBench]):
    KIND = "bench"
    TITLE = "Task sets"

    # ---- widgets ------------------------------------------------------------------------------------

    def fields(self) -> Iterable[Widget]:
        kept, defaults = self.context.remembered, self.context.config.defaults
        yield self.field("tasks", "batch-tasks", ",".join(tasks.BUILTIN))
        yield self.field("limit", "batch-limit", str(DEFAULT_LIMIT))
        yield self.field("batch size", "batch-size", "1")  # or a sweep: 1,2,4,8
        yield self.field("MMLU folder", "batch-mmlu", mmlu.resolve_path(None, kept.mmlu or defaults.mmlu)
                         or BUILTIN_MMLU, placeholder=f"{BUILTIN_MMLU} (or a folder of MMLU CSVs)")

    def notes(self) -> Iterable[Widget]:
        self.settings = Static(self.settings_text(), id="batch-settings", markup=False)  # what Start uses
        yield self.settings

    def results(self) -> Iterable[Widget]:
        self.table = DataTable(id="batch-table", zebra_stripes=True, cursor_type="row", classes="batch-run-table")
        self.table.add_columns(*LIVE_COLUMNS)
        yield self.table
        self.latency: DataTable = DataTable(id="batch-latency", zebra_stripes=True)  # wide screens
        self.latency.add_columns("model", "task", *(column.header for column in tables.LATENCY_COLUMNS))
        yield self.latency
        self.sizes: DataTable = DataTable(id="batch-sizes-table", zebra_stripes=True)  # a batch-size sweep's
        self.sizes.add_columns(*(column.short_header for column in summary.BATCH_COLUMNS))
        yield self.sizes
        # shown once two models have rows
        self.ranks: DataTable = DataTable(id="batch-ranks", classes="batch-thesis")  # columns: show_rankings
        yield self.ranks
        self.verdict = Static("", id="batch-verdict", classes="batch-thesis")
        yield self.verdict

    def charts(self) -> Iterable[Widget]:
        self.plot, self.words, self.lengths = (PlotextPlot(id=f"batch-{name}", classes="batch-chart")
                                               for name in ("plot", "words", "lengths"))
        yield from (self.plot, self.words, self.lengths)

    def settings_text(self) -> str:
        """What a run started now would use: each task's own token budget, and the chat's sampling and system
        prompt (Ctrl+G in Chat)."""
        return (f"runs with: {settings_line(self.context.settings.chat, max_tokens='each task its own max tokens')}"
                " (the chat settings, Ctrl+G in Chat)")

    def settings_changed(self) -> None:
        self.settings.update(self.settings_text())

    def set_narrow(self, narrow: bool) -> None:
        super().set_narrow(narrow)
        set_columns(self.table, NARROW_COLUMNS if narrow else LIVE_COLUMNS)

    # ---- runs ---------------------------------------------------------------------------------------

    def start(self, specs: list[ModelSpec], runs_dir: Path) -> StartRun:
        """Check the options here; read MMLU and create the run folder (which picks the questions) in the
        worker."""
        config = self.context.config
        task_list = tasks.resolve([t.strip() for t in self.value("batch-tasks").split(",") if t.strip()],
                                  config.tasks)
        limit = plan_number(self.value("batch-limit"), "limit")
        sizes = plan_counts(self.value("batch-size"), "batch_sizes", "1,2,4,8")
        typed = self.value("batch-mmlu")
        source = None if typed in ("", BUILTIN_MMLU) else typed
        chat = self.context.settings.chat  # what the settings line says

        def prepare() -> Prepared:
            data = mmlu.load(source)
            folder, plan = bench.prepare(models=specs, task_list=task_list, data=data, subjects=None,
                                         limit=limit, seed=chat.params.seed, batch_size=sizes[0], warmup=1,
                                         max_tokens=0, sampling=chat.params, runs_dir=runs_dir, batch_sizes=sizes,
                                         system=chat.system)
            return folder, plan, data

        return self._run(prepare)

    def resume(self, folder: Path) -> StartRun:
        def prepare() -> Prepared:
            plan = runfolder.read_plan(folder)
            return folder, plan, mmlu.load(plan.mmlu)

        return self._run(prepare)

    def _run(self, prepare: Callable[[], Prepared]) -> StartRun:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveBench, Callable[[], Outcome]]:
            folder, plan, data = prepare()
            live = LiveBench.of_rows(folder, plan, runfolder.read_results(folder).rows)
            live.running = True
            runner = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=live.record,
                                       loader=loader)
            return live, runner.run

        return start

    def export(self, folder: Path) -> object:
        return summary.export(folder)

    def remembered(self) -> dict[str, str]:
        return {"mmlu": self.value("batch-mmlu")}  # it loaded: the next launch starts with it

    def started(self, live: LiveBench) -> str:
        return (f"running {live.folder.name}: {len(live.plan.question_ids)} questions × "
                f"{len(live.plan.tasks)} task(s) × {len(live.plan.models)} model(s)")

    def listed(self, folder: Path) -> Listing:
        plan = runfolder.read_plan(folder)
        return Listing(plan.models, ",".join(t.name for t in plan.tasks), len(runfolder.read_results(folder).rows),
                       plan.total_rows())

    # ---- showing a run ------------------------------------------------------------------------------

    def repaint(self, live: LiveBench) -> None:
        scored = {t.name for t in live.plan.tasks if t.scored}
        self.table.clear()
        self.latency.clear()
        for spec in live.plan.models:
            # a sweep runs every question once per batch size and repeat
            total = len(live.plan.question_ids) * len(live.plan.sizes_for(spec)) * live.plan.repeats
            for task in live.plan.tasks:
                key = (spec.name, task.name)
                rows = live.rows.get(key, [])
                report = live.reports.get(key)
                state = report.shown if report else "done" if len(rows) >= total else "waiting" if live.running \
                    else "incomplete"
                if report is not None and report.error:
                    state = f"failed: {report.error}"
                cell = summary.cell_stats(spec.name, task.name, rows, task.name in scored,
                                          cap=live.plan.params(task).max_tokens)
                if self.narrow:
                    self.table.add_row(plain(spec.name), plain(task.name), f"{len(rows)}/{total}",
                                       *summary.cell_row(cell, NARROW_FIGURES))
                else:
                    self.table.add_row(plain(spec.name), plain(task.name), plain(state), text_bar(len(rows), total),
                                       *summary.cell_row(cell, LIVE_FIGURES))
                if rows and cell.latency is not None:
                    self.latency.add_row(plain(spec.name), plain(task.name), *tables.latency_row(cell.latency))
        self.latency.set_class(self.latency.row_count > 0, "-shown")
        rows = live.all_rows()
        self.show_rankings(summary.rankings(summary.summarize(
            rows, [m.name for m in live.plan.models], [t.name for t in live.plan.tasks], scored,
            caps=live.plan.caps()), rows))

    def show_rankings(self, rankings: list[summary.TaskRanking]) -> None:
        """Rank by decode tok/s beside rank by task time, per task set, disagreements highlighted, and the
        verdict per task: the same rankings summary.md and the console print (runtime/summary.py)."""
        ranks = [rank for group in rankings for rank in group.ranks]
        # a narrow screen drops the batch column when every row has the same batch size (the run's info says it)
        drop_batch = self.narrow and len({rank.batch_size for rank in ranks}) <= 1
        headers = [column.short_header for column in summary.RANKING_COLUMNS]
        keep = [i for i, header in enumerate(headers) if not (drop_batch and header == "batch")]
        set_columns(self.ranks, [headers[i] for i in keep])
        self.ranks.clear()
        for rank in ranks:
            style = "bold yellow" if rank.disagree else ""  # as the console prints it
            row = summary.ranking_row(rank, narrow=self.narrow)
            self.ranks.add_row(*(plain(row[i], style=style) for i in keep))
        self.verdict.update(Text("\n").join(plain(f"verdict: {group.verdict}") for group in rankings))
        for widget in (self.ranks, self.verdict):
            widget.set_class(bool(rankings), "-shown")

    def open(self, folder: Path) -> LiveBench:
        """The run's state and its charts: speed against task time (or set time against batch size for a
        batch-size sweep), words per cell, and the output lengths of the first task."""
        result = summary.load_summary(folder)
        live = LiveBench.of_rows(folder, result.plan, result.rows, result.failures)
        self.show_sizes(result)
        if len(result.sizes()) > 1:  # a sweep: the paper's figure, total task time against batch size
            summary.plot_time_vs_batch(self.plot.plt, result.cells)
        else:
            summary.plot_speed_vs_time(self.plot.plt, result.cells)
        self.plot.refresh()
        summary.plot_words(self.words.plt, result.cells)
        self.words.refresh()
        self.show_lengths(live, result.plan.tasks[0].name)
        return live

    def show_sizes(self, result: summary.RunSummary) -> None:
        """The per-batch-size table (set time, aggregate tok/s, …) under the live one, for a sweep only."""
        self.sizes.clear()
        several = len(result.sizes()) > 1 or result.plan.repeats > 1
        self.sizes.set_class(several, "-shown")
        if several:
            for cell in result.cells:
                self.sizes.add_row(*(Text(value) for value in summary.cell_row(cell, summary.BATCH_COLUMNS)))

    def follow_row(self, table: DataTable, row: int, live: LiveBench) -> bool:
        """The output-length chart follows the task of the highlighted row."""
        if table is not self.table or row < 0:
            return False
        self.show_lengths(live, str(table.get_row_at(row)[1]))
        return True

    def show_lengths(self, live: LiveBench, task: str) -> None:
        summary.plot_output_lengths(self.lengths.plt, live.all_rows(), task)
        self.lengths.refresh()
