"""Side-by-side trials: the winner and verdict rules, real runs (in-process, HTTP, concurrent), the session
log and `taskclock compare` as a user runs it."""
from __future__ import annotations

import json
import re
import threading

import pytest
from helpers import run_cli
from llama_server import (
    content_chunk,
    free_port,
    running_scripted_server,
    sse,
)

from taskclock.runtime import sessions
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.compare import COLUMNS, Comparison, check_model_count, run_compare
from taskclock.runtime.errors import ModelLoadError, ModelNotFound
from taskclock.runtime.events import Done, Submitted, Token
from taskclock.runtime.models import resolve
from taskclock.runtime.turn import TurnResult

ASK = [{"role": "user", "content": "Name three colours."}]
SHORT = SamplingParams(max_tokens=12)
MS = 1_000_000


def shaped(model: str, gaps_ms: list[int], word: str = "w ", stop: str = "eos") -> TurnResult:
    """A turn whose tokens arrived at the given gaps (the first gap is the TTFT): the rules' test input."""
    events, t = [Submitted(0)], 0
    for gap in gaps_ms:
        t += gap * MS
        events.append(Token(t, word))
    events.append(Done(t + MS, stop))
    result = TurnResult(model, "test", ASK, SHORT)
    result.events = events
    return result


def expected_winners(comparison: Comparison) -> dict[str, list[str]]:
    rows = [r for r in comparison.rows() if r["stop_reason"] not in ("error", "cancelled")]
    out = {}
    for column in COLUMNS:
        values = {r["model"]: r[column.key] for r in rows if r[column.key] is not None}
        best = (min if column.better == "low" else max)(values.values()) if values else None
        out[column.key] = [m for m, v in values.items() if v == best]
    return out


def test_verbose_fast_model_loses_to_concise_slow_one():
    verbose = shaped("verbose", [100] + [10] * 40)  # 100 tok/s after the first token, 41 words, 0.5 s
    concise = shaped("concise", [100, 50, 50, 50])  # 20 tok/s, 4 words, 0.25 s
    comparison = Comparison([verbose, concise], concurrent=False, compare_id="x")
    winners = comparison.winners()
    assert winners["decode_tps"] == ["verbose"] and winners["task_time_s"] == ["concise"]
    assert winners["ttft_s"] == ["verbose", "concise"]  # a tie is shared
    assert winners["output_words"] == ["concise"] and winners["output_tokens"] == ["concise"]
    # 41 / 4 = 10.25 more words, printed to one decimal; saying more: 37 more tokens at verbose's 0.401 s / 41 a
    # token = 0.36 s; writing slower: concise's 4 tokens × (9.8 − 37.8) ms = −0.11 s; they add up to the gap
    assert comparison.verdict() == (
        "fastest to finish: concise (0.25 s); highest tok/s: verbose (100.0 tok/s), which finishes later: it writes "
        "10.2× more words (41 vs 4; 145% of the gap); gap 0.25 s = TTFT +0.00 s (0%) + saying more +0.36 s (145%) "
        "+ writing slower -0.11 s (-45%), residual +0.00 s; one sample (more repeats would give an interval)")


def test_verdict_names_one_model_when_it_wins_both_and_why_the_other_is_later():
    comparison = Comparison([shaped("a", [50, 10, 10]), shaped("b", [50, 20, 20])], False, "x")
    assert comparison.winners()["decode_tps"] == comparison.winners()["task_time_s"] == ["a"]
    assert comparison.verdict().startswith("fastest to finish: a (0.07 s); highest tok/s: a (100.0 tok/s); b "
                                           "finishes later: it writes slower (")


def test_verdict_says_a_late_start_when_words_are_even():
    late = shaped("late", [400, 10, 10])  # 100 tok/s, but the first token waits 0.4 s
    prompt = shaped("prompt", [50, 40, 40])  # 25 tok/s, done at 0.13 s
    assert ", which finishes later: it starts 0.35 s later (TTFT, 121% of the gap); " in \
        Comparison([late, prompt], False, "x").verdict()


def test_repeats_give_an_interval_that_decides_whether_the_order_stands():
    steady = [shaped("late", [400 + d, 10, 10]) for d in (0, 5, -5)]
    prompt = [shaped("prompt", [50, 40, 40]) for _ in range(3)]
    paired = Comparison([steady[0], prompt[0]], False, "x", [steady, prompt])
    assert paired.repeats == 3 and paired.rows()[0]["repeats"] == 3
    assert paired.rows()[0]["ttft_s"] == pytest.approx(0.4)  # the mean over the repeats
    assert "fastest to finish: prompt (0.13 s, mean of 3)" in paired.verdict()
    assert "it starts 0.35 s later (TTFT, 121% of the gap); 0.29 s ± 0.01 s (n=3): gap 0.29 s" in paired.verdict()
    noisy = [shaped("late", [d, 10, 10]) for d in (10, 400, 20)]  # later on one repeat of three
    verdict = Comparison([noisy[0], prompt[0]], False, "x", [noisy, prompt]).verdict()
    assert ", within noise (n=3, ±" in verdict and "(about " in verdict and "repeats would, at this spread)" in verdict


def test_a_reply_cut_at_the_cap_is_marked():
    cut = shaped("wordy", [10] * 8, stop="length")
    short = shaped("short", [10, 10])
    comparison = Comparison([cut, short], False, "x", cap=8)
    assert comparison.rows()[0]["cut_replies"] == 1
    assert comparison.verdict().endswith("; wordy hit the 8-token cap in its reply: its real task time is longer")


def test_no_verdict_when_no_reply_finished():
    comparison = Comparison([shaped("a", [5], stop="error"), shaped("b", [5, 1], stop="cancelled")], False, "x")
    assert comparison.verdict() is None


def test_errored_and_stopped_replies_cannot_win():
    failed = shaped("failed", [5], stop="error")
    stopped = shaped("stopped", [5, 1], stop="cancelled")
    whole = shaped("whole", [50, 20, 20])
    winners = Comparison([failed, stopped, whole], False, "x").winners()
    assert all(models == ["whole"] for key, models in winners.items())


def test_duplicate_models_get_numbered_labels():
    comparison = Comparison([shaped("m", [10, 10]), shaped("m", [10, 20])], False, "x")
    assert comparison.labels() == ["m", "m #2"]
    assert [r["model"] for r in comparison.rows()] == ["m", "m #2"]


def test_model_count_is_checked():
    with pytest.raises(ModelNotFound):
        check_model_count(["smollm2"])
    with pytest.raises(ModelNotFound):
        check_model_count(["a", "b", "c", "d", "e"], maximum=4)
    check_model_count(["a", "b"], maximum=4)


def test_sequential_run_in_process_and_over_http(smollm2, llama_server):
    served = load_model(resolve(llama_server.url))
    started, seen = [], {0: [], 1: []}
    try:
        comparison = run_compare([smollm2, served], ASK, SHORT, on_start=lambda i, repeat: started.append(i),
                                 on_event=lambda i, e: seen[i].append(e))
    finally:
        served.close()
    assert started == [0, 1]
    first, second = comparison.results
    assert first.text == second.text and first.text  # same weights, greedy: same reply either way
    assert seen[0] == first.events and seen[1] == second.events
    # sequential: the second model was submitted after the first had finished
    assert second.events[0].t_ns > first.done.t_ns
    assert comparison.winners() == expected_winners(comparison)
    for row in comparison.rows():
        assert row["ttft_s"] > 0 and row["decode_tps"] > 0 and row["task_time_s"] >= row["ttft_s"]
    data = comparison.as_dict()
    assert data["mode"] == "sequential" and [m["model"] for m in data["models"]] == ["smollm2", served.spec.name]
    json.dumps(data)


def test_concurrent_run_overlaps_and_is_labelled(smollm2, llama_server):
    served = load_model(resolve(llama_server.url))
    try:
        comparison = run_compare([smollm2, served], ASK, SHORT, concurrent=True)
    finally:
        served.close()
    first, second = comparison.results
    spans = [(r.events[0].t_ns, r.done.t_ns) for r in comparison.results]
    assert max(s for s, _ in spans) < min(e for _, e in spans)  # both were in flight at once
    assert first.text == second.text
    assert comparison.as_dict()["mode"] == "concurrent"
    with pytest.raises(ModelLoadError):
        run_compare([smollm2, smollm2], ASK, SHORT, concurrent=True)


def test_verdict_on_real_streams_over_loopback():
    """Two real HTTP servers shaped like the paper's finding: many quick tokens vs few slow ones."""
    words = [step for _ in range(30) for step in (0.01, sse(content_chunk(" word")))]
    verbose_script = [sse(content_chunk("x")), *words,
                      sse(content_chunk("", "stop")), sse("[DONE]")]
    concise_script = [sse(content_chunk("Red,")), 0.04, sse(content_chunk(" green")), 0.04,
                      sse(content_chunk(" blue.", "stop")), sse("[DONE]")]
    with running_scripted_server(verbose_script) as fast, running_scripted_server(concise_script) as slow:
        models = [load_model(ModelSpec("verbose", "http", fast.url)),
                  load_model(ModelSpec("concise", "http", slow.url))]
        comparison = run_compare(models, ASK, SamplingParams(max_tokens=32))  # the client cuts a reply at its budget
    winners = comparison.winners()
    assert winners == expected_winners(comparison)
    assert winners["decode_tps"] == ["verbose"] and winners["task_time_s"] == ["concise"]
    assert comparison.verdict().startswith("fastest to finish: concise (")
    assert "highest tok/s: verbose (" in comparison.verdict()
    assert ", which finishes later: it writes 10.3× more words (31 vs 3; " in comparison.verdict()


def test_cancel_leaves_the_rest_unrun(smollm2):
    cancel = threading.Event()
    comparison = run_compare([smollm2, smollm2], ASK, SamplingParams(max_tokens=100), cancel=cancel,
                             on_event=lambda i, e: isinstance(e, Token) and cancel.set())
    assert len(comparison.results) == 1
    assert comparison.results[0].done.stop_reason == "cancelled"


def test_session_log_has_one_line_per_model_and_exports(smollm2, tmp_path):
    comparison = run_compare([smollm2, smollm2], ASK, SHORT, warmup=1)
    log = sessions.SessionLog(tmp_path, "compare")
    for record in comparison.session_records():
        log.append(record)
    turns = sessions.read_session(log.path)
    assert [t["kind"] for t in turns] == ["compare", "compare"]
    assert {t["compare_id"] for t in turns} == {comparison.compare_id}
    assert [t["position"] for t in turns] == [0, 1]
    assert [t["reply"] for t in turns] == [r.text for r in comparison.results]
    markdown = sessions.export_session(log.path, "md").read_text()
    assert markdown.count("## Turn") == 2


def test_cli_compare_json_logs_and_matches(llama_server, tmp_path):
    proc = run_cli("compare", "Name three colours.", "--models", f"smollm2,{llama_server.url}",
                   "--max-tokens", "12", "--json", "--sessions", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["mode"] == "sequential"
    local, remote = data["models"]
    assert local["text"] == remote["text"] and local["text"]
    assert remote["backend_figures"]["token_count_source"] in ("usage", "chunks")
    labels = [local["model"], remote["model"]]
    for column in COLUMNS:
        assert set(data["winners"][column.key]) <= set(labels)
    first, fastest = data["winners"]["task_time_s"], data["winners"]["decode_tps"]
    assert data["verdict"].startswith(f"fastest to finish: {' and '.join(first)} (")
    assert f"; highest tok/s: {' and '.join(fastest)} (" in data["verdict"]
    assert (", which " in data["verdict"]) == (not set(first) & set(fastest))  # the why only when they differ
    (log,) = tmp_path.glob("*.jsonl")
    assert len(log.read_text().splitlines()) == 2


def test_cli_compare_table(tmp_path):
    proc = run_cli("compare", "Name a fruit.", "--models", "smollm2,gemma3-270m", "--max-tokens", "8", "--no-log",
                   "--sessions", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "taskclock compare" in proc.stdout and "★" in proc.stdout
    assert "sequential: one model at a time" in proc.stdout
    assert "smollm2" in proc.stdout and "gemma3-270m" in proc.stdout
    (verdict,) = [line for line in proc.stdout.splitlines() if line.startswith("verdict: ")]
    found = re.match(r"verdict: fastest to finish: (\S+) \([\d.]+ s\); highest tok/s: (\S+) \([\d.]+ tok/s\)"
                     r"(, which finishes later|; (\S+) finishes later): it .+% of the gap\); gap ", verdict)
    assert found, verdict
    first, fastest, which, later = found.groups()
    assert {first, fastest} <= {"smollm2", "gemma3-270m"}
    assert (which == ", which finishes later") == (first != fastest) == (later is None)
    assert "; one sample (more repeats would give an interval)" in verdict
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("models, message", [
    ("smollm2", "compare needs at least 2 models"),
    ("smollm2,no-such-model", "unknown model 'no-such-model'"),
])
def test_cli_compare_bad_models_is_one_line(models, message):
    proc = run_cli("compare", "hi", "--models", models, "--no-log")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr


def test_cli_compare_unreachable_server_is_one_line():
    port = free_port()
    proc = run_cli("compare", "hi", "--models", f"smollm2,http://127.0.0.1:{port}/v1", "--no-log")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last == (f"taskclock: error: cannot reach http://127.0.0.1:{port}/v1: connection refused; "
                    "start the server or check the URL")
