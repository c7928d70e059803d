"""The Chat tab's behaviour on the scripted event source (tests/scripted.py): what the user does and sees."""
from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import AsyncIterator

from app_helpers import make_app, open_compare, ready, send_compare, settle, turn, wait_for
from helpers import mmlu_folder
from scripted import ScriptedModel
from textual.widgets import DataTable, Input, OptionList, Static, TabbedContent, TextArea

from taskclock.runtime import remembered, runfolder, sessions
from taskclock.runtime.models import resolve
from taskclock.runtime.tasks import BUILTIN
from taskclock.tui.format import READING_WPS
from taskclock.tui.panes.batch import BatchPane
from taskclock.tui.panes.batch_views.tasks import BUILTIN_MMLU
from taskclock.tui.panes.sessions import SessionScreen
from taskclock.tui.screens.help import HelpScreen
from taskclock.tui.screens.settings import SettingsScreen
from taskclock.tui.widgets.conversation import Conversation, Divider, ReplyFigures, ReplyMarkdown, UserTurn
from taskclock.tui.widgets.meter import Meter, Spark
from taskclock.tui.widgets.prompt_input import PromptInput

SIZE = (130, 38)


class TrackedModel(ScriptedModel):
    closed = False

    def close(self) -> None:
        self.closed = True


class GatedLoader:
    """Loads the first model at once; any later one only when the test opens the gate (a slow load)."""

    def __init__(self, **options) -> None:
        self.gate = threading.Event()
        self.models: list[TrackedModel] = []
        self.options = options

    @property
    def loads(self) -> int:
        return len(self.models)

    def __call__(self, spec):
        model = TrackedModel(spec, **self.options)
        self.models.append(model)
        if len(self.models) > 1:
            self.gate.wait(timeout=120)
        return model


async def test_a_model_replaced_while_it_answers_is_closed_only_after_its_turn(tmp_path):
    loader = GatedLoader(pace_tps=20, tokens=80)
    app = make_app(tmp_path, loader=loader, max_tokens=80)
    async with app.run_test(size=SIZE) as pilot:
        try:
            chat = await ready(pilot)
            chat.load(resolve("gemma3-270m", app.context.config.models))
            await type_and_send(pilot, "hello")
            await wait_for(pilot, lambda: chat.running, "the turn to start")
            loader.gate.set()
            await wait_for(pilot, lambda: chat.model is loader.models[1], "the new model")
            old = loader.models[0]
            assert chat.running and not old.closed
            await wait_for(pilot, lambda: not chat.running, "the turn to end")
            assert old.closed and chat.last_result.model == "smollm2"
            assert chat.last_result.metrics.output_tokens == 80
        finally:
            loader.gate.set()


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


def scripted(tmp_path, **options):
    return make_app(tmp_path / "sessions", loader=lambda spec: ScriptedModel(spec), **options)


def records(tmp_path) -> list[dict]:
    (path,) = (tmp_path / "sessions").glob("*.jsonl")  # (no exports in these tests)
    return sessions.read_session(path)


async def test_every_reply_keeps_its_figures_and_the_first_after_a_load_is_cold(tmp_path):
    app = scripted(tmp_path, max_tokens=12)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        first, second = await turn(pilot, "one"), await turn(pilot, "two")
        lines = [str(f.render()) for f in app.query(ReplyFigures)]
        assert len(lines) == 2 and len(app.query(ReplyMarkdown)) == 2
        for line, result in zip(lines, (first, second), strict=True):
            figures = result.metrics
            assert line.startswith(f"TTFT {figures.ttft_s:.3f} s · {figures.decode_tps:.1f} tok/s · "
                                   f"task {figures.task_time_s:.3f} s · 12 tokens · 12 words")
        assert "cold" in lines[0] and "cold" not in lines[1]
        assert (first.cold, second.cold) == (True, False)
        assert [r["cold"] for r in records(tmp_path)] == [True, False]
        meter = app.query_one(Meter)
        assert "cold" not in str(meter.query_one("#meter-state", Static).render())
        words_per_s = second.metrics.words_per_s
        pace = ">" if words_per_s > READING_WPS else "<"
        assert meter.values["words/s"] == f"{words_per_s:.1f} ({pace} reading ~4)"
        scale = re.match(r"tok/s, last seconds · max (\d+\.\d)", meter.query_one(Spark).render_line(0).text)
        assert scale and float(scale.group(1)) >= second.metrics.decode_tps  # the chart's top, written above it


async def test_settings_change_the_next_turn_are_shown_logged_and_remembered(tmp_path):
    path = tmp_path / "remembered.json"
    app = scripted(tmp_path, max_tokens=12, remembered_path=path)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        await pilot.press("ctrl+g")
        screen = app.screen
        assert isinstance(screen, SettingsScreen)
        screen.query_one("#settings-max-tokens", Input).value = "0"
        screen.query_one("#settings-system", TextArea).load_text("Be brief.")
        await pilot.press("ctrl+s")
        error = str(screen.query_one("#settings-error").render())
        assert "max tokens must be at least 1 and at most 16777216, not 0" in error
        screen.query_one("#settings-max-tokens", Input).value = "5"
        screen.query_one("#settings-temperature", Input).value = "0.5"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), "the settings to close")
        assert "max 5 tok · temp 0.5" in str(chat.query_one("#meter-caption", Static).render())
        result = await turn(pilot, "hello")
        assert result.metrics.output_tokens == 5 and result.messages[0] == {"role": "system", "content": "Be brief."}
        (record,) = records(tmp_path)
        assert record["params"]["max_tokens"] == 5 and record["params"]["temperature"] == 0.5
        assert {"before", "during", "busy"} <= record["load"].keys()  # a log's first turn keeps the machine's load
        kept, problem = remembered.load(path)
        assert problem is None and (kept.max_tokens, kept.temperature, kept.system) == (5, 0.5, "Be brief.")

        await pilot.press("ctrl+p")
        await pilot.press(*"Chat settings")
        await wait_for(pilot, lambda: any(o.option_count for o in app.screen.query(OptionList)), "the palette entry")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SettingsScreen), "settings from the palette")


async def test_compare_and_batch_run_with_the_chat_settings_set_by_ctrl_g(tmp_path):
    """Ctrl+G in Chat sets what Compare runs with (max tokens, system prompt) and both tabs say so before Start;
    Batch's run folder records the system prompt and sampling."""
    app = scripted(tmp_path, max_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+g")
        screen = app.screen
        screen.query_one("#settings-max-tokens", Input).value = "6"
        screen.query_one("#settings-system", TextArea).load_text("Be brief.")
        screen.query_one("#settings-seed", Input).value = "3"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: not isinstance(app.screen, SettingsScreen), "the settings to close")
        pane = await open_compare(pilot, ["smollm2", "gemma3-270m"])
        shown = str(pane.query_one("#compare-settings", Static).render())
        assert "max 6 tok" in shown and "seed 3" in shown and "system prompt set" in shown
        await send_compare(pilot, pane, "hi")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the comparison")
        for result in pane.last.results:
            assert result.params.max_tokens == 6 and result.params.seed == 3 and result.metrics.output_tokens == 6
            assert result.messages[0] == {"role": "system", "content": "Be brief."}
        assert "one sample" in str(pane.query_one("#compare-verdict", Static).render())
        before = pane.last
        pane.query_one("#compare-repeats", Input).value = "3"  # the tab's own field: three samples a model
        await send_compare(pilot, pane, "hi")
        await wait_for(pilot, lambda: pane.last is not before and pane.live is None, "the repeated comparison")
        assert pane.last.repeats == 3 and [len(s) for s in pane.last.samples] == [3, 3]
        assert "mean of 3" in str(pane.query_one("#compare-verdict", Static).render())
        await pilot.press("f5")
        batch = app.query_one(BatchPane)
        shown = str(batch.query_one("#batch-settings", Static).render())
        assert "each task its own max tokens" in shown and "seed 3" in shown and "system prompt set" in shown
        for field_id, value in (("batch-models", "smollm2"), ("batch-tasks", "mc"), ("batch-limit", "1"),
                                ("batch-runs-dir", str(tmp_path / "runs"))):
            batch.query_one(f"#{field_id}", Input).value = value
        batch.query_one("#batch-start").press()
        await wait_for(pilot, lambda: batch.folder is not None and not batch.running, "the batch run")
        plan = runfolder.read_plan(batch.folder)
        assert (plan.system, plan.seed, plan.max_tokens) == ("Be brief.", 3, 0)  # 0: each task its own budget
        (row,) = runfolder.read_results(batch.folder).rows
        assert row["output_tokens"] == BUILTIN["mc"].max_tokens  # the scripted model writes to the task's cap


async def test_regenerate_edit_and_copy_the_last_exchange(tmp_path):
    app = scripted(tmp_path, max_tokens=6)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        first = await turn(pilot, "tell me")
        before = chat.last_result
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: chat.last_result is not before and not chat.running, "the retry")
        await settle(pilot)
        assert [m["role"] for m in chat.messages] == ["user", "assistant"]
        assert len(app.query(ReplyMarkdown)) == 1 and len(app.query(ReplyFigures)) == 1
        assert [r["prompt"] for r in records(tmp_path)] == ["tell me", "tell me"]
        assert chat.last_result.messages == first.messages

        await pilot.press("ctrl+b")
        assert app.clipboard == chat.messages[-1]["content"] != ""

        await pilot.press("ctrl+l")
        await settle(pilot)
        assert chat.messages == [] and not app.query(UserTurn) and not app.query(ReplyMarkdown)
        assert chat.query_one(PromptInput).text == "tell me"


async def test_up_and_down_in_an_empty_prompt_box_recall_earlier_prompts(tmp_path):
    app = scripted(tmp_path, max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        await turn(pilot, "first")
        await turn(pilot, "second")
        box = chat.query_one(PromptInput)
        shown = []
        for key in ("up", "up", "up", "down", "down"):
            await pilot.press(key)
            shown.append(box.text)
        assert shown == ["second", "first", "first", "second", ""]
        await pilot.press(*"x?", "up")  # a typed box keeps Up for its cursor; "?" stays text
        assert box.text == "x?" and not isinstance(app.screen, HelpScreen)


async def test_switching_model_keeps_the_conversation_with_a_divider_and_focus(tmp_path):
    app = scripted(tmp_path, max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        await turn(pilot, "before")
        chat.load(resolve("gemma3-270m", app.context.config.models))
        await wait_for(pilot, lambda: chat.model.spec.name == "gemma3-270m", "the new model")
        await settle(pilot)
        (divider,) = app.query(Divider)
        assert "now gemma3-270m (llamacpp)" in str(divider.render())
        assert app.focused is chat.query_one(PromptInput)
        result = await turn(pilot, "after")
        assert [m["content"] for m in result.messages] == ["before", chat.messages[1]["content"], "after"]
        assert result.model == "gemma3-270m" and result.cold
        assert len(app.query(ReplyMarkdown)) == 2


async def test_page_keys_in_the_prompt_box_scroll_the_transcript(tmp_path):
    app = scripted(tmp_path, max_tokens=60)
    async with app.run_test(size=(100, 24)) as pilot:
        chat = await ready(pilot)
        for n in range(3):
            await turn(pilot, f"turn {n}")
        conversation = chat.query_one(Conversation)
        await settle(pilot)
        bottom = conversation.scroll_y
        assert bottom > 0 and app.focused is chat.query_one(PromptInput)
        await pilot.press("pageup")
        await wait_for(pilot, lambda: conversation.scroll_y < bottom, "a page up")
        await pilot.press("ctrl+home")
        await wait_for(pilot, lambda: conversation.scroll_y == 0, "the top")
        await pilot.press("ctrl+end")
        await wait_for(pilot, lambda: conversation.scroll_y == bottom, "the end")


async def test_help_shows_printed_keys_and_f1_opens_it_from_the_prompt_box(tmp_path):
    app = scripted(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        keys = [row[1] for row in app.screen.rows]
        assert {"^n", "?", "f1", "pgup", "↑, ↓"} <= set(keys)
        assert not any("question_mark" in k or "ctrl+" in k for k in keys)


@contextlib.asynccontextmanager
async def loading_a_second_model(tmp_path) -> AsyncIterator[tuple]:
    """The app with its first model ready and gemma3-270m loading until ``loader.gate`` opens (opened at the end
    whatever happens, so no load thread is left waiting)."""
    loader = GatedLoader()
    app = make_app(tmp_path, loader=loader)
    async with app.run_test(size=SIZE) as pilot:
        try:
            chat = await ready(pilot)
            chat.load(resolve("gemma3-270m", app.context.config.models))
            yield app, pilot, chat, loader
        finally:
            loader.gate.set()


async def test_a_loading_model_shows_its_name_and_a_running_clock(tmp_path):
    async with loading_a_second_model(tmp_path) as (_, pilot, chat, _):
        status = chat.query_one("#model-status", Static)
        clock = re.compile(r"loading gemma3-270m \(llamacpp\)… (\d+\.\d) s")

        def seconds() -> float:
            found = clock.search(str(status.render()))
            return float(found.group(1)) if found else -1.0

        await wait_for(pilot, lambda: seconds() >= 0, "the loading line")
        first = seconds()
        await wait_for(pilot, lambda: seconds() > first, "the clock to move")


async def test_the_theme_is_remembered_after_a_restart(tmp_path):
    path = tmp_path / "remembered.json"
    async with scripted(tmp_path, remembered_path=path).run_test() as pilot:
        pilot.app.theme = "taskclock-light"
        await pilot.pause()
    kept, _ = remembered.load(path)
    async with scripted(tmp_path, remembered_path=path, remembered=kept).run_test() as pilot:
        assert pilot.app.theme == "taskclock-light"


async def test_sessions_list_date_and_first_prompt_and_ctrl_s_exports_the_open_one(tmp_path):
    app = scripted(tmp_path, max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await turn(pilot, "What is task time?\nsecond line")
        await pilot.press("f3")
        table = app.query_one("#sessions-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the list")
        date, prompt, *_ = table.get_row_at(0)
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", date) and str(prompt) == "What is task time?"
        table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.turns, "the session")
        (log,) = (tmp_path / "sessions").glob("*.jsonl")
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: len(list(log.parent.glob("*.export.*"))) == 3, "the exports")
        exports = sorted(p.name for p in log.parent.glob("*.export.*"))
        assert exports == [f"{log.stem}.export.{fmt}" for fmt in ("csv", "jsonl", "md")]


async def test_the_batch_tabs_folders_are_remembered_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKCLOCK_MMLU", raising=False)
    path = tmp_path / "remembered.json"
    folder, runs = str(mmlu_folder(tmp_path / "mmlu")), str(tmp_path / "my-runs")
    async with scripted(tmp_path, remembered_path=path).run_test(size=(160, 50)) as pilot:
        await pilot.press("f5")
        pane = pilot.app.query_one(BatchPane)
        assert pane.query_one("#batch-mmlu", Input).value == BUILTIN_MMLU  # the copy inside the package
        for field_id, value in (("batch-tasks", "mc"), ("batch-limit", "1"), ("batch-mmlu", folder),
                                ("batch-runs-dir", runs)):
            pane.query_one(f"#{field_id}", Input).value = value
        await pilot.click("#batch-start")
        await wait_for(pilot, lambda: remembered.load(path)[0].mmlu == folder, "the MMLU folder remembered")
        await wait_for(pilot, lambda: not pane.running, "the run to end")
        assert remembered.load(path)[0].runs_dir == runs
    kept, _ = remembered.load(path)
    async with scripted(tmp_path, remembered_path=path, remembered=kept).run_test(size=(160, 50)) as pilot:
        await pilot.press("f5")
        pane = pilot.app.query_one(BatchPane)
        assert [pane.query_one(f"#{i}", Input).value for i in ("batch-mmlu", "batch-runs-dir")] == [folder, runs]
        listed = pane.query_one("#batch-runs", DataTable)
        await wait_for(pilot, lambda: listed.row_count == 1, "the run listed from the remembered runs folder")
        elsewhere = pane.query_one("#batch-runs-dir", Input)
        elsewhere.value = str(tmp_path / "no-runs-here")
        elsewhere.focus()
        await pilot.press("enter")  # Enter in the field lists that folder and remembers it
        await wait_for(pilot, lambda: remembered.load(path)[0].runs_dir == elsewhere.value, "the new folder")
        assert listed.row_count == 0


async def test_a_model_that_finishes_loading_leaves_the_other_tab_in_front(tmp_path):
    async with loading_a_second_model(tmp_path) as (app, pilot, chat, loader):
        await pilot.press("f5")
        loader.gate.set()
        await wait_for(pilot, lambda: chat.model.spec.name == "gemma3-270m", "the new model")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "batch"
