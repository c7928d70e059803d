"""Issue 11, item 16, through the real `taskclock` command: session logs and runs go to ./sessions and ./runs
only when the working directory is the checkout; from anywhere else (the editable install included) they go
to the user data dir, and the command says where."""
from __future__ import annotations

import os
import time
from pathlib import Path

from helpers import ROOT, app_on_terminal, read_until, run_cli
from llama_server import reply_script, running_scripted_server

GUARD_S = 180  # against hangs, not a speed check


def user_data_dir() -> Path:
    return Path(os.environ["XDG_DATA_HOME"]) / "taskclock"  # set per test session by conftest


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_compare_from_another_folder_logs_to_the_user_data_dir_and_says_where(tmp_path):
    checkout_before = listing(ROOT / "sessions")
    with running_scripted_server(reply_script("Hello.")) as server:
        proc = run_cli("compare", "hi", "--models", f"{server.url},{server.url}", "--max-tokens", "8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (logged,) = [line for line in proc.stderr.splitlines() if line.startswith("logged to ")]
    path = Path(logged.removeprefix("logged to "))
    assert path.is_file() and path.parent == user_data_dir() / "sessions"
    assert listing(ROOT / "sessions") == checkout_before and listing(tmp_path) == []
    path.unlink()


def test_bench_from_another_folder_writes_its_run_to_the_user_data_dir(tmp_path):
    checkout_before = listing(ROOT / "runs")
    with running_scripted_server(reply_script("A")) as server:
        proc = run_cli("bench", "--models", server.url, "--tasks", "mc", "--limit", "1",
                       "--max-tokens", "4", "--warmup", "0", "--no-plots", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    (folder_line,) = [line for line in proc.stderr.splitlines() if line.startswith("run folder: ")]
    folder = Path(folder_line.removeprefix("run folder: ").split("  (")[0])
    assert folder.parent == user_data_dir() / "runs" and (folder / "results.jsonl").is_file()
    assert listing(ROOT / "runs") == checkout_before and listing(tmp_path) == []


def test_the_app_says_where_its_session_log_went(tmp_path):
    sessions = tmp_path / "sessions"
    with running_scripted_server(reply_script("Hello.")) as server:
        pid, fd = app_on_terminal(tmp_path, server.url, sessions)
        seen = bytearray()
        try:
            assert read_until(fd, seen, b"loaded in", time.monotonic() + GUARD_S), bytes(seen[-2000:])
            os.write(fd, b"hi\r")
            deadline = time.monotonic() + GUARD_S
            while not list(sessions.glob("*.jsonl")) and time.monotonic() < deadline:
                read_until(fd, seen, b"\x00never\x00", time.monotonic() + 0.5)
            os.write(fd, b"\x11")  # Ctrl+Q
            read_until(fd, seen, b"\x00never\x00", time.monotonic() + 30)
        finally:
            status = os.waitpid(pid, 0)[1]
            os.close(fd)
    (log,) = sessions.glob("*.jsonl")
    assert os.waitstatus_to_exitcode(status) == 0
    assert f"taskclock: wrote {log}".encode() in bytes(seen).replace(b"\r\n", b"\n")
