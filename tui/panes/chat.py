"""The Chat tab: a conversation with one model under a live meter, each turn appended to a session log.

Generation runs in a thread worker that only appends events to a list; a UI timer repaints the meter and
the streaming text from a copy of that list at most REPAINT_HZ times a second. The producer never waits
for the UI, and however fast tokens arrive, the UI does a bounded amount of work.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import LoadingIndicator, Static
from textual.worker import Worker, WorkerState

from taskclock.runtime import metrics
from taskclock.runtime.backend import LoadedModel, Message, ModelSpec
from taskclock.runtime.errors import StorageError, TaskclockError
from taskclock.runtime.events import Event, now_ns
from taskclock.runtime.models import all_models
from taskclock.runtime.sessions import SessionLog, export_all, turn_record
from taskclock.runtime.turn import TurnResult, run_turn
from taskclock.runtime.untrusted import redact_url, safe_line

from ..context import AppContext
from ..format import plain
from ..messages import SendPrompt
from ..widgets.conversation import Conversation, ReplyTurn
from ..widgets.meter import Meter
from ..widgets.prompt_input import PromptInput

REPAINT_HZ = 10  # the low end of 10-30 Hz: on 2 cores every UI millisecond is taken from the model
NOTES = {"cancelled": "stopped", "length": "max tokens reached", "error": "error"}


def describe_error(error: BaseException) -> str:
    """A TaskclockError is already a user message; anything else gets its type so it can be reported."""
    return str(error) if isinstance(error, TaskclockError) else f"{type(error).__name__}: {error}"


@dataclass
class LiveTurn:
    """Shared by the generation thread (appends events) and the UI timer (reads a copy)."""

    model: str
    events: list[Event] = field(default_factory=list)
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class TurnOutcome:
    result: TurnResult
    log_error: str | None = None


class ChatPane(Vertical):
    HELP_SECTION = "Chat"
    BINDINGS = [
        Binding("escape", "stop", "Stop", priority=True),  # priority: the prompt box has focus while streaming
        Binding("ctrl+n", "new_chat", "New chat"),
        Binding("ctrl+o", "pick_model", "Model"),
        Binding("ctrl+s", "export", "Export"),
    ]

    def __init__(self, context: AppContext) -> None:
        super().__init__(id="chat-pane")
        self.context = context
        self.model: LoadedModel | None = None
        self.loading: ModelSpec | None = None
        self.messages: list[Message] = []
        self.live: LiveTurn | None = None
        self.reply: ReplyTurn | None = None
        self.last_result: TurnResult | None = None
        self.session: SessionLog | None = None
        self._load_unreported = False  # the next turn carries the Loaded event (load time)
        self._log_warned = False

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-status"):
            yield LoadingIndicator(id="model-loading")
            yield Static(id="model-status")
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-main"):
                yield Conversation(id="conversation")
                yield PromptInput(id="prompt", classes="autofocus")
            yield Meter(id="meter")

    def on_mount(self) -> None:
        self._ticker = self.set_interval(1 / REPAINT_HZ, self._repaint, pause=True)
        self.query_one(PromptInput).focus()
        self.load(self.context.model)

    def on_unmount(self) -> None:
        if self.live is not None:
            self.live.cancel.set()
        elif self.model is not None:  # a model still generating is left to the exiting process
            self.model.close()

    # -- models ------------------------------------------------------------------------------------

    def load(self, spec: ModelSpec) -> None:
        """Load in the background; the current model stays usable until the new one is ready."""
        if self.loading is not None:
            self.notify(f"Still loading {self.loading.name}; try again when it is ready", severity="warning")
            return
        if self.live is not None:
            self.notify("Wait for the reply (or press Esc) before switching models", severity="warning")
            return
        self.loading = spec
        self._show_status()
        self._load_worker(spec)

    @work(thread=True, exclusive=True, exit_on_error=False, group="load", name="load")
    def _load_worker(self, spec: ModelSpec) -> LoadedModel:
        return self.context.loader(spec)

    def _loaded(self, model: LoadedModel) -> None:
        previous, self.model, self.loading = self.model, model, None
        if previous is not None:
            previous.close()
            self.notify(f"Switched to {model.spec.name}; new chat started")
        self._load_unreported = True
        self.new_chat()
        self._show_status()

    def _load_failed(self, error: BaseException) -> None:
        spec, self.loading = self.loading, None
        kept = f"; still on {self.model.spec.name}" if self.model else ""
        self.notify(f"Could not load {spec.name}: {describe_error(error)}{kept}", title="Model",
                    severity="error", timeout=12)
        self._show_status()

    def _show_status(self) -> None:
        self.query_one("#model-loading").display = self.loading is not None
        parts = []
        if self.loading is not None:
            parts.append(f"loading {self.loading.name} ({self.loading.backend})…")
        if self.model is not None:
            spec = self.model.spec
            mode = "" if spec.chat else " · completion (no chat template)"
            parts.append(f"{spec.name} · {spec.backend} · loaded in {self.model.load_s:.2f} s{mode}")
        elif self.loading is None:
            parts.append("no model loaded: press Ctrl+O to pick one")
        self.query_one("#model-status", Static).update(Text("   ").join(plain(part) for part in parts))

    def model_commands(self) -> list[tuple[str, object, str]]:
        """(title, callback, help) per model: what the model picker and the command palette list (as markup,
        which the palette parses: names and descriptions come from the config, so they are escaped)."""
        return [(escape(safe_line(spec.name)), partial(self.load, spec),
                 escape(safe_line(spec.description or redact_url(spec.source))))
                for spec in all_models(self.context.config.models)]

    def action_pick_model(self) -> None:
        self.app.search_commands(self.model_commands(), placeholder="Switch model…")

    # -- turns -------------------------------------------------------------------------------------

    def on_send_prompt(self, message: SendPrompt) -> None:
        message.stop()
        if not message.text.strip():
            return
        if self.live is not None:
            self.notify("Still answering: wait for the reply or press Esc to stop it", severity="warning")
            return
        if self.model is None:
            waiting = f"{self.loading.name} is still loading" if self.loading else "no model is loaded"
            self.notify(f"Cannot send yet: {waiting}", severity="warning")
            return
        if self.session is None:
            self.session = SessionLog(self.context.sessions_dir, self.model.spec.name)
        self.query_one(PromptInput).clear()
        self.messages.append({"role": "user", "content": message.text})
        conversation = self.query_one(Conversation)
        conversation.add_prompt(message.text)
        self.reply = conversation.add_reply(self.model.spec.name)
        self.live = LiveTurn(self.model.spec.name)
        self.query_one(Meter).start()
        self._ticker.resume()
        self._generate(self.model, list(self.messages), self.live, self.session, self._load_unreported)
        self._load_unreported = False

    @work(thread=True, exclusive=True, exit_on_error=False, group="turn", name="turn")
    def _generate(self, model: LoadedModel, messages: list[Message], live: LiveTurn, session: SessionLog,
                  include_load: bool) -> TurnOutcome:
        result = run_turn(model, messages, self.context.params, cancel=live.cancel, on_event=live.events.append,
                          include_load=include_load)
        try:
            session.append(turn_record(result))
        except StorageError as exc:
            return TurnOutcome(result, str(exc))
        return TurnOutcome(result)

    def _repaint(self) -> None:
        live = self.live
        if live is None:
            return
        events = live.events[:]  # a consistent copy; the producer keeps appending to the original
        self.query_one(Meter).show_live(events, now_ns())
        self.reply.show(metrics.output_text(events))

    def _finish(self, outcome: TurnOutcome) -> None:
        self._ticker.pause()
        result, self.live = outcome.result, None
        self.last_result = result
        stop = result.done.stop_reason if result.done else "error"
        note = NOTES.get(stop, "")
        if stop == "error":
            note = f"error: {result.done.error}"
            self.notify(f"Generation failed: {result.done.error}", severity="error", timeout=10)
        self.query_one(Conversation).finish_reply(self.reply, result.text, note, stop)
        self.query_one(Meter).show_final(result.events)
        if result.text:
            self.messages.append({"role": "assistant", "content": result.text})
        else:
            self.messages.pop()  # nothing was said: keep user/assistant turns alternating
        if outcome.log_error is None and self.session is not None and self.session.path.is_file():
            self.context.wrote(self.session.path)
        if outcome.log_error and not self._log_warned:
            self._log_warned = True
            self.notify(f"Session not saved: {outcome.log_error}. The chat still works.", title="Session log",
                        severity="error", timeout=12)

    def _turn_crashed(self, error: BaseException) -> None:
        live = self.live
        self._ticker.pause()
        self.live = None
        self.messages.pop()
        self.query_one(Conversation).finish_reply(self.reply, metrics.output_text(live.events), "error", "error")
        self.notify(f"Generation failed: {describe_error(error)}", severity="error", timeout=12)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker, state = event.worker, event.state
        handlers = {
            ("load", WorkerState.SUCCESS): lambda: self._loaded(worker.result),
            ("load", WorkerState.ERROR): lambda: self._load_failed(worker.error),
            ("turn", WorkerState.SUCCESS): lambda: self._finish(worker.result),
            ("turn", WorkerState.ERROR): lambda: self._turn_crashed(worker.error),
        }
        handler = handlers.get((worker.name, state))
        if handler is not None:
            event.stop()
            handler()

    # -- actions -----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.live is not None or None  # dimmed in the footer, and Esc passes through
        return True

    def action_stop(self) -> None:
        if self.live is not None:
            self.live.cancel.set()

    def action_new_chat(self) -> None:
        if self.live is not None:
            self.notify("Stop the reply (Esc) before starting a new chat", severity="warning")
            return
        self.new_chat()

    def new_chat(self) -> None:
        self.messages.clear()
        self.session = None
        self.query_one(Conversation).clear()
        self.query_one(Meter).reset()

    def action_export(self) -> None:
        if self.session is None or not self.session.path.is_file():
            self.notify("Nothing to export yet: the session log starts with the first reply", severity="warning")
            return
        try:
            written = export_all(self.session.path)
        except TaskclockError as exc:
            self.notify(str(exc), title="Export", severity="error", timeout=10)
            return
        names = ", ".join(p.name for p in written)
        self.notify(f"Wrote {names} in {self.session.path.parent}", title="Export", timeout=10)


class ModelCommands(Provider):
    """Command palette entries "Model: NAME" that load that model in the Chat tab."""

    def _entries(self) -> Iterator[tuple[str, object, str]]:
        for chat in self.screen.query(ChatPane):
            for name, callback, help_text in chat.model_commands():
                yield f"Model: {name}", callback, help_text

    async def discover(self) -> Hits:
        for title, callback, help_text in self._entries():
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, callback, help_text in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, help=help_text)
