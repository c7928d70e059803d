"""Leaving the app, or stopping a reply, while work is in flight (issue 11, items 5 and 7).

Root cause: a thread blocked on a server read, or a batch running in a thread worker, did not hear that the
user had stopped or quit: Esc waited for a line that a trickling server never ends, and after Ctrl+Q the
process stayed alive running the whole batch. The quit tests run the real app in a process of its own
(tests/headless_quit.py), because only a process can show that nothing keeps running after the app closes.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from app_helpers import make_app, ready, send, wait_for
from helpers import ROOT
from hostile_server import running_hostile_server

from taskclock.runtime import runfolder
from taskclock.runtime.config import Config

GUARD_S = 120  # a guard against hanging, not a speed check


def quit_while_working(tmp_path: Path, tab: str, model: str) -> subprocess.CompletedProcess:
    script = ROOT / "tests" / "headless_quit.py"
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path), tab, model], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "working"
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        out, err = proc.communicate(timeout=GUARD_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


async def test_escape_ends_a_reply_from_a_server_that_never_ends_a_line(tmp_path):
    with running_hostile_server() as server:
        app = make_app(tmp_path / "sessions", model=server.url("trickle"), config=Config())
        async with app.run_test(size=(120, 40)) as pilot:
            chat = await ready(pilot)
            await send(pilot, "hi")
            await wait_for(pilot, lambda: server.posts("trickle") == 1 and server.streamed > 5,
                           "some bytes of the endless line")
            await pilot.press("escape")
            await wait_for(pilot, lambda: chat.live is None, "the turn to end")
            assert chat.last_result.done.stop_reason == "cancelled"


def test_ctrl_q_during_a_trickling_reply_ends_the_process(tmp_path):
    with running_hostile_server() as server:
        result = quit_while_working(tmp_path, "chat", server.url("trickle"))
    assert result.returncode == 0 and result.stdout.strip() == "quit", result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_ctrl_q_during_a_batch_cancels_it_and_keeps_every_finished_row(tmp_path):
    result = quit_while_working(tmp_path, "batch", "smollm2")
    assert result.returncode == 0 and result.stdout.strip() == "quit", result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    folder = next((tmp_path / "runs").iterdir())
    results = runfolder.read_results(folder)
    assert not results.damaged
    assert 1 <= len(results.rows) < runfolder.read_plan(folder).total_rows()  # stopped early, finished rows kept
    assert all(row["stop_reason"] != "error" for row in results.rows)
