"""The input-length sweep on real models: exact prompt lengths, TTFT growing with the input, the cached prefix
beating the cold one, lengths beyond the context skipped, resume after a stop, and bad input as one line."""
from __future__ import annotations

import json
import shutil
import signal
import threading
from pathlib import Path
from statistics import median

import pytest
from helpers import interrupted_before_the_first_row, one_error_line, run_cli, start_cli, wait_for_rows
from llama_server import running_scripted_server

from taskclock.runtime import fitting, runfolder, sweep
from taskclock.runtime.backend import ModelSpec, SamplingParams, load_model
from taskclock.runtime.models import resolve
from taskclock.runtime.runfolder import row_salt
from taskclock.runtime.turn import run_turn

SHORT, LONG = 128, 1024  # 8× the tokens: the cold TTFT must at least double, however loaded the machine


def sweep_rows(folder: Path) -> list[dict]:
    return runfolder.read_results(folder, "sweep").rows


def medians(rows: list[dict], phase: str, length: int, key: str = "ttft_s") -> float:
    return median(r[key] for r in rows if r["phase"] == phase and r["requested_tokens"] == length)


def run_sweep(tmp_path: Path, specs: list[ModelSpec], lengths: list[int], repeats: int = 1,
              output_tokens: int = 4, **runner) -> tuple[Path, sweep.SweepPlan, object]:
    folder, plan = sweep.prepare(models=specs, input_tokens=lengths, output_tokens=output_tokens, repeats=repeats,
                                 warmup=1, runs_dir=tmp_path)
    return folder, plan, sweep.SweepRunner(folder, plan, **runner).run()


# ---- prompts of an exact length ------------------------------------------------------------------

@pytest.fixture(scope="module", params=["smollm2", "smollm2-hf"])
def own_model(request):
    """A model of this module's own: a long prompt left in the shared session model's llama.cpp cache would
    change the greedy text of later tests that compare it with a server's."""
    model = load_model(resolve(request.param))
    yield model
    model.close()


def test_prompts_have_exactly_the_requested_tokens_by_the_models_tokenizer(own_model):
    model, fixture = own_model, own_model.spec.name
    count, filler = fitting.token_counter(model), fitting.filler_text()
    assert count.source == "tokenizer"
    for target in (333, 100, 1000, 2500):
        for repeat in range(3):
            fitted = sweep.fit_prompts(count, filler, target, row_salt("test", fixture, target, repeat))
            for phase in sweep.PHASES:
                assert len(model.encode(fitted[phase].messages)) == fitted[phase].tokens == target
            cold, cached = (fitted[p].messages[0]["content"] for p in sweep.PHASES)
            assert cold != cached and cold.split("Question:")[0] == cached.split("Question:")[0]  # same context
        if target == 333:
            result = run_turn(model, fitted["cold"].messages, SamplingParams(max_tokens=1))
            assert result.done.input_tokens == 333  # what the model itself read


def test_a_length_too_short_for_the_question_is_refused_with_the_reason(smollm2):
    fitted = sweep.fit_prompts(fitting.token_counter(smollm2), fitting.filler_text(), 10, "abc")
    assert isinstance(fitted, str) and fitted.startswith("10 tokens cannot hold the chat template, salt and question")


# ---- llama.cpp through the command: growth, cache, skip, summary ------------------------------------------

@pytest.fixture(scope="module")
def llamacpp_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    result = run_cli("sweep", "--models", "smollm2", "--input-tokens", f"{SHORT},{LONG},8192", "--output-tokens",
                     "4", "--repeats", "3", "--out", str(out))
    (folder,) = out.iterdir()
    return result, folder


def test_llamacpp_ttft_and_task_time_grow_with_input_length(llamacpp_sweep):
    result, folder = llamacpp_sweep
    assert result.returncode == 0, result.stderr
    rows = sweep_rows(folder)
    assert len(rows) == 2 * 2 * 3  # two lengths that fit × cold and cached × 3 repeats
    assert all(r["input_tokens"] == r["prompt_tokens"] == r["requested_tokens"] for r in rows)
    assert medians(rows, "cold", LONG) > 2 * medians(rows, "cold", SHORT)
    assert medians(rows, "cold", LONG, "task_time_s") > 2 * medians(rows, "cold", SHORT, "task_time_s")


def test_llamacpp_cached_prefix_is_faster_than_cold(llamacpp_sweep):
    _, folder = llamacpp_sweep
    rows = sweep_rows(folder)
    assert medians(rows, "cached", LONG) < medians(rows, "cold", LONG) / 2


def test_a_cached_row_has_no_prefill_rate_where_the_backend_does_not_say_what_it_cached(llamacpp_sweep):
    """The whole input over a cache hit's TTFT is no prefill rate: llama.cpp in-process reports no cached tokens,
    so its cached rows record None and the summary shows —; its cold rows keep input tokens / TTFT."""
    _, folder = llamacpp_sweep
    rows = sweep_rows(folder)
    assert {r["phase"] for r in rows if r["prefill_tps"] is None} == {"cached"}
    assert all(r["prefill_tps"] == pytest.approx(r["input_tokens"] / r["ttft_s"]) for r in rows if r["phase"] == "cold")
    cells = json.loads((folder / "summary.json").read_text())["cells"]
    assert [c["prefill_tps"] for c in cells if c["phase"] == "cached"] == [None, None]


def test_a_length_beyond_the_context_is_skipped_with_the_reason(llamacpp_sweep):
    result, folder = llamacpp_sweep
    reason = "8192 input + 4 output tokens exceed the model's context of 4096 tokens"
    assert f"skipped smollm2 at 8192 tokens: {reason}" in result.stderr
    skips = runfolder.read_results(folder, "sweep").skips
    assert [(s["requested_tokens"], s["reason"]) for s in skips] == [(8192, reason)]
    assert not [r for r in sweep_rows(folder) if r["requested_tokens"] == 8192]


def test_the_summary_has_the_table_the_plots_and_the_skip(llamacpp_sweep):
    result, folder = llamacpp_sweep
    text = (folder / "summary.md").read_text()
    assert "| smollm2 | 1024 | cached | 3 | 1024 |" in text
    assert "TTFT s vs input tokens" in text and "task time s vs input tokens" in text
    assert "- smollm2 at 8192 tokens: 8192 input" in text
    assert "TTFT s vs input tokens" in result.stdout
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["rows"] == summary["expected_rows"] == 12
    assert run_cli("export", str(folder)).returncode == 0  # regenerated from the folder alone


def test_a_row_of_another_kind_of_run_is_a_damaged_line_not_a_crash(llamacpp_sweep, tmp_path):
    _, folder = llamacpp_sweep
    copy = Path(shutil.copytree(folder, tmp_path / "copy"))
    row = sweep_rows(copy)[0]
    bench_row = {**{k: v for k, v in row.items() if k not in ("phase", "requested_tokens")}, "kind": "result",
                 "task": "mc", "qid": "x/1"}
    with open(copy / runfolder.RESULTS_FILE, "a") as results:
        results.write(json.dumps(bench_row) + "\n")
    exported = run_cli("export", str(copy))
    assert exported.returncode == 0, exported.stderr
    assert "a result row, not a sweep row" in exported.stderr
    assert len(sweep_rows(copy)) == 12


# ---- transformers -------------------------------------------------------------------------------------------

def test_transformers_ttft_grows_with_input_length(tmp_path):
    folder, _, outcome = run_sweep(tmp_path, [resolve("smollm2-hf")], [SHORT, LONG], repeats=3)
    assert not outcome.failures and not outcome.interrupted
    rows = sweep_rows(folder)
    assert all(r["input_tokens"] == r["requested_tokens"] and r["token_source"] == "tokenizer" for r in rows)
    assert medians(rows, "cold", LONG) > 2 * medians(rows, "cold", SHORT)


# ---- stop and resume ----------------------------------------------------------------------------------------

def test_a_stopped_sweep_resumes_with_every_row_once(tmp_path):
    cancel = threading.Event()

    def stop_after_the_first_row(report) -> None:
        if report.row is not None:
            cancel.set()

    folder, plan, first = run_sweep(tmp_path, [resolve("smollm2")], [SHORT, 256], repeats=2, output_tokens=2,
                                    cancel=cancel, on_progress=stop_after_the_first_row)
    assert first.interrupted
    kept = sweep_rows(folder)
    assert [(r["phase"], r["requested_tokens"], r["repeat"]) for r in kept] == [("cold", SHORT, 0)]
    resumed = run_cli("sweep", "--resume", str(folder), "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    keys = [runfolder.sweep_key(r) for r in sweep_rows(folder)]
    assert len(keys) == len(set(keys)) == plan.total_rows() == 8
    assert kept[0] in sweep_rows(folder)  # the row written before the stop is kept, not redone


def test_ctrl_c_keeps_rows_and_says_how_to_resume(tmp_path):
    proc = start_cli(["sweep", "--models", "smollm2", "--input-tokens", "64,128,256", "--output-tokens", "2",
                      "--repeats", "2", "--out", str(tmp_path), "--no-plots"])
    folder = wait_for_rows(tmp_path, proc, 2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert f"resume with: taskclock sweep --resume {folder}" in stderr
    kept = len(sweep_rows(folder))
    assert 2 <= kept < 12
    assert run_cli("sweep", "--resume", str(folder), "--no-plots").returncode == 0
    keys = [runfolder.sweep_key(r) for r in sweep_rows(folder)]
    assert len(keys) == len(set(keys)) == 12


def test_ctrl_c_before_any_row_says_so_instead_of_an_empty_table(tmp_path):
    """The server holds its first reply, so Ctrl-C lands before any row: one line saying how to go on."""
    proc, stdout, stderr = interrupted_before_the_first_row(
        lambda url: ["sweep", "--models", url, "--input-tokens", "64", "--output-tokens", "2"], tmp_path)
    (folder,) = tmp_path.iterdir()
    assert proc.returncode == 130 and not (folder / runfolder.RESULTS_FILE).exists()
    assert stdout.strip() == "", stdout  # no empty table
    assert f"interrupted: no rows yet: taskclock sweep --resume {folder} continues" in stderr


# ---- bad input ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--input-tokens", "0"], "--input-tokens: '0' is not a whole number of at least 1"),
    (["--input-tokens", "1k"], "--input-tokens: '1k' is not a whole number of at least 1"),
    (["--input-tokens", ","], "--input-tokens is empty"),
    (["--output-tokens", "0"], "--output-tokens must be at least 1 and at most 16777216, not 0"),
    (["--repeats", "0"], "--repeats must be at least 1 and at most 10000, not 0"),
    (["--warmup", "-1"], "--warmup must be at least 0 and at most 1000, not -1"),
    (["--models", "no-such-model"], "unknown model 'no-such-model'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, message):
    args = ["sweep", "--models", "smollm2", "--out", str(tmp_path), *extra]
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in one_error_line(result)
    assert not list(tmp_path.iterdir())  # nothing started


def test_resume_of_a_folder_that_is_no_sweep_is_one_line(tmp_path):
    assert "is not a sweep run folder" in one_error_line(run_cli("sweep", "--resume", str(tmp_path)))
    (tmp_path / "run.toml").write_text('[run]\nrun_id = "x"\n')
    assert "holds a 'bench' run, not a sweep run" in one_error_line(run_cli("sweep", "--resume", str(tmp_path)))


def test_resume_refuses_options_that_would_change_the_sweep(tmp_path):
    folder, _ = sweep.prepare(models=[resolve("smollm2")], input_tokens=[SHORT], output_tokens=2, repeats=1,
                              warmup=0, runs_dir=tmp_path)
    line = one_error_line(run_cli("sweep", "--resume", str(folder), "--input-tokens", "256"))
    assert "--resume continues a run as it was planned, so --input-tokens cannot change it" in line


# ---- HTTP ---------------------------------------------------------------------------------------------------

def test_a_server_without_a_tokenizer_is_swept_on_an_estimate_that_says_so(tmp_path):
    with running_scripted_server() as server:
        folder, _, outcome = run_sweep(tmp_path, [resolve(server.url)], [64], output_tokens=2)
    assert not outcome.failures
    rows = sweep_rows(folder)
    assert len(rows) == 2 and {r["token_source"] for r in rows} == {"estimate"}
    prompt = server.requests[-1]["messages"][0]["content"]
    assert abs(len(prompt) / fitting.CHARS_PER_TOKEN - 64) <= 1  # 4 characters a token, chat template not counted
    sweep.export(folder)
    assert f"prompts counted by: {server.url}: estimate" in (folder / "summary.md").read_text()


def test_llama_server_prompts_are_exact_its_cache_is_used_and_its_context_is_respected(tmp_path,
                                                                                       one_slot_llama_server):
    spec = ModelSpec("smollm2-server", "http", one_slot_llama_server.url)
    folder, _, outcome = run_sweep(tmp_path, [spec], [SHORT, LONG, 4096], repeats=1)
    assert not outcome.failures
    rows = sweep_rows(folder)
    assert {r["token_source"] for r in rows} == {"tokenizer"}  # the server's template and tokenizer
    assert all(r["input_tokens"] == r["requested_tokens"] for r in rows)  # as the server counted them
    cold, cached = ({r["phase"]: r for r in rows if r["requested_tokens"] == LONG}[p] for p in sweep.PHASES)
    assert cold["cached_tokens"] < 32 < LONG - 32 < cached["cached_tokens"]  # the salt defeats the prefix cache
    assert cached["prefill_tps"] == pytest.approx((cached["input_tokens"] - cached["cached_tokens"]) / cached["ttft_s"])
    assert cached["ttft_s"] < cold["ttft_s"] / 2
    (skip,) = runfolder.read_results(folder, "sweep").skips
    assert skip["reason"] == "4096 input + 4 output tokens exceed the model's context of 2048 tokens"
