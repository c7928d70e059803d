"""Session logs and their exports, on real SmolLM2 turns."""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
from datetime import datetime

import pytest
from helpers import run_cli

from taskclock.runtime import metrics, sessions
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.errors import DataError, StorageError
from taskclock.runtime.turn import run_turn


@pytest.fixture(scope="module")
def two_turns(smollm2):
    params = SamplingParams(max_tokens=12)
    first = run_turn(smollm2, [{"role": "user", "content": "Name a colour."}], params, include_load=True)
    second = run_turn(smollm2, [{"role": "user", "content": "Name a fruit."}], params)
    return first, second


@pytest.fixture
def session_file(tmp_path, two_turns):
    log = sessions.SessionLog(tmp_path / "sessions", "smollm2", datetime(2026, 11, 22, 9, 30, 5))
    for result in two_turns:
        log.append(sessions.turn_record(result))
    return log.path


def test_record_keeps_what_recomputes_the_metrics(two_turns):
    result = two_turns[0]
    record = json.loads(json.dumps(sessions.turn_record(result, kind="compare", round=3)))
    assert record["kind"] == "compare" and record["round"] == 3
    assert record["model"] == "smollm2" and record["backend"] == "llamacpp"
    assert record["reply"] == result.text and record["prompt"] == "Name a colour."
    assert record["params"]["max_tokens"] == 12
    offsets = record["token_offsets_ms"]
    assert len(offsets) == result.metrics.output_tokens and offsets == sorted(offsets)
    assert offsets[0] / 1000 == pytest.approx(record["ttft_s"], abs=1e-5)
    assert record["load_s"] == result.metrics.load_s and record["load_s"] > 0
    assert record["stop_reason"] == result.done.stop_reason


def test_session_file_named_by_start_time_and_model(tmp_path):
    assert sessions.session_file_name(datetime(2026, 1, 2, 3, 4, 5), "smollm2") == "20260102-030405-smollm2.jsonl"
    assert sessions.session_file_name(datetime(2026, 1, 2, 3, 4, 5), "/m/Q 4.gguf") == "20260102-030405-Q_4.gguf.jsonl"
    log = sessions.SessionLog(tmp_path / "new", "x")
    assert not log.path.exists()  # an empty session leaves no file


def test_two_sessions_started_in_the_same_second_get_a_file_each(tmp_path, two_turns):
    started = datetime(2026, 11, 22, 9, 30, 5)
    first, second = (sessions.SessionLog(tmp_path, "smollm2", started) for _ in range(2))
    first.append(sessions.turn_record(two_turns[0]))
    second.append(sessions.turn_record(two_turns[1]))
    first.append(sessions.turn_record(two_turns[1]))
    assert first.path.name == "20261122-093005-smollm2.jsonl"
    assert second.path.name == "20261122-093005-smollm2-2.jsonl"
    assert [t["prompt"] for t in sessions.read_session(first.path)] == ["Name a colour.", "Name a fruit."]
    assert [t["prompt"] for t in sessions.read_session(second.path)] == ["Name a fruit."]


def test_unwritable_folder_is_a_storage_error(tmp_path, two_turns):
    if os.geteuid() == 0:
        blocked = tmp_path / "file-not-folder"
        blocked.write_text("")
        folder = blocked / "sessions"
    else:
        folder = tmp_path / "ro"
        folder.mkdir(mode=0o500)
    with pytest.raises(StorageError, match="cannot write"):
        sessions.SessionLog(folder, "smollm2").append(sessions.turn_record(two_turns[0]))


def test_csv_has_a_row_per_turn_with_metric_columns(session_file, two_turns):
    target = sessions.export_session(session_file, "csv")
    assert target == session_file.with_name(session_file.stem + ".export.csv")
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == 2
    for row, result in zip(rows, two_turns, strict=True):
        figures = result.metrics
        assert row["ttft_s"] == str(round(figures.ttft_s, 3))  # s to 3 decimals, ms to 0.1, rates to 2
        assert row["itl_p50_ms"] == str(round(figures.itl_p50_ms, 1))
        assert row["decode_tps"] == str(round(figures.decode_tps, 2))
        assert int(row["output_tokens"]) == figures.output_tokens
        assert row["reply"] == result.text


def test_markdown_has_a_summary_table(session_file, two_turns, tmp_path):
    target = sessions.export_session(session_file, "md", tmp_path / "out.md")
    text = target.read_text()
    assert text.count("\n| ") == 3  # header + two turns
    decode = metrics.figure_format("decode_tps")  # as the figure registry writes it
    assert f"| {decode.header} |" in text and f"| {decode.text(two_turns[1].metrics.decode_tps)} |" in text
    assert "Name a fruit." in text


def test_markdown_says_1_turn_and_stopped(tmp_path, two_turns):
    first = two_turns[0]
    cancelled = dataclasses.replace(first.done, stop_reason="cancelled")
    stopped = dataclasses.replace(first, events=[*first.events[:-1], cancelled])
    text = sessions.to_markdown([sessions.turn_record(stopped)])
    assert "\n1 turn.\n" in text and "| stopped |" in text and "cancelled" not in text


def test_jsonl_export_is_the_log_as_is(session_file):
    target = sessions.export_session(session_file, "jsonl")
    assert [json.loads(line) for line in target.read_text().splitlines()] == sessions.read_session(session_file)


def test_summaries_list_sessions_but_not_exports(session_file, two_turns):
    sessions.export_all(session_file)
    (summary,) = sessions.list_sessions(session_file.parent)
    assert summary.turns == 2 and summary.model == "smollm2"
    assert (summary.started, summary.first_prompt) == ("2026-11-22 09:30", "Name a colour.")
    ttfts = [r.metrics.ttft_s for r in two_turns]
    assert summary.median_ttft_s == pytest.approx(sum(ttfts) / 2)


def test_not_a_session_file(tmp_path):
    bogus = tmp_path / "x.jsonl"
    bogus.write_text('{"hello": 1}\n')
    with pytest.raises(DataError, match="not a taskclock session"):
        sessions.read_session(bogus)
    with pytest.raises(DataError, match="does not exist"):
        sessions.read_session(tmp_path / "missing.jsonl")
    assert sessions.list_sessions(tmp_path) == []


def test_export_command(session_file, tmp_path):
    out = tmp_path / "s.md"
    done = run_cli("export", str(session_file), "--format", "md", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out) and out.read_text().startswith("# taskclock session")
    bad = run_cli("export", str(session_file.parent), "--format", "csv")
    assert bad.returncode == 2 and "is a folder" in bad.stderr and "Traceback" not in bad.stderr
    missing = run_cli("export", str(tmp_path / "none.jsonl"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
