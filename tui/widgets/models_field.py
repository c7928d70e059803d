"""The models field of Compare and Batch: the model names across the whole row (typed, comma-separated, or
picked), and the button that opens the model picker to pick several (screens/model_picker.py)."""
from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label

from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.errors import TaskclockError
from taskclock.runtime.models import reach_name, resolve
from taskclock.runtime.untrusted import safe_text

from ..context import AppContext
from ..screens.model_picker import open_picker


def split_names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def visible(text: str) -> str:
    """Text for the box with its control codes made visible (a box draws what it holds as it is)."""
    return safe_text(text).replace("\n", " ").replace("\t", " ")


class ModelsField(Horizontal):
    """``input_id`` names the box, so a tab reads it as any other field; ``most`` caps the picker."""

    SCOPED_CSS = False  # the narrow rules select on the screen's class, outside this widget
    DEFAULT_CSS = """
    ModelsField { height: auto; padding: 0 1; }
    ModelsField .models-field-label { padding: 1 1 0 0; color: $text-muted; }
    ModelsField Input { width: 1fr; }
    /* a narrow screen: one line, as the other compact fields */
    Screen.-narrow ModelsField Input { border: none; height: 1; padding: 0 1; }
    Screen.-narrow ModelsField .models-field-label { padding: 0 1 0 0; }
    Screen.-narrow ModelsField Button { border: none; height: 1; min-width: 10; }
    """

    def __init__(self, context: AppContext, names: list[str], *, input_id: str, most: int | None = None,
                 placeholder: str = "model names, comma-separated (Ctrl+O picks)") -> None:
        super().__init__(classes="models-field")
        self.context, self.most = context, most
        self.input_id, self.names, self.placeholder = input_id, names, placeholder

    def compose(self) -> ComposeResult:
        yield Label("models", classes="models-field-label")
        yield Input(", ".join(map(visible, self.names)), placeholder=self.placeholder, id=self.input_id)
        yield Button("Pick… ^O", id=f"{self.input_id}-pick", classes="models-field-pick")

    @property
    def box(self) -> Input:
        return self.query_one(f"#{self.input_id}", Input)

    def typed(self) -> list[str]:
        """The names in the box; a config name with control codes is shown with them made visible (never
        written to the terminal raw) and read back as the name itself."""
        shown = {visible(name): name for name in self.context.config.models}
        return [shown.get(name, name) for name in split_names(self.box.value)]

    def on_input_changed(self, event: Input.Changed) -> None:
        """Pasted or set text with control codes shows them as visible symbols, never drives the terminal."""
        event.stop()
        shown = visible(event.value)
        if shown != event.value:
            event.input.value = shown

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.pick()

    def pick(self, then: Callable[[list[ModelSpec]], None] | None = None) -> None:
        """The picker with the models named now already picked; what it returns replaces them."""
        chosen = []
        for name in self.typed():
            try:
                chosen.append(resolve(name, self.context.config.models))
            except TaskclockError:
                continue  # a name that does not resolve is dropped here, and reported when the run starts

        def picked(specs: list[ModelSpec]) -> None:
            self.box.value = ", ".join(visible(reach_name(spec, self.context.config.models)) for spec in specs)
            self.box.focus()
            if then is not None:
                then(specs)

        open_picker(self, self.context, picked, multiple=True, chosen=chosen, most=self.most)
