"""The Compare tab in a real Textual Pilot session, with real models (SmolLM2 and Gemma 3 270M via llama.cpp)."""
from __future__ import annotations

import io

import pytest
from app_helpers import make_app, open_compare, send_compare, wait_for
from rich.console import Console
from scripted import scripted_loader
from textual.widgets import Input, Static, Switch

from taskclock.runtime import sessions
from taskclock.runtime.compare import COLUMNS
from taskclock.runtime.events import Submitted
from taskclock.runtime.system import busy_note
from taskclock.tui.comparison import WINNER
from taskclock.tui.panes.compare import CONCURRENT_LABEL
from taskclock.tui.widgets.compare_column import CompareColumn

SIZE = (160, 50)
SIZES = {"80x24": (80, 24), "140x40": (140, 40)}


def submitted(result) -> int:
    return next(e.t_ns for e in result.events if isinstance(e, Submitted))


def rendered(renderable) -> str:
    console = Console(width=SIZE[0], record=True, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def test_two_models_stream_in_columns_then_compare(tmp_path):
    app = make_app(tmp_path / "sessions", max_tokens=16)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, ["smollm2", "gemma3-270m"])
        assert str(pane.query_one("#compare-concurrent-label").content) == CONCURRENT_LABEL
        assert pane.query_one("#compare-concurrent", Switch).value is False  # sequential by default
        assert pane.query_one("#compare-warmup", Switch).value is True  # warm by default
        await send_compare(pilot, pane, "Name a fruit.")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the compare")
        comparison = pane.last
        columns = list(pane.query(CompareColumn))
        assert [c.border_title for c in columns] == ["1. smollm2", "2. gemma3-270m"]
        assert all(c.meter.repaints > 0 for c in columns)  # each meter was repainted live while streaming
        for column, result in zip(columns, comparison.results, strict=True):
            assert column.reply == (result.text or "(no output)")
            assert result.metrics.ttft_s > 0
            assert column.meter.values["TTFT"].endswith(" s")
        first, second = comparison.results
        assert submitted(second) > first.done.t_ns  # one after another
        assert (first.cold, second.cold) == (False, False)  # each model ran an untimed warm-up turn first
        lines = rendered(pane.query_one("#compare-table", Static).content).splitlines()
        winners = comparison.winners()
        for label in comparison.labels():
            row = next(line for line in lines if line.strip().startswith(label))
            won = sum(label in winners[c.key] for c in COLUMNS)
            assert row.count(WINNER) == won
        assert any(winners[c.key] for c in COLUMNS)
        verdict, *note = str(pane.query_one("#compare-verdict", Static).content).split("\n")
        first, fastest = winners["task_time_s"], winners["decode_tps"]
        assert verdict == f"verdict: {comparison.verdict()}"
        busy = busy_note(comparison.load)  # a shared machine may be busy: then the tab says so under the verdict
        assert note == ([f"note: {busy}"] if busy else [])
        assert verdict.startswith(f"verdict: fastest to finish: {' and '.join(first)} (")
        assert f"; highest tok/s: {' and '.join(fastest)} (" in verdict
        assert (", which " in verdict) == (not set(first) & set(fastest))  # why, when they differ
        log = next((tmp_path / "sessions").glob("*.jsonl"))
        turns = sessions.read_session(log)
        assert [(t["kind"], t["model"]) for t in turns] == [("compare", "smollm2"), ("compare", "gemma3-270m")]


async def test_concurrent_toggle_and_bad_choices(tmp_path):
    app = make_app(tmp_path / "sessions", max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, ["smollm2"])
        await send_compare(pilot, pane, "Hi")
        await pilot.pause()
        assert pane.live is None and not list(pane.query(CompareColumn))  # one model is not a comparison
        pane.query_one("#compare-models", Input).value = "smollm2, smollm2"
        pane.query_one("#compare-concurrent", Switch).value = True
        pane.query_one("#compare-warmup", Switch).value = False  # measure cold
        await send_compare(pilot, pane, "Hi")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the compare")
        comparison = pane.last
        assert comparison.concurrent and len(comparison.results) == 2
        assert [r.cold for r in comparison.results] == [True, True]  # both just loaded, no warm-up
        assert rendered(pane.query_one("#compare-table", Static).content).count("llamacpp · cold") == 2
        spans = [(submitted(r), r.done.t_ns) for r in comparison.results]
        assert max(s for s, _ in spans) < min(e for _, e in spans)  # both in flight at once
        assert "CONCURRENT" in str(pane.query_one("#compare-table", Static).content.caption)
        assert comparison.labels() == ["smollm2", "smollm2 #2"]


async def test_stop_mid_compare_keeps_partial_and_app_stays_usable(tmp_path):
    app = make_app(tmp_path / "sessions", max_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, ["smollm2", "smollm2"])
        await send_compare(pilot, pane, "Write a long story.")
        await wait_for(pilot, lambda: pane.live is not None and any(pane.live.events[0][1:]), "the compare")
        await pilot.press("escape")
        await wait_for(pilot, lambda: pane.live is None, "the compare")
        comparison = pane.last
        assert comparison.results[0].done.stop_reason == "cancelled" and len(comparison.results) == 1
        columns = list(pane.query(CompareColumn))
        assert columns[0].border_subtitle == "stopped" and columns[0].reply
        assert str(columns[1].meter.query_one("#meter-state", Static).content) == "not run (stopped)"
        await send_compare(pilot, pane, "Reply with the single word OK.")  # the loaded models answer the next prompt
        await wait_for(pilot, lambda: pane.live is None and pane.last is not comparison, "the compare")
        assert [r.done.stop_reason in ("eos", "length") for r in pane.last.results] == [True, True]


async def test_four_columns_side_by_side(tmp_path):
    app = make_app(tmp_path / "sessions", max_tokens=4)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, ["smollm2"] * 4)
        await send_compare(pilot, pane, "Hi")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the compare")
        columns = list(pane.query(CompareColumn))
        assert len(columns) == 4 and all(c.size.width > 20 for c in columns)
        assert len({c.region.x for c in columns}) == 4
        assert pane.last.labels() == ["smollm2", "smollm2 #2", "smollm2 #3", "smollm2 #4"]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_a_compare_stopped_during_warm_up_says_nothing_was_compared(tmp_path, size):
    app = make_app(tmp_path / "sessions", loader=scripted_loader(pace_tps=5, tokens=100), max_tokens=100)
    async with app.run_test(size=size) as pilot:
        pane = await open_compare(pilot, ["smollm2", "gemma3-270m"])
        await send_compare(pilot, pane, "Hi")
        state = lambda: str(pane.query_one("#compare-column-0", CompareColumn).meter.query_one(  # noqa: E731
            "#meter-state", Static).content)
        await wait_for(pilot, lambda: "warming up" in state(), "the warm-up")
        await pilot.press("escape")
        await wait_for(pilot, lambda: pane.live is None and not pane.running, "the stop")
        table = rendered(pane.query_one("#compare-table", Static).content)
        states = [str(c.meter.query_one("#meter-state", Static).content) for c in pane.query(CompareColumn)]
    assert "nothing to compare" in table and "no model slowed another" not in table
    assert states == ["not run (stopped)"] * 2 and pane.last is not None and not pane.last.results


async def test_the_same_url_twice_is_named_alike_in_its_columns_table_and_verdict(tmp_path):
    url = "http://127.0.0.1:9/v1"
    app = make_app(tmp_path / "sessions", loader=scripted_loader(), max_tokens=8)
    async with app.run_test(size=SIZE) as pilot:
        pane = await open_compare(pilot, [url, url])
        await send_compare(pilot, pane, "Hi")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the compare")
        titles = [str(column.border_title) for column in pane.query(CompareColumn)]
        table = rendered(pane.query_one("#compare-table", Static).content)
    assert pane.last.labels() == [url, f"{url} #2"]
    assert titles == [f"1. {url}", f"2. {url} #2"]
    assert f"{url} #2" in table and f"{url} #2" in pane.last.verdict()
