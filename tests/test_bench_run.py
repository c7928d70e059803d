"""The bench runner with real models: rows, resume, kill -9, Ctrl-C, a model that fails, a full disk."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading

import pytest
from helpers import (
    ROOT,
    bench_args,
    interrupted_before_the_first_row,
    replies_by_key,
    result_keys,
    run_cli,
    start_cli,
    template_opening,
    wait_for_rows,
)

from taskclock.runtime import bench, mmlu, runfolder, storage, tasks, threads
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.models import resolve
from taskclock.runtime.turn import WARM_UP_PROMPT


@pytest.fixture(scope="module")
def data():
    return mmlu.load(None)


def _prepare(tmp_path, data, models, task_names=("mc", "paraphrase"), limit=3, batch_size=1, max_tokens=6):
    return bench.prepare(models=models, task_list=tasks.resolve(list(task_names)), data=data, subjects=None,
                         limit=limit, seed=0, batch_size=batch_size, warmup=1, max_tokens=max_tokens,
                         sampling=SamplingParams(), runs_dir=tmp_path)


def test_rows_then_resume_adds_nothing(tmp_path, data, tiny_llama_dir):
    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = _prepare(tmp_path, data, [spec])
    reports = []
    outcome = bench.BenchRunner(folder, plan, data.by_id(), on_progress=reports.append).run()
    assert outcome.rows_written == 6 and not outcome.interrupted
    keys = result_keys(folder)
    assert sorted(keys) == sorted(("tiny", t, q, 1, 0) for t in ("mc", "paraphrase") for q in plan.question_ids)
    row = next(storage.read(folder / runfolder.RESULTS_FILE))
    assert row["input_tokens"] > 0 and row["task_time_s"] > 0 and row["output_tokens"] <= 6
    assert row["answer"] in mmlu.LETTERS and row["correct"] == (row["parsed"] == row["answer"])
    assert reports[-1].state == "done" and reports[-1].done == reports[-1].total == 3
    again = bench.BenchRunner(folder, runfolder.read_plan(folder), data.by_id()).run()
    assert again.rows_written == 0
    assert result_keys(folder) == keys


def test_the_warm_up_leaves_the_first_timed_prompt_to_prefill(tmp_path, data):
    """--warmup 1 asks a prompt of its own: the first timed row's prompt is evaluated in full past the chat
    template's opening (the warm-up used to be that row's question, so its TTFT was a prompt-cache hit)."""
    folder, plan = _prepare(tmp_path, data, [resolve("smollm2")], task_names=("mc",), limit=1)
    loaded, evaluated = [], []

    def load(spec):
        loaded.append(load_model(spec))
        return loaded[-1]

    def count(report):  # called as the row is kept, before the runner closes the model
        if report.row is not None:
            model = loaded[0]
            evaluated.append((model.perf()["prompt_tokens"], report.row["input_tokens"] - template_opening(model)))

    bench.BenchRunner(folder, plan, data.by_id(), loader=load, on_progress=count).run()
    assert plan.warmup == 1
    ((prompt_eval, past_opening),) = evaluated
    assert prompt_eval >= past_opening > 10


def test_cancel_keeps_finished_rows_and_resume_completes(tmp_path, data, tiny_llama_dir):
    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = _prepare(tmp_path, data, [spec], limit=4)
    cancel = threading.Event()

    def stop_after_two(report):
        if report.row is not None and report.done >= 2:
            cancel.set()

    outcome = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=stop_after_two).run()
    assert outcome.interrupted and outcome.rows_written == 2
    bench.BenchRunner(folder, runfolder.read_plan(folder), data.by_id()).run()
    keys = result_keys(folder)
    assert len(keys) == len(set(keys)) == plan.total_rows()


def test_failed_model_is_marked_and_the_others_run(tmp_path, data, tiny_llama_dir):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"not a model at all")
    specs = [ModelSpec("broken", "llamacpp", str(broken)), ModelSpec("tiny", "hf", str(tiny_llama_dir))]
    folder, plan = _prepare(tmp_path, data, specs, task_names=("mc",), limit=2)
    outcome = bench.BenchRunner(folder, plan, data.by_id()).run()
    assert "not a GGUF file" in outcome.failures["broken"]
    assert {k[0] for k in result_keys(folder)} == {"tiny"}
    results = runfolder.read_results(folder)
    rows, failures = results.rows, results.failures
    assert len(rows) == 2 and "broken" in failures


def test_batched_rows_share_the_batch_clock(tmp_path, data, tiny_llama_dir):
    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = _prepare(tmp_path, data, [spec], task_names=("paraphrase",), limit=4, batch_size=2)
    bench.BenchRunner(folder, plan, data.by_id()).run()
    rows = [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "result"]
    assert [r["batch_size"] for r in rows] == [2, 2, 2, 2]
    assert rows[0]["ttft_s"] == rows[1]["ttft_s"]  # both requests got their first token in the same step
    segments = runfolder.read_results(folder).segments
    assert [s["rows"] for s in segments] == [2, 2]
    # a batch's wall time covers its longest request, and is not the sum of the two overlapping ones
    assert all(max(r["task_time_s"] for r in pair) <= s["wall_s"] < sum(r["task_time_s"] for r in pair)
               for s, pair in zip(segments, (rows[:2], rows[2:]), strict=True))


def _fill_disk_at(limit_bytes: int):
    """A child process whose files cannot grow past ``limit_bytes``: writes come up short as on a full disk."""
    import resource

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return limit


def test_disk_full_stops_cleanly_and_keeps_written_rows(tmp_path, data):
    from taskclock.runtime.models import resolve

    folder, plan = _prepare(tmp_path, data, [resolve("smollm2")], task_names=("mc",), limit=4, max_tokens=4)
    args = [sys.executable, "-m", "taskclock", "bench", "--resume", str(folder), "--no-plots"]
    full = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=_fill_disk_at(1200))
    assert full.returncode == 2
    assert full.stderr.strip().splitlines()[-1].startswith("taskclock: error: the disk is full")
    raw = (folder / runfolder.RESULTS_FILE).read_bytes()
    assert raw.endswith(b"\n") and 1 <= len(result_keys(folder)) < 4  # whole rows only, none half-written
    assert run_cli("bench", "--resume", str(folder), "--no-plots").returncode == 0
    keys = result_keys(folder)
    assert len(keys) == len(set(keys)) == 4


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path):
    killed_out, whole_out = tmp_path / "killed", tmp_path / "whole"
    proc = start_cli(bench_args(killed_out))
    folder = wait_for_rows(killed_out, proc, 2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 2 <= len(result_keys(folder)) < 6
    resumed = run_cli("bench", "--resume", str(folder), "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    whole = run_cli(*bench_args(whole_out))
    assert whole.returncode == 0, whole.stderr
    (whole_folder,) = whole_out.iterdir()
    assert replies_by_key(folder) == replies_by_key(whole_folder)  # same keys, and greedy gives the same replies


def test_ctrl_c_keeps_rows_and_says_how_to_resume(tmp_path):
    proc = start_cli(bench_args(tmp_path, limit=20))
    folder = wait_for_rows(tmp_path, proc, 2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"taskclock bench --resume {folder}" in stderr
    kept = result_keys(folder)
    assert 2 <= len(kept) < 20 and len(kept) == len(set(kept))
    assert (folder / "summary.md").is_file()


def test_ctrl_c_before_any_row_says_so_instead_of_empty_tables(tmp_path):
    """The server holds its first reply, so Ctrl-C lands before any row: no empty tables, one line saying how
    to go on."""
    proc, stdout, stderr = interrupted_before_the_first_row(
        lambda url: ["bench", "--models", url, "--tasks", "mc", "--limit", "2", "--max-tokens", "4"], tmp_path)
    (folder,) = tmp_path.iterdir()
    assert proc.returncode == 130 and not (folder / runfolder.RESULTS_FILE).exists()
    assert stdout.strip() == "", stdout  # no empty speed / verbosity / per-batch tables
    assert f"interrupted: no rows yet: taskclock bench --resume {folder} continues" in stderr


@pytest.mark.parametrize("extra, message", [
    (["--tasks", "mc,translate"], "unknown task(s): translate"),
    (["--limit", "0"], "--limit must be at least 1"),
    (["--limit", "-3"], "--limit must be at least 1"),
    (["--mmlu", "/no/such/folder"], "does not exist"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, message):
    args = ["bench", "--models", "smollm2", "--out", str(tmp_path), *extra]
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr


def test_no_mmlu_anywhere_uses_the_built_in_copy(tmp_path):
    """No --mmlu, no $TASKCLOCK_MMLU, no config, run from a folder outside the checkout: the packaged data."""
    env = {k: v for k, v in os.environ.items() if k != "TASKCLOCK_MMLU"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    out = tmp_path / "runs"
    result = subprocess.run([sys.executable, "-m", "taskclock", "bench", "--models", "smollm2", "--tasks", "mc",
                             "--limit", "2", "--max-tokens", "4", "--warmup", "0", "--out", str(out), "--no-plots"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    (folder,) = out.iterdir()
    assert runfolder.read_plan(folder).mmlu == mmlu.EMBEDDED
    assert len(result_keys(folder)) == 2


def test_sweep_with_repeats_resumes_mid_sweep(tmp_path, data, tiny_llama_dir):
    """Batch sizes 1 and 2, two repeats: stopped after 5 rows (inside the batch-1 cells), resumed, every
    (question, size, repeat) is recorded exactly once and the summary has one cell per size."""
    from taskclock.runtime import summary

    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = bench.prepare(models=[spec], task_list=tasks.resolve(["mc"]), data=data, subjects=None, limit=4,
                                 seed=0, batch_size=1, warmup=0, max_tokens=4, sampling=SamplingParams(),
                                 runs_dir=tmp_path, batch_sizes=[1, 2], repeats=2)
    cancel = threading.Event()

    def stop_after_five(report) -> None:
        if report.row is not None and report.done >= 5:
            cancel.set()

    first = bench.BenchRunner(folder, plan, data.by_id(), cancel=cancel, on_progress=stop_after_five).run()
    assert first.interrupted and first.rows_written == 5
    again = bench.BenchRunner(folder, runfolder.read_plan(folder), data.by_id()).run()
    assert not again.interrupted and again.rows_written == plan.total_rows() - 5 == 11
    keys = result_keys(folder)
    assert len(keys) == len(set(keys)) == 16
    assert {(k[3], k[4]) for k in keys} == {(1, 0), (1, 1), (2, 0), (2, 1)}
    cells = summary.load_summary(folder).cells
    assert [(c.batch_size, c.repeats, c.done) for c in cells] == [(1, 2, 8), (2, 2, 8)]
    recorded = json.loads((folder / runfolder.SYSTEM_FILE).read_text())["threads"]  # added when the model loaded
    assert list(recorded) == ["tiny"] and recorded["tiny"]["prompt"] == threads.usable_cpus()
    ran = {(r["batch_size"], r["decode_threads"]) for r in runfolder.read_results(folder).rows}
    assert ran == {(1, recorded["tiny"]["decode"]), (2, recorded["tiny"]["prompt"])}  # a batch decodes as a batch


def test_the_warm_up_runs_one_untimed_batch_at_each_batch_size_before_the_timed_ones(tmp_path, data, tiny_llama_dir):
    """Padded batching on transformers, batch sizes 1, 2 and 3: after the single warm-up turn, one batch of 2
    and one of 3 warm-up prompts (salted apart), then only the run's own prompts, none of them a warm-up."""
    spec = ModelSpec("tiny", "hf", str(tiny_llama_dir))
    folder, plan = bench.prepare(models=[spec], task_list=tasks.resolve(["mc"]), data=data, subjects=None, limit=3,
                                 seed=0, batch_size=1, warmup=1, max_tokens=4, sampling=SamplingParams(),
                                 runs_dir=tmp_path, batch_sizes=[1, 2, 3])
    batches: list[list[str]] = []

    def recording_loader(spec):
        model = load_model(spec)
        stream_batch = model.stream_batch

        def recorded(conversations, params, cancel=None):
            batches.append([conversation[-1]["content"] for conversation in conversations])
            return stream_batch(conversations, params, cancel)

        model.stream_batch = recorded
        return model

    outcome = bench.BenchRunner(folder, plan, data.by_id(), loader=recording_loader).run()
    assert not outcome.interrupted and outcome.rows_written == plan.total_rows() == 9
    warm = [WARM_UP_PROMPT in prompt for batch in batches for prompt in batch]
    assert [len(batch) for batch in batches[:2]] == [2, 3] and warm == [True] * 5 + [False] * (len(warm) - 5)
    assert len(set(batches[0] + batches[1])) == 5  # each warm-up prompt under its own salt
    assert len(warm) - 5 == 2 * 3  # the timed batches: each of the 3 questions once at size 2, once at size 3


def test_bad_batch_sizes_are_one_line(tmp_path):
    result = run_cli("bench", "--models", "smollm2", "--batch-sizes", "1,0,4", "--out", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "--batch-sizes: '0'" in result.stderr


def test_a_runs_system_prompt_starts_every_request_and_is_kept_in_run_toml(tmp_path, data, tiny_llama):
    folder, plan = bench.prepare(models=[tiny_llama.spec], task_list=tasks.resolve(["mc"]), data=data, subjects=None,
                                 limit=2, seed=0, batch_size=1, warmup=0, max_tokens=4, sampling=SamplingParams(),
                                 runs_dir=tmp_path, system="Answer with the letter only.")
    assert runfolder.read_plan(folder).system == "Answer with the letter only."
    seen: list = []

    class Recording:
        """The tiny model, keeping each conversation it is asked."""

        def __init__(self, model) -> None:
            self.model, self.spec = model, model.spec

        def stream(self, messages, params, cancel=None):
            seen.append(messages)
            return self.model.stream(messages, params, cancel)

        def close(self) -> None:
            pass

    bench.BenchRunner(folder, plan, data.by_id(), loader=lambda spec: Recording(tiny_llama)).run()
    assert len(seen) == 2 and all(m[0] == {"role": "system", "content": "Answer with the letter only."} for m in seen)


def test_a_fixed_length_workload_runs_exact_inputs_to_exact_outputs(tmp_path, data, tiny_llama_dir):
    """--input-tokens 64 --output-tokens 12: every prompt 64 tokens by the model's own count (chat template
    included), every reply 12 tokens, the end-of-sequence token never sampled (llama.cpp and transformers)."""
    result = run_cli("bench", "--models", f"smollm2,{tiny_llama_dir}", "--input-tokens", "64", "--output-tokens",
                     "12", "--limit", "2", "--warmup", "0", "--out", str(tmp_path), "--no-plots")
    assert result.returncode == 0, result.stderr
    (folder,) = tmp_path.iterdir()
    plan = runfolder.read_plan(folder)
    assert (plan.input_tokens, plan.output_tokens, [t.name for t in plan.tasks]) == (64, 12, [bench.FIXED_TASK])
    rows = runfolder.read_results(folder).rows
    assert len(rows) == 4
    for row in rows:
        assert row["prompt_tokens"] == row["input_tokens"] == 64 and row["token_source"] == "tokenizer"
        assert (row["output_tokens"], row["stop_reason"]) == (12, "length")
    assert "fixed-length workload: 64 input tokens by each model's own count" in result.stderr
    assert "ended before 12 tokens" not in (folder / "summary.md").read_text()


def test_a_fixed_length_request_asks_a_server_to_ignore_eos(scripted_server):
    from llama_server import reply_script

    scripted_server.script = reply_script("a", " b")
    model = load_model(ModelSpec("scripted", "http", scripted_server.url))
    try:
        from taskclock.runtime.turn import run_turn

        run_turn(model, [{"role": "user", "content": "x"}], SamplingParams(max_tokens=9, ignore_eos=True))
    finally:
        model.close()
    body = scripted_server.requests[-1]
    assert (body["ignore_eos"], body["min_tokens"]) == (True, 9)


@pytest.mark.parametrize("options, words", [
    (["--input-tokens", "64"], "--input-tokens and --output-tokens go together"),
    (["--input-tokens", "64", "--output-tokens", "8", "--tasks", "mc"], "replaces the task sets"),
    (["--input-tokens", "0", "--output-tokens", "8"], "--input-tokens must be at least 1"),
])
def test_fixed_length_options_are_checked(tmp_path, options, words):
    from helpers import one_error_line

    assert words in one_error_line(run_cli("bench", "--models", "smollm2", *options, "--out", str(tmp_path)))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fixture", ["smollm2", "smollm2_hf"])
def test_ignore_eos_writes_on_past_where_the_model_would_stop(request, fixture):
    from taskclock.runtime.turn import run_turn

    model = request.getfixturevalue(fixture)
    ask = [{"role": "user", "content": "Say hi."}]
    free = run_turn(model, ask, SamplingParams(max_tokens=60))
    assert free.done.stop_reason == "eos" and free.metrics.output_tokens < 60  # the model stops by itself here
    held = run_turn(model, ask, SamplingParams(max_tokens=60, ignore_eos=True))
    assert (held.done.stop_reason, held.metrics.output_tokens) == ("length", 60)
