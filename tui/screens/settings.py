"""Chat settings: the system prompt and the sampling values for the next turns (Ctrl+G or the command palette)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from taskclock.runtime import values

from ..context import ChatSettings

# field id, label, SamplingParams attribute, how the text is parsed (ASCII only; the ranges: runtime/values.py)
FIELDS = (
    ("settings-max-tokens", "max tokens", "max_tokens", values.parse_whole),
    ("settings-temperature", "temperature (0 = greedy)", "temperature", values.parse_number),
    ("settings-top-p", "top-p", "top_p", values.parse_number),
    ("settings-seed", "seed", "seed", values.parse_whole),
)


def settings_line(settings: ChatSettings, max_tokens: str = "") -> str:
    """The one line shown under the meter, and above Compare's and Batch's Start (``max_tokens``: what a tab
    that sets its own cap says instead of the chat's)."""
    p = settings.params
    system = "system prompt set" if settings.system.strip() else "no system prompt"
    cap = max_tokens or f"max {p.max_tokens} tok"
    return f"{cap} · temp {p.temperature:g} · top-p {p.top_p:g} · seed {p.seed} · {system}"


class SettingsScreen(ModalScreen[ChatSettings | None]):
    HELP_SECTION = "Chat settings"
    DEFAULT_CSS = """
    SettingsScreen {
        align: center middle;
    }
    #settings {
        width: 90;
        max-width: 100%;
        height: auto;
        max-height: 100%;
        border: round $primary;
        background: $surface;
        padding: 0 1;
    }
    #settings-system {
        height: 6;
    }
    #settings-numbers {
        layout: grid;
        grid-size: 2;
        grid-gutter: 0 2;
        grid-rows: auto;
        height: auto;
    }
    #settings-buttons {
        height: auto;
    }
    .settings-field {
        height: auto;
    }
    #settings-error {
        color: $error;
    }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel"), Binding("ctrl+s", "save", "Save", priority=True)]

    def __init__(self, settings: ChatSettings) -> None:
        super().__init__()
        self.settings = settings

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="settings") as box:  # scrolls where the terminal is short
            box.border_title = "Chat settings · Ctrl+S saves · Esc cancels"
            yield Label("system prompt")
            yield TextArea(self.settings.system, id="settings-system", soft_wrap=True)
            with Vertical(id="settings-numbers"):  # two a row: whole labels at 80 columns
                for field_id, label, attribute, _ in FIELDS:
                    value = getattr(self.settings.params, attribute)
                    yield Vertical(Label(label), Input(f"{value:g}" if isinstance(value, float) else str(value),
                                                       id=field_id), classes="settings-field")
            yield Static("", id="settings-error", markup=False)
            with Horizontal(id="settings-buttons"):
                yield Button("Save", id="settings-save", variant="primary")
                yield Button("Cancel", id="settings-cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.action_save() if event.button.id == "settings-save" else self.dismiss(None)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def action_save(self) -> None:
        params = self.settings.params
        for field_id, label, attribute, parse in FIELDS:
            text = self.query_one(f"#{field_id}", Input).value.strip()
            try:  # one field at a time, so the error names the field; the range is SamplingParams' own
                params = params.with_overrides(**{attribute: parse(text)})
                continue
            except ValueError:
                kind = "a whole number" if parse is values.parse_whole else "a number"
                error = f"{label} must be {kind}, not {text!r}"
            except values.InvalidValue as exc:
                error = f"{label} {exc.problem.removeprefix(attribute).strip()}"
            self.query_one("#settings-error", Static).update(error)
            self.query_one(f"#{field_id}", Input).focus()
            return
        system = self.query_one("#settings-system", TextArea).text
        self.dismiss(ChatSettings(system, params))
