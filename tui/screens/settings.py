"""Chat settings: the system prompt and the sampling values for the next turns (Ctrl+G or the command palette)."""
from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from ..context import ChatSettings

# field id, label, SamplingParams attribute, type, the allowed range in words
FIELDS = (
    ("settings-max-tokens", "max tokens", "max_tokens", int, "a whole number of at least 1"),
    ("settings-temperature", "temperature (0 = greedy)", "temperature", float, "a number from 0 to 2"),
    ("settings-top-p", "top-p", "top_p", float, "a number above 0, at most 1"),
    ("settings-seed", "seed", "seed", int, "a whole number of at least 0"),
)


def check(attribute: str, value: float) -> bool:
    return {"max_tokens": value >= 1, "temperature": 0 <= value <= 2, "top_p": 0 < value <= 1,
            "seed": value >= 0}[attribute]


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
                for field_id, label, attribute, _, _ in FIELDS:
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
        values: dict[str, float] = {}
        for field_id, label, attribute, kind, allowed in FIELDS:
            text = self.query_one(f"#{field_id}", Input).value.strip()
            try:
                value = kind(text)
            except ValueError:
                value = None
            if value is None or not check(attribute, value):
                self.query_one("#settings-error", Static).update(f"{label} must be {allowed}, not {text!r}")
                self.query_one(f"#{field_id}", Input).focus()
                return
            values[attribute] = value
        system = self.query_one("#settings-system", TextArea).text
        self.dismiss(ChatSettings(system, self.settings.params.with_overrides(**values)))
