"""Issue 21, S2: a large session log never freezes the app. The viewer reads the log in a worker and draws a page
of turns at a time, each text cut short, so Esc is answered while a 50 MB log is still being read; the
turn picker reads it the same way. Real Pilot sessions on a log built from a real SmolLM2 turn."""
from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from app_helpers import WAIT_S, make_app, wait_for
from scripted import scripted_loader
from textual import events
from textual.widgets import DataTable, Static

from taskclock.runtime import sessions, storage
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.turn import run_turn
from taskclock.tui.panes.sessions import PAGE_TURNS, TEXT_SHOWN_MAX, SessionScreen, SessionsPane
from taskclock.tui.screens.replay import TurnPicker

SIZE = (140, 40)
LOG_BYTES = 50 << 20
TURNS = 10_000


@pytest.fixture(scope="module")
def large_log(smollm2, tmp_path_factory):
    """A 50 MB session log: a real SmolLM2 turn's record, its reply grown to 5 KB, ten thousand times."""
    result = run_turn(smollm2, [{"role": "user", "content": "Name three colours."}], SamplingParams(max_tokens=16))
    record = sessions.turn_record(result)
    record["reply"] = (record["reply"] + " ") * (LOG_BYTES // TURNS // (len(record["reply"]) + 1))
    folder = tmp_path_factory.mktemp("sessions")
    path = folder / sessions.session_file_name(datetime(2026, 11, 23, 9, 0, 0), "smollm2")
    records = [{**record, "prompt": f"question {n}"} for n in range(1, TURNS + 1)]
    records[0]["reply"] *= 10  # one reply too long to draw whole
    storage.write_atomic(path, sessions.to_jsonl(records))
    assert path.stat().st_size >= LOG_BYTES * 0.95
    return path


async def open_log(pilot, app) -> DataTable:
    await pilot.press("f3")
    table = app.query_one(SessionsPane).query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 1, "the 50 MB log listed")
    table.focus()
    return table


async def until(condition, what: str):
    """Poll ``condition`` on the event loop without Pilot's wait for the app to go idle (which, while a worker
    reads, waits up to a second per key): the truthy value it returns."""
    for _ in range(int(WAIT_S / 0.01)):
        if value := condition():
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def press_while_busy(app, key: str) -> None:
    """A key as the terminal sends it, handed to the app at once (Pilot's press would first wait for idle)."""
    app.post_message(events.Key(key, None))


@pytest.mark.parametrize("key, screen", [("enter", SessionScreen), ("p", TurnPicker)])
async def test_esc_is_answered_while_a_50_mb_log_is_still_being_read(large_log, key, screen):
    """Enter (the viewer) or p (the turn picker), then Esc at once: the app closes the screen before the log has
    been read (and a screen closed meanwhile never draws it)."""
    app = make_app(large_log.parent, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await open_log(pilot, app)
        await press_while_busy(app, key)
        opened = await until(lambda: app.screen if isinstance(app.screen, screen) else None, "the screen")
        await press_while_busy(app, "escape")
        await until(lambda: not isinstance(app.screen, screen), "the key to be answered")
        assert not opened.turns  # answered before the log had been read: reading never held the app


async def test_a_50_mb_log_is_shown_a_page_at_a_time_with_long_texts_cut(large_log):
    app = make_app(large_log.parent, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await open_log(pilot, app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, SessionScreen) and app.screen.turns, "the log read")
        viewer = app.screen
        assert len(viewer.turns) == TURNS
        status = str(viewer.query_one("#session-status", Static).render())
        assert f"page 1 of {TURNS // PAGE_TURNS}" in status
        assert "## Turn 1 " in viewer.markdown and f"## Turn {PAGE_TURNS + 1} " not in viewer.markdown
        assert "more characters (the export holds them all)" in viewer.markdown  # the first turn's long reply
        assert len(viewer.markdown) < PAGE_TURNS * (TEXT_SHOWN_MAX + 1000)
        await pilot.press("n")
        assert f"## Turn {PAGE_TURNS + 1} " in viewer.markdown and f"question {PAGE_TURNS + 1}" in viewer.markdown
        await pilot.press("p", "p")  # never before the first page
        assert "## Turn 1 " in viewer.markdown
        await pilot.press("escape")
        assert not isinstance(app.screen, SessionScreen)
