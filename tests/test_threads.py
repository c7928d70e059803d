"""llama.cpp thread counts: chosen as llama.cpp chooses them, overridable, and recorded with the figures."""
from __future__ import annotations

import os

import pytest
from helpers import run_cli

from taskclock.runtime import system
from taskclock.runtime.backend import SamplingParams, load_model
from taskclock.runtime.models import resolve, with_overrides
from taskclock.runtime.turn import run_turn

ASK = [{"role": "user", "content": "Hi"}]


def test_physical_cores_count_smt_twins_once():
    cores = system.physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("threads", [0, 1])
def test_llamacpp_runs_with_the_chosen_threads_and_reports_them(threads):
    model = load_model(with_overrides(resolve("smollm2"), threads=threads or None))
    try:
        done = run_turn(model, ASK, SamplingParams(max_tokens=4)).done
    finally:
        model.close()
    expected = threads or system.physical_cores()
    assert model.llm.n_threads == model.llm.n_threads_batch == expected
    assert done.extra["threads"] == expected
    assert os.environ["OMP_WAIT_POLICY"]  # set before llama_cpp loaded (PASSIVE unless the user chose)


def test_threads_flag_is_recorded_in_bench_rows(tmp_path):
    import json

    result = run_cli("bench", "--models", "smollm2", "--tasks", "mc", "--limit", "1", "--max-tokens", "2",
                     "--warmup", "0", "--threads", "1", "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    (row,) = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert row["threads"] == 1
    assert json.loads((folder / "system.json").read_text())["threads"] == {"smollm2": 1}
    assert "threads used: smollm2: 1" in (folder / "summary.md").read_text()


def test_bad_threads_value_is_one_line():
    result = run_cli("run", "Hi", "--model", "smollm2", "--threads", "-1")  # 0 = llama.cpp's own choice
    assert result.returncode == 2
    assert result.stderr == "taskclock: error: --threads must be at least 0 and at most 4096, not -1\n"
