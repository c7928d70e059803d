"""Rough edges a new user hit (issue 26), each at 80×24 and 140×40 where it is on screen: the replay picker's first
mark, the sweep chart's legend and hidden lines, and `replay` on a sweep folder."""
from __future__ import annotations

import json

import pytest
from app_helpers import make_app, wait_for, workdir_app
from helpers import run_cli
from scripted import scripted_loader
from test_app_sizes import SWEEP_FIGURES, SWEEP_LENGTHS, _open_stored_run, _open_the_only_run, stored_run, stored_sweep
from test_sessions_manage import open_sessions, write_session
from textual.widgets import DataTable

from taskclock.runtime import sweep, tables
from taskclock.runtime.config import Config, Defaults
from taskclock.runtime.summary import text_chart
from taskclock.tui.panes.batch import BatchPane
from taskclock.tui.screens.replay import MARK, TurnPicker

SIZES = {"80x24": (80, 24), "140x40": (140, 40)}
# The Batch tab's models row leaves no spare rows at 140x40 for a 1fr table to fill with blanks; a taller terminal
# does (as 140x40 did before that row), so the no-blank-rows test also runs there.
BATCH_SIZES = {**SIZES, "140x50": (140, 50)}


def runs_app():
    """The app on the scripted model, its runs folder ./runs (the test's working folder)."""
    return workdir_app(config=Config(defaults=Defaults(runs_dir="runs")))


def drawn(widget) -> list[str]:
    """The widget's lines as the terminal shows them."""
    return [strip.text for strip in widget.render_lines(widget.region.reset_offset)]


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_the_first_space_mark_in_the_replay_picker_is_drawn_at_once(tmp_path, size):
    folder = tmp_path / "sessions"
    write_session(folder, "smollm2", ["one", "two"], 1)
    app = make_app(folder, loader=scripted_loader())
    async with app.run_test(size=size) as pilot:
        await open_sessions(pilot, 1)
        await pilot.press("p")
        await wait_for(pilot, lambda: isinstance(app.screen, TurnPicker) and app.screen.turns, "the turn picker")
        table = app.screen.query_one(DataTable)
        await pilot.pause()
        await pilot.press("space")
        await pilot.pause()
        rows = drawn(table)
        assert (str(folder / next(iter(folder.glob("*.jsonl"))).name), 1) in app.screen.marks
        assert MARK in rows[1] and MARK not in rows[2]  # the header, then turn 1 marked, turn 2 not
        await pilot.press("down", "space")
        await pilot.pause()
        assert all(MARK in row for row in drawn(table)[1:3])


def canvas(chart: str) -> list[str]:
    """The plot area's rows of a text chart (between its frame's top and bottom lines)."""
    rows = chart.splitlines()
    top = next(i for i, row in enumerate(rows) if "┌" in row)
    bottom = next(i for i, row in enumerate(rows) if "└" in row)
    return [row[row.index("┤") + 1 if "┤" in row else row.index("│") + 1:].rstrip().rstrip("│")
            for row in rows[top + 1:bottom]]


@pytest.mark.parametrize("size", [(78, 14), (130, 24)], ids=["80x24", "140x40"])  # the app's chart areas
@pytest.mark.parametrize("key,label", sweep.CHARTS)
def test_the_sweep_charts_legend_covers_no_line_and_every_line_shows(tmp_path, size, key, label):
    cells = sweep.load_summary(stored_sweep(tmp_path)).cells
    chart = text_chart(sweep.plot_vs_input, cells, key, label, width=size[0], height=size[1])
    check_sweep_chart(canvas(chart), chart)


def check_sweep_chart(rows: list[str], chart: str) -> None:
    """The legend's rows hold the legend only, and each line's marker shows on a point of its own."""
    series = [f"{model} · {phase}" for model in SWEEP_FIGURES for phase in ("cold", "cached")]
    legend = [row for row in rows if any(name in row for name in series)]
    assert len(legend) == len(series), chart
    for row in legend:
        name = next(name for name in series if name in row)
        assert set(row.replace(name, "").strip()) <= set(tables.MARKERS[:len(series)]) | {" "}, chart
    data = [row for row in rows if row not in legend]
    for marker in tables.MARKERS[:len(series)]:
        assert any(marker in row for row in data), f"the {marker!r} line is hidden\n{chart}"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_the_context_modes_charts_keep_every_line_in_sight(workdir, size):
    stored_sweep(workdir / "runs")
    async with runs_app().run_test(size=size) as pilot:
        pane = await _open_the_only_run(pilot)
        table = pane.query_one("#context-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == len(SWEEP_FIGURES) * len(SWEEP_LENGTHS), "the sweep")
        await pilot.pause()
        for key, _ in sweep.CHARTS:
            chart = pane.query_one(f"#context-{key}")
            lines = drawn(chart)
            check_sweep_chart(canvas("\n".join(lines)), "\n".join(lines))


@pytest.mark.parametrize("size", BATCH_SIZES.values(), ids=BATCH_SIZES.keys())
async def test_the_batch_tab_has_no_blank_rows_and_page_down_reaches_its_charts(workdir, size):
    stored_run(workdir / "runs")
    async with runs_app().run_test(size=size) as pilot:
        app = pilot.app
        table = await _open_stored_run(pilot)
        await pilot.wait_for_scheduled_animations()
        pane = app.query_one(BatchPane)
        # its header and rows (or its least height, for an empty table): no blank rows piled under them
        assert table.outer_size.height == max(table.row_count + 1, int(table.styles.min_height.value))
        shown = [w for w in pane.children if w.display and w.region.height]
        for above, below in zip(shown, shown[1:], strict=False):  # the tables, rankings and verdicts stack closely
            assert below.region.y - above.region.bottom <= 1, f"blank rows between {above.id} and {below.id}"
        assert isinstance(app.focused, DataTable)  # the runs list, as opening a run leaves it
        charts = list(pane.query(".batch-chart.bench"))
        unseen = {chart.id: chart.outer_size.height for chart in charts}  # rows of each not yet in view
        shown: dict[str, set[int]] = {chart.id: set() for chart in charts}
        for _ in range(12):  # the keys alone, from the table that has focus
            view = pane.content_region
            for chart in charts:  # stacked on a narrow screen, so seen a page at a time
                shown[chart.id] |= {y - chart.region.y for y in range(chart.region.y, chart.region.bottom)
                                    if view.y <= y < view.bottom}
            if pane.scroll_y >= pane.max_scroll_y:
                break
            await pilot.press("pagedown")
            await pilot.wait_for_scheduled_animations()
            await pilot.pause()
        assert pane.scroll_y == pane.max_scroll_y
        assert {name: len(rows) for name, rows in shown.items()} == unseen  # every row of every chart came in view
        await pilot.press("pageup")
        await pilot.wait_for_scheduled_animations()
        assert pane.scroll_y < pane.max_scroll_y or pane.max_scroll_y == 0


def test_replay_takes_a_sweep_run_and_says_why_a_file_has_no_turn(tmp_path):
    folder = stored_sweep(tmp_path / "runs")
    done = run_cli("replay", str(folder), "--turn", "1", "--speed", "100", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert figures["ttft_s"] == pytest.approx(SWEEP_FIGURES["smollm2"][0] / 100, rel=1e-3)  # 256 tokens, cold
    damaged = tmp_path / "damaged.jsonl"
    damaged.write_text('{"kind": "skip", "model": "m"}\n{"kind": "failure"}\n')
    bad = run_cli("replay", str(damaged))
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "none of its 2 records is a recorded turn (kinds: failure, skip)" in bad.stderr
