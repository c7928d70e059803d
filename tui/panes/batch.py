"""The Batch tab: run folders interactively, one view per mode (tui/panes/batch_views/): Task sets
(`taskclock bench`), Context (`taskclock sweep`) and Load (`taskclock load`). Pick a mode, models and its
options, start, watch its table fill in, stop and resume, and open past runs of every mode from one list.

The pane holds what the modes share; the view of the mode picked builds the run, and the view of the run shown
repaints it. The runner is a live run (tui/livepane.py) that only records its progress reports in the view's
live state (tui/live.py); the view repaints from it at most REPAINT_HZ times a second, so however fast rows
complete the UI does a bounded amount of work and never slows the models. Every row is on disk
(results.jsonl) before it is shown.
"""
from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Button, DataTable, Input, Label, ProgressBar, Select, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import runfolder, system
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.errors import DataError, TaskclockError
from taskclock.runtime.models import reach_name, resolve
from taskclock.runtime.paths import default_runs_dir

from ..context import AppContext
from ..format import plain
from ..live import LiveRun
from ..livepane import LivePane, describe_error
from ..messages import ModelsUsed, Remember, RunFailed, RunFinished, RunStarted
from ..widgets.models_field import ModelsField
from .batch_views import BatchView, StartRun, context, load, option_field, tasks

# The tab's modes, in the order the mode picker lists them; the first is picked at launch.
VIEWS: tuple[type[BatchView[Any]], ...] = (tasks.TaskSetsView, context.ContextView, load.LoadView)
EMPTY_CHART = "charts appear when a run has rows"  # the title of a chart before any run
# Every view's widget has the class "batch-part", and OTHER_MODE while another mode is picked (batch.tcss hides it).
OTHER_MODE = "-other-mode"


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
        self.narrow = False  # the views' column sets: the short ones on a narrow screen
        self.views = {view.KIND: view(context) for view in VIEWS}
        self.view: BatchView[Any] = next(iter(self.views.values()))  # the mode picked
        self.shown: BatchView[Any] | None = None  # the mode of the run shown
        self.live: LiveRun | None = None  # the run shown
        self.folder: Path | None = None
        self.resumable = False  # the run shown is incomplete
        self._starting: BatchView[Any] | None = None  # the view whose run is being prepared
        self._parts: dict[str, list[Widget]] = {}  # each mode's widgets

    def compose(self) -> ComposeResult:
        kept = self.context.remembered
        yield ModelsField(self.context, [reach_name(self.context.model, self.context.config.models)],
                          input_id="batch-models")
        with Horizontal(id="batch-options"):
            modes = [(view.TITLE, kind) for kind, view in self.views.items()]
            yield Vertical(Label("mode"), Select(modes, value=self.view.KIND, allow_blank=False, id="batch-mode"),
                           classes="batch-field")
            yield from self._placed(lambda view: view.fields())
            yield option_field("runs folder", Input(kept.runs_dir or self._configured_runs_dir(), id="batch-runs-dir"))
        with Horizontal(id="batch-buttons"):
            yield Button("Start", id="batch-start", variant="primary")
            yield Button("Stop", id="batch-stop", variant="error", disabled=True)
            yield Button("Resume", id="batch-resume", disabled=True)
            yield ProgressBar(id="batch-progress", show_eta=True)
        yield from self._placed(lambda view: view.notes())
        yield Static("Pick a mode and its options, then Start. Past runs are listed below: Enter opens one.",
                     id="batch-status")
        yield from self._placed(lambda view: view.results())
        with Vertical(id="batch-bottom"):
            runs: DataTable = DataTable(id="batch-runs", cursor_type="row")  # its own row: whole names
            runs.add_columns("run", "kind", "models", "tasks / input tokens", "rows")
            yield runs
            with Horizontal(id="batch-charts"):
                yield from self._placed(lambda view: view.charts())

    def _placed(self, part: Callable[[BatchView[Any]], Iterable[Widget]]) -> Iterator[Widget]:
        """Every view's widgets for one place in the layout, each shown only in its own mode."""
        for kind, view in self.views.items():
            for widget in part(view):
                widget.add_class("batch-part")
                widget.set_class(view is not self.view, OTHER_MODE)
                self._parts.setdefault(kind, []).append(widget)
                yield widget

    def show_settings(self) -> None:
        for view in self.views.values():
            view.settings_changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        """The mode picked shows its options, tables and charts."""
        if event.select.id == "batch-mode":
            event.stop()
            view = self.views[str(event.value)]
            if view is self.view:  # opening a run switched it (_pick): nothing to do
                return
            self._pick(view)
            self._set_running()
            self.scroll_home(animate=False)  # a scrolled tab (an opened run) would hide the new mode's options

    def _pick(self, view: BatchView[Any]) -> None:
        """Show this mode (at once: the Select's own message comes later when a run opens in it)."""
        self.view = view
        self.query_one("#batch-mode", Select).value = view.KIND
        for kind, widgets in self._parts.items():
            for widget in widgets:
                widget.set_class(kind != view.KIND, OTHER_MODE)

    def on_mount(self) -> None:
        for chart in self.query(".batch-chart").results(PlotextPlot):
            chart.plt.title(EMPTY_CHART)
        self.action_refresh_runs()

    def on_resize(self) -> None:
        """Pick the tables' column sets for the screen's width (the screen's -narrow class, tui/app.py)."""
        narrow = self.screen.has_class("-narrow")
        if narrow == self.narrow:
            return
        self.narrow = narrow
        for view in self.views.values():
            view.set_narrow(narrow)
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
        """A new run of the mode picked, its options checked here; its folder is made in the worker."""
        self._launch(self.view, self.view.start(self._models(), self.runs_dir))

    def resume(self) -> None:
        if self.folder is not None and self.shown is not None:
            self._launch(self.shown, self.shown.resume(self.folder))

    def stop(self) -> None:
        if self.running:
            self.action_stop()
            self._status("stopping after the row in flight…")

    def _launch(self, view: BatchView[Any], start: StartRun) -> None:
        """A run as one live job: prepare its folder and runner, run, write the summary."""
        self._status("preparing the run…")
        self._starting = view

        def job(cancel: threading.Event) -> RunFinished:
            live, run = start(cancel)
            self.post_message(RunStarted(live))
            outcome = run()
            view.export(live.folder)
            return RunFinished(live.folder, outcome)

        self.start_run(job)

    def watch_running(self, running: bool) -> None:
        super().watch_running(running)
        self._set_running()

    def on_run_started(self, message: RunStarted) -> None:
        message.stop()
        live, view = message.live, self._starting
        assert view is not None  # set by _launch before its job starts
        self.folder, self.live, self.shown, self.resumable = live.folder, live, view, True
        # it started and the folder holds the run: the next launch starts with its fields
        self.post_message(Remember({"runs_dir": self._value("batch-runs-dir"), **view.remembered()}))
        self._status(view.started(live))

    def _ended(self) -> None:
        """The run's last figures, with cells it never reached shown as incomplete (not waiting)."""
        if self.live is not None:
            self.live.running, self.live.dirty = False, True
        self.repaint()

    def on_run_finished(self, message: RunFinished) -> None:
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
        self.query_one("#batch-start", Button).disabled = self.running
        self.query_one("#batch-stop", Button).disabled = not self.running
        self.query_one("#batch-resume", Button).disabled = (self.running or not self.resumable
                                                            or self.shown is not self.view)
        self.query_one("#batch-mode", Select).disabled = self.running

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#batch-status", Static)
        status.update(plain(text))  # names paths, model names and server errors
        status.set_class(error, "error")

    # ---- the run shown ------------------------------------------------------------------------------

    def repaint(self) -> None:
        live, view = self.live, self.shown
        if live is None or view is None or not live.dirty:
            return
        live.dirty = False
        view.repaint(live)
        done, total = live.progress()
        self.query_one("#batch-progress", ProgressBar).update(total=max(total, 1), progress=done)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """A view's chart may follow the highlighted row of its table (Task sets: the output lengths)."""
        if self.shown is not None and self.live is not None and not self.running \
                and self.shown.follow_row(event.data_table, event.cursor_row, self.live):
            event.stop()

    # ---- past runs ----------------------------------------------------------------------------------

    def _view_of(self, folder: Path) -> BatchView[Any]:
        """The view of the folder's kind of run, or the one line that says the tab has none."""
        kind = runfolder.folder_kind(folder)
        view = self.views.get(str(kind))
        if view is None:
            raise DataError(f"{folder} holds a {kind!r} run, which the Batch tab does not show",
                            "open it with its own command")
        return view

    def action_refresh_runs(self) -> None:
        """Every run folder of a mode's kind under the runs folder, newest first, labelled by its kind."""
        table = self.query_one("#batch-runs", DataTable)
        table.clear()
        folders = sorted(self.runs_dir.glob(f"*/{runfolder.RUN_FILE}"), reverse=True) if self.runs_dir.is_dir() else []
        for path in folders:
            try:
                view = self._view_of(path.parent)
                listing = view.listed(path.parent)
            except TaskclockError:  # a damaged folder is left out of the list
                continue
            table.add_row(plain(path.parent.name), view.KIND, plain(",".join(m.name for m in listing.models)),
                          plain(listing.what), f"{listing.done}/{listing.total}", key=str(path.parent))

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
        """Show a past (or just finished) run in its mode: its table, its charts; Resume continues it if
        incomplete."""
        view = self._view_of(folder)
        self._pick(view)
        live = view.open(folder)
        self.folder, self.live, self.shown = folder, live, view
        self.repaint()
        opened = view.opened(live)
        self.resumable = opened.incomplete
        self._set_running()
        busy = system.run_busy_note(runfolder.read_system(folder))
        self._status(f"{folder.name}: {opened.what}" + (" · Resume continues it" if self.resumable else "")
                     + (f" · {busy}" if busy else ""))
        # a narrow screen scrolls the tab: bring the run's table up once it is laid out (animated, so it takes
        # over from a scroll still running, such as the one that brought the runs list into view)
        self.call_after_refresh(view.table.scroll_visible, top=True)
