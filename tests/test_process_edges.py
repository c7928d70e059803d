"""Issue 11, item 12: the edges of the process itself, through the real `taskclock` command. Arguments that are
not UTF-8, a reader that closes the pipe early, a disk that fills up while a GGUF is converted, and SIGTERM
or SIGHUP sent to the app each end cleanly: one line, no traceback, no half-written files, and a terminal
restored as Ctrl+Q restores it."""
from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, app_on_terminal, one_error_line, read_until
from llama_server import content_chunk, running_scripted_server, sse

GUARD_S = 180  # against hangs, not a speed check


@pytest.mark.parametrize("command", ["compare", "run"])
def test_an_argument_that_is_not_utf8_is_one_line_and_writes_nothing(command, tmp_path):
    args = [sys.executable, "-m", "taskclock", command, b"caf\xe9", "--models" if command == "compare" else
            "--model", "smollm2,smollm2" if command == "compare" else "smollm2"]
    if command == "compare":
        args += ["--sessions", str(tmp_path)]
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace", cwd=tmp_path, timeout=GUARD_S)
    line = one_error_line(proc)
    assert "argument 2" in line and "not valid UTF-8" in line
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_closes_the_pipe_early_gives_no_traceback():
    words = [sse(content_chunk(f"word{i} ")) for i in range(200)]
    script = [step for chunk in words for step in (chunk, 0.005)] + [sse(content_chunk("", "stop")), sse("[DONE]")]
    with running_scripted_server(script) as server:
        command = (f"{shlex.quote(sys.executable)} -m taskclock run hi --model {server.url} --max-tokens 32 "
                   "| head -c 10")
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=ROOT,
                              timeout=GUARD_S)
    assert proc.stdout == "word0 word"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr and "Exception" not in proc.stderr, \
        proc.stderr
    assert proc.returncode == 141


def _small_file_limit() -> None:
    """In the child: files may grow to 20 MB only, and hitting the limit is an error (EFBIG), not a signal."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000_000, 20_000_000))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def test_a_disk_full_during_the_gguf_conversion_leaves_no_partial_folder(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "TASKCLOCK_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-m", "taskclock", "run", "hi", "--model", "smollm2-hf",
                           "--max-tokens", "1"], capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=GUARD_S * 2, preexec_fn=_small_file_limit)
    line = one_error_line(proc)
    assert "cannot write the converted model" in line and "free some disk space" in line
    assert [p for p in cache.rglob("*") if "partial" in p.name] == []


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_to_the_app_restores_the_terminal(signum, tmp_path):
    with running_scripted_server() as server:
        pid, fd = app_on_terminal(tmp_path, server.url, tmp_path)
        seen = bytearray()
        try:
            drawn = read_until(fd, seen, b"loaded in", time.monotonic() + GUARD_S)
            assert drawn, bytes(seen[-2000:])
            mark = len(seen)
            os.kill(pid, signum)
            read_until(fd, seen, b"\x00never\x00", time.monotonic() + 30)  # everything until it closes
        finally:
            with_status = os.waitpid(pid, 0)[1]
            os.close(fd)
    after = bytes(seen[mark:])
    assert b"\x1b[?1049l" in after and b"\x1b[?25h" in after and b"\x1b[?1000l" in after, after[-500:]
    assert os.waitstatus_to_exitcode(with_status) == 128 + signum
    assert b"Traceback" not in bytes(seen)

