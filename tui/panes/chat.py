"""The Chat tab: a conversation with one model under a live meter, each turn appended to a session log.

Generation runs as a live run (tui/live.py): a thread that only appends events to a list, repainted from a
copy of that list at most REPAINT_HZ times a second. The producer never waits for the UI.
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial

from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.widgets import LoadingIndicator, Static

from taskclock.runtime import metrics
from taskclock.runtime.backend import LoadedModel, Message, ModelSpec
from taskclock.runtime.errors import StorageError, TaskclockError
from taskclock.runtime.events import Event, now_ns
from taskclock.runtime.models import all_models
from taskclock.runtime.sessions import SessionLog, export_all, turn_record
from taskclock.runtime.turn import TurnResult, run_turn

from ..context import AppContext
from ..live import LivePane, describe_error, post_from_thread
from ..messages import ModelLoaded, ModelLoadFailed, RunFailed, SendPrompt, TurnFinished
from ..widgets.conversation import Conversation, ReplyTurn
from ..widgets.meter import Meter
from ..widgets.prompt_input import PromptInput

NOTES = {"cancelled": "stopped", "length": "max tokens reached", "error": "error"}


@dataclass
class LiveTurn:
    """Shared by the generation thread (appends events) and the UI timer (reads a copy)."""

    model: str
    events: list[Event] = field(default_factory=list)


class ChatPane(LivePane):
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
        # Not ``loading``: that is Textual's Widget.loading, which would cover the whole tab while a model loads.
        self.pending_model: ModelSpec | None = None
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
        super().on_mount()
        self.query_one(PromptInput).focus()
        self.load(self.context.model)

    def on_unmount(self) -> None:
        super().on_unmount()
        if not self.running and self.model is not None:  # a model still generating is left to the exiting process
            self.model.close()

    # -- models ------------------------------------------------------------------------------------

    def load(self, spec: ModelSpec) -> None:
        """Load in the background; the current model stays usable until the new one is ready."""
        if self.pending_model is not None:
            self.notify(f"Still loading {self.pending_model.name}; try again when it is ready", severity="warning")
            return
        if self.running:
            self.notify("Wait for the reply (or press Esc) before switching models", severity="warning")
            return
        self.pending_model = spec
        self._show_status()
        loader = self.context.loader
        post_from_thread(self, lambda: ModelLoaded(loader(spec)), partial(ModelLoadFailed, spec), group="load")

    def on_model_loaded(self, message: ModelLoaded) -> None:
        message.stop()
        previous, self.model, self.pending_model = self.model, message.model, None
        if previous is not None:
            previous.close()
            self.notify(f"Switched to {message.model.spec.name}; new chat started")
        self._load_unreported = True
        self.new_chat()
        self._show_status()

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        message.stop()
        self.pending_model = None
        kept = f"; still on {self.model.spec.name}" if self.model else ""
        self.notify(f"Could not load {message.spec.name}: {describe_error(message.error)}{kept}", title="Model",
                    severity="error", timeout=12)
        self._show_status()

    def _show_status(self) -> None:
        pending = self.pending_model
        self.query_one("#model-loading").display = pending is not None
        parts = []
        if pending is not None:
            parts.append(f"loading {pending.name} ({pending.backend})…")
        if self.model is not None:
            spec = self.model.spec
            mode = "" if spec.chat else " · completion (no chat template)"
            parts.append(f"{spec.name} · {spec.backend} · loaded in {self.model.load_s:.2f} s{mode}")
        elif pending is None:
            parts.append("no model loaded: press Ctrl+O to pick one")
        self.query_one("#model-status", Static).update("   ".join(parts))

    def model_commands(self) -> list[tuple[str, object, str]]:
        """(title, callback, help) per model: what the model picker and the command palette list."""
        return [(spec.name, partial(self.load, spec), spec.description or spec.source)
                for spec in all_models(self.context.config.models)]

    def action_pick_model(self) -> None:
        self.app.search_commands(self.model_commands(), placeholder="Switch model…")

    # -- turns -------------------------------------------------------------------------------------

    def on_send_prompt(self, message: SendPrompt) -> None:
        message.stop()
        if not message.text.strip():
            return
        if self.running:
            self.notify("Still answering: wait for the reply or press Esc to stop it", severity="warning")
            return
        if self.model is None:
            pending = self.pending_model
            waiting = f"{pending.name} is still loading" if pending else "no model is loaded"
            self.notify(f"Cannot send yet: {waiting}", severity="warning")
            return
        if self.session is None:
            self.session = SessionLog(self.context.sessions_dir, self.model.spec.name)
        self.query_one(PromptInput).clear()
        self.messages.append({"role": "user", "content": message.text})
        conversation = self.query_one(Conversation)
        conversation.add_prompt(message.text)
        self.reply = conversation.add_reply(self.model.spec.name)
        self.live = live = LiveTurn(self.model.spec.name)
        self.query_one(Meter).start()
        model, messages, session, params = self.model, list(self.messages), self.session, self.context.params
        include_load, self._load_unreported = self._load_unreported, False

        def job(cancel: threading.Event) -> TurnFinished:
            result = run_turn(model, messages, params, cancel=cancel, on_event=live.events.append,
                              include_load=include_load)
            try:
                session.append(turn_record(result))
            except StorageError as exc:
                return TurnFinished(result, str(exc))
            return TurnFinished(result)

        self.start_run(job)

    def repaint(self) -> None:
        live = self.live
        if live is None:
            return
        events = live.events[:]  # a consistent copy; the producer keeps appending to the original
        self.query_one(Meter).show_live(events, now_ns())
        self.reply.show(metrics.output_text(events))

    def on_turn_finished(self, message: TurnFinished) -> None:
        message.stop()
        result, self.live = message.result, None
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
        if message.log_error and not self._log_warned:
            self._log_warned = True
            self.notify(f"Session not saved: {message.log_error}. The chat still works.", title="Session log",
                        severity="error", timeout=12)

    def on_run_failed(self, message: RunFailed) -> None:
        message.stop()
        live, self.live = self.live, None
        self.messages.pop()
        text = metrics.output_text(live.events) if live else ""
        self.query_one(Conversation).finish_reply(self.reply, text, "error", "error")
        self.notify(f"Generation failed: {describe_error(message.error)}", severity="error", timeout=12)

    # -- actions -----------------------------------------------------------------------------------

    def action_new_chat(self) -> None:
        if self.running:
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
