"""The app at 80×24 (a narrow screen: the meter as a bar, compact fields, the Batch tab's narrow columns) and at
140×40: layout snapshots of Chat after a turn, Compare after a run and Batch showing a finished run (and, at
80×24, a finished input-length sweep in its Context mode), and the tables that must fit 80 columns without
scrolling sideways (the Batch rankings, the Sessions list).

Deterministic by construction: the scripted event source stamps synthetic times (tests/scripted.py), the
Batch runs are folders of stored rows, and the paths on screen are relative to a working folder of the test's.
"""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from app_helpers import make_app, open_compare, ready, send_compare, turn, wait_for, workdir_app
from scripted import ScriptedModel, scripted_loader
from textual.widgets import DataTable, Input, Tabs

from taskclock.runtime import bench, fitting, metrics, mmlu, runfolder, storage, sweep, system
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.config import Config, Defaults
from taskclock.runtime.models import resolve
from taskclock.runtime.runfolder import RunPlan
from taskclock.runtime.sessions import SessionLog, turn_record
from taskclock.runtime.tasks import BUILTIN
from taskclock.runtime.turn import run_turn
from taskclock.tui.app import NARROW_WIDTH
from taskclock.tui.panes import sessions as sessions_pane
from taskclock.tui.panes.batch import BatchPane
from taskclock.tui.panes.batch_views import context as context_view
from taskclock.tui.panes.batch_views.tasks import LIVE_COLUMNS, NARROW_COLUMNS
from taskclock.tui.panes.compare import ComparePane
from taskclock.tui.widgets.meter import Bar, Meter

SIZES = {"80x24": (80, 24), "140x40": (140, 40)}
MODELS = ("smollm2", "gemma3-270m")
QUESTIONS = ("anatomy/0", "anatomy/1")
# (model, task) → per question (output tokens, output words, decode tok/s, task time s, correct): gemma3 has
# the higher tok/s and writes more, so it finishes explain later (the thesis, in a table)
FIGURES = {
    ("smollm2", "mc"): [(1, 1, None, 0.21, True), (1, 1, None, 0.19, False)],
    ("gemma3-270m", "mc"): [(1, 1, None, 0.12, True), (1, 1, None, 0.14, True)],
    ("smollm2", "explain"): [(96, 70, 41.5, 2.45, None), (120, 88, 40.5, 3.05, None)],
    ("gemma3-270m", "explain"): [(260, 190, 88.0, 3.10, None), (300, 221, 86.0, 3.61, None)],
}


def stored_run(runs: Path) -> Path:
    """A finished two-model run folder written from stored rows (no model, no clock)."""
    folder = runs / "hand-made"
    folder.mkdir(parents=True)
    bench.write_plan(folder, RunPlan(
        run_id="hand-made", created="2026-11-22T00:00:00", mmlu=mmlu.EMBEDDED, subjects=["anatomy"], limit=2,
        seed=0, batch_size=1, warmup=0, max_tokens=0, temperature=0.0, top_p=1.0, skipped_rows=0,
        models=[resolve(name) for name in MODELS], tasks=[BUILTIN["mc"], BUILTIN["explain"]],
        question_ids=list(QUESTIONS)))
    for (model, task), figures in FIGURES.items():
        for qid, (tokens, words, tps, seconds, correct) in zip(QUESTIONS, figures, strict=True):
            scored = correct is not None  # mc: the reply's letter B against the key
            storage.append(folder / runfolder.RESULTS_FILE, {
                "kind": "result", "model": model, "backend": "llamacpp", "task": task, "qid": qid,
                "subject": "anatomy", "batch_size": 1, "input_tokens": 60, "output_tokens": tokens,
                "output_words": words, "output_chars": words * 5, "ttft_s": 0.05, "decode_tps": tps,
                "task_time_s": seconds, "ms_per_word": metrics.ms_per_word(seconds, words), "stop_reason": "eos",
                "error": None, "reply": "B",
                "parsed": "B" if scored else None, "answer": ("B" if correct else "C") if scored else None,
                "correct": correct})
    return folder


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_snapshot_chat_after_a_turn(workdir, size, snap_compare):
    async def chat_turn(pilot):
        await ready(pilot)
        await turn(pilot, "What is task time?")
        meter = pilot.app.query_one(Meter)
        assert meter.values["TTFT"] == "0.150 s"  # the scripted times, so the picture is the same every time
        narrow = size[0] < NARROW_WIDTH
        # narrow: the meter is a bar under the prompt, and the conversation has the whole width
        shown = [meter.query_one(f"#meter-{part}").display for part in ("bar", "figures")]
        assert shown == [narrow, not narrow]
        assert (pilot.app.query_one("#conversation").outer_size.width == size[0]) == narrow

    assert snap_compare(workdir_app(), run_before=chat_turn, terminal_size=size)


async def test_the_narrow_meter_bar_keeps_a_reasoning_models_thinking_time_and_ttfa(workdir):
    app = make_app(Path("sessions"), loader=scripted_loader(tokens=6, thinking=["step"] * 20), max_tokens=200)
    async with app.run_test(size=SIZES["80x24"]) as pilot:
        await ready(pilot)
        await turn(pilot, "Think first.")
        meter = app.query_one(Meter)
        bar = meter.query_one(Bar)
        shown = " · ".join(bar.render_line(y).text.strip() for y in range(bar.size.height))
        for item in (f"TTFT {meter.values['TTFT']}", f"thought {meter.values['thinking time']}",
                     f"TTFA {meter.values['TTFA']}", f"task {meter.values['task time']}"):
            assert item in shown


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_snapshot_compare_after_a_run(workdir, size, snap_compare, monkeypatch):
    # the picture is the tab's, not this machine's load: no "busy machine" note whatever else runs meanwhile
    monkeypatch.setattr(system, "BUSY_CORES", float("inf"))
    async def compare_run(pilot):
        await ready(pilot)
        await pilot.press("f4")
        pane = pilot.app.query_one(ComparePane)
        pane.query_one("#compare-models", Input).value = ", ".join(MODELS)
        prompt = pane.query_one("#compare-prompt")
        prompt.cursor_blink = False
        prompt.load_text("What is task time?")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.last is not None and pane.live is None, "the comparison")
        await pilot.wait_for_animation()  # the replies scroll to their last line
        await pilot.pause()

    assert snap_compare(workdir_app(), run_before=compare_run, terminal_size=size)


async def _open_the_only_run(pilot) -> BatchPane:
    """The Batch tab with the one stored run folder opened from its runs list."""
    await ready(pilot)
    await pilot.press("f5")
    pane = pilot.app.query_one(BatchPane)
    runs = pane.query_one("#batch-runs", DataTable)
    await wait_for(pilot, lambda: runs.row_count == 1, "the runs list")
    runs.focus()
    await pilot.wait_for_scheduled_animations()  # on a narrow screen the focus scrolls the tab to the list
    await pilot.press("enter")
    return pane


async def _open_stored_run(pilot) -> DataTable:
    """The Batch tab with the stored run opened from its runs list; returns the run's table."""
    pane = await _open_the_only_run(pilot)
    table = pane.query_one("#batch-table", DataTable)
    await wait_for(pilot, lambda: table.row_count == len(FIGURES), "the run's table")
    return table


def _headers(table: DataTable) -> tuple[str, ...]:
    return tuple(str(column.label) for column in table.columns.values())


async def test_the_batch_table_takes_the_narrow_columns_when_the_terminal_narrows(workdir):
    stored_run(workdir / "runs")
    app = workdir_app(config=Config(defaults=Defaults(runs_dir="runs")))
    async with app.run_test(size=SIZES["140x40"]) as pilot:
        table = await _open_stored_run(pilot)
        assert _headers(table) == LIVE_COLUMNS
        for size, columns in ((SIZES["80x24"], NARROW_COLUMNS), (SIZES["140x40"], LIVE_COLUMNS)):
            await pilot.resize_terminal(*size)
            await wait_for(pilot, lambda columns=columns: _headers(table) == columns, f"the columns at {size}")
            await wait_for(pilot, lambda: table.row_count == len(FIGURES), "the rows again")
            gemma_explain = [str(cell) for cell in table.get_row_at(3)]
            assert gemma_explain[:2] == ["gemma3-270m", "explain"] and "205.5" in gemma_explain  # mean words
        await pilot.press("f2")
        await pilot.resize_terminal(*SIZES["80x24"])
        await pilot.press("f5")  # out of sight when the terminal narrowed, the tab catches up when shown
        await wait_for(pilot, lambda: _headers(table) == NARROW_COLUMNS, "the narrow columns after the tab switch")


def _fits(table: DataTable) -> bool:
    """Every column in view: the table has nothing to scroll sideways to."""
    return table.max_scroll_x == 0 and table.virtual_size.width <= table.scrollable_content_region.width


async def test_the_rankings_fit_80_columns_without_the_batch_column_of_a_one_size_run(workdir):
    stored_run(workdir / "runs")
    app = workdir_app(config=Config(defaults=Defaults(runs_dir="runs")))
    async with app.run_test(size=SIZES["140x40"]) as pilot:
        await _open_stored_run(pilot)
        ranks = pilot.app.query_one("#batch-ranks", DataTable)
        await wait_for(pilot, lambda: ranks.row_count == len(FIGURES) + len(MODELS), "the rankings")  # + "all"
        assert "batch" in _headers(ranks)
        await pilot.resize_terminal(*SIZES["80x24"])
        await wait_for(pilot, lambda: "batch" not in _headers(ranks) and ranks.row_count, "the narrow rankings")
        await pilot.pause()
        assert _fits(ranks)
        rows = [[cell.plain for cell in ranks.get_row_at(i)] for i in range(ranks.row_count)]
        headers = _headers(ranks)
        gemma_explain = next(dict(zip(headers, row, strict=True)) for row in rows
                             if row[:2] == ["explain", "gemma3-270m"])
        assert (gemma_explain["by tok/s"], gemma_explain["by task s"], gemma_explain["ranks"]) == ("1", "2", "disagree")


LONG_MODEL = "http://127.0.0.1:18950/v1#HuggingFaceTB/SmolLM2-135M-Instruct-Q4_1"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
async def test_the_sessions_list_fits_its_screen_and_keeps_ttft_and_task_time(workdir, size):
    """A server model's long name and a Compare log's "compare · 2 models" once pushed TTFT and task time out of
    the list (to "TT…" at 80 columns): the model is cut in its middle and the list still fits."""
    folder = Path("sessions")
    prompt = "A first prompt long enough to be cut short on a narrow screen, and then some more"
    log = SessionLog(folder, LONG_MODEL, datetime(2026, 11, 22, 9, 30, 0))
    log.append(turn_record(run_turn(ScriptedModel(resolve(LONG_MODEL)), [{"role": "user", "content": prompt}],
                                    SamplingParams(max_tokens=6))))
    app = workdir_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        compare = await open_compare(pilot, list(MODELS))
        await send_compare(pilot, compare, "Hi")
        await wait_for(pilot, lambda: compare.last is not None and compare.live is None, "the comparison")
        await pilot.press("f3")
        table = pilot.app.query_one("#sessions-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 2, "the sessions list")
        await pilot.pause()
        narrow = size[0] < NARROW_WIDTH
        assert _headers(table) == (sessions_pane.NARROW_COLUMNS if narrow else sessions_pane.COLUMNS)
        assert _fits(table)
        rows = [dict(zip(_headers(table), (str(cell) for cell in table.get_row_at(i)), strict=True)) for i in (0, 1)]
        served = next(row for row in rows if row["session"].startswith("A first"))
        assert served["TTFT"] == "0.150 s" and served["task time"]  # the scripted times
        assert served["session"].endswith("…") and served["model"].startswith("Huggin")  # a server model by its id
        assert "…" in served["model"] and served["model"].endswith("Q4_1")  # cut in its middle: both ends show
        compared = next(row for row in rows if row is not served)
        assert compared["turns"] == ("cmp" if narrow else "compare · 2 models") and compared["TTFT"] == "0.150 s"


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_snapshot_batch_showing_a_finished_run(workdir, size, snap_compare):
    stored_run(workdir / "runs")

    async def open_run(pilot):
        table = await _open_stored_run(pilot)
        assert (_headers(table) == NARROW_COLUMNS) == (size[0] < NARROW_WIDTH)  # 80 columns: the narrow set
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()  # then opening the run scrolls its table into view

    app = workdir_app(config=Config(defaults=Defaults(runs_dir="runs")))
    assert snap_compare(app, run_before=open_run, terminal_size=size)


SWEEP_LENGTHS = (256, 1024, 4096)
# model → (cold TTFT at 256 tokens, decode tok/s): TTFT grows with the input, the cached prefix takes a tenth
SWEEP_FIGURES = {"smollm2": (0.040, 60.0), "gemma3-270m": (0.055, 45.0)}


def stored_sweep(runs: Path) -> Path:
    """A finished sweep folder written from stored rows: smollm2 skips 4096 tokens (its context is 4096)."""
    folder = runs / "hand-made-sweep"
    folder.mkdir(parents=True)
    plan = sweep.SweepPlan(run_id=folder.name, created="2026-11-22T00:00:00", kind=sweep.KIND,
                           input_tokens=list(SWEEP_LENGTHS), output_tokens=32, repeats=1, warmup=0, salt="0000",
                           models=[resolve(name) for name in MODELS])
    storage.write_atomic(folder / bench.RUN_FILE, sweep.plan_to_toml(plan))
    for model, (ttft_256, tps) in SWEEP_FIGURES.items():
        for n in SWEEP_LENGTHS:
            if model == "smollm2" and n == 4096:
                storage.append(folder / runfolder.RESULTS_FILE, {"kind": "skip", "model": model, "requested_tokens": n,
                                                                 "reason": fitting.beyond_context(n, 32, 4096)})
                continue
            for phase, ttft in (("cold", ttft_256 * n / 256), ("cached", ttft_256 * n / 2560)):
                storage.append(folder / runfolder.RESULTS_FILE, {
                    "kind": sweep.KIND, "model": model, "backend": "llamacpp", "phase": phase,
                    "requested_tokens": n, "repeat": 0, "prompt_tokens": n, "token_source": "tokenizer",
                    "input_tokens": n, "output_tokens": 32, "output_words": 24, "output_chars": 120, "ttft_s": ttft,
                    "prefill_tps": n / ttft, "decode_tps": tps, "task_time_s": ttft + 32 / tps,
                    "stop_reason": "length", "error": None, "reply": "Anatomy"})
    return folder


def test_snapshot_batch_context_mode_showing_a_finished_sweep(workdir, snap_compare):
    stored_sweep(workdir / "runs")

    async def open_sweep(pilot):
        pane = await _open_the_only_run(pilot)
        table = pane.query_one("#context-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == len(MODELS) * len(SWEEP_LENGTHS), "the sweep's table")
        assert pane.view.KIND == sweep.KIND and _headers(table) == context_view.NARROW_COLUMNS
        await pilot.pause()
        await pilot.wait_for_scheduled_animations()

    app = workdir_app(config=Config(defaults=Defaults(runs_dir="runs")))
    assert snap_compare(app, run_before=open_sweep, terminal_size=SIZES["80x24"])


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("tab", ["f4", "f5"], ids=["compare", "batch"])
async def test_tab_moves_among_the_fields_of_compare_and_batch_never_onto_the_tab_bar(workdir, size, tab):
    app = workdir_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press(tab)
        pane = app.query_one(ComparePane if tab == "f4" else BatchPane)
        stops = []
        for _ in range(12):
            await pilot.press("tab")
            stops.append((app.focused, app.focused is not None and pane in app.focused.ancestors))
    assert not any(isinstance(widget, Tabs) for widget, _ in stops)
    assert all(inside for _, inside in stops)  # focus stays in the tab shown


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("tab", ["compare", "batch"])
async def test_the_models_field_of_compare_and_batch_shows_long_names_whole(workdir, size, tab):
    names = "smollm2, http://127.0.0.1:18950/v1#qwen2.5-0.5b"
    app = workdir_app()
    async with app.run_test(size=size) as pilot:
        await ready(pilot)
        await pilot.press("f4" if tab == "compare" else "f5")
        box = app.query_one(f"#{tab}-models", Input)
        box.value = names
        await pilot.pause()
        assert box.content_region.width > len(names)  # every character in sight, none scrolled away
