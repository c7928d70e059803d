"""`taskclock run` and `taskclock models` as a user runs them: the real command in a subprocess."""
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from helpers import ROOT, one_error_line, run_cli

from taskclock.runtime.remembered import Remembered, default_path, save
from taskclock.runtime.sessions import read_session

JSON_KEYS = {"model", "backend", "text", "input_tokens", "output_tokens", "output_words", "output_chars", "load_s",
             "ttft_s", "decode_tps", "e2e_tps", "task_time_s", "itl_p50_ms", "itl_p90_ms", "itl_p99_ms",
             "chars_per_s", "words_per_s", "stop_reason", "cold"}


def test_run_json_has_every_documented_key_and_consistent_figures():
    proc = run_cli("run", "Name three colors.", "--model", "smollm2", "--max-tokens", "24", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert JSON_KEYS <= out.keys()
    assert out["model"] == "smollm2" and out["backend"] == "llamacpp"
    assert out["output_words"] == len(out["text"].split())
    assert out["output_chars"] == len(out["text"])
    assert 0 < out["ttft_s"] <= out["task_time_s"]
    assert out["e2e_tps"] <= out["decode_tps"]
    assert out["cold"] is True  # `run` loads the model and measures its first turn, as session logs record


def test_run_streams_text_then_prints_metrics_block():
    proc = run_cli("run", "Say hello.", "--max-tokens", "16")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip()
    for label in ("TTFT:", "decode rate:", "e2e rate:", "task time:", "ITL p99:", "words/s:", "chars/s:"):
        assert label in proc.stderr
    assert "turn: cold" in " ".join(proc.stderr.split())


def test_models_lists_aliases_with_presence():
    proc = run_cli("models")
    assert proc.returncode == 0
    for alias in ("smollm2", "smollm2-hf", "smollm2-hf-8bit", "smollm2-hf-4bit", "gemma3-270m"):
        assert alias in proc.stdout


def test_gemma_base_model_runs_as_plain_completion():
    proc = run_cli("run", "The capital of France is", "--model", "gemma3-270m", "--max-tokens", "8", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output_tokens"] > 0


@pytest.mark.parametrize("args, words", [
    (["run", "hi", "--model", "no-such-model"], "unknown model"),
    (["run", "   ", "--model", "smollm2"], "prompt is empty"),
    (["run", "hi", "--model", "/nonexistent/model.gguf"], "does not exist"),
])
def test_bad_input_is_one_line(args, words):
    assert words in one_error_line(run_cli(*args))


def test_truncated_and_random_gguf_files(tmp_path):
    from taskclock.runtime.models import local_file, resolve

    real = local_file(resolve("smollm2")).read_bytes()
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(real[: len(real) // 3])
    noise = tmp_path / "noise.gguf"
    noise.write_bytes(os.urandom(4096))
    assert "corrupt" in one_error_line(run_cli("run", "hi", "--model", str(truncated)))
    assert "not a GGUF file" in one_error_line(run_cli("run", "hi", "--model", str(noise)))


def test_hf_folder_without_config(tmp_path):
    (tmp_path / "weights.bin").write_bytes(b"0")
    assert "config.json" in one_error_line(run_cli("run", "hi", "--model", str(tmp_path)))


def test_hub_id_while_offline():
    line = one_error_line(run_cli("run", "hi", "--model", "someone/not-a-cached-model",
                                  env={"HF_HUB_OFFLINE": "1"}))
    assert "hub" in line and "someone/not-a-cached-model" in line


def test_cuda_requested_without_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert "CUDA" in one_error_line(run_cli("run", "hi", "--model", "smollm2-hf", "--device", "cuda"))


def test_bitsandbytes_missing_is_named(tmp_path):
    blocker = tmp_path / "sitecustomize.py"  # makes `bitsandbytes` unimportable in the child only
    blocker.write_text("import sys\nsys.modules['bitsandbytes'] = None\n")
    env = {"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    line = one_error_line(run_cli("run", "hi", "--model", "smollm2-hf-4bit", env=env))
    assert "bitsandbytes" in line


def test_prompt_longer_than_context():
    line = one_error_line(run_cli("run", "word " * 3000, "--model", "smollm2", "--ctx", "512"))
    assert "context" in line


def test_invalid_utf8_prompt_file(tmp_path):
    bad = tmp_path / "prompt.txt"
    bad.write_bytes(b"hello \xff\xfe world")
    assert "UTF-8" in one_error_line(run_cli("run", "--prompt-file", str(bad)))


def test_ctrl_c_prints_partial_metrics_and_exits_130(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "taskclock", "run", "Count from 1 to 500, one per line.",
                             "--model", "smollm2", "--max-tokens", "2000", "--sessions", str(tmp_path)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.read(20)  # the reply is streaming (read blocks until 20 characters have arrived)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert re.search(r"^stop reason: +cancelled$", err, re.MULTILINE)
    assert "TTFT:" in err and "Traceback" not in err
    (log,) = tmp_path.glob("*.jsonl")  # the partial turn is logged, as the app logs a stopped one
    assert [t["stop_reason"] for t in read_session(log)] == ["cancelled"]


def test_run_uses_the_remembered_settings_and_logs_a_turn_that_replays(tmp_path, monkeypatch):
    """What the app remembered (Ctrl+G) is what `run` uses unless a flag says otherwise; its log replays the turn
    with the same figures."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # this test's own remembered file
    save(default_path(), Remembered(system="Answer in one word.", max_tokens=5))
    env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
    kept = run_cli("run", "Name a colour.", "--json", "--sessions", str(tmp_path / "kept"), env=env)
    flagged = run_cli("run", "Name a colour.", "--json", "--max-tokens", "3", "--system", "", "--sessions",
                      str(tmp_path / "flagged"), env=env)
    assert kept.returncode == flagged.returncode == 0, kept.stderr + flagged.stderr
    (record,) = read_session(next((tmp_path / "kept").glob("*.jsonl")))
    assert record["kind"] == "run" and record["params"]["max_tokens"] == 5
    assert record["messages"][0] == {"role": "system", "content": "Answer in one word."}
    assert json.loads(kept.stdout)["output_tokens"] <= 5
    (other,) = read_session(next((tmp_path / "flagged").glob("*.jsonl")))
    assert other["params"]["max_tokens"] == 3 and [m["role"] for m in other["messages"]] == ["user"]  # flags win
    replayed = run_cli("replay", str(next((tmp_path / "kept").glob("*.jsonl"))), "--speed", "50", "--json")
    assert replayed.returncode == 0, replayed.stderr
    assert json.loads(replayed.stdout)["output_tokens"] == record["output_tokens"]
    quiet = run_cli("run", "hi", "--max-tokens", "2", "--no-log", "--sessions", str(tmp_path / "none"), env=env)
    assert quiet.returncode == 0 and not (tmp_path / "none").exists()
