"""The app on a scripted event source: layout snapshots, a 2,000 tok/s stream, and themes.

The scripted model (tests/scripted.py) is injected through AppContext.loader; the CLI cannot reach it.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from app_helpers import make_app, notes, ready, turn, wait_for
from scripted import ScriptedModel, scripted_loader

from taskclock.runtime import metrics
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.sessions import SessionLog, turn_record
from taskclock.runtime.turn import run_turn
from taskclock.tui.themes import DEFAULT_THEME
from taskclock.tui.widgets.meter import Meter

SIZE = (130, 38)


def scripted_app(tmp_path, **options):
    return make_app(tmp_path, loader=scripted_loader(**options), max_tokens=200)


def test_snapshot_chat_after_a_turn(tmp_path, snap_compare):
    async def chat_turn(pilot):
        await ready(pilot)
        await turn(pilot, "What is task time?")

    assert snap_compare(scripted_app(tmp_path), run_before=chat_turn, terminal_size=SIZE)


def test_snapshot_light_theme_idle(tmp_path, snap_compare):
    app = make_app(tmp_path, loader=scripted_loader(), theme="taskclock-light")
    assert snap_compare(app, run_before=ready, terminal_size=SIZE)


def test_snapshot_help(tmp_path, snap_compare):
    async def open_help(pilot):
        await ready(pilot)
        await pilot.press("f1")

    assert snap_compare(scripted_app(tmp_path), run_before=open_help, terminal_size=SIZE)


def test_snapshot_sessions_view(tmp_path, monkeypatch, snap_compare):
    model = ScriptedModel(make_app(tmp_path).context.model)
    log = SessionLog(tmp_path / "sessions", "smollm2", datetime(2026, 11, 22, 9, 30, 0))
    for prompt in ("What is task time?", "And TTFT?"):
        log.append(turn_record(run_turn(model, [{"role": "user", "content": prompt}], SamplingParams())))
    monkeypatch.chdir(tmp_path)  # the view shows its folder: keep it the same on every machine

    async def open_sessions(pilot):
        await ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: pilot.app.query_one("#sessions-table").row_count == 1, "the list")

    assert snap_compare(scripted_app(Path("sessions")), run_before=open_sessions, terminal_size=SIZE)


async def test_a_2000_tok_per_s_stream_costs_few_repaints_and_is_not_slowed(tmp_path):
    tokens, rate = 3000, 2000
    alone = ScriptedModel(make_app(tmp_path).context.model, pace_tps=rate, tokens=tokens)
    baseline = metrics.decode_tps(run_turn(alone, [{"role": "user", "content": "go"}], SamplingParams(4000)).events)

    app = make_app(tmp_path, loader=scripted_loader(pace_tps=rate, tokens=tokens), max_tokens=4000)
    async with app.run_test(size=SIZE) as pilot:
        chat = await ready(pilot)
        result = await turn(pilot, "go")
        meter = app.query_one(Meter)
        assert result.metrics.output_tokens == tokens
        assert result.text == chat.query_one("ReplyMarkdown").source  # nothing dropped on screen
        # Repaints come from a ~20 Hz timer, not per token: a 1.5 s stream gets tens of repaints, not 3,000.
        assert 0 < meter.repaints < tokens / 20
        # The producer is not held back by the UI (generous: timing on a shared 2-core machine varies).
        assert metrics.decode_tps(result.events) > baseline / 3


async def test_theme_flag_and_config_pick_the_theme(tmp_path):
    async with make_app(tmp_path, loader=scripted_loader(), theme="taskclock-high-contrast").run_test() as pilot:
        assert pilot.app.theme == "taskclock-high-contrast"
    async with make_app(tmp_path, loader=scripted_loader()).run_test() as pilot:
        assert pilot.app.theme == DEFAULT_THEME
    async with make_app(tmp_path, loader=scripted_loader(), theme="no-such-theme").run_test() as pilot:
        await wait_for(pilot, lambda: notes(pilot.app, "warning"), "the theme warning")
        assert pilot.app.theme == DEFAULT_THEME
        assert any("unknown theme 'no-such-theme'" in n for n in notes(pilot.app, "warning"))


async def test_a_malformed_user_theme_is_named_and_the_app_still_runs(tmp_path):
    from taskclock.runtime.paths import config_dir

    folder = config_dir() / "themes"
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "mine.toml"
    bad.write_text('name = "mine"\nprimary = "#123456"\nbackgrund = "#000000"\n')
    try:
        app = make_app(tmp_path, loader=scripted_loader(), theme="mine")
        async with app.run_test() as pilot:
            chat = await ready(pilot)
            await wait_for(pilot, lambda: notes(app, "error"), "the theme error")
            errors = notes(app, "error")
            assert len(errors) == 1 and str(bad) in errors[0] and "'backgrund'" in errors[0]
            assert app.theme == DEFAULT_THEME
            assert (await turn(pilot, "still works?")).text
            assert chat.query_one("ReplyMarkdown")
    finally:
        bad.unlink()
