"""CPU threads: the decode count measured per machine and model (runtime/threads.py), prefill on every usable CPU,
a count the user sets used as is, and the choice recorded with every figure."""
from __future__ import annotations

import json
import os

import pytest
from helpers import run_cli

from taskclock.runtime import system, threads
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.backends import llamacpp
from taskclock.runtime.models import local_file, resolve
from taskclock.runtime.options import HFOptions
from taskclock.runtime.turn import run_turn

ASK = [{"role": "user", "content": "Hi"}]
# Decode tok/s by thread count on two 2-vCPU machines of this project's kind (docs/PERFORMANCE.md).
INTEL_XEON = {1: 54.8, 2: 29.8}
AMD_EPYC = {1: 67.0, 2: 93.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty user cache folder of the test's own (llama.cpp only: transformers keeps converted GGUFs there)."""
    monkeypatch.setenv("TASKCLOCK_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def two_cpus(monkeypatch):
    """This project's machine kind, whatever runs the test: 2 physical cores, 2 usable CPUs."""
    monkeypatch.setattr(threads, "physical_cores", lambda: 2)
    monkeypatch.setattr(threads, "usable_cpus", lambda: 2)


class FakeProbe:
    """Stands in for timing decode steps: a fixed tok/s per thread count, and the order the counts were asked in."""

    def __init__(self, rates: dict[int, float]) -> None:
        self.rates, self.asked = rates, []

    def __call__(self, count: int) -> float:
        self.asked.append(count)
        return self.rates[count]


def test_physical_cores_count_smt_twins_once():
    cores = system.physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("machine, best", [(INTEL_XEON, 1), (AMD_EPYC, 2)])
def test_the_decode_count_is_the_measured_fastest_and_prefill_takes_every_cpu(cache, two_cpus, machine, best):
    measure = FakeProbe(machine)
    choice = threads.choose("key", "a model", measure)
    assert (choice.decode, choice.prompt) == (best, 2)
    assert choice.rates == machine
    assert measure.asked == [1, 2, 2, 1, 1, 2]  # alternating, reversed every other round
    assert f"{best} → {machine[best]:.1f} tok/s" in choice.why


def test_the_choice_is_cached_per_key_and_a_new_key_probes_again(cache, two_cpus):
    threads.choose("this model", "a model", FakeProbe(INTEL_XEON))
    again = FakeProbe(AMD_EPYC)
    assert threads.choose("this model", "a model", again).decode == 1 and again.asked == []
    assert "cached from" in threads.cached("this model").why
    other = FakeProbe(AMD_EPYC)
    assert threads.choose("another build", "a model", other).decode == 2 and other.asked
    assert set(json.loads((cache / threads.CACHE_FILE).read_text())) == {"this model", "another build"}


def test_the_cache_keeps_the_latest_choices_only(cache, two_cpus, monkeypatch):
    monkeypatch.setattr(threads, "CACHE_ENTRIES", 2)
    for key in ("old", "middle", "new"):
        threads.choose(key, "a model", FakeProbe(AMD_EPYC))
    assert list(json.loads((cache / threads.CACHE_FILE).read_text())) == ["middle", "new"]


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"key": {"decode": 7, "rates": {"1": 5}}}',
                                  '{"key": {"decode": 3, "rates": {"3": 5.0}, "measured": "x"}}'])
def test_a_damaged_cache_entry_is_measured_again(cache, two_cpus, text):
    cache.mkdir()
    (cache / threads.CACHE_FILE).write_text(text)
    measure = FakeProbe(INTEL_XEON)
    assert threads.choose("key", "a model", measure).decode == 1 and measure.asked
    assert threads.cached("key").decode == 1


def test_an_unwritable_cache_costs_only_the_probe(tmp_path, monkeypatch, two_cpus):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("TASKCLOCK_CACHE", str(blocker / "cache"))  # a folder under a file cannot exist
    assert threads.choose("key", "a model", FakeProbe(AMD_EPYC)).decode == 2


def test_as_fast_means_fewer_threads():
    assert threads.best_count({1: 98.0, 2: 100.0}) == 1  # within 3%: the other core is left to the UI
    assert threads.best_count({1: 90.0, 2: 100.0}) == 2
    assert threads.best_count({1: 50.0, 2: 80.0, 4: 79.0}) == 2


def test_candidate_counts_stay_few_on_a_large_machine():
    assert threads.candidate_counts(2, 2) == [1, 2]
    assert threads.candidate_counts(8, 16) == [1, 2, 4, 8, 16]
    assert threads.candidate_counts(6, 6) == [1, 2, 4, 6]
    assert threads.candidate_counts(1, 1) == [1]


def test_the_probe_stops_at_its_budget_after_one_full_round():
    measure = FakeProbe({1: 1.0, 2: 1.0})
    assert threads.probe(measure, [1, 2], rounds=3, budget_s=0.0) == {1: 1.0, 2: 1.0}
    assert measure.asked == [1, 2]


# -- llama.cpp, on the real model ------------------------------------------------------------------------

def test_llamacpp_probes_at_first_load_then_reads_the_cache(cache):
    model = load_model(resolve("smollm2"))
    try:
        done = run_turn(model, ASK, SamplingParams(max_tokens=4)).done
    finally:
        model.close()
    choice = model.threads
    counts = threads.candidate_counts(system.physical_cores(), threads.usable_cpus())
    assert sorted(choice.rates) == counts and all(rate > 0 for rate in choice.rates.values())
    assert choice.decode == threads.best_count(choice.rates) and choice.prompt == threads.usable_cpus()
    assert (model.llm.n_threads, model.llm.n_threads_batch) == (choice.decode, choice.prompt)
    assert (done.extra["decode_threads"], done.extra["prompt_threads"]) == (choice.decode, choice.prompt)
    assert done.extra["llama_perf"]["prompt_tokens"] == done.input_tokens  # the probe's steps are not the turn's
    entry = json.loads((cache / threads.CACHE_FILE).read_text())[llamacpp.model_key(local_file(model.spec),
                                                                                       model._lib)]
    assert entry["decode"] == choice.decode
    again = load_model(resolve("smollm2"))
    again.close()
    assert again.threads.decode == choice.decode and "cached from" in again.threads.why


def test_a_changed_model_file_is_a_new_cache_key(tmp_path):
    import llama_cpp

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    before = llamacpp.model_key(gguf, llama_cpp)
    os.utime(gguf, ns=(1, 1))
    assert llamacpp.model_key(gguf, llama_cpp) != before


def test_threads_the_user_sets_skip_the_probe(cache, monkeypatch):
    def no_probe(*args, **kwargs):
        raise AssertionError("probed although the user set the threads")

    monkeypatch.setattr(threads, "probe", no_probe)
    model = load_model(resolve("smollm2").with_overrides(threads=1))
    try:
        done = run_turn(model, ASK, SamplingParams(max_tokens=4)).done
    finally:
        model.close()
    assert model.llm.n_threads == model.llm.n_threads_batch == 1
    assert done.extra["decode_threads"] == done.extra["prompt_threads"] == 1
    assert "set by the user" in model.threads.why
    assert not (cache / threads.CACHE_FILE).exists()
    assert os.environ["OMP_WAIT_POLICY"]  # set before llama_cpp loaded (PASSIVE unless the user chose)


def test_run_json_records_the_threads_and_doctor_shows_them_with_the_server_command(cache):
    import llama_cpp

    result = run_cli("run", "Hi", "--model", "smollm2", "--max-tokens", "2", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    choice = threads.cached(llamacpp.model_key(local_file(resolve("smollm2")), llama_cpp))
    assert (figures["decode_threads"], figures["prompt_threads"]) == (choice.decode, choice.prompt)
    doctor = run_cli("doctor")
    lines = {line.split()[0]: line for line in doctor.stdout.splitlines()}
    assert f"smollm2: decode {choice.decode}, prompt {choice.prompt}: fastest decode measured" in lines["threads"]
    command = f" llama-server -m {local_file(resolve('smollm2'))} -t {choice.decode} -tb {choice.prompt} "
    assert command + "(the same threads)" in lines["llama-server"]


# -- transformers --------------------------------------------------------------------------------------

def test_transformers_prefills_on_the_prompt_count_and_decodes_on_the_decode_count(tiny_llama, monkeypatch):
    import torch

    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(n)))
    monkeypatch.setattr(tiny_llama, "threads", threads.ThreadChoice(1, 2, "a test's choice"))
    done = run_turn(tiny_llama, ASK, SamplingParams(max_tokens=4)).done
    assert calls == [2, 1]  # the prompt count for the prefill, then the decode count from the first token on
    assert tiny_llama.worker.call(torch.get_num_threads) == 1
    assert (done.extra["decode_threads"], done.extra["prompt_threads"]) == (1, 2)
    calls.clear()
    first, _ = tiny_llama.stream_batch([ASK, ASK], SamplingParams(max_tokens=4))
    assert calls == [2]  # a batch's decode steps are batches too: the prompt count throughout
    assert (first[-1].extra["decode_threads"], first[-1].extra["prompt_threads"]) == (2, 2)


def test_transformers_on_the_cpu_measures_its_threads_and_takes_the_users(tiny_llama_dir, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("TASKCLOCK_CACHE", str(tmp_path))  # the tiny model is a folder: nothing to convert
    measured = load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir)))
    measured.close()
    assert measured.threads.rates and measured.threads.decode == threads.best_count(measured.threads.rates)
    assert measured.threads.prompt == threads.usable_cpus()
    chosen = load_model(ModelSpec("tiny", "hf", str(tiny_llama_dir), backend_options=HFOptions(threads=1)))
    try:
        run_turn(chosen, ASK, SamplingParams(max_tokens=2))
        assert chosen.worker.call(torch.get_num_threads) == 1 and "set by the user" in chosen.threads.why
    finally:
        chosen.close()


# -- run folders -----------------------------------------------------------------------------------------

def test_threads_flag_is_recorded_in_bench_rows_and_the_system_block(tmp_path):
    result = run_cli("bench", "--models", "smollm2", "--tasks", "mc", "--limit", "1", "--max-tokens", "2",
                     "--warmup", "0", "--threads", "1", "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    (row,) = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert (row["decode_threads"], row["prompt_threads"]) == (1, 1)
    recorded = json.loads((folder / "system.json").read_text())["threads"]
    assert recorded == {"smollm2": {"decode": 1, "prompt": 1, "why": "set by the user (threads = 1): no probe"}}
    assert "threads used: smollm2: decode 1, prompt 1 (set by the user" in (folder / "summary.md").read_text()


def test_an_older_runs_single_thread_count_still_reads():
    assert "- threads used: smollm2: 2" in system.describe({"threads": {"smollm2": 2}})


def test_bad_threads_value_is_one_line():
    result = run_cli("run", "Hi", "--model", "smollm2", "--threads", "-1")  # 0 = measured
    assert result.returncode == 2
    assert result.stderr == "taskclock: error: --threads must be at least 0 and at most 4096, not -1\n"


def test_openmp_waits_passively_before_torch_loads_its_runtime():
    """torch loads its OpenMP runtime globally and llama.cpp then uses that one, which reads OMP_WAIT_POLICY once:
    `doctor` imports torch before it loads a GGUF, so the policy must be set before torch, or its probe measures
    spinning threads and picks a count that `run` (no torch) decodes at half the rate."""
    import subprocess
    import sys

    seen_at_torch = (
        "import importlib.abc, os, sys\n"
        "class Watch(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            print('torch sees', os.environ.get('OMP_WAIT_POLICY'))\n"
        "        return None\n"
        "sys.meta_path.insert(0, Watch())\n"
        "from taskclock.runtime import doctor\n"
        "doctor.check_torch()\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", seen_at_torch], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "torch sees PASSIVE" in result.stdout
    exported = subprocess.run([sys.executable, "-c", seen_at_torch], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                              capture_output=True, text=True, timeout=120)
    assert "torch sees ACTIVE" in exported.stdout  # a value the user exported wins
