"""The summary math, rankings and exports on a hand-made results file (figures worked out by hand)."""
from __future__ import annotations

import csv
import io
import itertools
import json
import math
from collections import Counter
from types import SimpleNamespace

import pytest
from helpers import one_error_line, run_cli

from taskclock.runtime import bench, runfolder, storage, summary, sweep, tables
from taskclock.runtime.backend import ModelSpec
from taskclock.runtime.tasks import BUILTIN
from taskclock.tui.commands import bench as bench_command
from taskclock.tui.commands import sweep as sweep_command


def _plan(models=("fast-tokens", "short-replies")) -> runfolder.RunPlan:
    return runfolder.RunPlan(
        run_id="hand-made", created="2026-11-22T00:00:00", mmlu="/nowhere", subjects=["x"], limit=3, seed=0,
        batch_size=1, warmup=0, max_tokens=0, temperature=0.0, top_p=1.0, skipped_rows=2,
        models=[ModelSpec(m, "llamacpp", "/nowhere.gguf") for m in models],
        tasks=[BUILTIN["mc"], BUILTIN["explain"]], question_ids=["x/0", "x/1", "x/2"],
    )


def _row(model, task, qid, out, words, tps, time_s, ttft=0.1, parsed=None, answer=None, stop="eos"):
    scored = task == "mc"
    return {"kind": "result", "model": model, "backend": "llamacpp", "task": task, "qid": qid, "subject": "x",
            "batch_size": 1, "input_tokens": 50, "output_tokens": out, "output_words": words,
            "output_chars": words * 5, "ttft_s": ttft, "decode_tps": tps, "task_time_s": time_s, "stop_reason": stop,
            "error": "boom" if stop == "error" else None, "reply": "r", "parsed": parsed,
            "answer": answer if scored else None, "correct": (parsed == answer) if scored else None}


@pytest.fixture()
def run_folder(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    bench.write_plan(folder, _plan())
    rows = [
        # fast-tokens: 100 tok/s but verbose; explain takes 2, 4, 6 s
        _row("fast-tokens", "explain", "x/0", 200, 150, 100.0, 2.0),
        _row("fast-tokens", "explain", "x/1", 400, 300, 100.0, 4.0),
        _row("fast-tokens", "explain", "x/2", 600, 450, 100.0, 6.0),
        # short-replies: 50 tok/s but terse; explain takes 1, 1, 2 s
        _row("short-replies", "explain", "x/0", 50, 40, 50.0, 1.0),
        _row("short-replies", "explain", "x/1", 50, 40, 50.0, 1.0),
        _row("short-replies", "explain", "x/2", 100, 80, 50.0, 2.0),
        # mc: right, wrong, no letter for fast-tokens; one error row for short-replies
        _row("fast-tokens", "mc", "x/0", 1, 1, None, 0.2, parsed="A", answer="A"),
        _row("fast-tokens", "mc", "x/1", 1, 1, None, 0.2, parsed="B", answer="C"),
        _row("fast-tokens", "mc", "x/2", 3, 3, 20.0, 0.4, parsed=None, answer="D"),
        _row("short-replies", "mc", "x/0", 1, 1, None, 0.5, parsed="A", answer="A"),
        _row("short-replies", "mc", "x/1", 0, 0, None, 0.1, stop="error"),
    ]
    rows.insert(3, dict(rows[1]))  # a duplicate key (e.g. from a crash between write and bookkeeping)
    for row in rows:
        storage.append(folder / runfolder.RESULTS_FILE, row)
    storage.append(folder / runfolder.RESULTS_FILE, {"kind": "failure", "model": "gone", "error": "cannot load"})
    with open(folder / runfolder.RESULTS_FILE, "a") as handle:
        handle.write('{"kind": "result", "model": "torn')  # a row cut by kill -9
    return folder


def _cell(result, model, task):
    return next(c for c in result.cells if c.model == model and c.task == task)


def test_cell_figures(run_folder):
    result = summary.load_summary(run_folder)
    assert len(result.rows) == 11  # duplicate and torn line dropped
    cell = _cell(result, "fast-tokens", "explain")
    assert cell.done == 3
    assert cell.mean("output_tokens") == pytest.approx(400)
    assert cell.median_output_tokens == pytest.approx(400)
    assert cell.mean("output_words") == pytest.approx(300)
    assert cell.mean("task_time_s") == pytest.approx(4.0)
    assert cell.total_time_s == pytest.approx(12.0)
    assert cell.p90_task_time_s == pytest.approx(5.6)  # 4 + 0.8 * (6 - 4)
    assert cell.words_per_s == pytest.approx(900 / 12)
    assert cell.mean("decode_tps") == pytest.approx(100)
    assert cell.accuracy is None
    short = _cell(result, "short-replies", "explain")
    assert short.median_output_tokens == pytest.approx(50)
    assert short.mean("task_time_s") == pytest.approx(4 / 3)


def test_accuracy_no_letter_rate_and_errors(run_folder):
    result = summary.load_summary(run_folder)
    mc = _cell(result, "fast-tokens", "mc")
    assert mc.accuracy == pytest.approx(1 / 3)
    assert mc.no_letter_rate == pytest.approx(1 / 3)
    assert mc.mean("decode_tps") == pytest.approx(20.0)  # undefined rates are left out, not counted as 0
    other = _cell(result, "short-replies", "mc")
    assert (other.done, other.errors) == (2, 1)
    assert other.accuracy == pytest.approx(1.0)  # over the rows that completed
    assert other.mean("task_time_s") == pytest.approx(0.5)


def test_rankings_swap_where_tokens_per_second_misleads_and_three_questions_cannot_tell(run_folder):
    result = summary.load_summary(run_folder)
    explain = {r.model: r for r in result.ranks if r.task == "explain"}
    assert (explain["fast-tokens"].tps_rank, explain["fast-tokens"].time_rank) == (1, 2)
    assert (explain["short-replies"].tps_rank, explain["short-replies"].time_rank) == (2, 1)
    # paired task-time gaps 1, 3, 4 s: mean 2.67, sd 1.53, ± 4.303 × 1.53 / √3 = 3.79 s holds 0
    assert explain["fast-tokens"].mark == explain["short-replies"].mark == "within noise (n=3, ±3.79 s)"
    assert not explain["fast-tokens"].disagree
    (verdict,) = [g.verdict for g in result.rankings if g.task == "explain"]
    # saying more: 350, 350, 500 extra tokens at 10 ms; writing slower: 50, 50, 100 tokens × (10 − 20) ms
    assert verdict.startswith("explain: fast-tokens is 1st by tok/s but 2nd by task time, within noise (n=3, "
                              "±3.79 s): this run cannot tell fast-tokens and short-replies apart on task time "
                              "(about 4 questions or repeats would, at this spread); of the 2.67 s it measured, "
                              "fast-tokens writes 5.6× more words (300 vs 53.3; 122% of the gap)")
    mc = {r.model: r for r in result.ranks if r.task == "mc"}
    assert mc["short-replies"].tps_rank == 0 and not mc["short-replies"].disagree  # no decode figure: no rank


def _stats(model, tps, time_s, words=100.0, ttft=0.1, tokens=None, task="explain", size=1) -> summary.CellStats:
    """A model × task cell with only the figures the rankings and their verdict read."""
    return summary.CellStats(
        model=model, task=task, done=3, errors=0, truncated=0, batch_size=size,
        means={**dict.fromkeys(summary.MEAN_KEYS), "input_tokens": 50.0, "ttft_s": ttft, "decode_tps": tps,
               "output_tokens": tokens if tokens is not None else words * 1.3, "output_words": words,
               "task_time_s": time_s},
        median_input_tokens=50.0, median_output_tokens=None, median_output_words=None, total_time_s=3 * time_s,
        p90_task_time_s=None, words_per_s=None, accuracy=None, no_letter_rate=None)


def _verdict(*cells) -> str:
    (group,) = summary.rankings(list(cells))
    return group.verdict


def test_verdict_when_the_rankings_agree_without_rows_to_pair():
    (group,) = summary.rankings([_stats("slow", 20.0, 3.0), _stats("quick", 60.0, 1.0)])
    assert [(r.model, r.tps_rank, r.time_rank, r.disagree) for r in group.ranks] == [
        ("slow", 2, 2, False), ("quick", 1, 1, False)]
    assert group.verdict == ("explain: rankings agree on this run (quick is 1st by tok/s and by task time); slow "
                             "finishes later: no question has a finished reply from both")


def _charts(text: str) -> dict[str, str]:
    """plots.txt cut into its charts, by title."""
    return {chart.strip().splitlines()[0].strip(): chart for chart in text.split("\n\n") if chart.strip()}


def test_plots_label_every_point_and_title_every_axis(run_folder):
    result = summary.load_summary(run_folder)
    charts = _charts(summary.text_plots(result))
    speed_title = "decode tok/s vs task time"
    axes = {speed_title: ("decode tok/s", "task time s"),
            "words per reply": ("words (mean)", "model · task"),
            "mc: output tokens per reply": ("model", "output tokens"),
            "explain: output tokens per reply": ("model", "output tokens")}
    assert set(charts) == set(axes)
    for title, (x_title, y_title) in axes.items():
        assert x_title in charts[title] and y_title in charts[title]
    named = [f"{c.model} · {c.task}" for c in result.cells if c.task != summary.ALL_TASKS]
    speed = charts[speed_title]
    plotted = [f"{c.model} · {c.task}" for c in result.cells
               if c.task != summary.ALL_TASKS and c.mean("decode_tps") is not None]
    assert all(f"• {name}" in speed or f"{name} •" in speed for name in plotted)  # a label carries its point
    assert all(name in charts["words per reply"] for name in named)
    assert all(model in charts["mc: output tokens per reply"] for model in ("fast-tokens", "short-replies"))


def test_failures_listed(run_folder):
    assert summary.load_summary(run_folder).failures == {"gone": "cannot load"}


def test_export_files(run_folder):
    assert summary.export(run_folder).rows
    assert all((run_folder / name).is_file() for name in ("results.csv", "summary.md", "summary.json", "plots.txt"))
    with open(run_folder / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 11 and rows[0]["model"] == "fast-tokens"
    data = json.loads((run_folder / "summary.json").read_text())
    assert data["rows"] == 11 and data["expected_rows"] == 12 and data["mmlu_rows_skipped"] == 2
    assert data["failed_models"] == {"gone": "cannot load"}
    assert {r["mark"] for r in data["rankings"] if r["task"] == "explain"} == {"within noise (n=3, ±3.79 s)"}
    md = (run_folder / "summary.md").read_text()
    assert "| fast-tokens | explain | 3 |" in md and "within noise (n=3, ±3.79 s)" in md and "gone: cannot load" in md
    verdicts = {v["task"]: v["verdict"] for v in data["verdicts"]}
    assert f"- {verdicts['explain']}" in md
    assert "decode tok/s vs task time" in (run_folder / "plots.txt").read_text()


def test_cli_export_regenerates(run_folder):
    result = run_cli("export", str(run_folder))
    assert result.returncode == 0, result.stderr
    assert (run_folder / "summary.md").is_file() and (run_folder / "results.csv").is_file()


@pytest.mark.parametrize("options", [["-o", "OUT"], ["--format", "csv"], ["--force"]])
def test_cli_export_refuses_session_options_for_a_run_folder(run_folder, tmp_path, options):
    """-o, --format and --force would be ignored for a run folder: refused in one line, nothing written."""
    out = tmp_path / "out.csv"
    before = sorted(p.name for p in run_folder.iterdir())
    result = run_cli("export", str(run_folder), *[str(out) if o == "OUT" else o for o in options])
    line = one_error_line(result)
    assert result.returncode == 2 and options[0] in line and "apply to session logs" in line
    assert not out.exists() and sorted(p.name for p in run_folder.iterdir()) == before
    assert result.stdout == ""


def test_cli_export_help_names_run_folders():
    text = " ".join(run_cli("--help").stdout.split())
    assert "run folder" in text.split(" export ", 1)[1].split(" bench ", 1)[0]
    assert "run folder" in " ".join(run_cli("export", "--help").stdout.split())


def test_cli_export_rejects_plain_folder(tmp_path):
    result = run_cli("export", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "not a bench run" in result.stderr


def test_run_toml_round_trip(tmp_path):
    plan = _plan()
    bench.write_plan(tmp_path, plan)
    assert runfolder.read_plan(tmp_path) == plan


def test_sweep_cells_use_segment_wall_time_and_spread_over_repeats(tmp_path):
    """Batch 1 rows run one after another (set time = sum of task times); batch 2 rows ran in segments whose
    wall time is recorded apart; two repeats give a mean, an sd and a CI."""
    folder = tmp_path / "sweep"
    folder.mkdir()
    plan = _plan(models=("m",))
    plan.tasks, plan.question_ids, plan.batch_sizes, plan.repeats = [BUILTIN["explain"]], ["x/0", "x/1"], [1, 2], 2
    bench.write_plan(folder, plan)
    for repeat, (t0, t1, wall) in enumerate(((2.0, 4.0, 3.0), (3.0, 5.0, 5.0))):
        for qid, t in (("x/0", t0), ("x/1", t1)):
            storage.append(folder / runfolder.RESULTS_FILE, {**_row("m", "explain", qid, 100, 80, 50.0, t),
                                                         "repeat": repeat})
            storage.append(folder / runfolder.RESULTS_FILE, {**_row("m", "explain", qid, 100, 80, 50.0, t),
                                                         "batch_size": 2, "repeat": repeat, "segment": f"s{repeat}"})
        storage.append(folder / runfolder.RESULTS_FILE, {"kind": "segment", "model": "m", "task": "explain",
                                                     "batch_size": 2, "repeat": repeat, "segment": f"s{repeat}",
                                                     "rows": 2, "wall_s": wall})
    result = summary.load_summary(folder)
    one, two = result.cells
    assert (one.batch_size, two.batch_size) == (1, 2) and one.repeats == two.repeats == 2
    assert one.set_time.mean == pytest.approx(7.0) and one.total_time_s == pytest.approx(7.0)  # (6 + 8) / 2
    assert two.set_time.mean == pytest.approx(4.0) and two.set_time.sd == pytest.approx(math.sqrt(2))  # 3, 5
    assert two.set_time.ci95 == pytest.approx(12.706)  # t(0.975, 1 dof) * sd / sqrt(2), sd = sqrt(2)
    assert two.aggregate_tps == pytest.approx((200 / 3 + 200 / 5) / 2)
    assert two.set_output_tokens == 200 and two.tpot_ms == pytest.approx(20.0)
    assert runfolder.RunPlan.total_rows(plan) == 2 * 2 * 1  # llama.cpp models run at batch 1 only: 1 size
    markdown = summary.summary_markdown(result)
    assert "## Per batch size" in markdown and "4.00 ± 12.71" in markdown
    assert "set time vs batch size" in summary.text_plots(result)


def test_console_prints_the_same_rankings_verdicts_and_charts(run_folder):
    """`taskclock bench` prints what summary.md holds: the rankings rows, a verdict per task, the charts."""
    from rich.console import Console

    from taskclock.tui.commands.bench import print_results

    result = summary.load_summary(run_folder)
    console = Console(width=200, record=True, file=io.StringIO())
    print_results(console, result, plots=True)
    text = console.export_text()
    for group in result.rankings:
        assert f"verdict: {group.verdict}" in text
    for rank in result.ranks:
        assert any(line.split() == " ".join(summary.ranking_row(rank)).split() for line in
                   (row.replace("│", " ").replace("┃", " ") for row in text.splitlines()))
    assert all(title in text for title in _charts(summary.text_plots(result)))


def _tokens(text: str) -> Counter:
    return Counter(word for line in text.splitlines() for word in line.replace("│", " ").split())


def _renders_whole(print_results, result, tables) -> None:
    """Print ``result`` at 80 columns and check every figure and every header word of ``tables`` (headers,
    rows, name columns) shows whole: a figure cut over two lines would be missing as a word."""
    from rich.console import Console

    console = Console(width=80, record=True, file=io.StringIO())
    print_results(console, result, plots=False)
    shown = _tokens(console.export_text())
    wanted: Counter = Counter()
    for headers, rows, names in tables:
        for i, header in enumerate(headers):
            if i not in names:
                wanted.update(header.split())
                wanted.update(word for row in rows for word in row[i].split())
    missing = {word: count for word, count in wanted.items() if shown[word] < count}
    assert not missing, console.export_text()


def test_console_tables_keep_every_figure_whole_at_80_columns(tmp_path):
    """Long model names, batch sizes and repeats (mean ± CI cells): the name columns give way, figures never."""
    folder = tmp_path / "run"
    folder.mkdir()
    models = ("smollm2-hf-8bit", "gemma3-270m")
    plan = _plan(models=models)
    plan.models = [ModelSpec(m, "hf", "/nowhere") for m in models]
    plan.batch_sizes, plan.repeats = [1, 16], 2
    bench.write_plan(folder, plan)
    for m, task, repeat, size in itertools.product(models, ("explain", "mc"), (0, 1), (1, 16)):
        segment = f"{m}-{task}-{repeat}"
        for n, qid in enumerate(("x/0", "x/1", "x/2")):
            row = _row(m, task, qid, 212 + n, 150, 1234.56 + n, 12.3456 + n + repeat, ttft=0.123, parsed="A",
                       answer="A")
            storage.append(folder / runfolder.RESULTS_FILE,
                           {**row, "batch_size": size, "repeat": repeat, **({"segment": segment} if size > 1 else {})})
        if size > 1:
            storage.append(folder / runfolder.RESULTS_FILE, {"kind": "segment", "model": m, "task": task,
                                                         "batch_size": size, "repeat": repeat, "segment": segment,
                                                         "rows": 3, "wall_s": 10.5 + 3.3 * repeat})
    result = summary.load_summary(folder)
    batch_rows = [summary.cell_row(cell, summary.BATCH_COLUMNS) for cell in result.cells]
    assert any(" ± " in value for row in batch_rows for value in row)  # repeats: CIs shown
    shown = []
    for _, keys in bench_command.CONSOLE_TABLES:
        columns = summary.shown_columns(result.cells, summary.table_columns(*keys))
        shown.append(([c.header for c in columns], [summary.cell_row(cell, columns) for cell in result.cells], {0, 1}))
    headers = [column.short_header for column in summary.BATCH_COLUMNS]
    cached = headers.index("cached")  # no cache reported: the console leaves the column out
    shown.append(([h for i, h in enumerate(headers) if i != cached],
                   [[v for i, v in enumerate(row) if i != cached] for row in batch_rows], {0, 1}))
    shown.append(([column.short_header for column in summary.RANKING_COLUMNS],
                   [summary.ranking_row(rank) for rank in result.ranks], {0, 2}))
    _renders_whole(bench_command.print_results, result, shown)


def test_sweep_console_table_keeps_every_figure_whole_at_80_columns():
    cells = [sweep.SweepCell("smollm2-hf-8bit", n, phase, 3, 0, n * 1.01, None, 0.1234 * n / 256, 123456.7, 1234.5,
                             12.345) for n in (256, 16384) for phase in sweep.PHASES]
    result = SimpleNamespace(cells=cells, rows=[])
    columns = [column for column in sweep.COLUMNS if column.key != "cached_tokens"]
    rows = [tables.cell_row(cell, columns) for cell in cells]
    _renders_whole(sweep_command.print_results, result, [([c.short_header for c in columns], rows, {0})])


def test_ordinals_and_counts_in_verdicts():
    from taskclock.runtime.verdict import count, ordinal

    assert [ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th"]
    assert (count(41), count(40.0), count(160 / 3)) == ("41", "40", "53.3")


def test_chart_labels_show_escape_codes_in_names_as_visible_text():
    """A model name is outside text: in a chart label its escape code is shown, never sent to the terminal."""
    import plotext

    cells = [_stats("\x1b[31mred", 90.0, 2.0), _stats("plain", 40.0, 1.0)]
    for plot in (summary.plot_speed_vs_time, summary.plot_words):
        plotext.clear_figure()
        plotext.plotsize(80, 20)
        plot(plotext, cells)
        drawn = plotext.uncolorize(plotext.build())
        assert "␛[31mred · explain" in drawn  # unescaped, uncolorize would have left "red · explain"


def test_latency_percentiles_pool_every_token_of_a_cell():
    """TTFT and task time per reply, ITL per token over all the cell's replies: a 20 ms gap before a 2-token
    chunk is two 10 ms gaps."""
    rows = [{**_row("m", "explain", "x/0", 4, 3, 50.0, 1.0, ttft=0.1), "token_offsets_ms": [100, 110, 130],
             "token_counts": [1, 1, 2]},
            {**_row("m", "explain", "x/1", 2, 2, 50.0, 2.0, ttft=0.3), "token_offsets_ms": [300, 340]},
            _row("m", "explain", "x/2", 0, 0, None, 0.5, stop="error")]  # an error is left out
    value = summary.cell_stats("m", "explain", rows, False).latency
    assert (value.itl_p50_ms, value.itl_p90_ms, value.itl_p99_ms) == pytest.approx((10, 31, 39.1))  # 10, 10, 10, 40
    assert (value.ttft_p50_s, value.ttft_p90_s, value.ttft_p99_s) == pytest.approx((0.2, 0.28, 0.298))
    assert (value.task_p50_s, value.task_p90_s, value.task_p99_s) == pytest.approx((1.5, 1.9, 1.99))
    assert summary.latency_row(value)[:4] == ["0.200", "0.280", "0.298", "10.0"]
