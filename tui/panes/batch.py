"""The Batch tab: `taskclock bench` interactively. Pick models, tasks and a limit, start, watch a table fill
in per model × task with the two rankings (decode tok/s, time per task) and a verdict per task under it, stop
and resume, and open past runs with their charts. Its Context mode does the same for `taskclock sweep`
(TTFT and task time against input length, cold and cached; tui/widgets/sweep_table.py), its Load mode for
`taskclock load` (request rates against SLOs, with the running rate's figures live; tui/widgets/load_table.py).

The runner is a live run (tui/live.py) that only records its progress reports in a LiveBench (a LiveSweep in
Context mode, a LiveLoad in Load mode); the table is redrawn from it at most REPAINT_HZ times a second, so
however fast rows complete the UI does a bounded amount of work and never slows the models. Every row is on
disk (results.jsonl) before it is shown; a running load rate shows the figures its reports carry.
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
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import (
    arrivals,
    bench,
    load,
    load_summary,
    mmlu,
    runfolder,
    summary,
    sweep,
    system,
    tables,
    tasks,
)
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.errors import DataError, TaskclockError
from taskclock.runtime.models import reach_name, resolve
from taskclock.runtime.paths import default_runs_dir
from taskclock.runtime.runner import Outcome, Progress

from ..context import AppContext
from ..fields import plan_counts, plan_number
from ..format import plain
from ..live import LivePane, describe_error
from ..messages import BenchFinished, BenchStarted, ModelsUsed, Remember, RunFailed
from ..screens.settings import settings_line
from ..widgets import load_table, sweep_table
from ..widgets.chart import SizedPlot
from ..widgets.columns import set_columns
from ..widgets.load_table import LiveLoad
from ..widgets.models_field import ModelsField
from ..widgets.sweep_table import LiveSweep

DEFAULT_LIMIT = 20  # interactive default; the CLI's is the paper's 660
BUILTIN_MMLU = "built-in"  # the MMLU field's word for the copy inside the package (mmlu.load(None))
LIVE_FIGURES = summary.table_columns("mean_output_tokens", "mean_output_words", "mean_decode_tps",
                                     "mean_task_time_s", "accuracy", "cut_mark")
LIVE_COLUMNS = ("model", "task", "state", "progress", *(column.header for column in LIVE_FIGURES))
# A narrow screen (tui/app.py NARROW_WIDTH) keeps the figures that make the point, under short headers.
NARROW_FIGURES = summary.table_columns("mean_output_words", "mean_decode_tps", "mean_task_time_s", "accuracy",
                                       "cut_mark")
NARROW_COLUMNS = ("model", "task", "done", "words", "tok/s", "task s", "acc", "cut")
BAR_WIDTH = 16
EMPTY_CHART = "charts appear when a run has rows"  # the title of a chart before any run
# The tab's modes, named by the kind of run folder each writes (runfolder.folder_kind), and the pane's class for
# each (batch.tcss shows a mode's widgets, of the class named as the mode, under it).
MODES = (("Task sets", "bench"), ("Context", sweep.KIND), ("Load", load.KIND))
MODE_CLASSES = {"bench": "", sweep.KIND: "-context", load.KIND: "-load"}
LOAD_DEFAULTS = {"load-tasks": "mc", "load-rates": "1,2,4", "load-requests": "20", "load-slo": "task=10",
                 "load-arrival": "poisson"}


def text_bar(done: int, total: int) -> str:
    filled = round(BAR_WIDTH * done / total) if total else 0
    return f"{'█' * filled}{'░' * (BAR_WIDTH - filled)} {done}/{total}"


@dataclass
class LiveBench:
    """Written by the runner's thread, read by the UI timer: the latest report and rows per model × task."""

    folder: Path
    plan: runfolder.RunPlan
    reports: dict[tuple[str, str], Progress] = field(default_factory=dict)
    rows: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    dirty: bool = True
    running: bool = False  # a runner reports into it: a cell with no report yet is waiting, not incomplete

    def record(self, report: Progress) -> None:
        key = (report.model, report.task)
        self.reports[key] = report
        if report.row is not None:
            self.rows.setdefault(key, []).append(report.row)
        self.dirty = True


class BatchPane(LivePane):
    HELP_SECTION = "Batch"
    BINDINGS = [Binding("ctrl+r", "refresh_runs", "Runs"),
                # priority: a focused table would take them for its own rows, and the tab's charts lie below
                Binding("pageup", "page(-1)", "Scroll the tab up", show=False, priority=True),
                Binding("pagedown", "page(1)", "Scroll the tab down (to the charts)", show=False, priority=True),
                Binding("ctrl+o", "pick_models", "Models")]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="batch-pane")
        self.context = context
        self.narrow = False  # the table's column set: NARROW_COLUMNS on a narrow screen
        self.live: LiveBench | LiveSweep | LiveLoad | None = None
        self.folder: Path | None = None  # the run shown
        self.resumable = False  # the run shown is incomplete

    def compose(self) -> ComposeResult:
        yield ModelsField(self.context, [reach_name(self.context.model, self.context.config.models)],
                          input_id="batch-models")
        with Horizontal(id="batch-options"):
            yield Vertical(Label("mode"), Select(MODES, value="bench", allow_blank=False, id="batch-mode"),
                           classes="batch-field")
            yield self._field("tasks", "batch-tasks", ",".join(tasks.BUILTIN), mode="bench")
            yield self._field("limit", "batch-limit", str(DEFAULT_LIMIT), mode="bench")
            yield self._field("batch size", "batch-size", "1", mode="bench")  # or a sweep: 1,2,4,8
            kept, defaults = self.context.remembered, self.context.config.defaults
            yield self._field("MMLU folder", "batch-mmlu", mmlu.resolve_path(None, kept.mmlu or defaults.mmlu)
                              or BUILTIN_MMLU, placeholder=f"{BUILTIN_MMLU} (or a folder of MMLU CSVs)", mode="bench")
            yield self._field("input tokens", "context-input", sweep.DEFAULT_LENGTHS, mode=sweep.KIND)
            yield self._field("output tokens", "context-output", str(sweep.DEFAULT_OUTPUT_TOKENS), mode=sweep.KIND)
            yield self._field("repeats", "context-repeats", "1", mode=sweep.KIND)
            for label, field_id in (("tasks", "load-tasks"), ("rates (req/s, or auto)", "load-rates"),
                                    ("requests a rate", "load-requests"), ("SLO", "load-slo"),
                                    ("arrivals", "load-arrival")):
                yield self._field(label, field_id, LOAD_DEFAULTS[field_id], mode=load.KIND)
            yield self._field("runs folder", "batch-runs-dir",
                              kept.runs_dir or self._configured_runs_dir())
        with Horizontal(id="batch-buttons"):
            yield Button("Start", id="batch-start", variant="primary")
            yield Button("Stop", id="batch-stop", variant="error", disabled=True)
            yield Button("Resume", id="batch-resume", disabled=True)
            yield ProgressBar(id="batch-progress", show_eta=True)
        yield Static(self.settings_text(), id="batch-settings", classes="bench", markup=False)  # what Start uses
        yield Static("Pick a mode and its options, then Start. Past runs are listed below: Enter opens one.",
                     id="batch-status")
        table: DataTable = DataTable(id="batch-table", zebra_stripes=True, cursor_type="row", classes="bench")
        table.add_columns(*LIVE_COLUMNS)
        yield table
        latency: DataTable = DataTable(id="batch-latency", zebra_stripes=True, classes="bench")  # wide screens
        latency.add_columns("model", "task", *(column.header for column in tables.LATENCY_COLUMNS))
        yield latency
        # shown for a batch-size sweep
        sizes: DataTable = DataTable(id="batch-sizes-table", zebra_stripes=True, classes="bench")
        sizes.add_columns(*summary.BATCH_HEADERS_SHORT)
        yield sizes
        # shown once two models have rows
        yield DataTable(id="batch-ranks", classes="bench batch-thesis")  # columns: show_rankings
        yield Static("", id="batch-verdict", classes="bench batch-thesis")
        lengths: DataTable = DataTable(id="context-table", zebra_stripes=True, cursor_type="row", classes=sweep.KIND)
        lengths.add_columns(*sweep_table.COLUMNS)
        yield lengths
        yield Static("", id="context-skips", classes=sweep.KIND)
        rates: DataTable = DataTable(id="load-table", zebra_stripes=True, cursor_type="row", classes=load.KIND)
        rates.add_columns(*load_table.COLUMNS)
        yield rates
        ranks: DataTable = DataTable(id="load-ranks", zebra_stripes=True, classes=f"{load.KIND} load-thesis")
        ranks.add_columns(*load_table.RANK_COLUMNS)
        yield ranks
        yield Static("", id="load-verdict", classes=f"{load.KIND} load-thesis")
        with Vertical(id="batch-bottom"):
            runs: DataTable = DataTable(id="batch-runs", cursor_type="row")  # its own row: whole names
            runs.add_columns("run", "kind", "models", "tasks / input tokens", "rows")
            yield runs
            with Horizontal(id="batch-charts"):
                yield PlotextPlot(id="batch-plot", classes="batch-chart bench")
                yield PlotextPlot(id="batch-words", classes="batch-chart bench")
                yield PlotextPlot(id="batch-lengths", classes="batch-chart bench")
                for key, _ in sweep.CHARTS:
                    yield SizedPlot(id=f"context-{key}", classes=f"batch-chart {sweep.KIND}")
                for chart in ("load-wait", "load-goodput"):
                    yield SizedPlot(id=chart, classes=f"batch-chart {load.KIND}")

    def settings_text(self) -> str:
        """What a task-set run started now would use: each task's own token budget, and the chat's sampling and
        system prompt (Ctrl+G in Chat)."""
        return (f"runs with: {settings_line(self.context.settings.chat, max_tokens='each task its own max tokens')}"
                " (the chat settings, Ctrl+G in Chat)")

    def show_settings(self) -> None:
        self.query_one("#batch-settings", Static).update(self.settings_text())

    @staticmethod
    def _field(label: str, field_id: str, value: str, placeholder: str = "", mode: str = "") -> Vertical:
        """An option's label and box; one of a single mode carries that mode's class (hidden in the other)."""
        return Vertical(Label(label), Input(value, placeholder=placeholder, id=field_id),
                        classes=f"batch-field {mode}".strip())

    @property
    def mode(self) -> str:
        return str(self.query_one("#batch-mode", Select).value)

    def on_select_changed(self, event: Select.Changed) -> None:
        """The mode shows its options, table and charts (the pane's class: batch.tcss hides the others')."""
        if event.select.id == "batch-mode":
            event.stop()
            if self._mode_class_is(self.mode):  # opening a run switched it (_show_mode): nothing to do
                return
            self._set_mode_class(self.mode)
            self._set_running()
            self.scroll_home(animate=False)  # a scrolled tab (an opened run) would hide the new mode's options

    def _mode_class_is(self, mode: str) -> bool:
        return all(self.has_class(name) == (name == MODE_CLASSES[mode]) for name in MODE_CLASSES.values() if name)

    def _set_mode_class(self, mode: str) -> None:
        for name in MODE_CLASSES.values():
            if name:
                self.set_class(name == MODE_CLASSES[mode], name)

    def on_mount(self) -> None:
        for chart in self.query(".batch-chart").results(PlotextPlot):
            chart.plt.title(EMPTY_CHART)
        self.action_refresh_runs()

    def on_resize(self) -> None:
        """Pick the table's column set for the screen's width (the screen's -narrow class, tui/app.py)."""
        narrow = self.screen.has_class("-narrow")
        if narrow == self.narrow:
            return
        self.narrow = narrow
        set_columns(self.query_one("#batch-table", DataTable), NARROW_COLUMNS if narrow else LIVE_COLUMNS)
        set_columns(self.query_one("#context-table", DataTable),
                    sweep_table.NARROW_COLUMNS if narrow else sweep_table.COLUMNS)
        set_columns(self.query_one("#load-table", DataTable),
                    load_table.NARROW_COLUMNS if narrow else load_table.COLUMNS)
        if self.live is not None:
            self.live.dirty = True
            self.repaint()

    def action_page(self, direction: int) -> None:
        (self.scroll_page_down if direction > 0 else self.scroll_page_up)(animate=False)

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

    def _models(self) -> list[ModelSpec]:
        names = self.query_one(ModelsField).typed()
        if not names:
            raise DataError("no models given", "type model names, comma-separated, or pick them (Ctrl+O)")
        specs = [resolve(name, self.context.config.models) for name in names]
        self.post_message(ModelsUsed([reach_name(spec, self.context.config.models) for spec in specs]))
        return specs

    def action_pick_models(self) -> None:
        self.query_one(ModelsField).pick()

    def start(self) -> None:
        """Check the options here; read MMLU and create the run folder (which picks the questions) in the
        worker."""
        if self.mode == sweep.KIND:
            self.start_sweep()
            return
        if self.mode == load.KIND:
            self.start_load()
            return
        config = self.context.config
        specs = self._models()
        task_list = tasks.resolve([t.strip() for t in self._value("batch-tasks").split(",") if t.strip()],
                                  config.tasks)
        limit = plan_number(self._value("batch-limit"), "limit")
        runs_dir = self.runs_dir
        sizes = plan_counts(self._value("batch-size"), "batch_sizes", "1,2,4,8")
        typed = self._value("batch-mmlu")
        source = None if typed in ("", BUILTIN_MMLU) else typed
        chat = self.context.settings.chat  # what the settings line says

        def prepare() -> tuple[Path, runfolder.RunPlan, mmlu.MMLUData]:
            data = mmlu.load(source)
            folder, plan = bench.prepare(models=specs, task_list=task_list, data=data, subjects=None,
                                         limit=limit, seed=chat.params.seed, batch_size=sizes[0], warmup=1,
                                         max_tokens=0, sampling=chat.params, runs_dir=runs_dir, batch_sizes=sizes,
                                         system=chat.system)
            return folder, plan, data

        self._launch_bench(prepare)

    def start_sweep(self) -> None:
        """Context mode: the input-length sweep, its options checked here as `taskclock sweep` checks them."""
        specs = self._models()
        lengths = plan_counts(self._value("context-input"), "input_tokens", sweep.DEFAULT_LENGTHS)
        output_tokens = plan_number(self._value("context-output"), "output_tokens")
        repeats = plan_number(self._value("context-repeats"), "repeats")
        runs_dir = self.runs_dir
        self._launch_sweep(lambda: sweep.prepare(models=specs, input_tokens=lengths, output_tokens=output_tokens,
                                                 repeats=repeats, warmup=1, runs_dir=runs_dir))

    def start_load(self) -> None:
        """Load mode: open-loop rates on HTTP models, its options checked here as `taskclock load` checks them."""
        from taskclock.runtime.slo import Slo, parse_slo

        specs = self._models()
        load.check_http(specs)
        task_list = tasks.resolve([t.strip() for t in self._value("load-tasks").split(",") if t.strip()],
                                  self.context.config.tasks)
        rates = arrivals.parse_rates(self._value("load-rates"))
        requests = plan_number(self._value("load-requests"), "limit")
        slo = parse_slo(self._value("load-slo")) if self._value("load-slo") else Slo()
        arrival = arrivals.parse_arrival(self._value("load-arrival") or "poisson")
        runs_dir, params = self.runs_dir, self.context.settings.chat.params
        auto = rates.start if isinstance(rates, arrivals.AutoSearch) else 0.0
        rate_list = [] if isinstance(rates, arrivals.AutoSearch) else rates

        def prepare() -> tuple[Path, load.LoadPlan, dict[str, mmlu.Question]]:
            data = mmlu.load(None)
            folder, plan = load.prepare(
                models=specs, rates=rate_list, auto_start=auto, arrival=arrival,
                seed=params.seed, requests=requests, duration_s=0.0, warmup=load.DEFAULT_WARMUP, max_in_flight=0,
                slo=slo, attainment=load.DEFAULT_ATTAINMENT, sampling=params, max_tokens=0, runs_dir=runs_dir,
                task_list=task_list, data=data, limit=DEFAULT_LIMIT)
            return folder, plan, data.by_id()

        self._launch_load(prepare)

    def resume(self) -> None:
        folder = self.folder
        if folder is None:
            return
        if isinstance(self.live, LiveSweep):
            self._launch_sweep(lambda: (folder, sweep.read_plan(folder)))
            return
        if isinstance(self.live, LiveLoad):
            def prepare_load() -> tuple[Path, load.LoadPlan, dict[str, mmlu.Question]]:
                plan = load.read_plan(folder)
                return folder, plan, mmlu.load(plan.mmlu or None).by_id() if plan.workload == "tasks" else {}

            self._launch_load(prepare_load)
            return

        def prepare() -> tuple[Path, runfolder.RunPlan, mmlu.MMLUData]:
            plan = runfolder.read_plan(folder)
            return folder, plan, mmlu.load(plan.mmlu)

        self._launch_bench(prepare)

    def stop(self) -> None:
        if self.running:
            self.action_stop()
            self._status("stopping after the row in flight…")

    def _launch_bench(self, prepare: Callable[[], tuple[Path, runfolder.RunPlan, mmlu.MMLUData]]) -> None:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveBench, Callable[[], Outcome]]:
            folder, plan, data = prepare()
            live = LiveBench(folder, plan, running=True)
            for row in runfolder.read_results(folder).rows:
                live.rows.setdefault((row["model"], row["task"]), []).append(row)
            runner = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=live.record,
                                       loader=loader)
            return live, runner.run

        self._launch(start, summary.export)

    def _launch_sweep(self, prepare: Callable[[], tuple[Path, sweep.SweepPlan]]) -> None:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveSweep, Callable[[], Outcome]]:
            folder, plan = prepare()
            live = LiveSweep.of_folder(folder, plan)
            live.running = True
            runner = sweep.SweepRunner(folder, plan, cancel=cancel, on_progress=live.record, loader=loader)
            return live, runner.run

        self._launch(start, sweep.export)

    def _launch_load(self, prepare: Callable[[], tuple[Path, load.LoadPlan, dict[str, mmlu.Question]]]) -> None:
        loader = self.context.loader

        def start(cancel: threading.Event) -> tuple[LiveLoad, Callable[[], Outcome]]:
            folder, plan, questions = prepare()
            live = LiveLoad.of_folder(folder, plan)
            live.running = True
            runner = load.LoadRunner(folder, plan, questions, cancel=cancel, on_progress=live.record, loader=loader)
            return live, runner.run

        self._launch(start, load_summary.export)

    def _launch(self, start: Callable[[threading.Event], tuple[LiveBench | LiveSweep | LiveLoad,
                                                               Callable[[], Outcome]]],
                export: Callable[[Path], object]) -> None:
        """Either mode's run as one live job: prepare its folder and runner, run, write the summary."""
        self._status("preparing the run…")

        def job(cancel: threading.Event) -> BenchFinished:
            live, run = start(cancel)
            self.post_message(BenchStarted(live))
            outcome = run()
            export(live.folder)
            return BenchFinished(live.folder, outcome)

        self.start_run(job)

    def watch_running(self, running: bool) -> None:
        super().watch_running(running)
        self._set_running()

    def on_bench_started(self, message: BenchStarted) -> None:
        message.stop()
        live = message.live
        self.folder, self.live, self.resumable = live.folder, live, True
        if isinstance(live, LiveSweep):
            self.post_message(Remember({"runs_dir": self._value("batch-runs-dir")}))
            self._status(f"running {live.folder.name}: input tokens {', '.join(map(str, live.plan.input_tokens))} "
                         f"× {live.plan.repeats} repeat(s) × {len(live.plan.models)} model(s), cold and cached")
            return
        if isinstance(live, LiveLoad):
            self.post_message(Remember({"runs_dir": self._value("batch-runs-dir")}))
            rates = f"auto from {live.plan.auto_start:g}" if live.plan.auto else ", ".join(f"{r:g}" for r in
                                                                                          live.plan.rates)
            self._status(f"running {live.folder.name}: rates {rates} req/s × {', '.join(live.plan.task_names())} × "
                         f"{len(live.plan.models)} model(s); SLO {live.plan.slo or 'none'}")
            return
        # it loaded and the folder holds the run: the next launch starts with both
        self.post_message(Remember({"mmlu": self._value("batch-mmlu"), "runs_dir": self._value("batch-runs-dir")}))
        self._status(f"running {live.folder.name}: {len(live.plan.question_ids)} questions × "
                     f"{len(live.plan.tasks)} task(s) × {len(live.plan.models)} model(s)")

    def _ended(self) -> None:
        """The run's last figures, with cells it never reached shown as incomplete (not waiting)."""
        if self.live is not None:
            self.live.running, self.live.dirty = False, True
        self.repaint()

    def on_bench_finished(self, message: BenchFinished) -> None:
        message.stop()
        self._ended()
        outcome, folder = message.outcome, message.folder
        self.context.wrote(folder)
        self.open_run(folder)
        self.action_refresh_runs()
        failed = "".join(f"; {m} failed: {e}" for m, e in outcome.failures.items())
        word = "stopped (Resume continues)" if outcome.interrupted else "finished"
        busy = system.run_busy_note(runfolder.read_system(folder))
        self._status(f"{folder.name} {word}: {outcome.rows_written} new rows{failed}" + (f" · {busy}" if busy else ""),
                     error=bool(outcome.failures))

    def on_run_failed(self, message: RunFailed) -> None:
        message.stop()
        self._ended()
        self._status(f"stopped: {describe_error(message.error)}", error=True)

    def _set_running(self) -> None:
        """The buttons for the run on or shown; Resume only in the mode of the run shown."""
        shown = sweep.KIND if isinstance(self.live, LiveSweep) else load.KIND if isinstance(self.live, LiveLoad) \
            else "bench"
        self.query_one("#batch-start", Button).disabled = self.running
        self.query_one("#batch-stop", Button).disabled = not self.running
        self.query_one("#batch-resume", Button).disabled = self.running or not self.resumable or shown != self.mode
        self.query_one("#batch-mode", Select).disabled = self.running

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
        if isinstance(live, LiveSweep):
            self.repaint_sweep(live)
            return
        if isinstance(live, LiveLoad):
            self.repaint_load(live)
            return
        scored = {t.name for t in live.plan.tasks if t.scored}
        table = self.query_one("#batch-table", DataTable)
        table.clear()
        latency = self.query_one("#batch-latency", DataTable)
        latency.clear()
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
                    table.add_row(plain(spec.name), plain(task.name), f"{len(rows)}/{total}",
                                  *summary.cell_row(cell, NARROW_FIGURES))
                else:
                    table.add_row(plain(spec.name), plain(task.name), plain(state), text_bar(len(rows), total),
                                  *summary.cell_row(cell, LIVE_FIGURES))
                if rows and cell.latency is not None:
                    latency.add_row(plain(spec.name), plain(task.name), *tables.latency_row(cell.latency))
        latency.set_class(latency.row_count > 0, "-shown")
        done = sum(len(rows) for rows in live.rows.values())
        self.query_one("#batch-progress", ProgressBar).update(total=live.plan.total_rows(), progress=done)
        rows = [row for rows in live.rows.values() for row in rows]
        self.show_rankings(summary.rankings(summary.summarize(
            rows, [m.name for m in live.plan.models], [t.name for t in live.plan.tasks], scored,
            caps=live.plan.caps()), rows))

    def repaint_sweep(self, live: LiveSweep) -> None:
        """Context mode: the table per model × length, the skipped lengths and both charts, as rows arrive."""
        sweep_table.fill_table(self.query_one("#context-table", DataTable), live, narrow=self.narrow, bar=text_bar)
        sweep_table.show_skips(self.query_one("#context-skips", Static), live)
        self.query_one("#batch-progress", ProgressBar).update(total=live.expected_rows(), progress=len(live.rows))
        cells = live.cells()
        for key, label in sweep.CHARTS:
            self.query_one(f"#context-{key}", SizedPlot).draw(sweep.plot_vs_input, cells, key, label)

    def repaint_load(self, live: LiveLoad) -> None:
        """Load mode: the table per model × task × rate (a running rate's figures so far), the rankings by goodput
        and tok/s with the verdict, and both charts against the rate."""
        load_table.fill_table(self.query_one("#load-table", DataTable), live, narrow=self.narrow)
        result = live.current()
        shown = load_table.show_rankings(self.query_one("#load-ranks", DataTable),
                                         self.query_one("#load-verdict", Static), result)
        for widget in self.query(".load-thesis"):
            widget.set_class(shown, "-shown")
        done, total = live.progress()
        self.query_one("#batch-progress", ProgressBar).update(total=max(total, 1), progress=done)
        for chart_id, (series, title, ylabel) in zip(("load-wait", "load-goodput"), load_summary.charts(result),
                                                     strict=True):
            self.query_one(f"#{chart_id}", SizedPlot).draw(load_summary.plot_vs_rate, result.cells, series, title,
                                                             ylabel)

    def show_rankings(self, rankings: list[summary.TaskRanking]) -> None:
        """Rank by decode tok/s beside rank by task time, per task set, disagreements highlighted, and the
        verdict per task: the same rankings summary.md and the console print (runtime/summary.py)."""
        table = self.query_one("#batch-ranks", DataTable)
        ranks = [rank for group in rankings for rank in group.ranks]
        # a narrow screen drops the batch column when every row has the same batch size (the run's info says it)
        drop_batch = self.narrow and len({rank.batch_size for rank in ranks}) <= 1
        keep = [i for i, header in enumerate(summary.RANKING_HEADERS_SHORT) if not (drop_batch and header == "batch")]
        set_columns(table, [summary.RANKING_HEADERS_SHORT[i] for i in keep])
        table.clear()
        for rank in ranks:
            style = "bold yellow" if rank.disagree else ""  # as the console prints it
            row = summary.ranking_row(rank, narrow=self.narrow)
            table.add_row(*(plain(row[i], style=style) for i in keep))
        verdicts = self.query_one("#batch-verdict", Static)
        verdicts.update(Text("\n").join(plain(f"verdict: {group.verdict}") for group in rankings))
        for widget in self.query(".batch-thesis"):
            widget.set_class(bool(rankings), "-shown")

    # ---- past runs ----------------------------------------------------------------------------------

    def action_refresh_runs(self) -> None:
        """Every bench and sweep folder under the runs folder, newest first, labelled by its kind."""
        table = self.query_one("#batch-runs", DataTable)
        table.clear()
        folders = sorted(self.runs_dir.glob(f"*/{runfolder.RUN_FILE}"), reverse=True) if self.runs_dir.is_dir() else []
        for path in folders:
            try:
                kind_of = runfolder.folder_kind(path.parent)
                if kind_of == load.KIND:
                    result_load = load_summary.load_summary(path.parent)
                    plan_load = result_load.plan
                    models = plan_load.models
                    what = ",".join(plan_load.task_names()) + " @ " + (
                        f"auto from {plan_load.auto_start:g}" if plan_load.auto else
                        ",".join(f"{r:g}" for r in plan_load.rates))
                    kind, rows, total = "load", len(result_load.rows), result_load.expected_rows()
                elif kind_of == sweep.KIND:
                    result = sweep.load_summary(path.parent)
                    models, what = result.plan.models, ",".join(map(str, result.plan.input_tokens))
                    kind, rows, total = "sweep", len(result.rows), result.expected_rows()
                else:
                    plan = runfolder.read_plan(path.parent)
                    models, what = plan.models, ",".join(t.name for t in plan.tasks)
                    kind, rows, total = "bench", len(runfolder.read_results(path.parent).rows), plan.total_rows()
            except TaskclockError:  # a damaged folder is left out of the list
                continue
            table.add_row(plain(path.parent.name), kind, plain(",".join(m.name for m in models)), plain(what),
                          f"{rows}/{total}", key=str(path.parent))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "batch-runs":
            return
        event.stop()
        if self.running:
            self._status("a run is in progress: stop it before opening another", error=True)
            return
        try:
            self.open_run(Path(str(event.row_key.value)))
        except TaskclockError as exc:  # a folder damaged since it was listed
            self._status(str(exc), error=True)

    def open_run(self, folder: Path) -> None:
        """Show a past (or just finished) run in its mode: its table, its plot; Resume continues it if
        incomplete."""
        kind = runfolder.folder_kind(folder)
        if kind == sweep.KIND:
            self.open_sweep(folder)
            return
        if kind == load.KIND:
            self.open_load(folder)
            return
        self._show_mode("bench")
        result = summary.load_summary(folder)
        self.folder = folder
        self.live = LiveBench(folder, result.plan)
        for row in result.rows:
            self.live.rows.setdefault((row["model"], row["task"]), []).append(row)
        for model, error in result.failures.items():
            for task in result.plan.tasks:
                self.live.reports[(model, task.name)] = Progress(model, task.name, 0, 0, "failed", error=error)
        self.repaint()
        complete = len(result.rows) >= result.plan.total_rows()
        self.resumable = not complete
        self._set_running()
        busy = system.run_busy_note(result.system)
        self._status(f"{folder.name}: {len(result.rows)}/{result.plan.total_rows()} rows"
                     + ("" if complete else " · Resume continues it") + (f" · {busy}" if busy else ""))
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

    def open_sweep(self, folder: Path) -> None:
        self._show_mode(sweep.KIND)
        plan = sweep.read_plan(folder)
        self.folder, self.live = folder, LiveSweep.of_folder(folder, plan)
        self.repaint()
        done, expected = len(self.live.rows), self.live.expected_rows()
        self.resumable = done < expected
        self._set_running()
        busy = system.run_busy_note(runfolder.read_system(folder))
        self._status(f"{folder.name}: {done}/{expected} rows" + (" · Resume continues it" if self.resumable else "")
                     + (f" · {busy}" if busy else ""))
        self.call_after_refresh(self.query_one("#context-table").scroll_visible, top=True)

    def open_load(self, folder: Path) -> None:
        self._show_mode(load.KIND)
        plan = load.read_plan(folder)
        live = LiveLoad.of_folder(folder, plan)
        self.folder, self.live = folder, live
        self.repaint()
        result = live.current()
        # a fixed-rate plan is complete when every model × task × rate has closed; a search when it has ended
        closed = {(c.model, c.task) for c in result.cells}
        if plan.auto:
            self.resumable = any(load.next_probe(plan.auto_start, {c.rate: bool(c.meets) for c in result.cells
                                                                  if (c.model, c.task) == key})[0] is not None
                                 for key in ((m.name, t) for m in plan.models for t in plan.task_names()))
        else:
            self.resumable = len(result.cells) < len(plan.models) * len(plan.tasks) * len(plan.rates)
        self._set_running()
        busy = system.run_busy_note(result.system)
        self._status(f"{folder.name}: {len(result.cells)} rate(s) done over {len(closed)} model × task"
                     + (" · Resume continues it" if self.resumable else "") + (f" · {busy}" if busy else ""))
        self.call_after_refresh(self.query_one("#load-table").scroll_visible, top=True)

    def _show_mode(self, mode: str) -> None:
        """Switch to the mode of the run being opened (at once: the Select's own message comes later)."""
        self.query_one("#batch-mode", Select).value = mode
        self._set_mode_class(mode)

    def show_sizes(self, result: summary.RunSummary) -> None:
        """The per-batch-size table (set time, aggregate tok/s, …) under the live one, for a sweep only."""
        table = self.query_one("#batch-sizes-table", DataTable)
        table.clear()
        several = len(result.sizes()) > 1 or result.plan.repeats > 1
        table.set_class(several, "-shown")
        if several:
            for cell in result.cells:
                table.add_row(*(Text(value) for value in summary.batch_row(cell)))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """The output-length chart follows the task of the highlighted row."""
        if event.data_table.id == "batch-table" and not self.running and event.cursor_row >= 0:
            event.stop()
            self.show_lengths(str(event.data_table.get_row_at(event.cursor_row)[1]))

    def show_lengths(self, task: str) -> None:
        if not isinstance(self.live, LiveBench):
            return
        rows = [row for rows in self.live.rows.values() for row in rows]
        plot = self.query_one("#batch-lengths", PlotextPlot)
        summary.plot_output_lengths(plot.plt, rows, task)
        plot.refresh()
