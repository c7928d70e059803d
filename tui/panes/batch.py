"""The Batch tab: `taskclock bench` interactively. Pick models, tasks and a limit, start, watch a table fill
in per model × task with the two rankings (decode tok/s, time per task) and a verdict per task under it, stop
and resume, and open past runs with their charts.

The runner is a live run (tui/live.py) that only records its progress reports in a LiveBench; the table is
redrawn from it at most REPAINT_HZ times a second, so however fast rows complete the UI does a bounded
amount of work and never slows the models. Every row is on disk (results.jsonl) before it is shown.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import bench, mmlu, runfolder, summary, tasks
from taskclock.runtime.errors import DataError
from taskclock.runtime.models import resolve
from taskclock.runtime.paths import default_runs_dir

from ..context import AppContext
from ..format import plain
from ..live import LivePane, describe_error
from ..messages import BenchFinished, BenchStarted, Remember, RunFailed

DEFAULT_LIMIT = 20  # interactive default; the CLI's is the paper's 660
BUILTIN_MMLU = "built-in"  # the MMLU field's word for the copy inside the package (mmlu.load(None))
LIVE_FIGURES = summary.table_columns("mean_output_tokens", "mean_output_words", "mean_decode_tps",
                                     "mean_task_time_s", "accuracy")
LIVE_COLUMNS = ("model", "task", "state", "progress", *(column.header for column in LIVE_FIGURES))
# A narrow screen (tui/app.py NARROW_WIDTH) keeps the figures that make the point, under short headers.
NARROW_FIGURES = summary.table_columns("mean_output_words", "mean_decode_tps", "mean_task_time_s", "accuracy")
NARROW_COLUMNS = ("model", "task", "done", "words", "tok/s", "task s", "acc")
BAR_WIDTH = 16


def text_bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {done}/{total}"


@dataclass
class LiveBench:
    """Written by the runner's thread, read by the UI timer: the latest report and rows per model × task."""

    folder: Path
    plan: bench.RunPlan
    reports: dict[tuple[str, str], bench.Progress] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    dirty: bool = True

    def record(self, report: bench.Progress) -> None:
        key = (report.model, report.task)
        self.reports[key] = report
        if report.row is not None:
            self.rows.setdefault(key, []).append(report.row)
        self.dirty = True


class BatchPane(LivePane):
    HELP_SECTION = "Batch"
    BINDINGS = [Binding("ctrl+r", "refresh_runs", "Runs")]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="batch-pane")
        self.context = context
        self.narrow = False  # the table's column set: NARROW_COLUMNS on a narrow screen
        self.live: LiveBench | None = None
        self.folder: Path | None = None  # the run shown
        self.resumable = False  # the run shown is incomplete

    def compose(self) -> ComposeResult:
        with Horizontal(id="batch-options"):
            yield self._field("models", "batch-models", self.context.model.name)
            yield self._field("tasks", "batch-tasks", ",".join(tasks.BUILTIN))
            yield self._field("limit", "batch-limit", str(DEFAULT_LIMIT))
            yield self._field("batch size", "batch-size", "1")  # or a sweep: 1,2,4,8
            kept, defaults = self.context.remembered, self.context.config.defaults
            yield self._field("MMLU folder", "batch-mmlu", mmlu.resolve_path(None, kept.mmlu or defaults.mmlu)
                              or BUILTIN_MMLU, placeholder=f"{BUILTIN_MMLU} (or a folder of MMLU CSVs)")
            yield self._field("runs folder", "batch-runs-dir",
                              kept.runs_dir or self._configured_runs_dir())
        with Horizontal(id="batch-buttons"):
            yield Button("Start", id="batch-start", variant="primary")
            yield Button("Stop", id="batch-stop", variant="error", disabled=True)
            yield Button("Resume", id="batch-resume", disabled=True)
            yield ProgressBar(id="batch-progress", show_eta=True)
        yield Static("Pick models and tasks, then Start. Past runs are listed below: Enter opens one.",
                     id="batch-status")
        table: DataTable = DataTable(id="batch-table", zebra_stripes=True, cursor_type="row")
        table.add_columns(*LIVE_COLUMNS)
        yield table
        sizes: DataTable = DataTable(id="batch-sizes-table", zebra_stripes=True)  # shown for a sweep
        sizes.add_columns(*summary.BATCH_HEADERS_SHORT)
        yield sizes
        ranks: DataTable = DataTable(id="batch-ranks", classes="batch-thesis")  # shown once two models have rows
        ranks.add_columns(*summary.RANKING_HEADERS_SHORT)
        yield ranks
        yield Static("", id="batch-verdict", classes="batch-thesis")
        with Horizontal(id="batch-bottom"):
            runs: DataTable = DataTable(id="batch-runs", cursor_type="row")
            runs.add_columns("run", "models", "tasks", "rows")
            yield runs
            yield PlotextPlot(id="batch-plot", classes="batch-chart")
            yield PlotextPlot(id="batch-words", classes="batch-chart")
            yield PlotextPlot(id="batch-lengths", classes="batch-chart")

    @staticmethod
    def _field(label: str, field_id: str, value: str, placeholder: str = "") -> Vertical:
        return Vertical(Label(label), Input(value, placeholder=placeholder, id=field_id), classes="batch-field")

    def on_mount(self) -> None:
        self.action_refresh_runs()

    def on_resize(self) -> None:
        """Pick the table's column set for the screen's width (the screen's -narrow class, tui/app.py)."""
        narrow = self.screen.has_class("-narrow")
        if narrow == self.narrow:
            return
        self.narrow = narrow
        table = self.query_one("#batch-table", DataTable)
        table.clear(columns=True)
        table.add_columns(*(NARROW_COLUMNS if narrow else LIVE_COLUMNS))
        if self.live is not None:
            self.live.dirty = True
            self.repaint()

    def _configured_runs_dir(self) -> str:
        return self.context.config.defaults.runs_dir or str(default_runs_dir())

    @property
    def runs_dir(self) -> Path:
        """The runs folder field, else the configured or default one."""
        return Path(self._value("batch-runs-dir") or self._configured_runs_dir()).expanduser()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in the runs folder field lists that folder's runs, and the next launch starts there."""
        if event.input.id == "batch-runs-dir":
            event.stop()
            self.action_refresh_runs()
            self.post_message(Remember({"runs_dir": self._value("batch-runs-dir")}))

    # ---- starting, stopping, resuming ---------------------------------------------------------------

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        actions = {"batch-start": self.start, "batch-stop": self.stop, "batch-resume": self.resume}
        try:
            actions[event.button.id or ""]()
        except DataError as exc:
            self._status(str(exc), error=True)
        except Exception as exc:  # a bad option must never take the app down
            self._status(describe_error(exc), error=True)

    def _value(self, field_id: str) -> str:
        return self.query_one(f"#{field_id}", Input).value.strip()

    def _number(self, field_id: str, name: str) -> int:
        text = self._value(field_id)
        if not text.isdigit() or int(text) < 1:
            raise DataError(f"{name} must be a whole number of at least 1, not {text!r}", f"fix the {name} field")
        return int(text)

    def start(self) -> None:
        """Check the options here; read MMLU and create the run folder (which picks the questions) in the
        worker."""
        config = self.context.config
        names = [n.strip() for n in self._value("batch-models").split(",") if n.strip()]
        if not names:
            raise DataError("no models given", "type model names, comma-separated")
        specs = [resolve(name, config.models) for name in names]
        task_list = tasks.resolve([t.strip() for t in self._value("batch-tasks").split(",") if t.strip()],
                                  config.tasks)
        limit = self._number("batch-limit", "limit")
        runs_dir = self.runs_dir
        sizes = bench.parse_batch_sizes(self._value("batch-size"), "batch sizes")
        typed = self._value("batch-mmlu")
        source = None if typed in ("", BUILTIN_MMLU) else typed

        def prepare() -> tuple[Path, bench.RunPlan, mmlu.MMLUData]:
            data = mmlu.load(source)
            folder, plan = bench.prepare(models=specs, task_list=task_list, data=data, subjects=None,
                                         limit=limit, seed=0, batch_size=sizes[0], warmup=1, max_tokens=0,
                                         sampling=config.sampling, runs_dir=runs_dir, batch_sizes=sizes)
            return folder, plan, data

        self._launch(prepare)

    def resume(self) -> None:
        folder = self.folder
        if folder is None:
            return

        def prepare() -> tuple[Path, bench.RunPlan, mmlu.MMLUData]:
            plan = runfolder.read_plan(folder)
            return folder, plan, mmlu.load(plan.mmlu)

        self._launch(prepare)

    def stop(self) -> None:
        if self.running:
            self.action_stop()
            self._status("stopping after the row in flight…")

    def _launch(self, prepare: Callable[[], tuple[Path, bench.RunPlan, mmlu.MMLUData]]) -> None:
        self._status("preparing the run…")
        loader = self.context.loader

        def job(cancel: threading.Event) -> BenchFinished:
            folder, plan, data = prepare()
            live = LiveBench(folder, plan)
            for row in runfolder.read_results(folder).rows:
                live.rows.setdefault((row["model"], row["task"]), []).append(row)
            self.post_message(BenchStarted(live))
            runner = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=live.record,
                                       loader=loader)
            outcome = runner.run()
            summary.export(folder)
            return BenchFinished(folder, outcome)

        self.start_run(job)

    def watch_running(self, running: bool) -> None:
        super().watch_running(running)
        self._set_running()

    def on_bench_started(self, message: BenchStarted) -> None:
        message.stop()
        live = message.live
        self.folder, self.live, self.resumable = live.folder, live, True
        # it loaded and the folder holds the run: the next launch starts with both
        self.post_message(Remember({"mmlu": self._value("batch-mmlu"), "runs_dir": self._value("batch-runs-dir")}))
        self._status(f"running {live.folder.name}: {len(live.plan.question_ids)} questions × "
                     f"{len(live.plan.tasks)} task(s) × {len(live.plan.models)} model(s)")

    def on_bench_finished(self, message: BenchFinished) -> None:
        message.stop()
        self.repaint()
        outcome, folder = message.outcome, message.folder
        self.context.wrote(folder)
        self.open_run(folder)
        self.action_refresh_runs()
        failed = "".join(f"; {m} failed: {e}" for m, e in outcome.failures.items())
        word = "stopped (Resume continues)" if outcome.interrupted else "finished"
        self._status(f"{folder.name} {word}: {outcome.rows_written} new rows{failed}", error=bool(outcome.failures))

    def on_run_failed(self, message: RunFailed) -> None:
        message.stop()
        self.repaint()
        self._status(f"stopped: {describe_error(message.error)}", error=True)

    def _set_running(self) -> None:
        self.query_one("#batch-start", Button).disabled = self.running
        self.query_one("#batch-stop", Button).disabled = not self.running
        self.query_one("#batch-resume", Button).disabled = self.running or not self.resumable

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#batch-status", Static)
        status.update(plain(text))  # names paths, model names and server errors
        status.set_class(error, "error")

    # ---- the live table -----------------------------------------------------------------------------

    def repaint(self) -> None:
        live = self.live
        if live is None or not live.dirty:
            return
        live.dirty = False
        scored = {t.name for t in live.plan.tasks if t.scored}
        table = self.query_one("#batch-table", DataTable)
        table.clear()
        for spec in live.plan.models:
            # a sweep runs every question once per batch size and repeat
            total = len(live.plan.question_ids) * len(live.plan.sizes_for(spec)) * live.plan.repeats
            for task in live.plan.tasks:
                key = (spec.name, task.name)
                rows = live.rows.get(key, [])
                report = live.reports.get(key)
                state = report.state if report else "done" if len(rows) >= total else "waiting" if self.running \
                    else "incomplete"
                if report is not None and report.error:
                    state = f"failed: {report.error}"
                cell = summary.cell_stats(spec.name, task.name, rows, task.name in scored)
                if self.narrow:
                    table.add_row(plain(spec.name), plain(task.name), f"{len(rows)}/{total}",
                                  *summary.cell_row(cell, NARROW_FIGURES))
                else:
                    table.add_row(plain(spec.name), plain(task.name), plain(state), text_bar(len(rows), total),
                                  *summary.cell_row(cell, LIVE_FIGURES))
        done = sum(len(rows) for rows in live.rows.values())
        self.query_one("#batch-progress", ProgressBar).update(total=live.plan.total_rows(), progress=done)
        rows = [row for rows in live.rows.values() for row in rows]
        self.show_rankings(summary.rankings(summary.summarize(
            rows, [m.name for m in live.plan.models], [t.name for t in live.plan.tasks], scored)))

    def show_rankings(self, rankings: list[summary.TaskRanking]) -> None:
        """Rank by decode tok/s beside rank by task time, per task set, disagreements highlighted, and the
        verdict per task: the same rankings summary.md and the console print (runtime/summary.py)."""
        table = self.query_one("#batch-ranks", DataTable)
        table.clear()
        for group in rankings:
            for rank in group.ranks:
                style = "bold yellow" if rank.disagree else ""  # as the console prints it
                table.add_row(*(plain(value, style=style) for value in summary.ranking_row(rank)))
        verdicts = self.query_one("#batch-verdict", Static)
        verdicts.update(Text("\n").join(plain(f"verdict: {group.verdict}") for group in rankings))
        for widget in self.query(".batch-thesis"):
            widget.display = bool(rankings)

    # ---- past runs ----------------------------------------------------------------------------------

    def action_refresh_runs(self) -> None:
        table = self.query_one("#batch-runs", DataTable)
        table.clear()
        folders = sorted(self.runs_dir.glob(f"*/{runfolder.RUN_FILE}"), reverse=True) if self.runs_dir.is_dir() else []
        for path in folders:
            try:
                plan = runfolder.read_plan(path.parent)
            except DataError:
                continue
            rows = runfolder.read_results(path.parent).rows
            table.add_row(plain(plan.run_id), plain(",".join(m.name for m in plan.models)),
                          plain(",".join(t.name for t in plan.tasks)),
                          f"{len(rows)}/{plan.total_rows()}", key=str(path.parent))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "batch-runs":
            return
        event.stop()
        if self.running:
            self._status("a run is in progress: stop it before opening another", error=True)
            return
        try:
            self.open_run(Path(str(event.row_key.value)))
        except DataError as exc:
            self._status(str(exc), error=True)

    def open_run(self, folder: Path) -> None:
        """Show a past (or just finished) run: its table, its plot; Resume continues it if incomplete."""
        result = summary.load_summary(folder)
        self.folder = folder
        self.live = LiveBench(folder, result.plan)
        for row in result.rows:
            self.live.rows.setdefault((row["model"], row["task"]), []).append(row)
        for model, error in result.failures.items():
            for task in result.plan.tasks:
                self.live.reports[(model, task.name)] = bench.Progress(model, task.name, 0, 0, "failed", error=error)
        self.repaint()
        complete = len(result.rows) >= result.plan.total_rows()
        self.resumable = not complete
        self._set_running()
        self._status(f"{folder.name}: {len(result.rows)}/{result.plan.total_rows()} rows"
                     + ("" if complete else " · Resume continues it"))
        self.show_sizes(result)
        # a narrow screen scrolls the tab: bring the run's table up once it is laid out (animated, so it takes
        # over from a scroll still running, such as the one that brought the runs list into view)
        self.call_after_refresh(self.query_one("#batch-table").scroll_visible, top=True)
        plot = self.query_one("#batch-plot", PlotextPlot)
        if len(result.sizes()) > 1:  # a sweep: the paper's figure, total task time against batch size
            summary.plot_time_vs_batch(plot.plt, result.cells)
        else:
            summary.plot_speed_vs_time(plot.plt, result.cells)
        plot.refresh()
        words = self.query_one("#batch-words", PlotextPlot)
        summary.plot_words(words.plt, result.cells)
        words.refresh()
        self.show_lengths(result.plan.tasks[0].name)

    def show_sizes(self, result: summary.RunSummary) -> None:
        """The per-batch-size table (set time, aggregate tok/s, …) under the live one, for a sweep only."""
        table = self.query_one("#batch-sizes-table", DataTable)
        table.clear()
        sweep = len(result.sizes()) > 1 or result.plan.repeats > 1
        table.display = sweep
        if sweep:
            for cell in result.cells:
                table.add_row(*(Text(value) for value in summary.batch_row(cell)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The output-length chart follows the task of the highlighted row."""
        if event.data_table.id == "batch-table" and not self.running and event.cursor_row >= 0:
            event.stop()
            self.show_lengths(str(event.data_table.get_row_at(event.cursor_row)[1]))

    def show_lengths(self, task: str) -> None:
        if self.live is None:
            return
        rows = [row for rows in self.live.rows.values() for row in rows]
        plot = self.query_one("#batch-lengths", PlotextPlot)
        summary.plot_output_lengths(plot.plt, rows, task)
        plot.refresh()
