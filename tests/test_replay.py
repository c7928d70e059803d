"""Replay, pace and import, headless: real SmolLM2 turns recorded to a session log and re-streamed."""
from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from helpers import one_error_line, run_cli

from taskclock.runtime import bench, importers, metrics, mmlu, replay, runfolder, sessions, storage, tasks, values
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.compare import run_compare
from taskclock.runtime.config import TaskSpec
from taskclock.runtime.errors import DataError, StorageError
from taskclock.runtime.events import Done, Submitted, Token
from taskclock.runtime.mmlu import Question
from taskclock.runtime.models import resolve
from taskclock.runtime.turn import TurnResult, run_turn

PARAMS = SamplingParams(max_tokens=16)
MS = 1_000_000
NS = 1_000_000_000


@pytest.fixture(scope="module")
def recorded(smollm2, tmp_path_factory):
    """Two real SmolLM2 turns in a session log (the first with its load time), and their results."""
    results = [run_turn(smollm2, [{"role": "user", "content": "Name three colours."}], PARAMS, include_load=True),
               run_turn(smollm2, [{"role": "user", "content": "Count to five."}], PARAMS)]
    log = sessions.SessionLog(tmp_path_factory.mktemp("sessions"), "smollm2", datetime(2026, 11, 23, 9, 0, 0))
    for result in results:
        log.append(sessions.turn_record(result))
    return log.path, results


def replay_json(*args: str) -> dict:
    done = run_cli("replay", *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_headless_replay_at_speed_1_gives_the_recorded_figures(recorded):
    path, results = recorded
    number, total, recording = replay.load_recording(path, 1)
    assert (number, total) == (1, 2)
    shown: list[str] = []
    began = time.perf_counter()
    events = replay.play(recording.schedule, 1.0, lambda e: shown.append(e.text) if isinstance(e, Token) else None)
    waited = time.perf_counter() - began
    live, again = results[0].metrics, metrics.compute(events)
    assert again.ttft_s == pytest.approx(live.ttft_s, rel=0.02)
    assert again.decode_tps == pytest.approx(live.decode_tps, rel=0.02)
    assert again.task_time_s == pytest.approx(live.task_time_s, rel=0.02)
    assert again.itl_p50_ms == pytest.approx(live.itl_p50_ms, rel=0.02)
    assert (again.output_tokens, again.output_words, again.output_chars) == (
        live.output_tokens, live.output_words, live.output_chars)
    assert again.load_s == live.load_s and again.stop_reason == live.stop_reason
    assert "".join(shown) == results[0].text
    assert waited >= live.task_time_s * 0.99  # it really waited for the recorded times (a floor, never flaky)


def test_replay_speed_scales_every_time_exactly(recorded):
    path, results = recorded
    at_1 = metrics.compute(replay.rebase(replay.load_recording(path, 2)[2].schedule, 0, 1.0))
    at_4 = replay_json(str(path), "--turn", "2", "--speed", "4")
    at_half = metrics.compute(replay.rebase(replay.load_recording(path, 2)[2].schedule, 0, 0.5))
    assert at_4["turn"] == 2 and at_4["speed"] == 4 and at_4["text"] == results[1].text
    assert at_4["ttft_s"] == pytest.approx(at_1.ttft_s / 4, rel=1e-6)
    assert at_4["task_time_s"] == pytest.approx(at_1.task_time_s / 4, rel=1e-6)
    assert at_4["decode_tps"] == pytest.approx(at_1.decode_tps * 4, rel=1e-6)
    assert at_half.ttft_s == pytest.approx(at_1.ttft_s * 2, rel=1e-6)
    assert at_half.decode_tps == pytest.approx(at_1.decode_tps / 2, rel=1e-6)


def test_replay_defaults_to_the_last_turn_and_prints_the_run_figures_block(recorded):
    path, results = recorded
    done = run_cli("replay", str(path), "--speed", "8")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == results[1].text.strip()
    assert "replaying turn 2 of 2" in done.stderr
    assert "TTFT:" in done.stderr and "decode rate:" in done.stderr and "task time:" in done.stderr


def test_compare_turns_replay_with_their_own_figures(smollm2, tmp_path):
    comparison = run_compare([smollm2, smollm2], [{"role": "user", "content": "Say hi."}],
                             SamplingParams(max_tokens=8))
    log = sessions.SessionLog(tmp_path, "compare")
    for record in comparison.session_records():
        log.append(record)
    for number, result in enumerate(comparison.results, 1):
        figures = replay_json(str(log.path), "--turn", str(number), "--speed", "16")
        assert figures["ttft_s"] == pytest.approx(result.metrics.ttft_s / 16, rel=0.02)
        assert figures["output_tokens"] == result.metrics.output_tokens


def test_bench_rows_replay_from_their_offsets_or_from_even_gaps(smollm2, tmp_path):
    task = TaskSpec("explain", "Explain: {question}", max_tokens=12)
    question = Question("astronomy", 0, "Why is the sky blue?", ("a", "b", "c", "d"), "A")
    events = run_turn(smollm2, [{"role": "user", "content": "Why is the sky blue?"}], PARAMS).events
    row = bench.make_row(ModelSpec("smollm2", "llamacpp", "x"), task, question, events, 1)
    older = {k: v for k, v in row.items() if k != "token_offsets_ms"}  # rows written before offsets were kept
    run = tmp_path / "run"
    run.mkdir()
    storage.append(run / runfolder.RESULTS_FILE, row)
    storage.append(run / runfolder.RESULTS_FILE, older)
    exact = replay_json(str(run), "--turn", "1", "--speed", "16")
    assert exact["ttft_s"] == pytest.approx(row["ttft_s"] / 16, rel=0.02) and exact["notes"] == []
    even = replay.load_recording(run, 2)[2]
    assert even.synthesized and any("even token gaps" in note for note in even.notes)
    figures = metrics.compute(even.schedule)
    assert figures.ttft_s == pytest.approx(row["ttft_s"], rel=1e-6)
    assert figures.decode_tps == pytest.approx(row["decode_tps"], rel=1e-6)
    assert figures.output_tokens == row["output_tokens"] and metrics.output_text(even.schedule) == row["reply"]


def test_multi_token_chunks_keep_their_counts_through_the_log(tmp_path):
    """A server that packs tokens into chunks: the record keeps the counts, so decode TPS replays the same."""
    events = [Submitted(0), Token(200 * MS, "Hello", count=3), Token(260 * MS, " there", count=2),
              Token(300 * MS, " you.", count=4), Done(310 * MS, "eos", output_tokens=9)]
    result = TurnResult("remote", "http", [{"role": "user", "content": "hi"}], SamplingParams(), events)
    record = json.loads(json.dumps(sessions.turn_record(result)))
    assert record["token_counts"] == [3, 2, 4]
    again = metrics.compute(replay.recording_from_record(record, "r").schedule)
    assert again.decode_tps == pytest.approx(result.metrics.decode_tps) and again.output_tokens == 9


def arrival_counts(schedule) -> list[int]:
    return [e.count for e in schedule if isinstance(e, Token) and e.count > 0]


def test_a_bench_row_and_a_session_turn_keep_the_same_chunk_counts():
    """Arrivals of 3 tokens each: the one turn record keeps each arrival's count in a bench row as in a session turn
    (bench rows used to drop them and replay 1 token per arrival), so both replay the turn's decode rate."""
    events = [Submitted(0), Token(200 * MS, "One two three", count=3), Token(260 * MS, " four five six", count=3),
              Token(300 * MS, " seven eight nine.", count=3), Done(310 * MS, "eos", input_tokens=5, output_tokens=9)]
    result = TurnResult("remote", "http", [{"role": "user", "content": "Count."}], SamplingParams(), events)
    question = Question("astronomy", 0, "Count.", ("a", "b", "c", "d"), "A")
    row = bench.make_row(ModelSpec("remote", "http", "x"), TaskSpec("explain", "{question}", 16), question, events, 1)
    turn = sessions.turn_record(result)
    for stored in (row, turn):
        again = replay.recording_from_record(json.loads(json.dumps(stored)), "r").schedule
        assert arrival_counts(again) == [3, 3, 3]
        assert metrics.compute(again).decode_tps == pytest.approx(result.metrics.decode_tps)
        assert metrics.compute(again).itl_p50_ms == pytest.approx(result.metrics.itl_p50_ms)


def test_a_bench_row_and_a_session_turn_from_a_server_of_3_tokens_a_chunk_replay_alike(tmp_path):
    """A real server on loopback that sends 3 tokens a chunk (and says so only in its final usage, which the HTTP
    backend spreads over the chunks): a bench row and a session turn of the same reply replay with the same
    per-arrival counts, token count and per-token figures as the live turn."""
    from llama_server import content_chunk, running_scripted_server, sse

    chunks = ["One two three", " four five six", " seven eight nine."]
    script = [sse(content_chunk(chunks[0]))]
    for chunk in chunks[1:]:
        script += [0.02, sse(content_chunk(chunk))]
    usage = {"prompt_tokens": 5, "completion_tokens": 3 * len(chunks), "total_tokens": 5 + 3 * len(chunks)}
    script += [sse(content_chunk("", "stop")), sse({"choices": [], "usage": usage}), sse("[DONE]")]
    with running_scripted_server(script, prompt=True) as server:
        spec = resolve(f"{server.url}#scripted")
        data = mmlu.load_embedded()
        folder, plan = bench.prepare(models=[spec], task_list=tasks.resolve(["explain"]), data=data, subjects=None,
                                     limit=1, seed=0, batch_size=1, warmup=0, max_tokens=16,
                                     sampling=SamplingParams(), runs_dir=tmp_path / "runs")
        assert bench.BenchRunner(folder, plan, data.by_id()).run().rows_written == 1
        model = load_model(spec)
        live = run_turn(model, [{"role": "user", "content": "Count."}], SamplingParams(max_tokens=16))
        model.close()
    log = sessions.SessionLog(tmp_path / "sessions", spec.name)
    log.append(sessions.turn_record(live))
    replayed = [replay.load_recording(source, 1)[2].schedule for source in (folder, log.path)]
    assert arrival_counts(replayed[0]) == arrival_counts(replayed[1]) == metrics.token_counts(live.events) == [3] * 3
    stored = [runfolder.read_results(folder).rows[0], sessions.read_session(log.path)[0]]
    for record, schedule in zip(stored, replayed, strict=True):  # each replays the figures its own turn recorded
        again = metrics.compute(schedule)
        assert again.output_tokens == record["output_tokens"] == 3 * len(chunks)
        assert again.decode_tps == pytest.approx(record["decode_tps"], rel=1e-3)
        assert again.itl_p50_ms == pytest.approx(record["itl_p50_ms"], rel=1e-3)
    assert metrics.output_text(replayed[0]) == metrics.output_text(replayed[1]) == "".join(chunks)


def test_hostile_log_text_is_shown_inert(tmp_path):
    path = tmp_path / "evil.jsonl"
    storage.append(path, {"kind": "chat", "model": "[bold]x\x1b]0;pwn\x07", "prompt": "p\x1b[2J",
                          "reply": "ok \x1b[31mred\x9b[0m [link=file:///etc]y[/link]\u202e",
                          "metrics": {"ttft_s": 0.01, "output_tokens": 3, "task_time_s": 0.03},
                          "token_offsets_ms": [10.0, 20.0, 30.0], "stop_reason": "$(rm -rf)"})
    done = run_cli("replay", str(path))
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr and "\x9b" not in done.stdout and "\u202e" not in done.stdout
    assert "[link=file:///etc]y[/link]" in done.stdout and "␛[31mred" in done.stdout
    recording = replay.load_recording(path)[2]
    assert "\x1b" not in recording.label + recording.prompt
    assert metrics.compute(recording.schedule).stop_reason == "eos"
    as_json = run_cli("replay", str(path), "--json", "--speed", "10").stdout
    assert as_json.isascii() and "\x1b" not in as_json


@pytest.mark.parametrize(("args", "message"), [
    (("missing.jsonl",), "does not exist"),
    (("{log}", "--turn", "9"), "there is no turn 9"),
    (("{damaged}",), "not rising non-negative numbers"),
    (("{empty}",), "none of its 1 record is a recorded turn (kinds: config)"),
])
def test_bad_replay_input_is_one_error_line(tmp_path, args, message):
    log, damaged, empty = tmp_path / "log.jsonl", tmp_path / "damaged.jsonl", tmp_path / "empty.jsonl"
    storage.append(log, {"kind": "chat", "metrics": {}, "token_offsets_ms": []})
    storage.append(damaged, {"kind": "chat", "metrics": {}, "token_offsets_ms": [5.0, 1.0, "x"]})
    storage.append(empty, {"kind": "config"})
    names = {"log": log, "damaged": damaged, "empty": empty}
    done = run_cli("replay", *(a.format(**names) for a in args), cwd=tmp_path)
    assert done.returncode != 0
    assert done.stderr.startswith("taskclock: error: ") and message in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_replay_speed_must_be_positive(recorded):
    done = run_cli("replay", str(recorded[0]), "--speed", "0")
    assert "--speed must be at least 0.01 and at most 1000, not 0.0" in one_error_line(done)


# ---- pace ------------------------------------------------------------------------------------------

def test_pace_follows_its_own_schedule():
    done = run_cli("pace", "--ttft", "0.2", "--tps", "50", "--words", "15", "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    tokens = round(15 / replay.WORDS_PER_TOKEN)
    assert figures["output_words"] == 15 and figures["output_tokens"] == tokens
    assert figures["ttft_s"] == pytest.approx(0.2, abs=1e-9)
    assert figures["decode_tps"] == pytest.approx(50, rel=1e-6)
    assert figures["task_time_s"] == pytest.approx(0.2 + (tokens - 1) / 50, abs=1e-6)
    assert figures["itl_p50_ms"] == pytest.approx(20, abs=1e-3) and figures["itl_p99_ms"] == pytest.approx(20, abs=1e-3)
    assert figures["text"] == replay.canned_text(15) and "outruns a reader" in figures["reading"]


def test_pace_streams_to_the_terminal_and_says_when_a_reader_waits():
    done = run_cli("pace", "--ttft", "0", "--tps", "4", "--words", "3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == replay.canned_text(3)
    assert "so a reader waits on the text" in done.stderr and "decode rate:" in done.stderr
    assert f"~{replay.READING_WORDS_PER_S:g} words/s" in replay.reading_line(4)


@pytest.mark.parametrize("args", [("--tps", "0"), ("--words", "0"), ("--ttft", "-1"), ("--words", "99999"),
                                  ("--tps", "1e9"), ("--ttft", "1e6"), ("--tps", "nan")])
def test_bad_pace_values_are_one_error_line(args):
    done = run_cli("pace", *args)
    assert done.returncode == 2 and args[0] in one_error_line(done) and done.stdout == ""


def test_pace_ranges_live_in_values():
    """The CLI and the Pace tab share one range (runtime/values.py): the bounds themselves are accepted."""
    recording = replay.pace_recording(values.PACE_TTFT_MAX_S, values.PACE_TPS_MAX, values.PACE_WORDS_MAX)
    assert recording.recorded["decode_tps"] == values.PACE_TPS_MAX
    with pytest.raises(values.InvalidValue, match="tps must be at least 0.01 and at most"):
        replay.pace_recording(1.0, values.PACE_TPS_MAX * 2, 10)
    assert replay.pace_recording(0.0, values.PACE_TPS_MIN, 1).recorded["ttft_s"] == 0.0


# ---- import ----------------------------------------------------------------------------------------

def vllm_result(texts: bool = True) -> dict:
    """A small `vllm bench serve --save-result --save-detailed` result, from the field names vLLM writes."""
    result = {
        "date": "20261123-091500", "backend": "vllm", "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "tokenizer_id": "meta-llama/Llama-3.1-8B-Instruct", "num_prompts": 3, "duration": 2.5, "completed": 2,
        "total_input_tokens": 41, "total_output_tokens": 9, "request_throughput": 0.8, "output_throughput": 3.6,
        "mean_ttft_ms": 175.0, "median_ttft_ms": 175.0, "mean_tpot_ms": 22.5, "mean_itl_ms": 22.5,
        "input_lens": [12, 17, 12], "output_lens": [5, 0, 4],
        "ttfts": [0.2, 0.0, 0.15], "itls": [[0.02, 0.025, 0.02, 0.025], [], [0.03, 0.01, 0.02]],
        "e2els": [0.31, 0.0, 0.22],
        "generated_texts": ["The sky is blue.", "", "Paris, of course."],
        "errors": ["", "Connection reset", ""],
    }
    if not texts:
        del result["generated_texts"]
    return result


def test_vllm_import_round_trips_to_a_replayable_session(tmp_path):
    source, out = tmp_path / "vllm.json", tmp_path / "imported.jsonl"
    source.write_text(json.dumps(vllm_result()))
    done = run_cli("import", str(source), "--format", "vllm", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "imported 2 request(s), skipped 1" in done.stderr and "placeholder" not in done.stderr
    assert sessions.summarize(out).turns == 2  # a session log like any other (Sessions tab, export)
    for number, index in ((1, 0), (2, 2)):
        data = vllm_result()
        figures = replay_json(str(out), "--turn", str(number))
        gaps = data["itls"][index]
        assert figures["ttft_s"] == pytest.approx(data["ttfts"][index], rel=1e-6)
        assert figures["decode_tps"] == pytest.approx((data["output_lens"][index] - 1) / sum(gaps), rel=1e-6)
        assert figures["task_time_s"] == pytest.approx(data["e2els"][index], rel=1e-6)
        assert figures["itl_p99_ms"] == pytest.approx(metrics.percentile([g * 1000 for g in gaps], 99), rel=1e-6)
        assert figures["text"] == data["generated_texts"][index] and figures["notes"] == []
        assert figures["input_tokens"] == data["input_lens"][index]
        assert figures["output_tokens"] == data["output_lens"][index]


def test_vllm_import_without_texts_replays_placeholder_words_and_says_so(tmp_path):
    source, out = tmp_path / "vllm.json", tmp_path / "imported.jsonl"
    source.write_text(json.dumps(vllm_result(texts=False)))
    done = run_cli("import", str(source), "-o", str(out))
    assert done.returncode == 0 and "placeholder words" in done.stderr
    figures = replay_json(str(out), "--turn", "1")
    assert figures["output_tokens"] == 5 and figures["text"] == replay.placeholder_for(5)
    assert any("placeholder text" in note for note in figures["notes"])


def test_import_never_replaces_a_file(tmp_path):
    source, out = tmp_path / "vllm.json", tmp_path / "mine.jsonl"
    source.write_text(json.dumps(vllm_result()))
    out.write_text("precious\n")
    done = run_cli("import", str(source), "-o", str(out))
    assert done.returncode != 0 and "already exists" in done.stderr and out.read_text() == "precious\n"
    with pytest.raises(StorageError, match="already exists"):
        storage.write_atomic(out, "other", replace=False)
    assert out.read_text() == "precious\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.jsonl", "vllm.json"]  # no partial file left


def test_import_makes_missing_folders_but_still_never_replaces(tmp_path):
    source, out = tmp_path / "vllm.json", tmp_path / "imp" / "gpu" / "h100.jsonl"
    source.write_text(json.dumps(vllm_result()))
    done = run_cli("import", str(source), "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert sessions.summarize(out).turns == 2
    again = run_cli("import", str(source), "-o", str(out))
    assert "already exists" in one_error_line(again) and sessions.summarize(out).turns == 2
    blocked = tmp_path / "a-file"
    blocked.write_text("precious\n")
    assert "a-file" in one_error_line(run_cli("import", str(source), "-o", str(blocked / "x.jsonl")))
    assert blocked.read_text() == "precious\n"


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "as JSON"),
    ('{"ttfts": [0.1]}', "no per-request itls, output_lens"),
    ('{"ttfts": [0.1], "itls": [], "output_lens": [3]}', "one entry per request"),
    ('{"ttfts": [0.0], "itls": [[]], "output_lens": [3], "errors": ["boom"]}', "no successful request"),
    ("[1, 2]", "not a JSON object"),
])
def test_bad_import_files_are_one_error_line(tmp_path, content, message):
    source = tmp_path / "bad.json"
    source.write_text(content)
    done = run_cli("import", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.jsonl").exists()


def test_import_records_are_session_records():
    records, skipped, placeholder = importers.vllm_records(vllm_result(), "vllm.json")
    assert skipped == 1 and not placeholder and len(records) == 2
    assert set(sessions.turn_record(TurnResult("m", "b", [], SamplingParams(), [Submitted(0)]))) <= set(records[0])
    with pytest.raises(DataError):
        replay.pick_turn(records, 3)


def genai_perf_export() -> dict:
    """A small GenAI-Perf profile_export.json (perf_analyzer's layout): ns timestamps per request and response."""
    def sse(delta: dict) -> dict:
        return {"response": "data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) + "\n\n"}

    start = 1_745_526_100_000_000_000
    return {"version": "1.0", "service_kind": "openai", "endpoint": "v1/chat/completions", "experiments": [
        {"experiment": {"mode": "concurrency", "value": 1}, "requests": [
            {"timestamp": start, "request_inputs": {"payload": "{}"},
             "response_timestamps": [start + 150 * MS, start + 180 * MS, start + 205 * MS, start + 240 * MS,
                                     start + 245 * MS],
             "response_outputs": [sse({"role": "assistant"}), sse({"content": "Blue"}), sse({"content": " sky"}),
                                  sse({"content": "."}), {"response": "data: [DONE]\n\n"}]},
            {"timestamp": start + NS, "request_inputs": {"text_input": "Hello world!"},
             "response_timestamps": [start + NS + 43 * MS], "response_outputs": [{"text_output": "Hi!"}]},
            {"timestamp": start + 2 * NS, "response_timestamps": [start + 2 * NS + 90 * MS, start + 2 * NS + 130 * MS]},
            {"timestamp": start + 3 * NS, "response_timestamps": []},
        ]}]}


def test_genai_perf_import_round_trips_to_a_replayable_session(tmp_path):
    source, out = tmp_path / "profile_export.json", tmp_path / "imported.jsonl"
    source.write_text(json.dumps(genai_perf_export()))
    done = run_cli("import", str(source), "--format", "genai-perf", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert "imported 3 request(s), skipped 1" in done.stderr and "placeholder" in done.stderr
    chat = replay_json(str(out), "--turn", "1")
    assert chat["text"] == "Blue sky." and chat["output_tokens"] == 3  # the role-only and [DONE] chunks carry no text
    assert chat["ttft_s"] == pytest.approx(0.18) and chat["task_time_s"] == pytest.approx(0.245)
    assert chat["decode_tps"] == pytest.approx(2 / 0.060) and chat["itl_p50_ms"] == pytest.approx(30)
    triton = replay_json(str(out), "--turn", "2")
    assert triton["text"] == "Hi!" and triton["ttft_s"] == pytest.approx(0.043) and triton["notes"] == []
    assert replay.load_recording(out, 2)[2].prompt == "Hello world!"
    bare = replay_json(str(out), "--turn", "3")
    assert bare["output_tokens"] == 2 and bare["text"] == replay.placeholder_for(2)
    assert bare["decode_tps"] == pytest.approx(1 / 0.040) and any("placeholder" in n for n in bare["notes"])


def test_genai_perf_import_needs_its_layout(tmp_path):
    source = tmp_path / "vllm.json"
    source.write_text(json.dumps(vllm_result()))
    done = run_cli("import", str(source), "--format", "genai-perf", "-o", str(tmp_path / "out.jsonl"))
    assert done.returncode != 0 and "not a GenAI-Perf profile export" in done.stderr and "Traceback" not in done.stderr
