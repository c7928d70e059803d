"""HTTP models at batch size N keep N requests in flight: on a deterministic parallel server and, when it
is built, on llama.cpp's own llama-server with 4 slots."""
from __future__ import annotations

import threading

import pytest
from conftest import SHARED_MMLU
from llama_server import content_chunk, running_scripted_server, sse

from taskclock.runtime import bench, mmlu, storage, summary, tasks
from taskclock.runtime.backend import ModelSpec, SamplingParams

TTFT_S, GAP_S, TOKENS = 0.2, 0.05, 8  # each request takes 0.55 s on the fake server, whoever else is served


@pytest.fixture(scope="module")
def data():
    return mmlu.load(str(SHARED_MMLU)) if SHARED_MMLU.is_dir() else mmlu.load(None)


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
    return [r for r in storage.read(folder / bench.RESULTS_FILE) if r["kind"] == "result"]


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
        again = bench.BenchRunner(folder, bench.read_plan(folder), data.by_id()).run()
    assert first.interrupted and 8 < kept < 16
    assert not again.interrupted and again.rows_written == 16 - kept
    keys = [bench.row_key(r) for r in result_rows(folder)]
    assert len(keys) == len(set(keys)) == 16
