"""The Chat tab's behaviour on the scripted event source (tests/scripted.py): what the user does and sees."""
from __future__ import annotations

import threading

from taskclock.runtime.models import resolve
from taskclock.tui.widgets.conversation import ReplyMarkdown
from taskclock.tui.widgets.prompt_input import PromptInput
from tests.app_helpers import make_app, ready, wait_for
from tests.scripted import ScriptedModel

SIZE = (130, 38)


class GatedLoader:
    """Loads the first model at once; any later one only when the test opens the gate (a slow load)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.loads = 0

    def __call__(self, spec):
        self.loads += 1
        if self.loads > 1:
            self.gate.wait(timeout=120)
        return ScriptedModel(spec)


async def type_and_send(pilot, text: str) -> None:
    await pilot.press(*text, "enter")


async def test_the_old_model_answers_while_a_new_one_loads(tmp_path):
    loader = GatedLoader()
    app = make_app(tmp_path, loader=loader, max_tokens=16)
    async with app.run_test(size=SIZE) as pilot:
        try:
            await switch_while_answering(pilot, loader)
        finally:
            loader.gate.set()  # never leave the load thread waiting


async def switch_while_answering(pilot, loader: GatedLoader) -> None:
    app = pilot.app
    chat = await ready(pilot)
    chat.load(resolve("gemma3-270m", app.context.config.models))
    await wait_for(pilot, lambda: loader.loads == 2, "the slow load to start")
    assert chat.pending_model is not None and not chat.loading  # Textual's loading cover stays off
    assert app.focused is chat.query_one(PromptInput)
    await type_and_send(pilot, "hello")
    await wait_for(pilot, lambda: chat.last_result is not None and not chat.running, "the reply")
    assert chat.last_result.model == "smollm2" and chat.last_result.metrics.output_tokens == 16
    assert chat.query_one(ReplyMarkdown).border_title == "smollm2"
    loader.gate.set()
    await wait_for(pilot, lambda: chat.model.spec.name == "gemma3-270m", "the new model")
    assert chat.pending_model is None
