"""The Batch tab's Context mode (the input-length sweep) in a real Textual Pilot session with SmolLM2 through
llama.cpp: the table per model × length matches the run folder, a length beyond the context is shown skipped
with its reason, the runs list labels the sweep, and a stopped sweep opens from the list and resumes."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from statistics import median

from app_helpers import make_app, wait_for
from plotext import uncolorize
from textual.widgets import Button, DataTable, Input, Select, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import runfolder, storage, sweep
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.config import Config, Defaults
from taskclock.runtime.models import resolve
from taskclock.tui.panes.batch import BatchPane

SIZE = (160, 50)
SMALL = "smollm2-ctx512"  # SmolLM2 with a 512-token context, so a 1024-token prompt cannot run


def _app(tmp_path: Path):
    small = replace(resolve("smollm2"), name=SMALL, n_ctx=512)
    config = Config(defaults=Defaults(runs_dir=str(tmp_path / "runs")), models={SMALL: small})
    return make_app(tmp_path / "sessions", config=config)


async def _context(pilot, models: str, lengths: str, repeats: str = "1") -> BatchPane:
    """The Batch tab switched to Context mode from the keyboard, with its options filled in."""
    await pilot.press("f5")
    pane = pilot.app.query_one(BatchPane)
    mode = pane.query_one("#batch-mode", Select)
    mode.focus()
    await pilot.press("enter", "down", "enter")  # open the list, pick "Context"
    await wait_for(pilot, lambda: pane.view.KIND == sweep.KIND, "Context mode")
    assert mode.value == sweep.KIND
    assert pane.query_one("#context-table").display and not pane.query_one("#batch-table").display
    for field_id, value in (("batch-models", models), ("context-input", lengths), ("context-output", "4"),
                            ("context-repeats", repeats)):
        pane.query_one(f"#{field_id}", Input).value = value
    await pilot.pause()
    return pane


def _status(pane: BatchPane) -> str:
    return str(pane.query_one("#batch-status", Static).render())


async def _finish(pilot, pane: BatchPane, button: str) -> None:
    before = _status(pane)
    pane.query_one(f"#{button}", Button).press()
    await wait_for(pilot, lambda: not pane.running and _status(pane) != before, "the run to end")
    await pilot.pause()


def _figure(rows: list[dict], phase: str, key: str, digits: int) -> str:
    values = [r[key] for r in rows if r["phase"] == phase and r[key] is not None]
    return f"{median(values):.{digits}f}" if values else "—"


def _expected_table(folder: Path) -> list[list[str]]:
    """The table the tab should show, worked out here from results.jsonl and run.toml."""
    plan = sweep.read_plan(folder)
    results = runfolder.read_results(folder, "sweep")
    skipped = {(s["model"], s["requested_tokens"]) for s in results.skips}
    total = plan.repeats * 2
    expected = []
    for spec in plan.models:
        for target in plan.input_tokens:
            rows = [r for r in results.rows if r["model"] == spec.name and r["requested_tokens"] == target]
            state = "skipped" if (spec.name, target) in skipped else "done" if len(rows) == total else "incomplete"
            expected.append([spec.name, str(target), state, f"{len(rows)}/{total}",
                             _figure(rows, "cold", "ttft_s", 3), _figure(rows, "cached", "ttft_s", 3),
                             _figure(rows, "cold", "prefill_tps", 1), _figure(rows, "cold", "decode_tps", 1),
                             _figure(rows, "cold", "task_time_s", 3)])
    return expected


def _shown_table(pane: BatchPane) -> list[list[str]]:
    table = pane.query_one("#context-table", DataTable)
    rows = [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]
    return [[row[0], row[1], row[2], row[3].split()[-1], *row[4:]] for row in rows]  # the bar's "done/total"


async def test_a_sweep_fills_the_table_shows_the_skip_and_charts_and_is_listed(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _context(pilot, f"smollm2,{SMALL}", "64,256,1024")
        await _finish(pilot, pane, "batch-start")
        folder = pane.folder
        assert folder is not None and runfolder.folder_kind(folder) == sweep.KIND
        assert "finished: 10 new rows" in _status(pane)  # 2 models × 3 lengths × cold and cached, less one skip

        expected = _expected_table(folder)
        assert _shown_table(pane) == expected
        assert [row[2] for row in expected].count("skipped") == 1 and expected[-1][2] == "skipped"

        (skip,) = runfolder.read_results(folder, "sweep").skips
        assert (skip["model"], skip["requested_tokens"]) == (SMALL, 1024)
        assert "exceed the model's context of 512 tokens" in skip["reason"]
        note = pane.query_one("#context-skips", Static)
        assert note.display and str(note.render()) == f"skipped {SMALL} at 1024 tokens: {skip['reason']}"
        pane.query_one("#batch-mode", Select).value = "bench"  # Task sets mode hides the sweep's table and note
        await wait_for(pilot, lambda: not note.display and not pane.query_one("#context-table").display,
                       "Task sets mode")
        assert pane.query_one("#batch-resume", Button).disabled and pane.query_one("#batch-table").display
        pane.query_one("#batch-mode", Select).value = sweep.KIND
        await wait_for(pilot, lambda: note.display, "Context mode")

        ttft, task = (uncolorize(pane.query_one(f"#context-{key}", PlotextPlot).plt.build())
                      for key, _ in sweep.CHARTS)
        assert "TTFT s vs input tokens" in ttft and "task time s vs input tokens" in task
        for label in ("smollm2 · cold", f"{SMALL} · cached"):
            assert label in ttft and label in task

        runs = pane.query_one("#batch-runs", DataTable)
        assert runs.row_count == 1
        assert [str(cell) for cell in runs.get_row_at(0)] == [
            folder.name, "sweep", f"smollm2,{SMALL}", "64,256,1024", "10/10"]
        assert pane.query_one("#batch-resume", Button).disabled  # nothing left to resume


async def test_a_stopped_sweep_opens_from_the_runs_list_and_resumes_with_every_row_once(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _context(pilot, "smollm2", "64,96,128,192", repeats="2")
        pane.query_one("#batch-start", Button).press()
        await wait_for(pilot, lambda: pane.live is not None and len(pane.live.rows) >= 1, "a first row")
        pane.query_one("#batch-stop", Button).press()
        await wait_for(pilot, lambda: not pane.running and "stopped" in _status(pane), "the run to stop")
        folder = pane.folder
        assert folder is not None
        kept = [runfolder.sweep_key(r) for r in runfolder.read_results(folder, "sweep").rows]
        assert 1 <= len(kept) < 16
        assert _shown_table(pane) == _expected_table(folder)  # the lengths left say incomplete, not waiting

        # back in Task sets mode with nothing shown, the sweep opens from the runs list in Context mode
        pane.query_one("#batch-mode", Select).value = "bench"
        await wait_for(pilot, lambda: pane.view.KIND != sweep.KIND, "Task sets mode")
        pane.live = None
        pane.query_one("#context-table", DataTable).clear()
        runs = pane.query_one("#batch-runs", DataTable)
        assert [str(cell) for cell in runs.get_row_at(0)][:2] == [folder.name, "sweep"]
        runs.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.view.KIND == sweep.KIND and "Resume continues it" in _status(pane),
                       "the sweep opened in Context mode")
        assert pane.query_one("#batch-mode", Select).value == sweep.KIND
        assert _shown_table(pane) == _expected_table(folder)
        assert not pane.query_one("#batch-resume", Button).disabled

        await _finish(pilot, pane, "batch-resume")
        keys = [runfolder.sweep_key(r) for r in runfolder.read_results(folder, "sweep").rows]
        assert len(keys) == len(set(keys)) == 16 and set(kept) <= set(keys)
        assert _shown_table(pane) == _expected_table(folder)
        assert all(row[2] == "done" for row in _shown_table(pane))
        assert not pane.query_one("#context-skips").display  # no length skipped: no note


async def test_bad_context_options_are_shown_not_raised(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _context(pilot, "smollm2", "64,1k")
        pane.query_one("#batch-start", Button).press()
        await pilot.pause()
        assert "input tokens: '1k' is not a whole number of at least 1" in _status(pane)
        pane.query_one("#context-input", Input).value = "64"
        pane.query_one("#context-repeats", Input).value = "0"
        pane.query_one("#batch-start", Button).press()
        await pilot.pause()
        assert "repeats must be at least 1 and at most 10000" in _status(pane)
        assert pane.query_one("#batch-status", Static).has_class("error") and not pane.running
        assert not (tmp_path / "runs").exists()  # nothing started


async def test_outside_text_in_a_sweep_folder_is_shown_as_written(tmp_path):
    """A model name, a skip reason and a failure from a folder (outside data) reach the table, the skip note
    and the runs list with their escape codes made visible and their markup unparsed."""
    name, markup = "m\x1b]0;pwned\x07[/x]", "[bold]b[/bold] [link=http://evil.example/]l[/link]"
    folder, _ = sweep.prepare(models=[ModelSpec(name, "http", "http://127.0.0.1:9/v1")], input_tokens=[64, 128],
                              output_tokens=2, repeats=1, warmup=0, runs_dir=tmp_path / "runs")
    storage.append(folder / runfolder.RESULTS_FILE, {"kind": "skip", "model": name, "requested_tokens": 128,
                                                     "reason": f"too long \x1b[2J{markup}"})
    storage.append(folder / runfolder.RESULTS_FILE, {"kind": "failure", "model": name, "error": f"down {markup}"})
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f5")
        pane = pilot.app.query_one(BatchPane)
        runs = pane.query_one("#batch-runs", DataTable)
        await wait_for(pilot, lambda: runs.row_count == 1, "the runs list")
        runs.focus()
        await pilot.press("enter")
        table = pane.query_one("#context-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, "the sweep's table")
        shown = [[str(cell) for cell in table.get_row_at(i)] for i in range(2)]
        note = str(pane.query_one("#context-skips", Static).render())
        listed = str(runs.get_row_at(0)[2])
        screen = app.export_screenshot()
    assert shown[0][0] == shown[1][0] == listed == "m␛]0;pwned␇[/x]"
    assert shown[0][2] == f"failed: down {markup}" and shown[1][2] == "skipped"
    assert note == f"skipped m␛]0;pwned␇[/x] at 128 tokens: too long ␛[2J{markup}"
    assert "\x1b" not in screen and "\x07" not in screen
