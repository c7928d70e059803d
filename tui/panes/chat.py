"""The Chat tab: a conversation with one model under a live meter, each turn appended to a session log.

Generation runs as a live run (tui/livepane.py): a thread that only appends events to a list, repainted from a
copy of that list at most REPAINT_HZ times a second. The producer never waits for the UI.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.widgets import Static

from taskclock.runtime import metrics, remembered
from taskclock.runtime.backend import LoadedModel, Message, ModelSpec
from taskclock.runtime.errors import StorageError, TaskclockError
from taskclock.runtime.events import now_ns
from taskclock.runtime.models import all_models, reach_name
from taskclock.runtime.sessions import SessionLog, export_all, plural, read_session, turn_number, turn_record
from taskclock.runtime.system import LoadWatch
from taskclock.runtime.turn import TurnResult, is_cold, run_turn, with_system
from taskclock.runtime.untrusted import redact_url, safe_line

from ..context import AppContext, ChatSettings
from ..format import code_blocks, plain, reply_line
from ..live import LiveTurn
from ..livepane import LivePane, describe_error, post_from_thread
from ..messages import (
    ModelLoaded,
    ModelLoadFailed,
    ModelsUsed,
    Remember,
    RunFailed,
    SendPrompt,
    SettingsChanged,
    TurnFinished,
)
from ..screens.model_picker import open_picker
from ..screens.settings import SettingsScreen, settings_line
from ..widgets.conversation import Conversation, ReplyTurn
from ..widgets.meter import Meter
from ..widgets.prompt_input import PromptInput

NOTES = {"cancelled": "stopped", "length": "max tokens reached", "error": "error"}
LOAD_CLOCK_S = 0.2  # how often "loading NAME… 3.2 s" counts up (only while a model loads)


class ChatPane(LivePane):
    HELP_SECTION = "Chat"
    BINDINGS = [
        Binding("escape", "stop", "Stop", priority=True),  # priority: the prompt box has focus while streaming
        Binding("ctrl+n", "new_chat", "New chat", show=False),
        Binding("ctrl+o", "pick_model", "Model"),
        Binding("ctrl+g", "settings", "Settings"),
        Binding("ctrl+r", "regenerate", "Retry"),
        Binding("ctrl+l", "edit_last", "Edit last prompt (again: an earlier one)", show=False),
        Binding("ctrl+b", "copy_reply", "Copy last reply", show=False),
        Binding("ctrl+f", "copy_code", "Copy the last code block", show=False),
        Binding("ctrl+s", "export", "Export", show=False),
        # priority: the prompt box would take these for its own cursor
        Binding("pageup", "scroll('page_up')", "Scroll the transcript up", show=False, priority=True),
        Binding("pagedown", "scroll('page_down')", "Scroll the transcript down", show=False, priority=True),
        Binding("ctrl+home", "scroll('home')", "Transcript top", show=False, priority=True),
        Binding("ctrl+end", "scroll('end')", "Transcript end (follows the reply)", show=False, priority=True),
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
        self._events_shown = 0  # the live turn's events the reply on screen was drawn from
        self.last_result: TurnResult | None = None
        self.session: SessionLog | None = None
        self.branch_of: dict[str, Any] | None = None  # the next session's origin: a turn of an earlier session
        self._taken_back = 0  # exchanges Ctrl+L took back in a row (two or more: an earlier prompt, a branch)
        self._edited: str | None = None  # the prompt Ctrl+L last put in the box
        self._log_warned = False
        self._load_started = 0.0
        self._retired: list[LoadedModel] = []  # replaced while answering, closed when the turn ends

    def compose(self) -> ComposeResult:
        with Horizontal(id="chat-status"):
            yield Static(id="model-status", markup=False)
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-main"):
                yield Conversation(id="conversation")
                yield PromptInput(id="prompt", classes="autofocus")
            yield Meter(id="meter")

    def on_mount(self) -> None:
        self._load_watch = LoadWatch.for_models([self.context.model])  # "before" the first turn starts here
        self._load_clock = self.set_interval(LOAD_CLOCK_S, self._tick_load_clock, pause=True)
        self.query_one(Meter).caption(settings_line(self.settings))
        self.query_one(PromptInput).focus()
        self.load(self.context.model)

    def on_unmount(self) -> None:
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
        self._load_started = time.monotonic()
        self._load_clock.resume()
        self._show_status()
        loader = self.context.loader
        post_from_thread(self, lambda: ModelLoaded(loader(spec)), partial(ModelLoadFailed, spec), group="load")

    def on_model_loaded(self, message: ModelLoaded) -> None:
        """Switch models and keep the conversation, with a divider naming the new model."""
        message.stop()
        previous, self.model, self.pending_model = self.model, message.model, None
        self._load_clock.pause()
        spec = message.model.spec
        if previous is not None:
            if self.running:
                self._retired.append(previous)  # still answering: closed once its turn has ended
            else:
                previous.close()
                self.query_one(Meter).reset()  # the figures were the old model's (a running turn keeps its own)
            if self.messages:
                self.query_one(Conversation).add_divider(safe_line(f"now {spec.name} ({spec.backend})"))
            self.notify(f"Switched to {spec.name}; the conversation continues")
        self._show_status()
        self.post_message(ModelsUsed([reach_name(spec, self.context.config.models)]))
        focused = self.screen.focused
        if focused is None or self in focused.ancestors:  # never pull focus (and the tab) from another tab
            self.query_one(PromptInput).focus()

    def on_model_load_failed(self, message: ModelLoadFailed) -> None:
        message.stop()
        self.pending_model = None
        self._load_clock.pause()
        kept = f"; still on {self.model.spec.name}" if self.model else ""
        self.notify(f"Could not load {message.spec.name}: {describe_error(message.error)}{kept}", title="Model",
                    severity="error", timeout=12)
        self._show_status()

    def _tick_load_clock(self) -> None:
        if not self.running:  # a status update lays out the screen: never while the old model is answering
            self._show_status()

    def _show_status(self) -> None:
        pending = self.pending_model
        parts = []
        if pending is not None:
            elapsed = time.monotonic() - self._load_started
            parts.append(f"loading {pending.name} ({pending.backend})… {elapsed:.1f} s")
        if self.model is not None:
            spec = self.model.spec
            mode = "" if spec.chat else " · completion (no chat template)"
            parts.append(f"{spec.name} · {spec.backend} · loaded in {self.model.load_s:.2f} s{mode}")
        elif pending is None:
            parts.append("no model loaded: press Ctrl+O to pick one")
        self.query_one("#model-status", Static).update(Text("   ").join(plain(part) for part in parts))

    def model_commands(self) -> list[tuple[str, Callable[[], None], str]]:
        """(title, callback, help) per model: what the model picker and the command palette list (as markup,
        which the palette parses: names and descriptions come from the config, so they are escaped)."""
        return [(escape(safe_line(spec.name)), partial(self.load, spec),
                 escape(safe_line(spec.description or redact_url(spec.source))))
                for spec in all_models(self.context.config.models)]

    def action_pick_model(self) -> None:
        """Any model: a name, a path, a hub id or a server's (screens/model_picker.py); the chat goes on."""
        open_picker(self, self.context, lambda specs: self.load(specs[0]))

    # -- settings ----------------------------------------------------------------------------------

    def action_settings(self) -> None:
        self.app.push_screen(SettingsScreen(self.settings), self._apply_settings)

    @property
    def settings(self) -> ChatSettings:
        return self.context.settings.chat

    def _apply_settings(self, settings: ChatSettings | None) -> None:
        self.query_one(PromptInput).focus()
        if settings is None or settings == self.settings:
            return
        self.context.settings.chat = settings  # what Compare and Batch run with from now on too
        self.query_one(Meter).caption(settings_line(settings))
        self.post_message(Remember(remembered.chat_values(settings.params, settings.system)))
        self.post_message(SettingsChanged())

    # -- turns -------------------------------------------------------------------------------------

    def on_send_prompt(self, message: SendPrompt) -> None:
        message.stop()
        if not message.text.strip():
            return
        if self._cannot_answer():
            return
        self.query_one(PromptInput).clear()
        self.messages.append({"role": "user", "content": message.text})
        self.query_one(Conversation).add_prompt(message.text)
        self._answer()

    def _cannot_answer(self) -> bool:
        """Say why a turn cannot start now, if it cannot."""
        if self.running:
            self.notify("Still answering: wait for the reply or press Esc to stop it", severity="warning")
            return True
        if self.model is None:
            pending = self.pending_model
            waiting = f"{pending.name} is still loading" if pending else "no model is loaded"
            self.notify(f"Cannot send yet: {waiting}", severity="warning")
            return True
        return False

    def _answer(self) -> None:
        """Run a turn on the conversation so far (its last message is the user's)."""
        model = self.model
        assert model is not None  # _cannot_answer checked
        watch = None
        if self.session is None:  # a new log: its first turn keeps the machine's other work before and during it
            self.session = SessionLog(self.context.sessions_dir, model.spec.name, branch_of=self.branch_of)
            self.branch_of = None
            watch = self._load_watch
        self.reply = self.query_one(Conversation).add_reply(model.spec.name)
        self.live = live = LiveTurn(model.spec.name)
        self._events_shown = 0
        self.query_one(Meter).start()
        messages = with_system(self.settings.system, self.messages)
        session, params = self.session, self.settings.params
        include_load = is_cold(model)  # the first turn after a load carries the load time too

        def job(cancel: threading.Event) -> TurnFinished:
            if watch is not None:
                watch.started()
            result = run_turn(model, messages, params, cancel=cancel, on_event=live.events.append,
                              include_load=include_load)
            if watch is not None:
                watch.finished()
            try:
                record = turn_record(result)
                if watch is not None:
                    record["load"] = watch.record()
                session.append(record)
            except StorageError as exc:
                return TurnFinished(result, str(exc))
            return TurnFinished(result)

        self.start_run(job)

    def repaint(self) -> None:
        live, reply = self.live, self.reply
        if live is None or reply is None:
            return
        events = live.events[:]  # a consistent copy; the producer keeps appending to the original
        self.query_one(Meter).show_live(events, now_ns())
        if len(events) != self._events_shown:  # no new token since the last frame: the text shown is the text
            self._events_shown = len(events)
            reply.show(metrics.answer_text(events) or metrics.thinking_text(events))  # the thinking until the answer

    def _close_retired(self) -> None:
        while self._retired:
            self._retired.pop().close()

    def on_turn_finished(self, message: TurnFinished) -> None:
        message.stop()
        self._close_retired()
        result, self.live = message.result, None
        self.last_result = result
        done = result.done
        stop = done.stop_reason if done else "error"
        note = NOTES.get(stop, "")
        if done is not None and stop == "error":
            note = f"error: {done.error}"
            self.notify(f"Generation failed: {done.error}", severity="error", timeout=10)
        figures = reply_line(result.metrics.as_dict(), result.cold)
        if self.reply is not None:
            self.query_one(Conversation).finish_reply(self.reply, result.text, note, stop, figures, result.thinking)
        self.query_one(Meter).show_final(result.events, cold=result.cold)
        if result.text:
            self.messages.append({"role": "assistant", "content": result.text})
        else:
            self.messages.pop()  # nothing was said: keep user/assistant turns alternating
        if message.log_error is None and self.session is not None and self.session.path.is_file():
            self.context.wrote(self.session.path)
        if message.log_error and not self._log_warned:
            self._log_warned = True
            self.notify(f"Session not saved: {message.log_error}. The chat still works.", title="Session log",
                        severity="error", timeout=12)

    def on_run_failed(self, message: RunFailed) -> None:
        message.stop()
        self._close_retired()
        live, self.live = self.live, None
        self.messages.pop()
        text = metrics.output_text(live.events) if live else ""
        if self.reply is not None:
            self.query_one(Conversation).finish_reply(self.reply, text, "error", "error")
        self.notify(f"Generation failed: {describe_error(message.error)}", severity="error", timeout=12)

    # -- actions -----------------------------------------------------------------------------------

    def action_regenerate(self) -> None:
        """Answer the last prompt again with the same settings (a second timing of the same turn)."""
        if not self.messages or self.messages[-1]["role"] != "assistant":
            self.notify("Nothing to retry yet: send a prompt first", severity="warning")
            return
        if self._cannot_answer():
            return
        self.messages.pop()
        self.query_one(Conversation).remove_last_reply()
        self._answer()

    def action_edit_last(self) -> None:
        """Put the last prompt back in the box, and take it and its reply out of the conversation. Pressed again
        (the box as it left it), the prompt before that: editing an earlier prompt branches, so the next reply
        starts a new session and this one's log keeps every turn."""
        if self.running:
            self.notify("Stop the reply (Esc) before editing the prompt", severity="warning")
            return
        if not any(m["role"] == "user" for m in self.messages):
            self.notify("No prompt to edit yet" if not self._taken_back else "No earlier prompt to edit",
                        severity="warning")
            return
        box = self.query_one(PromptInput)
        again = self._edited is not None and box.text == self._edited
        self._taken_back = self._taken_back + 1 if again else 1
        if self.messages[-1]["role"] == "assistant":
            self.messages.pop()
        prompt = self.messages.pop()["content"]
        self.query_one(Conversation).remove_last_exchange()
        if self._taken_back == 2 and self.session is not None and self.session.path.is_file():
            self.branch_of = {"session": self.session.path.name,
                              "turn": turn_number(read_session(self.session.path), self.messages, prompt)}
            self.notify(f"Editing an earlier prompt: sending it starts a new session (a branch); "
                        f"{self.session.path.name} keeps every turn", title="Branch")
            self.session = None
        self._edited = prompt
        box.load_text(prompt)
        box.move_cursor(box.document.end)
        box.focus()

    def branch(self, history: list[Message], prompt: str, origin: dict[str, Any]) -> None:
        """Go on from a recorded turn (the Sessions tab's turn picker, b): its conversation so far on screen, its
        prompt in the box to edit and send, as a new session whose first record names ``origin``."""
        if self.running:
            self.notify("Stop the reply (Esc) before branching", title="Branch", severity="warning")
            return
        self.new_chat()
        self.messages = list(history)
        conversation = self.query_one(Conversation)
        for message in history:
            conversation.add_recorded(message["role"], message["content"])
        self.branch_of = origin
        box = self.query_one(PromptInput)
        box.load_text(prompt)
        box.move_cursor(box.document.end)
        box.focus()
        self.notify(f"Branched from turn {origin['turn']} of {origin['session']}: edit the prompt and send; that "
                    "session stays as it was", title="Branch")

    def _last_reply(self) -> str | None:
        replies = [m["content"] for m in self.messages if m["role"] == "assistant"]
        if not replies:
            self.notify("No reply to copy yet", severity="warning")
            return None
        return replies[-1]

    def action_copy_reply(self) -> None:
        reply = self._last_reply()
        if reply is not None:
            self.app.copy_to_clipboard(reply)
            self.notify(f"Copied the last reply ({len(reply)} characters)")

    def action_copy_code(self) -> None:
        reply = self._last_reply()
        if reply is None:
            return
        blocks = code_blocks(reply)
        if not blocks:
            self.notify("The last reply has no code block (Ctrl+B copies the whole reply)", severity="warning")
            return
        self.app.copy_to_clipboard(blocks[-1])
        self.notify(f"Copied the last code block ({plural(len(blocks[-1].splitlines()), 'line')})")

    def action_scroll(self, where: str) -> None:
        conversation = self.query_one(Conversation)
        moves: dict[str, Callable[[], object]] = {
            "page_up": conversation.scroll_page_up, "page_down": conversation.scroll_page_down,
            "home": conversation.scroll_home, "end": conversation.anchor}
        moves[where]()

    def action_new_chat(self) -> None:
        if self.running:
            self.notify("Stop the reply (Esc) before starting a new chat", severity="warning")
            return
        self.new_chat()

    def new_chat(self) -> None:
        self.messages.clear()
        self.session = None
        self._load_watch = LoadWatch.for_models([self.model.spec if self.model else self.context.model])
        self.branch_of, self._taken_back, self._edited = None, 0, None
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

    def _entries(self) -> Iterator[tuple[str, Callable[[], None], str]]:
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
