"""HTTP models at batch size N keep N requests in flight: on a deterministic parallel server and, when it
is built, on llama.cpp's own llama-server with 4 slots."""
from __future__ import annotations

import threading

import pytest
from helpers import run_cli
from llama_server import (
    NativeLlamaServer,
    content_chunk,
    native_server_or_skip,
    running_scripted_server,
    smollm2_gguf,
    sse,
)

from taskclock.runtime import bench, mmlu, runfolder, storage, summary, tasks
from taskclock.runtime.backend import ModelSpec, SamplingParams
from taskclock.runtime.turn import run_turn

TTFT_S, GAP_S, TOKENS = 0.2, 0.05, 8  # each request takes 0.55 s on the fake server, whoever else is served


@pytest.fixture(scope="module")
def data():
    return mmlu.load(None)


def fixed_pace_script() -> list:
    """One reply: a fixed wait before the first token, then a fixed gap before each of the others."""
    script: list = [TTFT_S]
    for i in range(TOKENS):
        if i:
            script.append(GAP_S)
        script.append(sse(content_chunk(f" t{i}", "stop" if i == TOKENS - 1 else None)))
    script += [sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": TOKENS}}), sse("[DONE]")]
    return script


def sweep(folder_root, data, spec: ModelSpec, sizes: list[int], limit: int, **runner) -> tuple:
    folder, plan = bench.prepare(models=[spec], task_list=tasks.resolve(["mc"]), data=data, subjects=None,
                                 limit=limit, seed=0, batch_size=sizes[0], warmup=0, max_tokens=8,
                                 sampling=SamplingParams(), runs_dir=folder_root, batch_sizes=sizes)
    outcome = bench.BenchRunner(folder, plan, data.by_id(), **runner).run()
    return folder, plan, outcome


def result_rows(folder) -> list[dict]:
    return [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "result"]


def most_in_flight(rows: list[dict]) -> int:
    """The largest number of requests open at one instant, from each row's start and end in its segment."""
    edges = sorted([(r["start_s"], 1) for r in rows] + [(r["end_s"], -1) for r in rows], key=lambda e: (e[0], e[1]))
    most = open_now = 0
    for _, step in edges:
        open_now += step
        most = max(most, open_now)
    return most


def test_concurrency_4_gives_four_times_the_throughput_of_1_on_a_parallel_server(tmp_path, data):
    with running_scripted_server(fixed_pace_script()) as server:
        folder, plan, outcome = sweep(tmp_path, data, ModelSpec("fake", "http", server.url), [1, 4], limit=8)
    assert not outcome.interrupted and outcome.rows_written == 16
    one, four = summary.load_summary(folder).cells
    assert (one.batch_size, four.batch_size) == (1, 4)
    assert one.set_output_tokens == four.set_output_tokens == 8 * TOKENS
    assert 0.9 * 4 <= four.aggregate_tps / one.aggregate_tps <= 1.1 * 4
    rows = [r for r in result_rows(folder) if r["batch_size"] == 4]
    assert most_in_flight(rows) == 4 and len({r["segment"] for r in rows}) == 1


def test_stopping_mid_sweep_then_resuming_records_every_row_once(tmp_path, data):
    cancel = threading.Event()

    def stop_in_the_concurrent_cell(report) -> None:
        if report.row is not None and report.row["batch_size"] == 4:
            cancel.set()

    with running_scripted_server(fixed_pace_script()) as server:
        spec = ModelSpec("fake", "http", server.url)
        folder, plan, first = sweep(tmp_path, data, spec, [1, 4], limit=8, cancel=cancel,
                                    on_progress=stop_in_the_concurrent_cell)
        kept = len(result_rows(folder))
        again = bench.BenchRunner(folder, runfolder.read_plan(folder), data.by_id()).run()
    assert first.interrupted and 8 < kept < 16
    assert not again.interrupted and again.rows_written == 16 - kept
    keys = [bench.row_key(r) for r in result_rows(folder)]
    assert len(keys) == len(set(keys)) == 16


# ---- llama.cpp's own llama-server, 4 parallel slots -------------------------------------------------------

@pytest.fixture(scope="module")
def native_server():
    server = native_server_or_skip(smollm2_gguf(), slots=4)
    yield server
    server.stop()


class SlotWatcher:
    """Polls llama-server's /slots while a run goes on and keeps the most slots seen busy at once."""

    def __init__(self, server: NativeLlamaServer) -> None:
        self.server, self.most, self.done = server, 0, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.done.is_set():
            self.most = max(self.most, self.server.slots_busy())
            self.done.wait(0.01)

    def __enter__(self) -> SlotWatcher:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()


def test_bench_sweep_on_llama_server_keeps_four_requests_in_flight(tmp_path, native_server):
    args = ["bench", "--models", native_server.url, "--tasks", "mc", "--limit", "8",
            "--max-tokens", "8", "--batch-sizes", "1,4", "--warmup", "0", "--out", str(tmp_path), "--no-plots"]
    with SlotWatcher(native_server) as watcher:
        result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    rows = result_rows(folder)
    keys = [bench.row_key(r) for r in rows]
    assert len(keys) == len(set(keys)) == 16  # every (question, batch size) once
    assert most_in_flight([r for r in rows if r["batch_size"] == 4]) == 4  # client side
    assert watcher.most == 4  # server side: four slots generating at one instant
    assert not any(r.get("segment") for r in rows if r["batch_size"] == 1)  # batch 1: one request at a time


def test_resume_mid_sweep_on_llama_server(tmp_path, native_server, data):
    cancel = threading.Event()

    def stop_in_the_concurrent_cell(report) -> None:
        if report.row is not None and report.row["batch_size"] == 4:
            cancel.set()

    spec = ModelSpec("smollm2-server", "http", native_server.url)
    folder, plan, first = sweep(tmp_path, data, spec, [1, 4], limit=8, cancel=cancel,
                                on_progress=stop_in_the_concurrent_cell)
    kept = len(result_rows(folder))
    assert first.interrupted and 8 < kept < 16
    resumed = run_cli("bench", "--resume", str(folder), "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    keys = [bench.row_key(r) for r in result_rows(folder)]
    assert len(keys) == len(set(keys)) == 16


def test_llama_server_timings_agree_with_the_client_side_figures(native_server):
    from taskclock.runtime.backend import load_model

    model = load_model(ModelSpec("smollm2-server", "http", native_server.url))
    try:
        result = run_turn(model, [{"role": "user", "content": "Name three colours."}], SamplingParams(max_tokens=16))
    finally:
        model.close()
    timings, figures = result.done.extra["server_timings"], result.metrics
    assert timings["predicted_n"] == figures.output_tokens == result.done.output_tokens
    assert timings["prompt_n"] + timings.get("cache_n", 0) == figures.input_tokens
    # the client waits for the server's prompt work before its first token, and for all its work before the end
    assert figures.ttft_s >= timings["prompt_ms"] / 1000
    assert figures.task_time_s >= (timings["prompt_ms"] + timings["predicted_ms"]) / 1000


def test_task_time_ends_with_the_servers_own_work(native_server):
    """Task time less llama-server's own prompt_ms + predicted_ms is what the client adds (the request, the
    loopback hops, the last chunk): within 20 ms, where a 50 ms guard poll before the end stamp added 0–50 ms.
    Four turns of five, so one turn delayed by other work on the machine does not decide it (with the poll, four
    of five land within 20 ms about one time in twenty)."""
    from taskclock.runtime.backend import load_model

    model = load_model(ModelSpec("smollm2-server", "http", native_server.url))
    overheads = []
    try:
        for words in ("three colours", "two animals", "four numbers", "two rivers", "three trees"):
            result = run_turn(model, [{"role": "user", "content": f"Name {words}."}], SamplingParams(max_tokens=16))
            timings = result.done.extra["server_timings"]
            overheads.append(result.metrics.task_time_s - (timings["prompt_ms"] + timings["predicted_ms"]) / 1000)
    finally:
        model.close()
    assert all(overhead >= 0 for overhead in overheads)
    assert sum(overhead <= 0.020 for overhead in overheads) >= 4, overheads
