"""The app driven by Pilot on the real SmolLM2 (llama.cpp): replies, meter, session log, stop, model switch."""
from __future__ import annotations

import json

import pytest
from app_helpers import make_app, notes, ready, send, settle, turn, wait_for
from helpers import run_cli
from plotext import uncolorize
from textual.widgets import Input, OptionList
from textual_plotext import PlotextPlot

from taskclock.runtime import metrics, sessions
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.config import Config
from taskclock.runtime.metrics import figure
from taskclock.tui.panes.sessions import SessionScreen
from taskclock.tui.screens.model_picker import ModelPicker
from taskclock.tui.widgets.conversation import ReplyMarkdown
from taskclock.tui.widgets.meter import Meter


def session_records(folder):
    (path,) = [p for p in folder.glob("*.jsonl") if ".export" not in p.name]
    return path, [json.loads(line) for line in path.read_text().splitlines()]


async def test_reply_meter_and_session_log_match_the_recorded_events(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        result = await turn(pilot, "What is the capital of France?")
        meter = app.query_one(Meter)
        figures = metrics.compute(result.events)
        assert figures.output_tokens > 0 and result.text
        assert meter.values["TTFT"] == figure(figures.ttft_s, 3, "s")
        assert meter.values["decode rate"] == figure(figures.decode_tps, 1, "tok/s")
        assert meter.values["task time"] == figure(figures.task_time_s, 3, "s")
        assert meter.values["ITL p99"] == figure(figures.itl_p99_ms, 1, "ms")
        assert meter.values["load time"] == figure(chat.model.load_s, 2, "s")  # first turn after a load
        threads = chat.model.threads  # the final figures say which CPU threads produced them
        assert (meter.values["decode threads"], meter.values["prompt threads"]) == (str(threads.decode),
                                                                                    str(threads.prompt))
        assert app.query_one(ReplyMarkdown).border_title == "smollm2"

        path, (record,) = session_records(tmp_path)
        assert path.name.endswith("-smollm2.jsonl")
        assert record["reply"] == result.text and record["kind"] == "chat"
        assert len(record["token_offsets_ms"]) == figures.output_tokens
        assert record["token_offsets_ms"][0] / 1000 == pytest.approx(figures.ttft_s, abs=1e-5)
        assert record["decode_tps"] == pytest.approx(figures.decode_tps)

        second = await turn(pilot, "And of Italy?")  # multi-turn: the conversation is sent
        assert [m["role"] for m in second.messages] == ["user", "assistant", "user"]
        assert "load time" not in meter.values
        assert len(session_records(tmp_path)[1]) == 2

        await pilot.press("ctrl+n")
        assert chat.messages == [] and not app.query(ReplyMarkdown)


async def test_escape_stops_a_long_generation_and_keeps_the_partial_reply(tmp_path):
    app = make_app(tmp_path, max_tokens=3000)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        await send(pilot, "   ")
        assert chat.live is None  # an empty prompt does nothing
        await send(pilot, "Write a very long story about a dragon who learns to bake bread.")
        await wait_for(pilot, lambda: chat.live is not None and len(chat.live.events) > 5, "some tokens")
        await send(pilot, "another question")
        assert any("Still answering" in n for n in notes(app, "warning"))
        await pilot.press("escape")
        await wait_for(pilot, lambda: chat.live is None, "the stop")
        await settle(pilot)
        result = chat.last_result
        assert result.done.stop_reason == "cancelled"
        assert 0 < result.metrics.output_tokens < 3000
        assert app.query_one(Meter).values["output tokens"] == str(result.metrics.output_tokens)
        reply = app.query_one(ReplyMarkdown)
        assert reply.has_class("-cancelled") and reply.border_subtitle == "stopped"
        assert chat.messages[-1] == {"role": "assistant", "content": result.text}
        assert session_records(tmp_path)[1][0]["stop_reason"] == "cancelled"


async def test_model_picker_switches_models_and_a_failed_load_keeps_the_current_one(tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model at all")
    config = Config(models={"broken": ModelSpec("broken", "llamacpp", str(broken))})
    app = make_app(tmp_path / "sessions", config=config, max_tokens=8)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker), "the model picker")
        await pilot.press(*"gemma3")
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: app.screen.query_one(Input).value == "gemma3"
                       and options.highlighted_option is not None
                       and "gemma3-270m" in str(options.highlighted_option.prompt), "gemma3-270m in the picker")
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.model.spec.name == "gemma3-270m" and chat.pending_model is None, "gemma")
        assert "gemma3-270m · llamacpp" in str(app.query_one("#model-status").render())
        result = await turn(pilot, "The capital of France is")
        assert result.model == "gemma3-270m" and result.metrics.output_tokens > 0

        chat.load(config.models["broken"])
        await wait_for(pilot, lambda: notes(app, "error"), "the load error")
        (error,) = notes(app, "error")
        assert "Could not load broken" in error and "not a GGUF file" in error and "still on gemma3-270m" in error
        assert chat.model.spec.name == "gemma3-270m"
        assert (await turn(pilot, "One, two,")).model == "gemma3-270m"


async def test_unwritable_sessions_folder_warns_once_and_chat_goes_on(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    app = make_app(blocker / "sessions", max_tokens=6)
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        first = await turn(pilot, "Hi")
        second = await turn(pilot, "Hello again")
        assert first.text and second.text
        errors = notes(app, "error")
        assert len(errors) == 1 and "Session not saved" in errors[0] and "a-file" in errors[0]
        assert len(app.query(ReplyMarkdown)) == 2


async def test_export_key_and_sessions_view(tmp_path):
    app = make_app(tmp_path, max_tokens=8)
    async with app.run_test(size=(140, 40)) as pilot:
        chat = await ready(pilot)
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: any("Nothing to export" in n for n in notes(app, "warning")), "the warning")
        await turn(pilot, "Name a planet.")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: notes(app, "information"), "the export note")
        stem = chat.session.path.stem
        for fmt_name in ("csv", "md", "jsonl"):
            assert (tmp_path / f"{stem}.export.{fmt_name}").is_file()
        assert any(f"{stem}.export.csv" in n and str(tmp_path) in n for n in notes(app, "information"))

        await pilot.press("f3")
        table = app.query_one("#sessions-table")
        await wait_for(pilot, lambda: table.row_count == 1, "the session list")
        started = sessions.session_start(chat.session.path)
        row = [str(cell) for cell in table.get_row_at(0)[:4]]
        assert started and row == [started, "Name a planet.", "smollm2", "1"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.turns, "the session viewer")
        assert "Name a planet." in app.screen.markdown
        assert not app.screen.query_one("#session-ttft", PlotextPlot).display  # one turn is not a trend
        await pilot.press("escape")
        assert not isinstance(app.screen, SessionScreen)


async def test_session_view_charts_ttft_per_turn(tmp_path):
    app = make_app(tmp_path, max_tokens=4)
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        results = [await turn(pilot, "Name a planet."), await turn(pilot, "And a star?")]
        await pilot.press("f3")
        table = app.query_one("#sessions-table")
        await wait_for(pilot, lambda: table.row_count == 1, "the session list")
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.turns, "the session viewer")
        chart = app.screen.query_one("#session-ttft", PlotextPlot)
        assert chart.display and chart.region.height > 0
        points = sessions.ttft_per_turn(app.screen.turns)
        assert points == [(1, pytest.approx(results[0].metrics.ttft_s)), (2, pytest.approx(results[1].metrics.ttft_s))]
        text = uncolorize(chart.plt.build())
        assert "TTFT per turn" in text and "TTFT s" in text and "turn" in text.splitlines()[-1]


def test_chat_command_rejects_an_unknown_model_before_opening():
    done = run_cli("chat", "--model", "no-such-model")
    assert done.returncode == 2 and "unknown model 'no-such-model'" in done.stderr
    assert "Traceback" not in done.stderr
