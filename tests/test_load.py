"""`taskclock load` against the deterministic parallel scripted server (tests/parallel_server.py), where the right
answers are known: C slots and a fixed service time S make the capacity C/S requests a second. Also the rate
search and the saturation rule worked by hand, resume and Ctrl-C through the real command, the trace workload and
the bad input the command refuses with one line."""
from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from statistics import fmean

import pytest
from helpers import first_closed_rate, one_error_line, records_of, run_cli, start_cli
from parallel_server import ParallelServer, Script

from taskclock.runtime import arrivals, load, load_summary, mmlu, runfolder, storage, tasks
from taskclock.runtime.backend import ModelSpec, SamplingParams
from taskclock.runtime.options import HTTPOptions
from taskclock.runtime.slo import parse_slo

SCRIPT = Script(slots=4, ttft_ms=30, gap_ms=10, tokens=8)  # S = 0.1 s: capacity 40 req/s


@pytest.fixture(scope="module")
def server():
    with ParallelServer(SCRIPT) as running:
        yield running


def spec(server, name="parallel") -> ModelSpec:
    return ModelSpec(name, "http", server.url, backend_options=HTTPOptions(api_model="parallel"))


def run_load(tmp_path: Path, models, **options):
    """A load run of the mc task set through the runner, to its summary."""
    data = mmlu.load_embedded()
    settings = {"rates": [10.0], "arrival": arrivals.Arrival("constant"), "seed": 0, "requests": 40,
                "duration_s": 0.0, "warmup": 4, "max_in_flight": 0, "slo": parse_slo("task=0.2"),
                "attainment": 0.9, "sampling": SamplingParams(), "max_tokens": 0, **options}
    folder, plan = load.prepare(models=models, runs_dir=tmp_path, task_list=tasks.resolve(["mc"]), data=data,
                                limit=10, **settings)
    outcome = load.LoadRunner(folder, plan, data.by_id()).run()
    assert not outcome.failures, outcome.failures
    return load_summary.export(folder), folder


def rows_at(folder: Path, rate: float) -> list[dict]:
    return [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load" and r["rate"] == rate]


def test_below_capacity_a_request_takes_the_service_time_and_above_it_the_queue_grows(tmp_path, server):
    summary, folder = run_load(tmp_path, [spec(server)], rates=[10.0, 80.0], max_in_flight=2 * SCRIPT.slots)
    low, high = summary.cells
    assert (low.rate, high.rate) == (10.0, 80.0) and low.finished == high.finished == 40
    assert low.latency.task_p50_s == pytest.approx(SCRIPT.service_s, rel=0.05)
    assert low.wait_p50_s == pytest.approx(SCRIPT.service_s, rel=0.05)  # no queue: the wait is the service
    assert low.queue_p99_s < 0.02 and low.attainment == 1.0 and low.goodput == pytest.approx(10, rel=0.15)
    # twice the capacity, eight in flight on four slots: each request waits a service at the server, the rest
    # wait in the client, longer with every arrival
    assert high.latency.task_p50_s > 1.6 * SCRIPT.service_s
    waits = [r["queue_delay_s"] for r in sorted(rows_at(folder, 80.0), key=lambda r: r["request"])]
    assert fmean(waits[-10:]) > fmean(waits[:10]) + 0.2  # request k waits about k/80 s longer than the first
    assert high.queue_p99_s > 3 * SCRIPT.service_s and high.queue_p99_s > 10 * low.queue_p99_s
    assert high.attainment < 0.5 and high.goodput < low.goodput
    assert high.most_in_flight <= 2 * SCRIPT.slots
    rows = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"]
    assert {r["rate"] for r in rows} == {10.0, 80.0} and len(rows) == 80
    for row in rows:  # every row: when it was due and sent, and the turn's own figures from its arrivals
        assert row["queue_delay_s"] >= 0 and row["schedule_error_ms"] >= 0 and row["token_offsets_ms"]
        assert row["first_byte_s"] <= row["ttft_s"] <= row["task_time_s"]


def test_one_request_read_in_a_burst_does_not_sway_the_rates_decode_tok_s(tmp_path, server):
    """When the client's loop stalls (a repaint holding the interpreter), a request's tokens are read together:
    its decode span is near zero and its rate huge. The rate's figure, and so the verdict's "decodes N× faster",
    must stay the server's pace (100 tok/s by the script)."""
    summary, folder = run_load(tmp_path, [spec(server)])
    (measured,) = summary.cells
    assert measured.decode_tps_p50 == pytest.approx(1000 / SCRIPT.gap_ms, rel=0.1)
    results = folder / runfolder.RESULTS_FILE
    records = list(storage.read(results))
    burst = next(r for r in records if r["kind"] == "load")
    burst["decode_tps"] = (SCRIPT.tokens - 1) / 0.001  # every decode token within a millisecond
    storage.write_atomic(results, "".join(json.dumps(r) + "\n" for r in records))
    (swayed,) = load_summary.load_summary(folder).cells
    assert swayed.decode_tps_p50 == pytest.approx(measured.decode_tps_p50, rel=0.05)


def test_the_rate_search_finds_the_servers_knee_within_one_bisection_step(tmp_path, server):
    knee = SCRIPT.capacity
    summary, _ = run_load(tmp_path, [spec(server)], rates=[], auto_start=10.0, requests=0, duration_s=2.0,
                          slo=parse_slo(f"task={1.5 * SCRIPT.service_s}"))
    ((low, high),) = summary.searches.values()
    assert low is not None and high is not None, summary.searches
    # The bracket holds the knee. The capacity itself (40 req/s, a doubling of 10) meets the SLO or just misses
    # it as the machine's jitter has it, so the search may close just below it or just above.
    assert high - low <= load.AUTO_PRECISION * low + 1e-9 and 0.85 * knee <= low < high <= 1.2 * knee, (low, high)
    rates = {c.rate for c in summary.cells}
    assert {10.0, 20.0, 40.0} <= rates  # doubling to the first failure, then bisecting
    assert all(20.0 <= r <= 80.0 for r in rates - {10.0})


def test_the_search_doubles_then_bisects_and_resumes_from_what_it_ran():
    passes = lambda rate: rate <= 37.0  # noqa: E731 - a knee at 37
    outcomes: dict[float, bool] = {}
    while (rate := load.next_probe(5.0, outcomes)[0]) is not None:
        outcomes[rate] = passes(rate)
    assert list(outcomes) == [5.0, 10.0, 20.0, 40.0, 30.0, 35.0, 37.5]
    _, low, high = load.next_probe(5.0, outcomes)
    assert (low, high) == (35.0, 37.5)  # 2.5 apart: within 10% of 35, so the search ends
    failing = {rate: False for rate in (1.0, 0.5, 0.25)}
    assert load.next_probe(1.0, failing)[0] == 0.125  # halving while the rates fail
    assert load.next_probe(1.0, {**failing, 0.125: True})[0] == 0.1875


def test_saturation_is_a_wait_that_grows_with_every_window_not_a_burst():
    growing = load.Saturation(8)
    waits = [0.1 + 0.02 * i for i in range(100)]  # an overloaded queue: each request waits longer
    stopped = next(i for i, wait in enumerate(waits) if growing.add(wait))
    assert stopped < 100
    bursty = load.Saturation(8)
    burst = ([0.1] * 6 + [3.0, 2.0]) * 20  # long waits in bursts that drain
    assert not any(bursty.add(wait) for wait in burst)


def test_an_overloaded_rate_stops_once_its_latency_grows_without_bound(tmp_path, server):
    summary, _ = run_load(tmp_path, [spec(server)], rates=[160.0], requests=600)
    (overloaded,) = summary.cells
    assert overloaded.saturated and overloaded.finished < 600
    assert overloaded.attainment < 0.5  # the requests it never sent count as missing the SLO
    assert any("saturated" in warning for warning in summary.warnings())


def test_the_model_that_decodes_faster_but_says_more_sustains_less_and_the_verdict_says_why(tmp_path):
    """The paper's thesis under load: "verbose" decodes twice as fast per token but writes four times the tokens,
    so it holds its slots longer (service 105 ms against 60 ms, two slots each) and meets the SLO at fewer req/s."""
    verbose = Script(slots=2, ttft_ms=30, gap_ms=5, tokens=16)  # capacity 19 req/s
    terse = Script(slots=2, ttft_ms=30, gap_ms=10, tokens=4)  # capacity 33 req/s
    with ParallelServer(verbose) as fast, ParallelServer(terse) as slow:
        summary, folder = run_load(tmp_path, [spec(fast, "verbose"), spec(slow, "terse")], rates=[5.0, 25.0],
                                   arrival=arrivals.Arrival("poisson"), requests=40, slo=parse_slo("task=0.3"))
    rows = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"]
    schedule = {m: [r["scheduled_s"] for r in rows if r["model"] == m and r["rate"] == 25.0]
                for m in ("verbose", "terse")}
    assert schedule["verbose"] == schedule["terse"]  # one seed, one schedule for every model
    (ranking,) = summary.rankings
    by_model = {r.model: r for r in ranking.ranks}
    assert [r.model for r in ranking.ranks] == ["terse", "verbose"]  # ranked by goodput
    assert by_model["terse"].sustained_rate == 25.0 and by_model["verbose"].sustained_rate == 5.0
    assert by_model["verbose"].tps_rank == 1 and by_model["terse"].tps_rank == 2  # and the other way by tok/s
    verdict = ranking.verdict
    assert verdict.startswith("mc: terse sustains ") and "of mc tasks within task time 300 ms (at 25 req/s)" in verdict
    # 2× by the schedule; the client's clock on a loaded 2-core machine can round it to 1.9 or 2.1
    faster = re.search(r", verbose [\d.]+ req/s although it decodes ([\d.]+)× faster", verdict)
    assert faster and 1.8 <= float(faster.group(1)) <= 2.2, verdict
    assert "at 5 req/s verbose finishes later: it writes 4.0× more words (16 vs 4;" in verdict
    md = (folder / "summary.md").read_text()
    assert "## Verdict" in md and "goodput vs rate" in md and "task time from arrival" in md and verdict in md


# ---- the real command -----------------------------------------------------------------------------

def load_args(server, out: Path, *extra: str) -> list[str]:
    return ["load", "--models", f"{server.url}#parallel", "--tasks", "mc", "--arrival", "constant",
            "--requests", "30", "--warmup", "2", "--slo", "task=0.2", "--out", str(out), "--no-plots", *extra]


def test_ctrl_c_keeps_the_finished_rates_and_resume_runs_only_the_rest(tmp_path, server):
    proc = start_cli(load_args(server, tmp_path, "--rates", "15,10,20"))
    folder = first_closed_rate(tmp_path, proc)
    proc.send_signal(signal.SIGINT)  # during the second rate (3 s of arrivals)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert f"taskclock load --resume {folder}" in " ".join(stderr.split())
    (kept,) = records_of(folder, "segment")
    assert kept["rate"] == 15.0
    first_rows = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"]
    assert len(first_rows) == 30 and {r["segment"] for r in first_rows} == {kept["segment"]}
    done = run_cli("load", "--resume", str(folder), "--no-plots")
    assert done.returncode == 0, done.stderr
    closing = records_of(folder, "segment")
    assert [s["rate"] for s in closing] == [15.0, 10.0, 20.0] and closing[0] == kept  # the first rate not rerun
    summary = json.loads((folder / "summary.json").read_text())
    assert [c["rate"] for c in summary["cells"]] == [15.0, 10.0, 20.0] or \
        sorted(c["rate"] for c in summary["cells"]) == [10.0, 15.0, 20.0]
    assert "waits by rate" in done.stdout and "goodput" in done.stdout
    (folder / "summary.md").unlink()
    exported = run_cli("export", str(folder))  # a load folder's summaries rewritten in place, as bench's
    assert exported.returncode == 0, exported.stderr
    assert "## By rate" in (folder / "summary.md").read_text()


def test_a_trace_is_replayed_at_its_arrival_times_scaled_by_speed(tmp_path, server):
    log = tmp_path / "trace.jsonl"
    turns = [{"kind": "import", "arrival_s": t, "prompt": f"question {i}", "messages": [],
              "output_tokens": 4, "token_offsets_ms": [1.0], "model": "m", "reply": "x"}
             for i, t in enumerate([0.0, 0.4, 0.5, 1.3, 1.6, 2.0])]
    log.write_text("".join(json.dumps(t) + "\n" for t in turns))
    done = run_cli("load", "--models", f"{server.url}#parallel", "--trace", str(log), "--speed", "2",
                   "--warmup", "1", "--out", str(tmp_path / "runs"), "--no-plots")
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    rows = sorted((r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "load"),
                  key=lambda r: r["request"])
    assert [r["scheduled_s"] for r in rows] == pytest.approx([0.0, 0.05, 0.45, 0.6, 0.8])  # after the warm-up, /2
    assert all(r["queue_delay_s"] < 0.05 for r in rows)


def test_the_fixed_length_workload_sends_prompts_of_the_length_and_asks_for_replies_of_the_length(tmp_path, server):
    done = run_cli("load", "--models", f"{server.url}#parallel", "--input-tokens", "64", "--output-tokens", "6",
                   "--rates", "10", "--requests", "5", "--warmup", "0", "--out", str(tmp_path), "--no-plots")
    assert done.returncode == 0, done.stderr
    (folder,) = tmp_path.iterdir()
    rows = records_of(folder, "load")
    assert len(rows) == 5 and {r["task"] for r in rows} == {"fixed"}
    assert {(r["prompt_tokens"], r["token_source"], r["output_tokens"]) for r in rows} == {(64, "estimate", 6)}
    assert len({r["reply"] for r in rows}) == 1  # the server's script, cut at the 6 tokens asked for


def test_a_chat_session_log_is_a_trace_at_its_logged_times(tmp_path):
    log = tmp_path / "chat.jsonl"
    log.write_text("".join(json.dumps({"kind": "chat", "time": f"2026-12-07T10:00:{s:02d}+00:00", "model": "m",
                                       "prompt": f"q{s}", "messages": [{"role": "user", "content": f"q{s}"}],
                                       "reply": "a", "token_offsets_ms": [1.0], "output_tokens": 3}) + "\n"
                           for s in (5, 9, 20)))
    trace = load.read_trace(log)
    assert [e["arrival_s"] for e in trace] == [0.0, 4.0, 15.0]
    assert trace[1]["messages"] == [{"role": "user", "content": "q9"}]
    assert load.trace_rate(trace) == pytest.approx(2 / 15)


def test_a_trace_whose_times_go_back_is_one_line(tmp_path, server):
    log = tmp_path / "trace.jsonl"
    log.write_text("".join(json.dumps({"kind": "import", "arrival_s": t, "prompt": "q", "messages": [],
                                       "token_offsets_ms": [1.0], "model": "m", "reply": "x"}) + "\n"
                           for t in (0.0, 2.0, 1.0)))
    line = one_error_line(run_cli("load", "--models", f"{server.url}#parallel", "--trace", str(log),
                                  "--out", str(tmp_path)))
    assert "turn 3 arrives at 1.000 s, before turn 2 (2.000 s)" in line


@pytest.mark.parametrize("option, shown", [
    (["--rates", "0"], "above 0"), (["--rates", "-1"], "above 0"), (["--rates", "nan"], "above 0"),
    (["--rates", "1e9"], "beyond what one client can send"), (["--rates", "1,x"], "'x' is not a number"),
    (["--slo", "tft=1"], "did you mean ttft?"), (["--slo", "task=soon"], "is not a time"),
    (["--slo", "task=0"], "above 0"), (["--rates", "auto"], "no --slo is given"),
    (["--arrival", "bursty"], "unknown arrival process"), (["--requests", "0"], "at least 1"),
    (["--attainment", "1.5"], "at most 1"), (["--duration", "inf"], "above 0"),
    (["--speed", "2"], "--speed scales a trace"), (["--input-tokens", "64"], "both --input-tokens"),
    (["--requests", "100000000"], "more than the 1,000,000"), (["--warmup", "5000"], "warmup"),
])
def test_bad_input_is_one_line(tmp_path, server, option, shown):
    line = one_error_line(run_cli("load", "--models", f"{server.url}#parallel", *option, "--out", str(tmp_path)))
    assert shown in line
    assert not any(tmp_path.iterdir())  # nothing was created


def test_a_model_in_this_process_is_refused_with_one_line(tmp_path):
    line = one_error_line(run_cli("load", "--models", "smollm2", "--out", str(tmp_path)))
    assert "drives a serving engine over HTTP" in line and "llama-server" in line


@pytest.mark.parametrize("edit, shown", [('rates = [0.0]', "rates must be a list of numbers above 0"),
                                         ('slo = "tft=1"', "unknown objective"),
                                         ('arrival = "bursty"', "unknown arrival process"),
                                         ('warmup = -3', "warmup")])
def test_a_hand_broken_run_toml_is_one_line_on_resume(tmp_path, server, edit, shown):
    data = mmlu.load_embedded()
    folder, _ = load.prepare(models=[spec(server)], rates=[5.0], arrival=arrivals.Arrival("poisson"), seed=0,
                             requests=2, duration_s=0.0, warmup=1, max_in_flight=0, slo=parse_slo("task=1"),
                             attainment=0.9, sampling=SamplingParams(), max_tokens=0, runs_dir=tmp_path,
                             task_list=tasks.resolve(["mc"]), data=data, limit=2)
    toml = folder / runfolder.RUN_FILE
    key = edit.split(" = ")[0]
    toml.write_text("\n".join(edit if line.startswith(f"{key} = ") else line
                              for line in toml.read_text().splitlines()) + "\n")
    line = one_error_line(run_cli("load", "--resume", str(folder)))
    assert shown in line and str(toml) in line


def test_an_imported_vllm_result_is_replayed_at_its_send_times_with_its_lengths(tmp_path, server):
    from test_replay import genai_perf_export, vllm_result

    result = {**vllm_result(), "start_times": [500.0, 500.5, 501.25], "input_lens": [40, 17, 48]}
    source, trace = tmp_path / "vllm.json", tmp_path / "trace.jsonl"
    source.write_text(json.dumps(result))
    assert run_cli("import", str(source), "--format", "vllm", "-o", str(trace)).returncode == 0
    imported = list(storage.read(trace))
    assert [r["arrival_s"] for r in imported] == [0.0, 1.25]  # the failed second request is not replayed
    done = run_cli("load", "--models", f"{server.url}#parallel", "--trace", str(trace), "--warmup", "0",
                   "--out", str(tmp_path / "runs"), "--no-plots")
    assert done.returncode == 0, done.stderr
    (folder,) = (tmp_path / "runs").iterdir()
    rows = sorted(records_of(folder, "load"), key=lambda r: r["request"])
    assert [r["scheduled_s"] for r in rows] == [0.0, 1.25]
    # vLLM keeps lengths, not prompts: a prompt of each recorded input length, a reply of its output length
    assert [(r["prompt_tokens"], r["output_tokens"]) for r in rows] == [(40, 5), (48, 4)]
    profile, log = tmp_path / "profile_export.json", tmp_path / "genai.jsonl"
    profile.write_text(json.dumps(genai_perf_export()))
    assert run_cli("import", str(profile), "--format", "genai-perf", "-o", str(log)).returncode == 0
    assert [r["arrival_s"] for r in storage.read(log)] == [0.0, 1.0, 2.0]
