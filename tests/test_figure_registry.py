"""The figure registry (runtime/metrics.py ``shown``) is where every view takes its figures from: each figure
reaches `taskclock run` (text and --json), the Chat meter's final figures, the comparison table (COMPARE), a
bench run's summary.md, summary.json and the console (CELL) and the Batch tab's table (LIVE), headed and written
as it declares — with real SmolLM2 turns (llama.cpp), a real bench run and a real Pilot session. A figure added
in metrics.py alone is checked here with no edit to this file."""
from __future__ import annotations

import json

import pytest
from app_helpers import make_app, ready, turn, wait_for
from helpers import bench_args, run_cli
from rich.console import Console
from textual.widgets import DataTable

from taskclock.runtime import metrics, summary, tables
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.compare import run_compare
from taskclock.runtime.config import Config, Defaults
from taskclock.tui.comparison import comparison_table
from taskclock.tui.panes.batch import BatchPane
from taskclock.tui.widgets.meter import Meter

LISTED = [shown for shown in metrics.figure_formats() if not shown.optional]  # every turn has these


def test_every_figure_is_declared_whole():
    for shown in metrics.figure_formats():
        assert shown.label and shown.better in ("", "high", "low"), shown.key
        assert shown.places <= {metrics.COMPARE, metrics.CELL, metrics.LIVE}, shown.key
        if shown.places & {metrics.COMPARE, metrics.LIVE}:
            assert shown.better, f"{shown.key}: a table that stars or ranks it needs the end that wins"
    headers = [shown.header for shown in metrics.figures_in(metrics.CELL)]
    assert len(headers) == len(set(headers))  # a column per figure that tells it apart


def test_run_prints_and_returns_every_figure():
    text = run_cli("run", "--model", "smollm2", "--max-tokens", "8", "--temperature", "0", "--no-log", "Hello")
    assert text.returncode == 0, text.stderr
    labels = {line.split(":")[0] for line in text.stderr.splitlines() if ":" in line}  # the reply alone on stdout
    assert {shown.label for shown in LISTED} <= labels
    as_json = run_cli("run", "--model", "smollm2", "--max-tokens", "8", "--no-log", "--json", "Hello")
    assert {shown.key for shown in LISTED} <= set(json.loads(as_json.stdout))


async def test_the_meters_final_figures_list_every_figure(tmp_path):
    app = make_app(tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await ready(pilot)
        result = await turn(pilot, "Hello")
        values = app.query_one(Meter).values
        figures = result.metrics.as_dict()
        for shown in LISTED:
            if shown.key not in ("stop_reason", "words_per_s"):  # the state line says the one, with_reading the other
                assert values[shown.label] == shown.text(figures[shown.key], unit=True)


def test_the_comparison_table_has_every_compare_figure(smollm2):
    comparison = run_compare([smollm2, smollm2], [{"role": "user", "content": "Hello"}],
                             SamplingParams(max_tokens=8), warmup=0)
    console = Console(width=200, record=True)
    console.print(comparison_table(comparison))
    shown = console.export_text()
    row = comparison.rows()[0]
    for column in metrics.figures_in(metrics.COMPARE):
        assert (column.short or column.label) in shown and column.text(row[column.key]) in shown
    assert set(comparison.winners()) == {column.key for column in metrics.figures_in(metrics.COMPARE)}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    proc = run_cli(*bench_args(out, limit=2))
    assert proc.returncode == 0, proc.stderr
    (folder,) = out.iterdir()
    return folder, proc.stdout


def test_the_bench_summary_has_every_cell_figures_mean(bench_run):
    folder, console = bench_run
    result = summary.load_summary(folder)
    (cell,) = result.cells
    markdown = (folder / "summary.md").read_text()
    (stored,) = json.loads((folder / "summary.json").read_text())["cells"]
    for shown in metrics.figures_in(metrics.CELL):
        column = summary.SummaryColumn.mean_of(shown)
        values = [row[shown.key] for row in result.rows if row[shown.key] is not None]
        assert cell.mean(shown.key) == (pytest.approx(sum(values) / len(values)) if values else None)
        assert f"| {column.header} |" in markdown.splitlines()[markdown.splitlines().index("## Per model × task") + 2]
        assert stored[f"mean_{shown.key}"] == cell.mean(shown.key)


async def test_the_batch_tab_shows_every_live_figures_mean(bench_run, tmp_path):
    folder, _ = bench_run
    app = make_app(tmp_path / "sessions", config=Config(defaults=Defaults(runs_dir=str(folder.parent))))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f5")
        pane = app.query_one(BatchPane)
        pane.open_run(folder)
        await pilot.pause()
        table = pane.query_one("#batch-table", DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the run's table")
        headers = [str(column.label) for column in table.columns.values()]
        row = dict(zip(headers, map(str, table.get_row_at(0)), strict=True))
        (cell,) = summary.load_summary(folder).cells
        for shown in metrics.figures_in(metrics.LIVE):
            assert row[shown.header] == tables.SummaryColumn.mean_of(shown).show(cell)  # a mean: a decimal at least
