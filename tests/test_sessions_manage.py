"""Sessions like a chat client's: rename, delete to the trash and restore, search, filter by model, branch and edit
an earlier prompt, copy the last code block, and the TTFT chart's marks. Pilot sessions of the real app on the
scripted event source (tests/scripted.py); every step checks the session files on disk: nothing is ever lost."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from app_helpers import make_app, notes, ready, settle, turn, wait_for
from scripted import ScriptedModel, scripted_loader
from textual.widgets import DataTable, Input, Select

from taskclock.runtime import sessions, storage, trash
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.errors import StorageError
from taskclock.runtime.models import resolve
from taskclock.runtime.turn import run_turn
from taskclock.tui.format import code_blocks
from taskclock.tui.panes.chat import ChatPane
from taskclock.tui.panes.sessions import SessionScreen, SessionsPane
from taskclock.tui.screens.replay import TurnPicker
from taskclock.tui.screens.session_tools import RenameScreen, TrashScreen
from taskclock.tui.widgets.conversation import ReplyMarkdown, UserTurn
from taskclock.tui.widgets.prompt_input import PromptInput

SIZES = {"80x24": (80, 24), "140x40": (140, 40)}


def logs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.jsonl") if sessions.EXPORT_TAG not in p.name)


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def write_session(folder: Path, model: str, prompts: list[str], minute: int, system: list[str] | None = None) -> Path:
    """A chat session log of scripted turns: each turn's messages hold the conversation so far, as the Chat tab's."""
    log = sessions.SessionLog(folder, model, datetime(2026, 11, 22, 9, minute, 0))
    history: list[dict] = []
    for number, prompt in enumerate(prompts):
        head = [{"role": "system", "content": system[number]}] if system and system[number] else []
        spec = resolve(model) if model != "other" else resolve("gemma3-270m")
        result = run_turn(ScriptedModel(spec), [*head, *history, {"role": "user", "content": prompt}],
                          SamplingParams(max_tokens=6))
        record = sessions.turn_record(result)
        record["model"] = model
        log.append(record)
        history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": result.text}]
    return log.path


async def open_sessions(pilot, rows: int) -> DataTable:
    await ready(pilot)
    await pilot.press("f3")
    table = pilot.app.query_one("#sessions-table", DataTable)
    await wait_for(pilot, lambda: table.row_count == rows, f"{rows} sessions listed")
    table.focus()
    await pilot.pause()
    return table


def keys(table: DataTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_rename_delete_restore_search_and_filter_keep_every_file(tmp_path, size):
    folder = tmp_path / "sessions"
    colours = write_session(folder, "smollm2", ["Name a colour.", "And a fruit?"], 1)
    sea = write_session(folder, "gemma3-270m", ["Write about the sea."], 2)
    sessions.export_all(sea)
    before = {path: path.read_bytes() for path in folder.iterdir()}
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=size) as pilot:
        table = await open_sessions(pilot, 2)
        pane = app.query_one(SessionsPane)

        table.move_cursor(row=table.get_row_index(str(colours)))
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, RenameScreen), "the rename box")
        box = app.screen.query_one(Input)
        box.value = "Colours and fruit"
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.summaries and pane.summaries[-1].title == "Colours and fruit",
                       "the new name listed")
        assert str(table.get_row_at(table.get_row_index(str(colours)))[1]) == "Colours and fruit"
        assert lines_of(colours)[:2] == [json.loads(line) for line in before[colours].decode().splitlines()]
        assert lines_of(colours)[-1]["kind"] == "title" and len(sessions.read_session(colours)) == 2

        await pilot.press("slash")
        await pilot.press(*"fruit")
        await wait_for(pilot, lambda: keys(table) == [str(colours)], "the search: only the session that asked")
        app.query_one("#sessions-search", Input).value = "colours sea"  # every word must match
        await wait_for(pilot, lambda: table.row_count == 0, "no session with both words")
        app.query_one("#sessions-search", Input).value = ""
        app.query_one("#sessions-model", Select).value = "gemma3-270m"
        await wait_for(pilot, lambda: keys(table) == [str(sea)], "the model filter")
        app.query_one("#sessions-model", Select).clear()
        await wait_for(pilot, lambda: table.row_count == 2, "both again")

        table.focus()
        table.move_cursor(row=table.get_row_index(str(sea)))
        await pilot.press("d")
        await wait_for(pilot, lambda: table.row_count == 1, "the list without the deleted session")
        assert not sea.exists() and not trash.exports_of(sea)
        (trashed,) = trash.list_trash(folder)
        assert trashed.name == sea.name and trashed.path.read_bytes() == before[sea]
        assert len(list((folder / trash.FOLDER).iterdir())) == 1 + len(sessions.EXPORT_FORMATS)  # exports too
        assert any("trash" in note for note in notes(app))

        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TrashScreen), "the trash")
        await wait_for(pilot, lambda: app.screen.query_one(DataTable).row_count == 1, "the trash read")
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.row_count == 2, "the restored session listed")
    restored = {path: path.read_bytes() for path in folder.iterdir() if path.is_file()}
    assert restored.keys() == before.keys()
    assert all(restored[path] == before[path] for path in before if path != colours)
    assert not list((folder / trash.FOLDER).iterdir())


async def test_a_session_open_in_the_chat_is_not_deleted_under_it(tmp_path):
    app = make_app(tmp_path / "sessions", loader=scripted_loader(), max_tokens=6)
    async with app.run_test(size=SIZES["140x40"]) as pilot:
        await ready(pilot)
        await turn(pilot, "Hello")
        table = await open_sessions(pilot, 1)
        await pilot.press("d")
        await pilot.pause()
        assert table.row_count == 1 and len(logs(tmp_path / "sessions")) == 1
        assert any("Chat tab is writing" in note for note in notes(app, "warning"))


def test_the_trash_is_emptied_a_week_after_a_delete_and_never_of_files_it_did_not_name(tmp_path):
    folder = tmp_path / "sessions"
    old = write_session(folder, "smollm2", ["old"], 1)
    new = write_session(folder, "smollm2", ["new"], 2)
    sessions.export_session(old, "csv")
    now = datetime(2026, 12, 1, 12, 0, 0)
    trash.trash_session(old, now=now - timedelta(days=8))
    kept = trash.trash_session(new, now=now - timedelta(days=6))
    stranger = folder / trash.FOLDER / "notes.jsonl"
    stranger.write_text("mine\n")
    assert trash.empty_trash(folder, now=now) == [old.name]
    assert sorted(p.name for p in (folder / trash.FOLDER).iterdir()) == sorted([kept.path.name, stranger.name])
    back = trash.restore(kept)
    assert back == new and sessions.read_session(new)[0]["prompt"] == "new"


def test_a_trash_folder_that_is_a_link_is_never_moved_into_nor_emptied(tmp_path):
    folder, elsewhere = tmp_path / "sessions", tmp_path / "elsewhere"
    path = write_session(folder, "smollm2", ["kept"], 1)
    elsewhere.mkdir()
    theirs = elsewhere / "20200101-000000--notes.jsonl"  # named as the trash names files, deleted years ago
    theirs.write_text("theirs\n")
    (folder / trash.FOLDER).symlink_to(elsewhere)
    for attempt in (lambda: trash.trash_session(path), lambda: trash.empty_trash(folder),
                    lambda: trash.list_trash(folder)):
        with pytest.raises(StorageError, match="is a link"):
            attempt()
    assert path.exists() and theirs.read_text() == "theirs\n" and [p.name for p in elsewhere.iterdir()] == [theirs.name]


def test_a_name_with_glob_characters_takes_only_its_own_exports(tmp_path):
    folder = tmp_path / "sessions"
    plain = write_session(folder, "smollm2", ["plain"], 1)
    odd = plain.with_name("[a-z]*.jsonl")  # an imported log may be named anything
    storage.move_new(write_session(folder, "smollm2", ["odd"], 2), odd)
    plain_export = sessions.export_session(plain, "csv")
    odd_export = sessions.export_session(odd, "csv")
    assert trash.exports_of(odd) == [odd_export] and trash.exports_of(plain) == [plain_export]
    trashed = trash.trash_session(odd)
    assert plain_export.exists() and not odd_export.exists()
    assert trash.restore(trashed) == odd and odd_export.exists() and plain_export.exists()


def test_restore_never_replaces_a_session_that_took_the_name(tmp_path):
    folder = tmp_path / "sessions"
    path = write_session(folder, "smollm2", ["first"], 1)
    trashed = trash.trash_session(path)
    storage.write_atomic(path, path.with_suffix(".txt").name + "\n", replace=False)  # a file took the name
    back = trash.restore(trashed)
    assert back.name == f"{path.stem}-2.jsonl" and path.read_text().endswith(".txt\n")
    assert sessions.read_session(back)[0]["prompt"] == "first"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_branch_from_an_earlier_turn_is_a_new_session_and_the_original_is_kept(tmp_path, size):
    folder = tmp_path / "sessions"
    original = write_session(folder, "smollm2", ["Name a colour.", "And a fruit?", "And a tree?"], 1)
    before = original.read_bytes()
    app = make_app(folder, loader=scripted_loader(), max_tokens=6)
    async with app.run_test(size=size) as pilot:
        table = await open_sessions(pilot, 1)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
        picker_table = app.screen.query_one(DataTable)
        picker_table.move_cursor(row=1)
        await pilot.press("b")
        chat = app.query_one(ChatPane)
        box = chat.query_one(PromptInput)
        await wait_for(pilot, lambda: box.text == "And a fruit?", "the branched prompt in the Chat box")
        assert [m["content"] for m in chat.messages if m["role"] == "user"] == ["Name a colour."]
        assert len(chat.query(UserTurn)) == 1 and len(chat.query(ReplyMarkdown)) == 1  # the history, shown
        box.load_text("And a vegetable?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.last_result is not None and not chat.running, "the branch's reply")
        await settle(pilot)
        assert chat.last_result.messages[-1]["content"] == "And a vegetable?"
        assert [m["content"] for m in chat.last_result.messages][0] == "Name a colour."
        await pilot.press("f3")
        await wait_for(pilot, lambda: table.row_count == 2, "the branch listed beside the original")
    assert original.read_bytes() == before
    (branch,) = [p for p in logs(folder) if p != original]
    (record,) = sessions.read_session(branch)
    assert record["branch_of"] == {"session": original.name, "turn": 2} and record["prompt"] == "And a vegetable?"


async def test_editing_an_earlier_prompt_in_the_chat_branches_and_keeps_the_log(tmp_path):
    folder = tmp_path / "sessions"
    app = make_app(folder, loader=scripted_loader(), max_tokens=6)
    async with app.run_test(size=SIZES["140x40"]) as pilot:
        chat = await ready(pilot)
        for prompt in ("one", "two", "three"):
            await turn(pilot, prompt)
        (first_log,) = logs(folder)
        before = first_log.read_bytes()
        box = chat.query_one(PromptInput)
        await pilot.press("ctrl+l")
        assert box.text == "three" and chat.session is not None  # the last prompt: the same session goes on
        await pilot.press("ctrl+l")
        assert box.text == "two" and chat.session is None  # an earlier one: the next reply branches
        assert [m["role"] for m in chat.messages] == ["user", "assistant"] and chat.messages[0]["content"] == "one"
        assert len(chat.query(UserTurn)) == 1
        await turn(pilot, "two, edited")
    assert first_log.read_bytes() == before
    (branch,) = [p for p in logs(folder) if p != first_log]
    (record,) = sessions.read_session(branch)
    assert record["branch_of"] == {"session": first_log.name, "turn": 2}
    assert [m["content"] for m in record["messages"]][::2] == ["one", "two, edited"]


def test_code_blocks_are_found_as_markdown_fences_them():
    reply = ("Here:\n```python\nprint('a')\n```\nand\n~~~\nx = 1\n  ```not a close\n~~~\n"
             "inline ```x``` is no fence\n````\nlast\n```\nstill in\n````\n")
    assert code_blocks(reply) == ["print('a')", "x = 1\n  ```not a close", "last\n```\nstill in"]
    assert code_blocks("```sh\necho cut off by max tokens") == ["echo cut off by max tokens"]
    assert code_blocks("no code") == []


async def test_ctrl_f_copies_the_last_code_block_and_ctrl_b_the_reply(tmp_path):
    words = ["Try:\n```python\nprint(1)\n```\nor\n```\nx", "=", "2\n```\ndone"]
    app = make_app(tmp_path / "sessions", loader=scripted_loader(words=words), max_tokens=len(words))
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        chat = await ready(pilot)
        await pilot.press("ctrl+f")
        assert "No reply to copy yet" in notes(app, "warning")
        await turn(pilot, "code please")
        await pilot.press("ctrl+f")
        assert app.clipboard == "x = 2"
        await pilot.press("ctrl+b")
        assert app.clipboard == chat.messages[-1]["content"]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_the_ttft_chart_marks_turns_after_a_model_or_system_prompt_change_and_says_why(tmp_path, size):
    folder = tmp_path / "sessions"
    path = write_session(folder, "smollm2", ["a", "b", "c", "d"], 1, system=["", "", "Be brief.", "Be brief."])
    records = list(storage.read(path))
    changed = [dict(r, model="other") if number == 4 else r for number, r in enumerate(records, 1)]
    storage.write_atomic(path, sessions.to_jsonl(changed))
    assert sessions.context_changes(changed) == {3: "the system prompt changed",
                                                 4: "the model changed (smollm2 → other)"}
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=size) as pilot:
        await open_sessions(pilot, 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen), "the session view")
        await pilot.pause()
        chart = app.screen.query_one("#session-ttft")
        why = app.screen.query_one("#session-ttft-why")
        assert chart.display and why.display
        text = str(why.render())
        assert "turn 3: the system prompt changed" in text and "turn 4: the model changed (smollm2 → other)" in text
        assert "read all" in text and "input tokens again" in text
        drawn = "\n".join(strip.text for strip in chart.render_lines(chart.region.reset_offset))
        assert drawn.count("✕") >= 3  # the title's key and the two marked turns
