"""Helpers shared by test modules: paths, the real `taskclock` command in a subprocess, and bench run
folders. Fixtures live in conftest.py; Pilot helpers for the app in app_helpers.py."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from taskclock.runtime import bench, mmlu, runfolder, storage

ROOT = Path(__file__).resolve().parent.parent
# The CSV release the package data was built from: only the test that proves the two equal reads it; every
# other test uses the package's own copy, as users do.
RELEASE_MMLU = Path(os.environ.get("TASKCLOCK_TEST_MMLU", ROOT.parent / "shared" / "mmlu"))


def mmlu_folder(dest: Path) -> Path:
    """The package's MMLU copy unpacked as a CSV folder (``dest/test/*.csv``), for tests that need a folder."""
    with mmlu.embedded_archive().open("rb") as raw, zipfile.ZipFile(raw) as archive:
        archive.extractall(dest, [n for n in archive.namelist() if n.startswith("test/")])
    return dest


def logged_elsewhere(args: list[str] | tuple[str, ...], folder: str) -> list[str]:
    """`taskclock run` logs its turn, into the checkout's sessions/ when run from it: a test that names no folder
    (nor --no-log) gets ``folder``, so the checkout stays clean."""
    if args[:1] == ["run"] or args[:1] == ("run",):
        if "--sessions" not in args and "--no-log" not in args:
            return [*args, "--sessions", folder]
    return list(args)


def run_cli(*args: str, input: str | None = None, env: dict | None = None, timeout: float = 300,
            cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The real `taskclock` command in a subprocess, as a user runs it."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryDirectory(prefix="taskclock-sessions-") as sessions:
        return subprocess.run([sys.executable, "-m", "taskclock", *logged_elsewhere(args, sessions)],
                              capture_output=True, text=True, input=input, env=full_env, timeout=timeout,
                              cwd=cwd or ROOT)


def start_cli(args: list[str]) -> subprocess.Popen:
    """The `taskclock` command started in the background, for tests that signal or kill it."""
    return subprocess.Popen([sys.executable, "-m", "taskclock", *args], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    """The failed command's `taskclock: error: ...` line, checking it failed cleanly (no traceback)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert lines and lines[-1].startswith("taskclock: error:"), proc.stderr
    return lines[-1]


def bench_args(out: Path, limit: int = 6) -> list[str]:
    """A small greedy `taskclock bench` on SmolLM2 (mc, 4 tokens a reply) into ``out``."""
    return ["bench", "--models", "smollm2", "--tasks", "mc", "--limit", str(limit),
            "--max-tokens", "4", "--warmup", "0", "--out", str(out), "--no-plots"]


def result_keys(folder: Path) -> list[tuple]:
    """The (model, task, qid) of every result row in a run folder, in file order."""
    return [bench.row_key(r) for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == "result"]


def replies_by_key(folder: Path) -> dict[tuple, str]:
    """Each row's reply by key; fails on a duplicate row."""
    keys = result_keys(folder)
    assert len(keys) == len(set(keys)), "duplicate rows"
    return {bench.row_key(r): r["reply"] for r in storage.read(folder / runfolder.RESULTS_FILE)}


def wait_for_rows(out: Path, proc: subprocess.Popen, rows: int, timeout_s: float = 120) -> Path:
    """The run folder under ``out`` once its results file holds ``rows`` lines (polled, with a deadline)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for results in out.glob(f"*/{runfolder.RESULTS_FILE}"):
            if len(results.read_bytes().splitlines()) >= rows:
                return results.parent
        time.sleep(0.02)
    raise AssertionError(f"no {rows} rows appeared (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}")


def records_of(folder: Path, kind: str) -> list[dict]:
    """A run folder's results.jsonl records of one kind ("load", "segment", ...), in file order."""
    return [r for r in storage.read(folder / runfolder.RESULTS_FILE) if r["kind"] == kind]


def first_closed_rate(out: Path, proc: subprocess.Popen, timeout_s: float = 120) -> Path:
    """The load run folder under ``out`` once its first rate has ended (its segment record is written)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        for results in out.glob(f"*/{runfolder.RESULTS_FILE}"):
            if records_of(results.parent, "segment"):
                return results.parent
        time.sleep(0.05)
    raise AssertionError(f"no rate ended (exit {proc.poll()}): {proc.stderr.read() if proc.poll() else ''}")


def bench_on(server_url: str, out: Path, *extra: str, mmlu: Path | None = None, config: Path | None = None,
           models: str | None = None):
    """`taskclock bench` of one question (mc, 8 tokens) on an HTTP model, into ``out``."""
    source = ["--mmlu", str(mmlu)] if mmlu else []  # None: the built-in copy
    args = ["bench", "--models", models or server_url, "--tasks", "mc", *source, "--limit", "1",
            "--max-tokens", "8", "--warmup", "0", "--out", str(out), "--no-plots", *extra]
    if config is not None:
        args += ["--config", str(config)]
    return run_cli(*args)


def compare_log(folder: Path, prompt: str, reply: str) -> Path:
    """A real session log: `taskclock compare` of two scripted HTTP models."""
    from llama_server import reply_script, running_scripted_server  # here: conftest loads it as a plugin first

    with running_scripted_server(reply_script(reply)) as server:
        proc = run_cli("compare", "--prompt-file", "-", "--models", f"{server.url},{server.url}", "--max-tokens", "8",
                       "--sessions", str(folder), input=prompt)
    assert proc.returncode == 0, proc.stderr
    (log,) = [p for p in folder.glob("*.jsonl") if ".export" not in p.name]
    return log


def app_on_terminal(cwd: Path, model: str, sessions: Path) -> tuple[int, int]:
    """The real app (`taskclock chat`) started on a pseudo-terminal of 100 x 30: its pid and the terminal's fd."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the real app on a real terminal
        os.chdir(cwd)
        os.execv(sys.executable, [sys.executable, "-m", "taskclock", "chat", "--model", model, "--sessions",
                                  str(sessions)])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    return pid, fd


def read_until(fd: int, seen: bytearray, wanted: bytes, deadline: float) -> bool:
    """Read the terminal into ``seen`` until ``wanted`` shows or the deadline passes; False if it never did."""
    while wanted not in seen:
        if time.monotonic() > deadline:
            return False
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                return wanted in seen
            if not chunk:
                return wanted in seen
            seen += chunk
    return True


def template_opening(model) -> int:
    """How many tokens every chat of ``model`` starts with (its chat template's fixed opening): all of a timed
    prompt that a warm-up turn of its own can leave in llama.cpp's prompt cache."""
    first, second = (model.encode([{"role": "user", "content": text}]) for text in ("Alpha", "Zebra"))
    return next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)


def interrupted_before_the_first_row(command: Callable[[str], list[str]],
                                     out: Path) -> tuple[subprocess.Popen, str, str]:
    """``command(server_url)`` (a bench or sweep, without warm-up, into ``out``) against a server that holds its
    first reply, stopped with Ctrl-C once it has asked: the process and its stdout and stderr."""
    from llama_server import reply_script, running_scripted_server

    with running_scripted_server([30.0, *reply_script("A")]) as server:
        proc = start_cli([*command(server.url), "--warmup", "0", "--out", str(out), "--no-plots"])
        deadline = time.monotonic() + 60
        while not server.requests and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.requests, "the run never asked the server"
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    return proc, stdout, stderr


TINY_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def random_llama(folder: Path, **shape) -> Path:
    """A random-weight llama saved in ``folder`` with a word-level in-memory tokenizer and a chat template;
    ``shape``: LlamaConfig sizes (default: 2 layers, hidden 64)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "<pad>"] + [f"w{i}" for i in range(250)] + list("abcdefghijklmnopqrstuvwxyz?.,!")
    vocab = {w: i for i, w in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                        unk_token="<unk>", pad_token="<pad>")
    tokenizer.chat_template = TINY_TEMPLATE
    torch.manual_seed(0)
    sizes = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
             "num_key_value_heads": 2, **shape}
    config = LlamaConfig(vocab_size=len(words), max_position_embeddings=512, bos_token_id=1, eos_token_id=2,
                         pad_token_id=3, **sizes)
    model = LlamaForCausalLM(config)
    model.generation_config.eos_token_id = 2
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
