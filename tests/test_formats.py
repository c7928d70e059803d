"""Files written by earlier versions stay readable: session logs and run folders in the layout of before the one
turn record (tests/data/formats/v1, written by the code of commit 8aa1c97; see its README.md) are listed,
summarized, exported and replayed with the figures they recorded, and their runs resume without rerunning a row."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers import ROOT

from taskclock.runtime import metrics, mmlu, replay, runfolder, sessions, summary, sweep
from taskclock.runtime.bench import BenchRunner

V1 = ROOT / "tests" / "data" / "formats" / "v1"
LOGS = ("chat", "compare", "import")


def raw_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def old_figures(record: dict) -> dict:
    """A v1 session record kept its figures under "metrics"; a v1 run row held them itself."""
    return record.get("metrics", record)


def arrival_counts(events) -> list[int]:
    return [e.count for e in events if getattr(e, "kind", "") == "token" and e.count > 0]


@pytest.fixture()
def copy_of(tmp_path):
    """A v1 fixture copied under the test's folder: exports and resumes write, the checkout's copy stays as it is."""
    def copy(name: str) -> Path:
        source = V1 / name
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy(source, target)
        return target
    return copy


@pytest.mark.parametrize("name", LOGS)
def test_v1_session_logs_list_summarize_and_export(name, copy_of):
    log = copy_of(f"sessions/{name}.jsonl")
    stored = raw_lines(log)
    turns = sessions.read_session(log)
    assert len(turns) == len(stored)
    found = sessions.summarize(log)
    assert found.turns == len(stored)
    ttfts = sorted(old_figures(r)["ttft_s"] for r in stored)
    assert found.median_ttft_s == pytest.approx(ttfts[len(ttfts) // 2] if len(ttfts) % 2 else
                                                (ttfts[len(ttfts) // 2 - 1] + ttfts[len(ttfts) // 2]) / 2)
    table = list(csv.DictReader(io.StringIO(sessions.to_csv(turns))))
    assert [float(row["ttft_s"]) for row in table] == pytest.approx([old_figures(r)["ttft_s"] for r in stored],
                                                                     abs=5e-4)
    assert [p.name for p in sessions.export_all(log)] == [f"{name}.export.{fmt}" for fmt in sessions.EXPORT_FORMATS]


@pytest.mark.parametrize("name", LOGS)
def test_v1_session_turns_replay_with_their_recorded_figures(name):
    log = V1 / "sessions" / f"{name}.jsonl"
    for number, record in enumerate(raw_lines(log), 1):
        figures = old_figures(record)
        recording = replay.load_recording(log, number)[2]
        again = metrics.compute(recording.schedule)
        assert again.output_tokens == figures["output_tokens"]
        assert again.ttft_s == pytest.approx(figures["ttft_s"], abs=1e-6)
        assert again.task_time_s == pytest.approx(figures["task_time_s"], abs=1e-6)
        if figures["decode_tps"] is not None:
            # offsets are stored to the microsecond: a scripted server's chunks come a few microseconds apart
            assert again.decode_tps == pytest.approx(figures["decode_tps"], rel=0.01)
        assert arrival_counts(recording.schedule) == record.get("token_counts", [1] * len(record["token_offsets_ms"]))
        assert again.thinking_tokens == figures["thinking_tokens"]


def test_v1_chat_log_keeps_chunk_counts_and_phases():
    """The fixture has a turn whose arrivals held 3 tokens each and a turn that thought: both replay so."""
    log = V1 / "sessions" / "chat.jsonl"
    stored = raw_lines(log)
    chunked = next(i for i, r in enumerate(stored, 1) if "token_counts" in r)
    thought = next(i for i, r in enumerate(stored, 1) if "thinking" in r)
    assert arrival_counts(replay.load_recording(log, chunked)[2].schedule) == stored[chunked - 1]["token_counts"]
    schedule = replay.load_recording(log, thought)[2].schedule
    assert metrics.thinking_text(schedule) == stored[thought - 1]["thinking"]
    assert metrics.answer_text(schedule) == stored[thought - 1]["reply"]


def test_v1_bench_run_reads_summarizes_and_replays(copy_of):
    folder = copy_of("bench-run")
    stored = raw_lines(folder / runfolder.RESULTS_FILE)
    rows = [r for r in stored if r["kind"] == "result"]
    plan = runfolder.read_plan(folder)
    results = runfolder.read_results(folder)
    assert not results.damaged and len(results.rows) == len(rows)
    assert set(results.failures) == {r["model"] for r in stored if r["kind"] == "failure"}
    assert len(results.segments) == sum(r["kind"] == "segment" for r in stored)
    found = summary.export(folder)
    assert {c.model for c in found.cells} == {r["model"] for r in rows}
    for cell in found.cells:
        mine = [r["ttft_s"] for r in rows if r["model"] == cell.model and cell.task in (r["task"], summary.ALL_TASKS)
                and r["batch_size"] == cell.batch_size]
        assert cell.mean("ttft_s") == pytest.approx(sum(mine) / len(mine))
    assert (folder / "summary.md").is_file() and len(plan.question_ids) == 2
    for number, row in enumerate(rows, 1):
        again = metrics.compute(replay.load_recording(folder, number)[2].schedule)
        assert again.ttft_s == pytest.approx(row["ttft_s"], abs=1e-6)
        assert again.output_tokens == row["output_tokens"]


def test_v1_bench_run_resumes_without_rerunning_a_row(copy_of):
    """Every row of the v1 run is done; resuming only retries the model that failed to load (and it fails again)."""
    folder = copy_of("bench-run")
    plan = runfolder.read_plan(folder)
    outcome = BenchRunner(folder, plan, mmlu.load(plan.mmlu).by_id()).run()
    assert outcome.rows_written == 0 and not outcome.interrupted
    failed = {r["model"] for r in raw_lines(V1 / "bench-run" / runfolder.RESULTS_FILE) if r["kind"] == "failure"}
    assert set(outcome.failures) == failed


def test_v1_sweep_run_reads_summarizes_and_resumes(copy_of):
    folder = copy_of("sweep-run")
    stored = raw_lines(folder / runfolder.RESULTS_FILE)
    found = sweep.export(folder)
    assert len(found.rows) == sum(r["kind"] == "sweep" for r in stored)
    skipped = [r["requested_tokens"] for r in stored if r["kind"] == "skip"]
    assert [s["requested_tokens"] for s in found.skips] == skipped
    assert set(found.failures) == {r["model"] for r in stored if r["kind"] == "failure"}
    for cell in found.cells:
        (row,) = [r for r in stored if r["kind"] == "sweep" and r["phase"] == cell.phase]
        assert cell.ttft_s == pytest.approx(row["ttft_s"])
    for number, row in enumerate((r for r in stored if r["kind"] == "sweep"), 1):  # sweep rows replay too
        again = metrics.compute(replay.load_recording(folder, number)[2].schedule)
        assert again.ttft_s == pytest.approx(row["ttft_s"], abs=1e-6) and again.output_tokens == row["output_tokens"]
    outcome = sweep.SweepRunner(folder, sweep.read_plan(folder)).run()
    assert outcome.rows_written == 0 and set(outcome.failures) == set(found.failures)
