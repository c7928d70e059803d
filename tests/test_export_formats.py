"""Export in the forms other tools read (vLLM's bench result, llama.cpp's timings) and back through `import`: real
SmolLM2 turns and a real bench run re-import to the same figures."""
from __future__ import annotations

import json
from datetime import datetime

import pytest
from helpers import bench_args, one_error_line, run_cli

from taskclock.runtime import importers, sessions
from taskclock.runtime.backend import SamplingParams
from taskclock.runtime.turn import run_turn

EXACT = ("output_tokens", "input_tokens")
# A log stores token times to the microsecond: the figures it recomputes to agree with the live ones to that, and
# an exported file read back and exported again is the same file (the test below).
TIMES = ("ttft_s", "task_time_s")
RATES = ("decode_tps",)  # over the span first to last token, whose two µs-rounded ends move it by at most 1 µs
SPAN_RESOLUTION_MS = 1e-3


def rate_rel(turn: dict) -> float:
    """How far a rate recomputed from a turn's stored offsets may be from its live figure: 1 µs over the span
    (a bench answer of a few tokens spans tens of ms, a chat reply hundreds)."""
    offsets = turn["token_offsets_ms"]
    return SPAN_RESOLUTION_MS / (offsets[-1] - offsets[0])


@pytest.fixture(scope="module")
def session(smollm2, tmp_path_factory):
    """A real three-turn SmolLM2 chat session log."""
    log = sessions.SessionLog(tmp_path_factory.mktemp("sessions"), "smollm2", datetime(2026, 11, 23, 9, 0, 0))
    history: list[dict] = []
    for prompt in ("Name three colours.", "Count to five.", "Say hello in French."):
        result = run_turn(smollm2, [*history, {"role": "user", "content": prompt}], SamplingParams(max_tokens=16))
        log.append(sessions.turn_record(result))
        history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": result.text}]
    return log.path


def same_figures(original: list[dict], imported: list[dict], itl: bool) -> None:
    assert len(imported) == len(original)
    for before, after in zip(original, imported, strict=True):
        old, new = before, after
        for key in EXACT:
            assert new[key] == old[key], key
        for key in TIMES:
            assert new[key] == pytest.approx(old[key], abs=2e-6), key
        for key in RATES:
            assert new[key] == pytest.approx(old[key], rel=rate_rel(old)), key
        assert after["reply"] == before["reply"]
        if itl:  # per-token times survive (vLLM keeps every gap); llama.cpp's timings hold none
            assert after["token_offsets_ms"] == pytest.approx(before["token_offsets_ms"], abs=2e-3)
            assert new["itl_p50_ms"] == pytest.approx(old["itl_p50_ms"], abs=2e-3)


@pytest.mark.parametrize("fmt", importers.EXPORT_FORMATS)
def test_an_exported_session_reimports_to_the_same_figures(session, tmp_path, fmt):
    done = run_cli("export", str(session), "--format", fmt, "-o", str(tmp_path / f"out.{fmt}"))
    assert done.returncode == 0, done.stderr
    out = tmp_path / "back.jsonl"
    back = run_cli("import", str(tmp_path / f"out.{fmt}"), "--format", fmt, "-o", str(out))
    assert back.returncode == 0, back.stderr
    same_figures(sessions.read_session(session), sessions.read_session(out), itl=fmt == "vllm")
    again = tmp_path / f"again.{fmt}"
    assert run_cli("export", str(out), "--format", fmt, "-o", str(again)).returncode == 0
    first, second = ((tmp_path / f"out.{fmt}").read_text(), again.read_text())
    if fmt == "vllm":  # the same file, its date aside
        first, second = (json.loads(t) for t in (first, second))
        first.pop("date"), second.pop("date")
        assert first["model_id"] == "smollm2" and second["model_id"] == "smollm2"
    assert first == second


def test_the_vllm_form_has_vllms_names_units_and_summary(session, tmp_path):
    target = sessions.export_session(session, "vllm")
    assert target == session.with_name(f"{session.stem}.export.vllm.json")
    data = json.loads(target.read_text())
    turns = sessions.read_session(session)
    assert data["completed"] == data["num_prompts"] == 3 and data["errors"] == ["", "", ""]
    assert data["ttfts"] == pytest.approx([t["ttft_s"] for t in turns], abs=2e-6)  # seconds
    assert data["output_lens"] == [t["output_tokens"] for t in turns]
    assert [len(gaps) for gaps in data["itls"]] == [len(t["token_offsets_ms"]) - 1 for t in turns]
    assert data["median_ttft_ms"] == pytest.approx(sorted(data["ttfts"])[1] * 1000)
    assert data["total_output_tokens"] == sum(data["output_lens"])
    assert sessions.list_sessions(session.parent)[0].path == session  # an export is not listed as a session


def test_the_llama_form_is_llama_servers_timings(session):
    target = sessions.export_session(session, "llama")
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    turns = sessions.read_session(session)
    for line, turn in zip(lines, turns, strict=True):
        timings, figures = line["timings"], turn
        assert timings["prompt_n"] == figures["input_tokens"] == line["tokens_evaluated"]
        assert timings["prompt_ms"] == pytest.approx(figures["ttft_s"] * 1000, abs=2e-3)
        assert timings["predicted_n"] == figures["output_tokens"] - 1 == line["tokens_predicted"] - 1
        assert timings["predicted_per_second"] == pytest.approx(figures["decode_tps"], rel=rate_rel(turn))
        assert timings["predicted_per_token_ms"] == pytest.approx(1000 / figures["decode_tps"], rel=rate_rel(turn))
        assert line["content"] == turn["reply"]


def test_a_bench_run_exports_its_rows_and_reimports_to_the_same_figures(tmp_path):
    done = run_cli(*bench_args(tmp_path / "runs", limit=2))
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    exported = run_cli("export", str(folder), "--format", "vllm")
    assert exported.returncode == 0, exported.stderr
    target = folder / "results.export.vllm.json"
    assert exported.stdout.strip() == str(target)
    out = tmp_path / "bench.jsonl"
    assert run_cli("import", str(target), "-o", str(out)).returncode == 0
    rows = sessions.read_session(folder, bench_rows=True)
    same_figures(rows, sessions.read_session(out), itl=True)
    assert "already exists" in one_error_line(run_cli("export", str(folder), "--format", "vllm"))
    assert "apply to session logs" in one_error_line(run_cli("export", str(folder), "-o", str(tmp_path / "x")))
