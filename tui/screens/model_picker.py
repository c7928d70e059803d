"""The model picker: one box that reaches every model a name can (runtime/discovery.py lists them).

Ctrl+O in Chat picks one model; the models fields of Compare and Batch open it to pick several (Enter adds or
removes the highlighted model, Enter on "Done" uses them). It lists the recent models first, then the known
names that contain what is typed; a server URL lists the server's models (fetched in a thread worker with a
deadline, cancelled when the text changes or the picker closes); a path lists the folders and ``.gguf`` files
it completes to (Tab completes); a Hugging Face repo id is taken as typed; a typo gets "did you mean". Ctrl+S
saves the highlighted model as a ``[models.NAME]`` entry of the user's config.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.config import save_model
from taskclock.runtime.discovery import (
    Choice,
    ServerListing,
    choices,
    common_prefix,
    complete_path,
    is_url,
    list_served,
    looks_like_path,
)
from taskclock.runtime.errors import TaskclockError
from taskclock.runtime.models import ALIASES, all_models, reach_name, resolve
from taskclock.runtime.untrusted import redact_url, safe_line

from ..format import plain

LIST_DELAY_S = 0.3  # typing a URL lists its server once the typing pauses this long
DONE = "done"
MARKS = {True: "☑ ", False: "☐ "}


@dataclass
class ServedListed(Message):
    """A server's model list (or why there is none) for the URL the picker asked about."""

    url: str
    listing: ServerListing | None
    error: str = ""


class SaveAsScreen(ModalScreen[str | None]):
    """The name for "save as": Enter saves, Esc goes back."""

    BINDINGS = [Binding("escape", "dismiss", "Back")]

    def __init__(self, model: str, path: Path, suggestion: str) -> None:
        super().__init__()
        self.model, self.path, self.suggestion = model, path, suggestion

    def compose(self) -> ComposeResult:
        with Vertical(id="save-as-box") as box:
            box.border_title = "Save as a named model"
            yield Static(plain(f"{self.model} → [models.NAME] in {self.path}"), id="save-as-what")
            yield Input(self.suggestion, placeholder="NAME (letters, digits, - and _)", id="save-as-name")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)


class ModelPicker(ModalScreen[list[ModelSpec] | None]):
    """Returns the picked models (one, or several with ``multiple``), or None when closed with Esc."""

    HELP_SECTION = "Model picker"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("tab", "complete", "Complete a path", priority=True),  # priority: else Tab moves the focus
        Binding("ctrl+s", "save_as", "Save as…"),
    ]

    def __init__(self, configured: dict[str, ModelSpec], recent: Sequence[str], config_path: Path, *,
                 multiple: bool = False, chosen: Sequence[ModelSpec] = (), most: int | None = None) -> None:
        super().__init__()
        self.configured = configured  # the app's config entries: "save as" adds to them
        self.recent = tuple(recent)
        self.config_path = config_path
        self.multiple, self.most = multiple, most
        self.chosen: list[ModelSpec] = list(chosen)
        self.shown: list[Choice] = []
        self.listing: ServerListing | None = None
        self._listing_for = ""  # the API root the listing (or the one being fetched) is for
        self._cancel = threading.Event()
        self._list_timer: Timer | None = None
        self._status_for = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="picker-box") as box:
            box.border_title = "Models: pick several (Enter adds or removes, then Done)" if self.multiple \
                else "Model: a name, a .gguf path, a Hugging Face id or folder, or a server URL"
            box.border_subtitle = "Enter picks · Tab completes a path · Ctrl+S saves as · Esc closes"
            yield Input(placeholder="smollm2, ./models/x.gguf, Qwen/Qwen2.5-0.5B-Instruct, http://127.0.0.1:8080/v1",
                        id="picker-input")
            yield OptionList(id="picker-options")
            yield Static(id="picker-chosen", markup=False)
            yield Static(id="picker-status", markup=False)

    def on_mount(self) -> None:
        self.query_one("#picker-chosen").display = self.multiple
        self._refresh_list()
        self.query_one(Input).focus()

    def on_unmount(self) -> None:
        self._cancel.set()  # a listing still in flight stops at once

    # -- the list ------------------------------------------------------------------------------------

    def _known(self) -> dict[str, str]:
        return {spec.name: spec.description or redact_url(spec.source) for spec in all_models(self.configured)}

    def _refresh_list(self) -> None:
        text = self.query_one(Input).value
        listing = self.listing if is_url(text.strip()) and self._listing_for == _root(text) else None
        self.shown = choices(text, self._known(), self.recent, listing)
        if self.multiple and not text.strip():
            self.shown.insert(0, Choice(DONE, DONE))
        options = self.query_one(OptionList)
        options.set_options(Option(self._line(choice), id=str(i)) for i, choice in enumerate(self.shown))
        if self.shown:
            options.highlighted = 0
        self._show_chosen()

    def _line(self, choice: Choice) -> Text:
        """A choice as plain text (names, ids and details come from configs and servers: never markup)."""
        if choice.kind == DONE:
            names = ", ".join(f"{i}. {spec.name}" for i, spec in enumerate(self.chosen, 1)) or "nothing picked yet"
            return Text.assemble(("✔ Done: ", "bold"), plain(names))
        mark = MARKS[any(_same(choice.name, spec) for spec in self.chosen)] if self.multiple else ""
        return Text.assemble(mark, plain(choice.name, style="bold"), "  ", plain(choice.kind, style="italic"),
                             "  ", plain(choice.detail, style="dim"))

    def _show_chosen(self) -> None:
        if self.multiple:
            names = ", ".join(f"{i}. {spec.name}" for i, spec in enumerate(self.chosen, 1))
            limit = f" (at most {self.most})" if self.most else ""
            self.query_one("#picker-chosen", Static).update(plain(f"picked{limit}: {names or 'none'}"))

    def _status(self, text: str, error: bool = False) -> None:
        """A line under the list, kept until the text in the box changes."""
        self._status_for = self.query_one(Input).value
        status = self.query_one("#picker-status", Static)
        status.update(plain(text))
        status.set_class(error, "error")

    @on(Input.Changed, "#picker-input")
    def _typed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value != self._status_for:
            self._status("")
        text = event.value.strip()
        if is_url(text) and _root(text) != self._listing_for:
            self._cancel.set()  # the listing of the URL typed before is no longer wanted
            self.listing, self._listing_for = None, ""
            if self._list_timer is not None:
                self._list_timer.stop()
            self._list_timer = self.set_timer(LIST_DELAY_S, self._list_server)
        self._refresh_list()

    def _list_server(self) -> None:
        """The models the typed URL's server serves, fetched in a thread under a deadline."""
        text = self.query_one(Input).value.strip()
        if not is_url(text):
            return
        self._cancel = cancel = threading.Event()
        self._listing_for = root = _root(text)
        self._status(f"asking {redact_url(root)} for its models…")
        api_key = ""
        try:
            spec = resolve(text, self.configured)
            from taskclock.runtime.backends.http import api_key as key_of

            api_key = key_of(spec)
        except TaskclockError:
            pass

        def work() -> None:
            try:
                message = ServedListed(root, list_served(root, api_key=api_key, cancel=cancel))
            except TaskclockError as exc:
                message = ServedListed(root, None, str(exc))
            if not cancel.is_set():
                self.post_message(message)

        self.run_worker(work, thread=True, exclusive=True, exit_on_error=False, group="list-server")

    def on_served_listed(self, message: ServedListed) -> None:
        message.stop()
        if message.url != self._listing_for:
            return  # a stale answer: the text has changed since
        if message.listing is None:
            self._status(message.error, error=True)
            return
        self.listing = message.listing
        more = f" (and {message.listing.more} more)" if message.listing.more else ""
        self._status(f"{message.listing.server} at {message.listing.url} serves "
                     f"{len(message.listing.models)} model(s){more}")
        self._refresh_list()
        if message.listing.models:
            self.query_one(OptionList).highlighted = 1  # the first served model

    # -- keys ----------------------------------------------------------------------------------------

    def action_move(self, step: int) -> None:
        options = self.query_one(OptionList)
        if options.option_count:
            options.highlighted = max(0, min(options.option_count - 1, (options.highlighted or 0) + step))

    def action_complete(self) -> None:
        """Tab: complete a typed path as far as its folders and .gguf files agree (to the highlighted one when
        they do not); elsewhere move the focus as Tab does."""
        box = self.query_one(Input)
        if self.focused is not box or not looks_like_path(box.value.strip()):
            self.focus_next()
            return
        typed = box.value.strip()
        options = complete_path(typed)
        longest = common_prefix(options)
        if len(longest) <= len(typed):
            highlighted = self._highlighted()
            longest = highlighted.name if highlighted is not None and highlighted.kind != DONE else typed
        box.value = longest
        box.cursor_position = len(longest)

    def _highlighted(self) -> Choice | None:
        index = self.query_one(OptionList).highlighted
        return self.shown[index] if index is not None and index < len(self.shown) else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._pick(self._highlighted() or (Choice(event.value.strip(), "typed") if event.value.strip() else None))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self._pick(self.shown[int(event.option.id or 0)])

    def _pick(self, choice: Choice | None) -> None:
        if choice is None:
            return
        box = self.query_one(Input)
        if choice.kind == DONE:
            self._done()
            return
        if choice.descends:
            box.value = choice.name
            box.cursor_position = len(choice.name)
            return
        spec = self._resolve(choice.name)
        if spec is None:
            return
        if not self.multiple:
            self.dismiss([spec])
            return
        same = [s for s in self.chosen if s == spec]
        if same:
            self.chosen.remove(same[0])
        elif self.most is not None and len(self.chosen) >= self.most:
            self._status(f"at most {self.most} models: remove one first (Enter on a picked one)", error=True)
            return
        else:
            self.chosen.append(spec)
        box.value = ""  # back to the list with Done on top
        box.focus()
        self._refresh_list()

    def _resolve(self, name: str) -> ModelSpec | None:
        try:
            return resolve(name, self.configured)
        except TaskclockError as exc:
            self._status(str(exc), error=True)
            return None

    def _done(self) -> None:
        if not self.chosen:
            self._status("nothing picked yet: type or highlight a model and press Enter", error=True)
            return
        self.dismiss(list(self.chosen))

    def action_close(self) -> None:
        self.dismiss(None)

    # -- save as -------------------------------------------------------------------------------------

    def action_save_as(self) -> None:
        choice = self._highlighted()
        typed = self.query_one(Input).value.strip()
        name = choice.name if choice is not None and choice.kind not in (DONE, "folder") else typed
        spec = self._resolve(name) if name else None
        if spec is None:
            if not name:
                self._status("type or highlight a model to save first", error=True)
            return
        self.app.push_screen(SaveAsScreen(spec.name, self.config_path, _suggested_name(spec)),
                             lambda saved_name: self._save(spec, saved_name))

    def _save(self, spec: ModelSpec, name: str | None) -> None:
        self.query_one(Input).focus()
        if not name:
            return
        try:
            saved = save_model(self.config_path, name, spec, builtin=set(ALIASES))
        except TaskclockError as exc:
            self._status(f"not saved: {exc}", error=True)
            return
        self.configured[name] = saved
        box = self.query_one(Input)
        box.value = name
        box.cursor_position = len(name)
        self._status(f"saved as [models.{name}] in {self.config_path}: pick it by that name from now on")


def _root(text: str) -> str:
    from taskclock.runtime.discovery import api_root

    return api_root(text.strip())


def _same(name: str, spec: ModelSpec) -> bool:
    return name in (spec.name, spec.source, reach_name(spec))


def _suggested_name(spec: ModelSpec) -> str:
    """A config name for "save as": the server's model id or the file's stem, in the characters a name takes."""
    import re

    base = spec.api_model.rsplit("/", 1)[-1] or Path(spec.source.rstrip("/")).stem or spec.name
    return re.sub(r"[^A-Za-z0-9_-]+", "-", safe_line(base)).strip("-")[:64]


def open_picker(widget, context, then, *, multiple: bool = False, chosen: Sequence[ModelSpec] = (),
                most: int | None = None) -> None:
    """Open the picker over ``widget``'s app for the app's config (``context``: tui.context.AppContext) and its
    recent models; ``then(specs)`` runs with what was picked, not at all when the picker is closed."""
    from taskclock.runtime.config import user_config_path

    recent = getattr(widget.app, "remembered", None)
    picker = ModelPicker(context.config.models, recent.models if recent else (), user_config_path(context.config),
                         multiple=multiple, chosen=chosen, most=most)
    widget.app.push_screen(picker, lambda specs: then(specs) if specs else None)
