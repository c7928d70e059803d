"""The taskclock app: a thin shell of tabs. Each tab is a widget built from the shared AppContext.

Adding a tab is one line in TABS (its module, and optionally a .tcss beside it in panes/).
"""
from __future__ import annotations

import asyncio
import contextlib
import importlib
import signal
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

from textual.app import App, AutopilotCallbackType, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.content import Content
from textual.notifications import SeverityLevel
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, TabbedContent, TabPane, Tabs

from taskclock.runtime import remembered
from taskclock.runtime.errors import StorageError
from taskclock.runtime.untrusted import safe_line, safe_text

from .context import AppContext
from .messages import BranchChat, ModelsUsed, Remember, SettingsChanged
from .panes.chat import ChatPane, ModelCommands
from .screens.help import HelpScreen, binding_rows
from .themes import DEFAULT_THEME, load_themes
from .widgets.later_pane import LaterPane

HERE = Path(__file__).parent
FALLBACK_THEME = "textual-dark"
EXIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
# Below this many columns the screen has the class "-narrow" (else "-wide"), and the .tcss files and widget
# styles lay the tabs out for a small terminal: the meter as a bar under the chat, compact fields, fewer columns.
NARROW_WIDTH = 110


@dataclass(frozen=True)
class Tab:
    title: str
    id: str
    key: str
    pane: str  # "module:Class" in tui/panes/, imported when the tab mounts (a hidden one, after the first frame)

    def make(self, context: AppContext) -> Widget:
        module, name = self.pane.split(":")
        return getattr(importlib.import_module(f"{__package__}.panes.{module}"), name)(context)


TABS = (
    Tab("Chat", "chat", "f2", "chat:ChatPane"),
    Tab("Sessions", "sessions", "f3", "sessions:SessionsPane"),
    Tab("Compare", "compare", "f4", "compare:ComparePane"),
    Tab("Batch", "batch", "f5", "batch:BatchPane"),
    Tab("Pace", "pace", "f6", "pace:PacePane"),
)


class TaskclockApp(App):
    TITLE = "taskclock"
    HELP_SECTION = "App"
    CSS_PATH = [HERE / "app.tcss", *sorted((HERE / "panes").glob("*.tcss")), *sorted((HERE / "screens").glob("*.tcss"))]
    COMMANDS = App.COMMANDS | {ModelCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_WIDTH, "-wide")]
    # The footer keeps to what fits 80 columns; the rest is in help (F1), and each tab names its key.
    BINDINGS = [
        Binding("f1", "help", "Help", priority=True),  # priority: F1 works whatever has focus
        Binding("question_mark", "help", "Help", show=False),  # not priority: "?" typed in a box stays text
        Binding("ctrl+t", "change_theme", "Theme", show=False),
        # priority: the prompt box (a TextArea) would take F6 to select a line
        *(Binding(tab.key, f"show_tab('{tab.id}')", tab.title, show=False, priority=True) for tab in TABS),
    ]

    def __init__(self, context: AppContext, theme: str | None = None) -> None:
        super().__init__()
        self.context = context
        themes, self._theme_problems = load_themes()
        for item in themes:
            self.register_theme(item)
        self.remembered = context.remembered
        self._theme_chosen = False
        self._theme_notes: list[str] = []
        # Chosen before the first style pass: set in on_mount, it restyled every widget of every tab again
        # (about a quarter of the time to the first frame)
        self.theme = self._pick_theme(theme or context.remembered.theme or context.config.defaults.theme)
        self._theme_chosen = True

    def compose(self) -> ComposeResult:
        with TabbedContent(initial=TABS[0].id):
            for index, tab in enumerate(TABS):
                with TabPane(Content.assemble(f"{tab.title} ", (tab.key.upper(), "dim")), id=tab.id):
                    yield tab.make(self.context) if index == 0 else LaterPane(partial(tab.make, self.context))
        yield Footer()

    # The hidden tabs mount after the first frame (compose). Code that drives the app, a Pilot session or a
    # snapshot's autopilot, starts once every tab is mounted, as a person does who presses F3 a moment after.

    @contextlib.asynccontextmanager
    async def run_test(self, *args: Any, **kwargs: Any) -> AsyncIterator[Pilot]:
        async with super().run_test(*args, **kwargs) as pilot:
            await self._tabs_mounted(pilot)
            yield pilot

    async def run_async(self, *, auto_pilot: AutopilotCallbackType | None = None, **kwargs: Any) -> Any:
        drive = auto_pilot

        async def after_tabs(pilot: Pilot) -> None:
            await self._tabs_mounted(pilot)
            await drive(pilot)  # type: ignore[misc]  # only passed on when there is one

        return await super().run_async(auto_pilot=None if drive is None else after_tabs, **kwargs)

    async def _tabs_mounted(self, pilot: Pilot) -> None:
        while self.query(LaterPane):
            await pilot.pause()

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification, from any pane, as plain text: messages carry model names, paths and server
        errors, so they are never parsed as markup and their control codes are made visible."""
        super().notify(safe_text(message), title=safe_line(title), severity=severity, timeout=timeout, markup=False)

    def on_mount(self) -> None:
        # The tab bar takes no focus: F2–F6 switch tabs, and Tab moves only among a tab's own fields
        self.query_one(TabbedContent).query_one(Tabs).can_focus = False
        self._exit_on_signals()
        for problem in self._theme_problems:
            self.notify(problem, title="Theme file", severity="error", timeout=12)
        for note in self._theme_notes:
            self.notify(note, title="Theme", severity="warning")
        if self.context.remembered_problem:
            self.notify(self.context.remembered_problem, title="Remembered settings", severity="warning", timeout=12)

    def watch_theme(self, theme: str) -> None:
        if self._theme_chosen and theme != self.remembered.theme:  # a change in the app, not the start-up pick
            self.remember(replace(self.remembered, theme=theme))

    def remember(self, values: remembered.Remembered) -> None:
        """Keep ``values`` for the next launch (when this app has a remembered file; tests mostly do not)."""
        self.remembered = values
        path = self.context.remembered_path
        if path is None:
            return
        try:
            remembered.save(path, values)
        except StorageError as exc:
            self.notify(f"Settings not remembered: {exc}", title="Remembered settings", severity="warning")

    def on_branch_chat(self, message: BranchChat) -> None:
        """A turn picked in the Sessions tab goes on in the Chat tab, as a new session."""
        self.action_show_tab("chat")
        self.query_one(ChatPane).branch(message.history, message.prompt, message.origin)

    def on_remember(self, message: Remember) -> None:
        self.remember(replace(self.remembered, **message.values))

    def on_settings_changed(self, message: SettingsChanged) -> None:
        """Ctrl+G changed the chat settings: the tabs that run with them say the new ones before Start."""
        from .panes.batch import BatchPane
        from .panes.compare import ComparePane

        for pane in self.query(ComparePane):
            pane.show_settings()
        for batch in self.query(BatchPane):
            batch.show_settings()

    def on_models_used(self, message: ModelsUsed) -> None:
        self.remember(replace(self.remembered, models=self.remembered.used(message.names)))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for chat in screen.query(ChatPane):
            yield SystemCommand("Chat settings", "System prompt, max tokens, temperature, top-p, seed",
                                chat.action_settings)

    def _exit_on_signals(self) -> None:
        """SIGTERM and SIGHUP (a closed terminal, `kill`) end the app the way Ctrl+Q does, so the terminal is
        restored (main screen, mouse tracking off, cursor shown) instead of being left as the app drew it."""
        loop = asyncio.get_running_loop()
        for signum in EXIT_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # not the main thread
                loop.add_signal_handler(signum, partial(self.exit, return_code=128 + signum))

    def on_unmount(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in EXIT_SIGNALS:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(signum)

    def _pick_theme(self, name: str) -> str:
        if name in self.available_themes:
            return name
        fallback = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else FALLBACK_THEME
        self._theme_notes.append(f"unknown theme {name!r}; using {fallback} (themes: ctrl+t)")  # shown once mounted
        return fallback

    def action_show_tab(self, tab: str) -> None:
        tabs = self.query_one(TabbedContent)
        tabs.active = tab
        # Move focus into the shown pane (its "autofocus" widget, else the first focusable one): focus left in
        # a hidden pane would switch the tabs straight back.
        focusable = [w for w in tabs.get_pane(tab).query("*") if w.focusable]
        self.set_focus(next((w for w in focusable if w.has_class("autofocus")), focusable[0] if focusable else None))

    def action_help(self) -> None:
        self.push_screen(HelpScreen(binding_rows(self)))
