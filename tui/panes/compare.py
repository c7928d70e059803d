"""The Compare tab: 2–4 models answer one prompt, each streaming in its own column under its own live meter.

Models run one after another unless the labelled "concurrent" switch is on (then they share the machine
and each one's figures include the others' load). They run with the chat settings (system prompt, max tokens,
temperature, top-p, seed: Ctrl+G in Chat), shown above the prompt, and the prompt runs ``repeats`` times per
model for an interval on the verdict (one run is one sample). Generation runs in a thread worker that only appends
events to per-column lists; a UI timer repaints the running columns at most REPAINT_HZ times a second.
When every model is done, a comparison row per model (winner per column) and the verdict appear, and each
model's turn is appended to the session log as a "compare" record.
"""
from __future__ import annotations

import threading

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static, Switch

from taskclock.runtime.backend import LoadedModel, Message, ModelSpec, SamplingParams
from taskclock.runtime.compare import Comparison, check_model_count, mode_name, numbered, run_compare
from taskclock.runtime.errors import StorageError, TaskclockError
from taskclock.runtime.events import Done, now_ns
from taskclock.runtime.models import reach_name, resolve
from taskclock.runtime.sessions import SessionLog
from taskclock.runtime.system import busy_note
from taskclock.runtime.turn import warm_up_note, with_system

from ..comparison import comparison_table
from ..context import AppContext
from ..fields import plan_number
from ..format import plain
from ..live import LiveCompare
from ..livepane import LivePane, describe_error
from ..messages import ColumnState, CompareFinished, ModelsUsed, RunFailed, SendPrompt
from ..screens.settings import settings_line
from ..widgets.compare_column import CompareColumn
from ..widgets.models_field import ModelsField
from ..widgets.prompt_input import PromptInput
from .chat import NOTES

SLOTS = 4
CONCURRENT_LABEL = "concurrent: run all at once (they share the machine, so figures include contention)"
WARMUP_LABEL = "warm up: one short untimed turn each first (off: measure cold, docs/METRICS.md)"
REPEATS_LABEL = "repeats"
STOPPED_EARLY = "Stopped before any model's timed turn (while loading or warming up): nothing to compare."


def note_for(done: Done | None) -> str:
    """The word under a finished column (stopped, error: ...), as the Chat tab puts it under a reply."""
    if done is None:
        return "error"
    return f"error: {done.error}" if done.stop_reason == "error" else NOTES.get(done.stop_reason, "")


class ComparePane(LivePane):
    HELP_SECTION = "Compare"
    BINDINGS = [Binding("escape", "stop", "Stop", priority=True),
                Binding("ctrl+o", "pick_models", "Models")]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="compare-pane")
        self.context = context
        self.loaded: dict[int, LoadedModel] = {}  # column slot → its model, kept for the next prompt
        self.live: LiveCompare | None = None
        self.session: SessionLog | None = None
        self.last: Comparison | None = None

    def compose(self) -> ComposeResult:
        yield ModelsField(self.context, [reach_name(self.context.model, self.context.config.models)],
                          input_id="compare-models", most=SLOTS,
                          placeholder=f"2 to {SLOTS} model names, comma-separated (Ctrl+O picks)")
        with Horizontal(classes="compare-options"):
            yield Switch(value=True, id="compare-warmup")
            yield Label(WARMUP_LABEL, id="compare-warmup-label")
        with Horizontal(classes="compare-options"):
            yield Switch(value=False, id="compare-concurrent")
            yield Label(CONCURRENT_LABEL, id="compare-concurrent-label")
        with Horizontal(classes="compare-options", id="compare-run-options"):
            yield Label(REPEATS_LABEL, id="compare-repeats-label")
            yield Input("1", id="compare-repeats", restrict=r"[0-9]*", max_length=3)
            yield Static(self.settings_text(), id="compare-settings", markup=False)  # what Start runs with
        yield PromptInput(id="compare-prompt", classes="autofocus")
        yield Static("", id="compare-verdict", markup=False)  # the point of the tab: in view above the columns
        yield Horizontal(id="compare-columns")
        with VerticalScroll(id="compare-results"):
            yield Static("Pick 2–4 models, type a prompt, Enter runs them one after another.", id="compare-table")

    def on_unmount(self) -> None:
        if not self.running:  # models still generating are left to the exiting process
            for model in self.loaded.values():
                model.close()

    @staticmethod
    def _one_sample(repeats: int) -> str:
        return "one sample: repeats give the verdict an interval" if repeats == 1 else f"{repeats} samples a model"

    def settings_text(self) -> str:
        """The settings a run started now would use: the chat's (Ctrl+G in Chat)."""
        return f"runs with the chat settings (Ctrl+G in Chat): {settings_line(self.context.settings.chat)}"

    def show_settings(self) -> None:
        self.query_one("#compare-settings", Static).update(self.settings_text())

    def repeats(self) -> int:
        return plan_number(self.query_one("#compare-repeats", Input).value.strip(), "repeats")

    def chosen(self) -> list[ModelSpec]:
        """The models named in the models field; ModelNotFound (with "did you mean") for a name that is none."""
        return [resolve(name, self.context.config.models) for name in self.query_one(ModelsField).typed()]

    def action_pick_models(self) -> None:
        self.query_one(ModelsField).pick()

    # -- running -----------------------------------------------------------------------------------

    async def on_send_prompt(self, message: SendPrompt) -> None:
        message.stop()
        if not message.text.strip():
            return
        if self.running:
            self.notify("Still comparing: wait or press Esc to stop", severity="warning")
            return
        try:
            specs = self.chosen()
            check_model_count([s.name for s in specs], maximum=SLOTS)
            repeats = self.repeats()
        except TaskclockError as exc:
            self.notify(str(exc), title="Compare", severity="warning")
            return
        concurrent = self.query_one("#compare-concurrent", Switch).value
        warmup = 1 if self.query_one("#compare-warmup", Switch).value else 0
        self.live = live = LiveCompare(specs, concurrent, warmup, repeats)
        self.post_message(ModelsUsed([reach_name(spec, self.context.config.models) for spec in specs]))
        await self._build_columns(specs, concurrent)
        warm = "after one short untimed warm-up turn each" if warmup else "cold: no warm-up"
        self.query_one("#compare-table", Static).update(
            f"running ({mode_name(concurrent)}, {warm}; {self._one_sample(repeats)})…")
        self.query_one("#compare-verdict", Static).update("")
        if self.session is None:
            self.session = SessionLog(self.context.sessions_dir, "compare")
        settings = self.context.settings.chat  # what the line above the prompt said
        session, messages = self.session, with_system(settings.system, [{"role": "user", "content": message.text}])
        kept = dict(self.loaded)
        self.start_run(lambda cancel: self._compare(live, messages, settings.params, session, kept, cancel))

    async def _build_columns(self, specs: list[ModelSpec], concurrent: bool) -> None:
        columns = self.query_one("#compare-columns", Horizontal)
        await columns.remove_children()
        waiting = "waiting (runs at once)" if concurrent else "waiting for its turn"
        labels = numbered([spec.name for spec in specs])  # as the table and the verdict name them
        new = [CompareColumn(f"{i + 1}. {label}", id=f"compare-column-{i}") for i, label in enumerate(labels)]
        await columns.mount_all(new)
        for column in new:
            column.waiting(waiting)

    def _compare(self, live: LiveCompare, messages: list[Message], params: SamplingParams, session: SessionLog,
                 loaded: dict[int, LoadedModel], cancel: threading.Event) -> CompareFinished:
        """The job (in a thread): load what the columns lack, run the comparison, log it. ``loaded`` is this
        job's own copy of the kept models; it comes back in the message whatever happens."""
        try:
            fresh = self._load_columns(live.specs, loaded)
            models = [loaded[slot] for slot in range(len(live.specs))]
            comparison = run_compare(
                models, messages, params, concurrent=live.concurrent, warmup=live.warmup, repeats=live.repeats,
                cancel=cancel, on_start=live.started, on_event=live.record, include_load=fresh,
                on_warmup=self._warming_up)
        except Exception as exc:
            return CompareFinished(loaded, exc)
        try:
            for record in comparison.session_records():
                session.append(record)
        except StorageError as exc:
            return CompareFinished(loaded, comparison, log_error=str(exc))
        return CompareFinished(loaded, comparison)

    def _warming_up(self, slot: int) -> None:
        self.post_message(ColumnState(slot, f"warming up ({warm_up_note(1)})…"))

    def _load_columns(self, specs: list[ModelSpec], loaded: dict[int, LoadedModel]) -> list[bool]:
        """Load each column's model unless the slot already holds it; True where it was loaded now."""
        fresh = []
        for slot, spec in enumerate(specs):
            current = loaded.get(slot)
            if current is not None and current.spec == spec:
                fresh.append(False)
                continue
            if current is not None:
                loaded.pop(slot).close()
            self.post_message(ColumnState(slot, f"loading {spec.name} ({spec.backend})…"))
            loaded[slot] = self.context.loader(spec)
            self.post_message(ColumnState(slot, "loaded"))
            fresh.append(True)
        for slot in [s for s in loaded if s >= len(specs)]:
            loaded.pop(slot).close()
        return fresh

    def on_column_state(self, message: ColumnState) -> None:
        message.stop()
        self.query_one(f"#compare-column-{message.slot}", CompareColumn).waiting(message.state)

    def repaint(self) -> None:
        live = self.live
        if live is None:
            return
        now = now_ns()
        for index in sorted(live.running):
            events = live.events[index][:]  # a consistent copy; the producer keeps appending to the original
            column = self.query_one(f"#compare-column-{index}", CompareColumn)
            if events and isinstance(events[-1], Done):
                live.running.discard(index)
                column.show_final(events, note_for(events[-1]))
            else:
                column.show_live(events, now)

    def on_compare_finished(self, message: CompareFinished) -> None:
        message.stop()
        self.loaded, self.live = message.loaded, None
        comparison = message.outcome
        if isinstance(comparison, BaseException):
            self._failed(comparison)
            return
        self.last = comparison
        if not comparison.results:  # stopped while loading or warming up: no timed turn, nothing compared
            for column in self.query(CompareColumn):
                column.waiting("not run (stopped)")
            self.query_one("#compare-table", Static).update(STOPPED_EARLY)
            self.query_one("#compare-verdict", Static).update("")
            return
        for index, column in enumerate(self.query(CompareColumn)):
            if index < len(comparison.results):
                result = comparison.results[index]
                column.show_final(result.events, note_for(result.done), cold=result.cold)
            else:
                column.waiting("not run (stopped)")
        self.query_one("#compare-table", Static).update(comparison_table(comparison))
        verdict, busy = comparison.verdict(), busy_note(comparison.load)
        lines = ([f"verdict: {verdict}"] if verdict else []) + ([f"note: {busy}"] if busy else [])
        self.query_one("#compare-verdict", Static).update(Text("\n").join(plain(line) for line in lines))
        if message.log_error is None and self.session is not None and self.session.path.is_file():
            self.context.wrote(self.session.path)
        if message.log_error:
            self.notify(f"Compare not saved: {message.log_error}", title="Session log", severity="error", timeout=12)

    def on_run_failed(self, message: RunFailed) -> None:
        message.stop()
        self.live = None
        self._failed(message.error)

    def _failed(self, error: BaseException) -> None:
        for column in self.query(CompareColumn):
            column.waiting("not run")
        text = f"Compare failed: {describe_error(error)}"
        self.query_one("#compare-table", Static).update(plain(text))
        self.notify(text, title="Compare", severity="error", timeout=12)
