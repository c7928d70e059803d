"""Replay and pace in the app, through real Textual Pilot sessions, on turns recorded from real SmolLM2.

The Chat tab's model is scripted here (tests/scripted.py) only so the app starts without a second model
load: what is replayed are real SmolLM2 turns from a session log.
"""
from __future__ import annotations

from datetime import datetime

import pytest
from app_helpers import make_app, settle, wait_for
from scripted import scripted_loader
from textual.widgets import DataTable, Input, Static

from taskclock.runtime import metrics, replay, sessions, storage
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.events import Submitted
from taskclock.runtime.metrics import figure
from taskclock.runtime.turn import run_turn
from taskclock.tui.panes.pace import PacePane
from taskclock.tui.panes.sessions import SessionsPane
from taskclock.tui.screens.replay import MARK, ReplayScreen, TurnPicker
from taskclock.tui.widgets.conversation import ReplyMarkdown
from taskclock.tui.widgets.playback import PlaybackChat, PlaybackColumn

SIZE = (160, 50)
PARAMS = SamplingParams(max_tokens=16)


@pytest.fixture(scope="module")
def two_sessions(smollm2, tmp_path_factory):
    """Two session logs with one real SmolLM2 turn each, as if recorded on two machines."""
    folder = tmp_path_factory.mktemp("sessions")
    results = []
    for minute, prompt in enumerate(("Name three colours.", "Write one short sentence about the sea.")):
        result = run_turn(smollm2, [{"role": "user", "content": prompt}], PARAMS)
        log = sessions.SessionLog(folder, "smollm2", datetime(2026, 11, 23, 9, minute, 0))
        log.append(sessions.turn_record(result))
        results.append((log.path, result))
    return folder, results


async def open_sessions(pilot) -> DataTable:
    await pilot.press("f3")
    pane = pilot.app.query_one(SessionsPane)
    table = pane.query_one(DataTable)
    await wait_for(pilot, lambda: table.row_count == 2, "the sessions list")
    table.focus()
    return table


def select_session(table: DataTable, path) -> None:
    table.move_cursor(row=table.get_row_index(str(path)))


async def test_a_recorded_turn_replays_in_the_app_with_its_recorded_figures(two_sessions):
    folder, results = two_sessions
    path, live = results[0]
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        table = await open_sessions(pilot)
        select_session(table, path)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the replay")
        screen = app.screen
        view = screen.query_one(PlaybackChat)
        await wait_for(pilot, lambda: screen.finished, "the replay to end")
        await settle(pilot)
        replayed, recorded = metrics.compute(view.current.events), live.metrics
        assert replayed.ttft_s == pytest.approx(recorded.ttft_s, rel=0.02)
        assert replayed.decode_tps == pytest.approx(recorded.decode_tps, rel=0.02)
        assert replayed.output_tokens == recorded.output_tokens
        values = view.meter.values
        assert values["TTFT"] == figure(replayed.ttft_s, 3, "s")
        assert values["decode rate"] == figure(replayed.decode_tps, 1, "tok/s")
        assert float(values["TTFT"].split()[0]) == pytest.approx(recorded.ttft_s, rel=0.02, abs=0.0006)
        assert float(values["decode rate"].split()[0]) == pytest.approx(recorded.decode_tps, rel=0.02)
        reply = screen.query_one(ReplyMarkdown)
        assert reply.source == live.text and reply.border_title == f"smollm2 · {path.name} #1"
        assert "Name three colours." in str(screen.query_one("UserTurn", Static).render())
        await pilot.press("plus")  # twice as fast, from the start: every time exactly halved
        await wait_for(pilot, lambda: screen.speed == 2 and screen.finished, "the replay at 2x")
        doubled = metrics.compute(view.current.events)
        assert doubled.ttft_s == pytest.approx(replayed.ttft_s / 2, rel=1e-6)
        assert doubled.decode_tps == pytest.approx(replayed.decode_tps * 2, rel=1e-6)
        assert "at 2× their recorded pace" in str(screen.query_one("#replay-head", Static).render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the picker again")


async def test_two_turns_from_two_sessions_replay_side_by_side(two_sessions):
    folder, results = two_sessions
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        table = await open_sessions(pilot)
        pane = app.query_one(SessionsPane)
        for path, _ in results:  # mark one turn in each session
            select_session(table, path)
            await pilot.press("p")
            await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
            await pilot.pause()
            await pilot.press("space")
            picker = app.screen
            assert picker.query_one(DataTable).get_row_at(0)[0].plain == MARK
            if path != results[-1][0]:
                await pilot.press("escape")
                await wait_for(pilot, lambda: not isinstance(app.screen, TurnPicker), "the picker to close")
        assert len(pane.replay_marks) == 2
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, ReplayScreen), "the side-by-side replay")
        screen = app.screen
        columns = list(screen.query(PlaybackColumn))
        assert len(columns) == 2
        starts = {next(e.t_ns for e in c.current.events if isinstance(e, Submitted)) for c in columns}
        assert starts == {screen.started_ns}  # started together, on one clock reading
        await wait_for(pilot, lambda: screen.finished, "both replays to end")
        await settle(pilot)
        for column, (_, live) in zip(columns, results, strict=True):
            replayed = metrics.compute(column.current.events)
            assert replayed.ttft_s == pytest.approx(live.metrics.ttft_s, rel=0.02)
            assert replayed.decode_tps == pytest.approx(live.metrics.decode_tps, rel=0.02)
            assert column.meter.values["TTFT"] == figure(replayed.ttft_s, 3, "s")
            assert column.reply == live.text and column.border_subtitle == "replayed"


async def test_side_by_side_needs_two_marks(two_sessions):
    folder, results = two_sessions
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        table = await open_sessions(pilot)
        select_session(table, results[0][0])
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
        await pilot.pause()
        await pilot.press("s")
        await pilot.pause()
        assert isinstance(app.screen, TurnPicker)
        assert any("Mark 2 to 4 turns" in n.message for n in app._notifications)


async def test_hostile_log_strings_stay_plain_text_in_the_picker(tmp_path):
    folder = tmp_path / "sessions"
    storage.ensure_dir(folder)
    path = folder / "20261123-090000-evil.jsonl"
    storage.append(path, {"kind": "chat", "model": "[red]evil[/red]\x1b[2J", "prompt": "[b]hi[/b]",
                          "reply": "x", "metrics": {"ttft_s": 0.01, "output_tokens": 1, "task_time_s": 0.02},
                          "token_offsets_ms": [10.0]})
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f3")
        table = app.query_one(SessionsPane).query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the sessions list")
        table.focus()
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
        row = app.screen.query_one(DataTable).get_row_at(0)
        assert row[3].plain == "[red]evil[/red]␛[2J" and row[4].plain == "[b]hi[/b]"
        assert not row[3].spans


async def test_pace_tab_streams_at_the_chosen_ttft_and_rate(tmp_path):
    app = make_app(tmp_path / "sessions", loader=scripted_loader())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f6")
        pane = app.query_one(PacePane)
        for field_id, value in (("pace-ttft", "0.2"), ("pace-tps", "40"), ("pace-words", "12")):
            pane.query_one(f"#{field_id}", Input).value = value
        pane.query_one("#pace-words", Input).focus()
        await pilot.press("enter")
        view = pane.query_one(PlaybackChat)
        await wait_for(pilot, lambda: view.current is not None and view.current.shown_final, "the paced text")
        await settle(pilot)
        assert view.meter.values["TTFT"] == "0.200 s" and view.meter.values["decode rate"] == "40.0 tok/s"
        assert view.meter.values["output words"] == "12"
        assert str(pane.query_one("#pace-reading", Static).render()) == replay.reading_line(40)
        assert view.query_one(ReplyMarkdown).source == replay.canned_text(12)
        pane.query_one("#pace-tps", Input).value = "fast"
        await pilot.press("enter")
        await pilot.pause()
        assert any("not a number" in n.message for n in app._notifications)
