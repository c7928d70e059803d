"""The Batch tab's Load mode in a real Textual Pilot session against two deterministic parallel servers
(tests/parallel_server.py) on loopback: "verbose" decodes twice as fast per token but writes four times the
tokens, so it sustains fewer requests a second within the SLO. The running rate shows its figures live (rate,
requests in flight, task time p50/p99 from arrival, SLO attainment); the finished run shows the table the run
folder holds, goodput and tok/s side by side with the verdict, both charts, and is listed as a load run; a
stopped run resumes with every rate once."""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

from app_helpers import make_app, wait_for
from parallel_server import ParallelServer, Script
from plotext import uncolorize
from textual.widgets import Button, DataTable, Input, Select, Static
from textual_plotext import PlotextPlot

from taskclock.runtime import load, load_summary, runfolder, storage
from taskclock.runtime.config import Config, Defaults
from taskclock.runtime.options import HTTPOptions
from taskclock.tui.panes.batch import BatchPane

SIZE = (180, 60)
# Gaps of 10 and 20 ms: the app's repaints share the client's interpreter, and lag of a few ms would blur 5 ms ones.
VERBOSE = Script(slots=2, ttft_ms=30, gap_ms=10, tokens=16)  # service 180 ms: capacity 11 req/s
TERSE = Script(slots=2, ttft_ms=30, gap_ms=20, tokens=4)  # service 90 ms: capacity 22 req/s


def _status(pane: BatchPane) -> str:
    return str(pane.query_one("#batch-status", Static).render())


def _rows(pane: BatchPane) -> list[list[str]]:
    table = pane.query_one("#load-table", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def _load_mode(pilot, models: str, rates: str, requests: str) -> BatchPane:
    await pilot.press("f5")
    pane = pilot.app.query_one(BatchPane)
    mode = pane.query_one("#batch-mode", Select)
    mode.focus()
    await pilot.press("enter", "down", "down", "enter")  # open the list, pick "Load"
    await wait_for(pilot, lambda: pane.view.KIND == load.KIND, "Load mode")
    assert mode.value == load.KIND
    assert pane.query_one("#load-table").display and not pane.query_one("#batch-table").display
    assert not pane.query_one("#context-table").display
    for field_id, value in (("batch-models", models), ("load-tasks", "mc"), ("load-rates", rates),
                            ("load-requests", requests), ("load-slo", "task=0.4"), ("load-arrival", "poisson")):
        pane.query_one(f"#{field_id}", Input).value = value
    await pilot.pause()
    return pane


def _names(fast: ParallelServer, slow: ParallelServer, tmp_path: Path) -> Config:
    """The two servers under the names the verdict uses (configured HTTP models, as a user names them)."""
    from taskclock.runtime.backend import ModelSpec

    models = {"verbose": ModelSpec("verbose", "http", fast.url, backend_options=HTTPOptions(api_model="parallel")),
              "terse": ModelSpec("terse", "http", slow.url, backend_options=HTTPOptions(api_model="parallel"))}
    return Config(defaults=Defaults(runs_dir=str(tmp_path / "runs")), models=models)


@contextlib.asynccontextmanager
async def started(tmp_path: Path, rates: str, requests: str):
    """The app on both servers, its Batch tab in Load mode with a run of ``rates`` started: (pilot, pane)."""
    with ParallelServer(VERBOSE) as fast, ParallelServer(TERSE) as slow:
        app = make_app(tmp_path / "sessions", config=_names(fast, slow, tmp_path))
        async with app.run_test(size=SIZE) as pilot:
            pane = await _load_mode(pilot, "verbose,terse", rates, requests)
            pane.query_one("#batch-start", Button).press()
            yield pilot, pane


async def test_a_load_run_shows_its_running_rate_live_then_goodput_tok_s_and_the_verdict(tmp_path):
    async with started(tmp_path, "3,15", "30") as (pilot, pane):

        def running_row():
            return next((r for r in _rows(pane) if r[2] == "running" and r[4] != "—"), None)

        await wait_for(pilot, running_row, "a running rate with its live figures")
        live = running_row()
        assert live[0] == "verbose" and live[1] == "mc @ 3 req/s"
        assert int(live[4]) >= 0 and live[5] != "—" and live[7].endswith("%")  # in flight, p50, SLO so far
        await wait_for(pilot, lambda: not pane.running and "finished" in _status(pane), "the run to end")
        await pilot.pause()
        folder = pane.folder
        assert folder is not None and runfolder.folder_kind(folder) == load.KIND
        result = load_summary.load_summary(folder)
        expected = [[c.model, f"{c.task} @ {c.rate:g} req/s", "saturated" if c.saturated else "done",
                     f"{c.finished}/{c.planned}", str(c.most_in_flight), f"{c.wait_p50_s:.3f}",
                     f"{c.wait_p99_s:.3f}", f"{c.attainment * 100:.1f}%", f"{c.goodput:.2f}"]
                    for c in result.cells]
        assert _rows(pane) == expected and len(expected) == 4
        assert len([r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"]) == 120

        ranks = pane.query_one("#load-ranks", DataTable)
        assert ranks.display and ranks.row_count == 2
        assert [str(ranks.get_row_at(i)[1]) for i in range(2)] == ["terse", "verbose"]
        verdict = str(pane.query_one("#load-verdict", Static).render())
        (group,) = result.rankings
        assert verdict.startswith(f"verdict: {group.verdict[:60]}")
        assert "terse sustains" in verdict and "(at 15 req/s), verbose " in verdict
        faster = re.search(r"although it decodes ([0-9.]+)× faster", verdict)  # 100 against 50 tok/s by design
        assert faster is not None and 1.6 <= float(faster.group(1)) <= 2.4, verdict

        wait, goodput = (uncolorize(pane.query_one(f"#{chart}", PlotextPlot).plt.build())
                         for chart in ("load-wait", "load-goodput"))
        assert "task time from arrival (p50, p99) vs rate" in wait and "goodput vs rate" in goodput
        assert "verbose · mc" in goodput and "terse · mc" in goodput

        runs = pane.query_one("#batch-runs", DataTable)
        row = [str(cell) for cell in runs.get_row_at(0)]
        assert row == [folder.name, "load", "verbose,terse", "mc @ 3,15", "120/120"]
        assert pane.query_one("#batch-resume", Button).disabled


async def test_a_stopped_load_run_opens_from_the_runs_list_and_resumes_with_every_rate_once(tmp_path):
    async with started(tmp_path, "10,12", "20") as (pilot, pane):
        await wait_for(pilot, lambda: pane.folder is not None and any(
            r["kind"] == "segment" for r in storage.read(pane.folder / runfolder.RESULTS_FILE))
            if pane.folder is not None and (pane.folder / runfolder.RESULTS_FILE).exists() else False,
            "the first rate to close")
        pane.query_one("#batch-stop", Button).press()
        await wait_for(pilot, lambda: not pane.running and "stopped" in _status(pane), "the run to stop")
        folder = pane.folder
        assert folder is not None
        kept = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "segment"]
        assert 1 <= len(kept) < 4

        pane.query_one("#batch-mode", Select).value = "bench"
        await wait_for(pilot, lambda: pane.view.KIND != load.KIND, "Task sets mode")
        runs = pane.query_one("#batch-runs", DataTable)
        runs.focus()
        runs.move_cursor(row=0)
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.view.KIND == load.KIND and "Resume continues it" in _status(pane),
                       "the stopped run to open in Load mode")
        resume = pane.query_one("#batch-resume", Button)
        assert not resume.disabled
        resume.press()
        await wait_for(pilot, lambda: not pane.running and "finished" in _status(pane), "the resumed run")
        closing = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "segment"]
        assert closing[:len(kept)] == kept and len(closing) == 4
        assert {(s["model"], s["rate"]) for s in closing} == {(m, r) for m in ("verbose", "terse")
                                                              for r in (10.0, 12.0)}
        assert len(_rows(pane)) == 4 and pane.query_one("#batch-resume", Button).disabled
