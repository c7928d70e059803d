"""Shared by the app tests: build the app with injected parts, wait on it, read its notifications."""
from __future__ import annotations

from pathlib import Path

from scripted import scripted_loader
from textual.widgets import Input

from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.config import Config
from taskclock.runtime.models import resolve
from taskclock.tui.app import TaskclockApp
from taskclock.tui.context import AppContext
from taskclock.tui.panes.chat import ChatPane
from taskclock.tui.panes.compare import ComparePane
from taskclock.tui.widgets.prompt_input import PromptInput

WAIT_S = 120  # a guard against hanging, not a speed check


def make_app(sessions_dir: Path, *, model: str = "smollm2", max_tokens: int = 24, config: Config | None = None,
             theme: str | None = None, **context) -> TaskclockApp:
    config = config or Config()
    return TaskclockApp(AppContext(config=config, model=resolve(model, config.models), sessions_dir=sessions_dir,
                                   params=SamplingParams(max_tokens=max_tokens), **context), theme=theme)


async def wait_for(pilot, condition, what: str) -> None:
    for _ in range(int(WAIT_S / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def settle(pilot) -> None:
    """Wait until every worker has ended and the messages they posted have been handled."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def ready(pilot) -> ChatPane:
    chat = pilot.app.query_one(ChatPane)
    await wait_for(pilot, lambda: chat.model is not None and chat.pending_model is None, "the model to load")
    chat.query_one(PromptInput).cursor_blink = False
    return chat


async def send(pilot, text: str) -> None:
    prompt = pilot.app.query_one(ChatPane).query_one(PromptInput)
    prompt.focus()
    prompt.load_text(text)
    await pilot.pause()
    await pilot.press("enter")


async def turn(pilot, text: str):
    """Send a prompt and wait for the finished turn; returns its TurnResult."""
    chat = pilot.app.query_one(ChatPane)
    before = chat.last_result
    await send(pilot, text)
    await wait_for(pilot, lambda: chat.last_result is not before and not chat.running, "the reply")
    await settle(pilot)
    return chat.last_result


def notes(app, severity: str | None = None) -> list[str]:
    return [n.message for n in app._notifications if severity is None or n.severity == severity]


async def open_compare(pilot, models: list[str]) -> ComparePane:
    """The Compare tab (F4) with ``models`` in its models field."""
    await pilot.press("f4")
    pane = pilot.app.query_one(ComparePane)
    pane.query_one("#compare-models", Input).value = ", ".join(models)
    await pilot.pause()
    return pane


async def send_compare(pilot, pane: ComparePane, prompt: str) -> None:
    """Type a prompt into the Compare tab's box and press Enter."""
    pane.query_one("#compare-prompt").focus()
    await pilot.pause()
    for char in prompt:
        await pilot.press("space" if char == " " else char)
    await pilot.press("enter")


def workdir_app(**options) -> TaskclockApp:
    """The app on the scripted model, its sessions in ./sessions: with the ``workdir`` fixture, every folder it
    shows reads the same on every machine (for snapshots)."""
    return make_app(Path("sessions"), loader=scripted_loader(), max_tokens=200, **options)
