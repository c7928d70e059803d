"""Issue 11, items 2 and 8, in the app through real Textual Pilot sessions: outside text (replies, model names,
server errors, folders, theme names, session files) is shown with its escape codes made visible, and text
that looks like markup is shown as written, never parsed (no MarkupError, no live links, no styles)."""
from __future__ import annotations

import html
import threading
from collections.abc import Iterator

from app_helpers import make_app, notes, open_compare, ready, send_compare, turn, wait_for
from scripted import ScriptedModel, scripted_loader
from textual.widgets import DataTable, Input, Static

from taskclock.runtime.backend import Message, ModelSpec, SamplingParams
from taskclock.runtime.config import Config
from taskclock.runtime.events import Done, Event, Submitted, now_ns
from taskclock.runtime.sessions import SessionLog, turn_record
from taskclock.runtime.turn import run_turn
from taskclock.tui.panes.batch import BatchPane
from taskclock.tui.panes.sessions import SessionScreen, SessionsPane
from taskclock.tui.widgets.compare_column import CompareColumn

SIZE = (130, 40)
ESCAPES = "\x1b]0;pwned\x07 \x1b[2J \x1b]52;c;ZXZpbA==\x07 \x1b]8;;http://evil.example/\x07link\x1b]8;;\x07 \x1b[31mred"
MARKUP = "[/x] [bold]b[/bold] [link=http://evil.example/]l[/link]"
HOSTILE_NAME = "m\x1b]0;pwned\x07[/x]"


def screen_text(app) -> str:
    return app.export_screenshot()


def assert_no_terminal_control(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text


def hostile_config(*names: str) -> Config:
    return Config(models={name: ModelSpec(name, "http", "http://127.0.0.1:9/v1", description=MARKUP)
                          for name in names})


class FailingModel(ScriptedModel):
    """A model whose turn ends in a server error carrying escape codes and markup."""

    def stream(self, messages: list[Message], params: SamplingParams,
               cancel: threading.Event | None = None) -> Iterator[Event]:
        yield Submitted(now_ns())
        yield Done(now_ns(), "error", error=f"HTTP 500: {MARKUP} {ESCAPES}")


async def test_a_reply_with_escape_codes_is_shown_as_visible_text(tmp_path):
    app = make_app(tmp_path, loader=scripted_loader(words=["plain", ESCAPES, "end"]))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        result = await turn(pilot, "hi")
        assert ESCAPES in result.text  # the data is kept as it came
        shown = screen_text(app)
    assert_no_terminal_control(shown)
    assert "␛]0;pwned␇" in shown


async def test_a_streaming_reply_with_escape_codes_is_shown_as_visible_text(tmp_path):
    app = make_app(tmp_path, loader=scripted_loader(words=[ESCAPES] * 400, pace_tps=50), max_tokens=400)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        from app_helpers import send as send_prompt

        await send_prompt(pilot, "hi")
        await wait_for(pilot, lambda: chat.reply is not None and "␛" in chat.reply.render_line(0).text,
                       "streamed text")
        shown = screen_text(app)
        await pilot.press("escape")
    assert_no_terminal_control(shown)


async def test_a_model_name_with_escape_codes_and_markup_titles_the_reply_plainly(tmp_path):
    config = hostile_config(HOSTILE_NAME)
    app = make_app(tmp_path, model=HOSTILE_NAME, config=config, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await turn(pilot, "hi")
        shown = screen_text(app)
    assert_no_terminal_control(shown)
    assert "m␛]0;pwned␇[/x]" in shown


async def test_a_server_error_with_markup_is_notified_as_written(tmp_path):
    app = make_app(tmp_path, loader=lambda spec: FailingModel(spec))
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await turn(pilot, "hi")
        (message,) = notes(app, "error")
        shown = screen_text(app)
    assert MARKUP in message and "␛]0;pwned␇" in message
    assert_no_terminal_control(shown)


async def test_a_sessions_folder_with_markup_is_shown_as_written(tmp_path):
    app = make_app(tmp_path / "[/x]", loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        await pilot.pause()
        folder = str(app.query_one(SessionsPane).query_one("#sessions-folder", Static).render())
    assert str(tmp_path / "[/x]") in folder


async def test_a_model_path_with_markup_that_fails_to_load_is_notified_as_written(tmp_path):
    name = "broken[/x]"
    config = Config(models={name: ModelSpec(name, "llamacpp", str(tmp_path / "[/x]" / "m.gguf"))})
    app = make_app(tmp_path, model=name, config=config)  # the real loader: the file does not exist
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: notes(app, "error"), "the load to fail")
        (message,) = notes(app, "error")
    assert f"Could not load {name}" in message and "[/x]/m.gguf does not exist" in message


async def test_the_sessions_list_shows_hostile_names_plainly(tmp_path):
    folder = tmp_path / "sessions"
    model = ScriptedModel(ModelSpec(HOSTILE_NAME, "http", "http://127.0.0.1:9/v1"), words=["hi"])
    log = SessionLog(folder, HOSTILE_NAME)
    log.append(turn_record(run_turn(model, [{"role": "user", "content": "q"}], SamplingParams())))
    (folder / "x[red]b\x1b[2J.jsonl").write_bytes(log.path.read_bytes())  # a file name cannot hold "/"
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        table = app.query_one(SessionsPane).query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, "the list")
        cells = [str(cell) for row in range(2) for cell in table.get_row_at(row)[:3]]
        shown = screen_text(app)
        hostile_row = table.get_row_index(str(folder / "x[red]b\x1b[2J.jsonl"))
        table.move_cursor(row=hostile_row)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.turns, "the session view")
        view = screen_text(app)
    assert any("m␛]0;pwned␇[/x]" in cell for cell in cells)
    assert "x[red]b␛[2J.jsonl" in html.unescape(view)  # the file name, in the session view's title
    assert_no_terminal_control(shown + view)


async def test_compare_columns_show_hostile_model_names_plainly(tmp_path):
    names = [HOSTILE_NAME, "n[bold]x"]
    app = make_app(tmp_path, config=hostile_config(*names), loader=scripted_loader(words=["a", ESCAPES]),
                   max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, names)
        await send_compare(pilot, pane, "Hi")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the compare")
        titles = [c.border_title for c in pane.query(CompareColumn)]
        shown = screen_text(app)
    assert "␛]0;pwned␇" in titles[0] and "[bold]" in shown
    assert_no_terminal_control(shown)


async def test_the_batch_tab_shows_an_error_with_markup_as_written(tmp_path):
    app = make_app(tmp_path, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f5")
        pane = app.query_one(BatchPane)
        pane.query_one("#batch-models", Input).value = f"{MARKUP}{ESCAPES}"
        await pilot.pause()
        await pilot.click("#batch-start")
        await pilot.pause()
        status = str(pane.query_one("#batch-status", Static).render())
        shown = screen_text(app)
    assert "unknown model" in status and "[/x]" in status
    assert_no_terminal_control(shown)


async def test_the_model_picker_shows_config_names_and_descriptions_as_written(tmp_path):
    name = "pick[bold]me"
    app = make_app(tmp_path, config=hostile_config(name), loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: "pick[bold]me" in screen_text(app), "the model picker")
        shown = screen_text(app)
    assert "[link=http://evil.example/]l[/link]" in shown.replace("&#160;", " ")
