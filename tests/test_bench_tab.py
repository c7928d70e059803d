"""The Batch tab in a real Textual Pilot session with SmolLM2 (llama.cpp) on the shared MMLU copy."""
from __future__ import annotations

from app_helpers import make_app, wait_for
from plotext import uncolorize
from textual.widgets import Button, DataTable, Input, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import bench, mmlu, runfolder, storage, summary
from taskclock.runtime.config import Config, Defaults, TaskSpec
from taskclock.tui.live import LiveBench
from taskclock.tui.panes.batch import BatchPane

SIZE = (160, 50)


def _app(tmp_path):
    config = Config(defaults=Defaults(runs_dir=str(tmp_path / "runs")))
    return make_app(tmp_path / "sessions", config=config)


async def _open(pilot, models="smollm2", task_names="mc", limit="3", mmlu="") -> BatchPane:
    await pilot.press("f5")
    pane = pilot.app.query_one(BatchPane)
    for field_id, value in (("batch-models", models), ("batch-tasks", task_names), ("batch-limit", limit),
                            ("batch-mmlu", mmlu)):
        pane.query_one(f"#{field_id}", Input).value = value
    await pilot.pause()
    return pane


def _status(pane) -> str:
    return str(pane.query_one("#batch-status", Static).render())


def _keys(pane) -> list[tuple]:
    return [bench.row_key(r) for r in storage.read(pane.folder / runfolder.RESULTS_FILE) if r["kind"] == "result"]


async def _finish(pilot, pane, button: str) -> None:
    before = _status(pane)
    await pilot.click(f"#{button}")
    # a small run can start and end between two polls: wait for the status to move on and the run to be over
    await wait_for(pilot, lambda: not pane.running and _status(pane) != before, "the run to end")
    await pilot.pause()


async def test_run_fills_the_table_and_lists_the_run(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKCLOCK_MMLU", raising=False)
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, mmlu="")  # an empty MMLU field: the built-in copy
        await _finish(pilot, pane, "batch-start")
        assert "finished: 3 new rows" in _status(pane)
        assert runfolder.read_plan(pane.folder).mmlu == mmlu.EMBEDDED
        table = pane.query_one("#batch-table", DataTable)
        assert table.row_count == 1
        row = table.get_row_at(0)
        assert [str(cell) for cell in row[:3]] == ["smollm2", "mc", "done"] and row[3].endswith("3/3")
        assert len(_keys(pane)) == 3
        assert (pane.folder / "summary.md").is_file()
        assert pane.query_one("#batch-runs", DataTable).row_count == 1
        assert pane.query_one("#batch-resume", Button).disabled  # nothing left to resume


async def test_stop_then_resume_completes_without_duplicates(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, limit="20")
        await pilot.click("#batch-start")
        await wait_for(pilot, lambda: pane.live is not None and sum(map(len, pane.live.rows.values())) >= 1,
                       "a first row")
        await pilot.click("#batch-stop")
        await wait_for(pilot, lambda: not pane.running, "the run to stop")
        await pilot.pause()
        kept = _keys(pane)
        assert "stopped (Resume continues)" in _status(pane)
        assert 1 <= len(kept) < 20
        assert str(pane.query_one("#batch-table", DataTable).get_row_at(0)[2]) == "incomplete"  # not "waiting"
        assert not pane.query_one("#batch-resume", Button).disabled
        await _finish(pilot, pane, "batch-resume")
        keys = _keys(pane)
        assert len(keys) == len(set(keys)) == 20 and set(kept) <= set(keys)


async def test_open_a_past_run(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, limit="2")
        await _finish(pilot, pane, "batch-start")
        pane.live = None
        pane.query_one("#batch-table", DataTable).clear()
        runs = pane.query_one("#batch-runs", DataTable)
        runs.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert "2/2 rows" in _status(pane)
        assert pane.query_one("#batch-table", DataTable).row_count == 1
        plots = [pane.query_one(f"#{name}", PlotextPlot) for name in ("batch-plot", "batch-lengths")]
        speed, lengths = (uncolorize(p.plt.build()) for p in plots)
        assert "decode tok/s" in speed and "task time s" in speed
        assert "mc: output tokens" in lengths


async def test_bad_options_are_shown_not_raised(tmp_path):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, limit="0")
        await pilot.click("#batch-start")
        await pilot.pause()
        assert "limit must be at least 1 and at most 100000, not 0" in _status(pane)
        pane.query_one("#batch-limit", Input).value = "2"
        pane.query_one("#batch-tasks", Input).value = "mc,translate"
        pane.query_one("#batch-start", Button).press()  # a second click on the same spot would be a double click
        await pilot.pause()
        assert "unknown task(s): translate" in _status(pane)
        pane.query_one("#batch-tasks", Input).value = "mc"
        pane.query_one("#batch-mmlu", Input).value = str(tmp_path / "nowhere")
        pane.query_one("#batch-start", Button).press()
        # the error is shown first, then the worker's end clears running: wait for both (a loaded machine parts them)
        await wait_for(pilot, lambda: "does not exist" in _status(pane) and not pane.running, "the worker's error")
        assert pane.query_one("#batch-status", Static).has_class("error")


async def test_a_sweep_plots_total_time_against_batch_size(tmp_path, tiny_llama_dir):
    app = _app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, models=str(tiny_llama_dir), limit="2")
        pane.query_one("#batch-size", Input).value = "1,2"
        await _finish(pilot, pane, "batch-start")
        assert {(k[3], k[4]) for k in _keys(pane)} == {(1, 0), (2, 0)} and len(_keys(pane)) == 4
        row = pane.query_one("#batch-table", DataTable).get_row_at(0)
        assert str(row[2]) == "done" and str(row[3]).endswith("4/4")  # both sizes' rows count towards the cell
        chart = uncolorize(pane.query_one("#batch-plot", PlotextPlot).plt.build())
        assert "set time vs batch size" in chart
        sizes = pane.query_one("#batch-sizes-table", DataTable)
        assert sizes.display and [sizes.get_row_at(i)[2].plain for i in range(sizes.row_count)] == ["1", "2"]


def _expected_ranks(rows: list[dict], key: str, best_high: bool) -> dict[str, int]:
    """Rank models by the mean of one figure over their rows, worked out here from results.jsonl."""
    means = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        values = [r[key] for r in rows if r["model"] == model and r.get(key) is not None]
        if values:
            means[model] = sum(values) / len(values)
    order = sorted(means, key=means.get, reverse=best_high)
    return {model: i for i, model in enumerate(order, 1)}


async def test_two_models_get_rankings_a_verdict_and_labelled_charts(tmp_path):
    """A real run of SmolLM2 and Gemma 3 270M (llama.cpp) on a short task: the tab ranks them both ways,
    highlights a disagreement, says the verdict, and names every point and bar in its charts."""
    brief = TaskSpec("brief", "In one sentence: {question}", max_tokens=12)
    config = Config(defaults=Defaults(runs_dir=str(tmp_path / "runs")), tasks={"brief": brief})
    app = make_app(tmp_path / "sessions", config=config)
    async with app.run_test(size=SIZE) as pilot:
        pane = await _open(pilot, models="smollm2,gemma3-270m", task_names="brief", limit="2")
        await _finish(pilot, pane, "batch-start")
        assert "finished: 4 new rows" in _status(pane)
        rows = [r for r in storage.read(pane.folder / runfolder.RESULTS_FILE) if r["kind"] == "result"]
        by_tps = _expected_ranks(rows, "decode_tps", best_high=True)
        by_time = _expected_ranks(rows, "task_time_s", best_high=False)
        assert set(by_tps) == set(by_time) == {"smollm2", "gemma3-270m"}

        stored = summary.load_summary(pane.folder)  # what summary.md and the console say
        marks = {r.model: r.mark for r in stored.ranks}
        ranks = pane.query_one("#batch-ranks", DataTable)
        assert ranks.display and ranks.row_count == 2
        headers = [str(column.label) for column in ranks.columns.values()]
        shown = {}
        for i in range(ranks.row_count):
            cells = dict(zip(headers, ranks.get_row_at(i), strict=True))
            model = cells["model"].plain
            shown[model] = cells
            assert cells["task"].plain == "brief"
            assert (int(cells["by tok/s"].plain), int(cells["by task s"].plain)) == (
                by_tps[model], by_time[model])
            tps = [r["decode_tps"] for r in rows if r["model"] == model and r["decode_tps"] is not None]
            assert cells["tok/s"].plain == f"{sum(tps) / len(tps):.1f}"
            # swapped ranks are a disagreement only beyond the two questions' noise
            assert cells["ranks"].plain == marks[model] and bool(marks[model]) == (by_tps[model] != by_time[model])
            assert (cells["model"].style == "bold yellow") == (marks[model] == summary.DISAGREE)  # highlighted
        verdict = pane.query_one("#batch-verdict", Static)
        fast, slow = sorted(by_tps, key=by_tps.get)
        expected = (f"rankings agree on this run ({fast} is 1st by tok/s and by task time" if by_tps == by_time
                    else f"{fast} is 1st by tok/s")
        assert verdict.display and str(verdict.render()).startswith(f"verdict: brief: {expected}")
        assert str(verdict.render()) == f"verdict: {stored.rankings[0].verdict}"
        assert "% of the gap" in str(verdict.render())  # the cause, with its share

        # mid-run the repaint ranks the rows so far: here every row but the last one
        pane.live = LiveBench(pane.folder, pane.live.plan)
        for row in rows[:-1]:
            pane.live.rows.setdefault((row["model"], row["task"]), []).append(row)
        pane.repaint()
        so_far = _expected_ranks(rows[:-1], "task_time_s", best_high=False)
        model_at, rank_at = headers.index("model"), headers.index("by task s")
        assert {ranks.get_row_at(i)[model_at].plain: int(ranks.get_row_at(i)[rank_at].plain)
                for i in range(ranks.row_count)} == so_far

        speed, words, lengths = (uncolorize(pane.query_one(f"#{name}", PlotextPlot).plt.build())
                                 for name in ("batch-plot", "batch-words", "batch-lengths"))
        for model in ("smollm2", "gemma3-270m"):
            assert f"• {model} · brief" in speed or f"{model} · brief •" in speed  # the label carries its point
            assert f"{model} · brief" in words and model in lengths
        assert "decode tok/s" in speed and "task time s" in speed
        assert "words (mean)" in words and "model · task" in words
        assert "output tokens" in lengths and "model" in lengths
