"""Issue 7 in the app (Pilot): a model that fails mid-reply shows the error, keeps the partial reply and the
session log, and the chat goes on."""
from __future__ import annotations

import json

from app_helpers import make_app, notes, ready, send, turn, wait_for
from scripted import ScriptedModel

from taskclock.runtime.backend import ModelSpec, load_model
from taskclock.runtime.config import Config
from taskclock.tui.widgets.conversation import ReplyMarkdown


def session_lines(folder) -> list[dict]:
    (path,) = [p for p in folder.glob("*.jsonl") if ".export" not in p.name]
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_model_that_raises_mid_generation_keeps_the_partial_reply_and_the_chat_goes_on(
        tmp_path, tiny_llama_dir):
    """transformers raising inside generate(): the backend ends the turn with an error, the app shows it."""
    fault = {"armed": False, "steps": 0}

    def flaky_loader(spec):
        model = load_model(spec)
        forward = model.model.forward

        def faulty_forward(*args, **kwargs):
            fault["steps"] += 1
            if fault["armed"] and fault["steps"] > 3:
                raise RuntimeError("simulated device fault")
            return forward(*args, **kwargs)

        model.model.forward = faulty_forward
        return model

    config = Config(models={"tiny": ModelSpec("tiny", "hf", str(tiny_llama_dir))})
    app = make_app(tmp_path, model="tiny", config=config, max_tokens=20, loader=flaky_loader)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        first = await turn(pilot, "a b c")
        fault.update(armed=True, steps=0)
        failed = await turn(pilot, "d e f")
        assert failed.done.stop_reason == "error" and "simulated device fault" in failed.done.error
        assert failed.text and failed.metrics.output_tokens >= 1  # the words before the fault are kept
        (error,) = notes(app, "error")
        assert "Generation failed" in error and "simulated device fault" in error
        replies = app.query(ReplyMarkdown)
        assert replies[1].source == failed.text and replies[1].border_subtitle.startswith("error")
        fault["armed"] = False
        after = await turn(pilot, "g h i")
        assert after.done.stop_reason != "error"
        assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["a b c", "d e f", "g h i"]
        logged = session_lines(tmp_path)
        assert [r["stop_reason"] == "error" for r in logged] == [False, True, False]
        assert logged[0]["reply"] == first.text and logged[1]["reply"] == failed.text


class CrashingModel(ScriptedModel):
    """A backend that breaks the stream contract: it raises after a few words instead of ending with Done."""

    crash = True

    def stream(self, messages, params, cancel=None):
        for index, event in enumerate(super().stream(messages, params, cancel)):
            if self.crash and index == 4:
                raise RuntimeError("backend bug")
            yield event


async def test_a_stream_that_raises_keeps_the_partial_reply_and_the_chat_goes_on(tmp_path):
    models: list[CrashingModel] = []

    def loader(spec):
        models.append(CrashingModel(spec))
        return models[-1]

    app = make_app(tmp_path, loader=loader, max_tokens=50)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        models[0].crash = False
        await turn(pilot, "first")
        models[0].crash = True
        await send(pilot, "second")
        await wait_for(pilot, lambda: notes(app, "error"), "the error")  # a crashed turn has no result
        (error,) = notes(app, "error")
        assert "Generation failed" in error and "RuntimeError: backend bug" in error
        crashed = app.query(ReplyMarkdown)[1]
        assert crashed.source == "Sure. **Task time**" and crashed.border_subtitle == "error"
        assert chat.live is None and [m["role"] for m in chat.messages] == ["user", "assistant"]  # "second" dropped
        models[0].crash = False
        assert (await turn(pilot, "third")).done.stop_reason == "eos"
        assert [r["prompt"] for r in session_lines(tmp_path)] == ["first", "third"]
