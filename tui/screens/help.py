"""Keyboard help: every binding of the app and its tabs, read from the widgets themselves so it stays true."""
from __future__ import annotations

from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable

FIXED = [("App", "^p", "Command palette: models, themes, settings, commands"), ("App", "^q", "Quit"),
         ("Prompt", "↑, ↓", "Earlier prompts (in an empty prompt box)")]


def binding_rows(app: App) -> list[tuple[str, str, str]]:
    """(section, keys, what) for the app and every taskclock widget on the current screen, each followed by
    the screens it opens (its HELP_OPENS), whose keys work only there."""
    rows = list(FIXED)
    seen: set[type] = set()

    def add(cls: type) -> None:
        if cls in seen or not cls.__module__.startswith("taskclock.tui."):
            return
        seen.add(cls)
        section = getattr(cls, "HELP_SECTION", cls.__name__)
        for item in cls.__dict__.get("BINDINGS", []):
            binding = item if isinstance(item, Binding) else Binding(*item)
            keys = ", ".join(app.get_key_display(binding.with_key(key)) for key in binding.key.split(","))
            rows.append((section, keys, binding.description))
        for opened in getattr(cls, "HELP_OPENS", ()):
            add(opened)

    for node in [app, *app.screen.walk_children(with_self=True)]:
        add(type(node))
    return rows


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,f1,question_mark,q", "dismiss", "Close")]

    def __init__(self, rows: list[tuple[str, str, str]]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help") as box:
            box.border_title = "Keys · Esc closes"
            table: DataTable = DataTable(cursor_type="none", show_cursor=False)
            table.add_columns("where", "keys", "does")
            for row in self.rows:
                table.add_row(*row)
            yield table
