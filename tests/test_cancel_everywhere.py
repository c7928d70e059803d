"""Issue 21, S2: Ctrl-C reaches all work, not only rows. A sweep against a server whose /tokenize takes seconds
stops at once (the call outside a turn is held to a turn's cancel and deadline); a bench whose plan is as large as
a run may hold stops while it is being planned; a bench whose server holds back its model list stops while the
model loads. Real processes, real loopback servers, a real SIGINT."""
from __future__ import annotations

import signal
import threading
import time

from helpers import records_of, run_cli, start_cli
from llama_server import ScriptedHandler, reply_script, running_scripted_server

from taskclock.runtime import values

GUARD_S = 60  # without the fix the sweep below asks dozens of 5 s counts (minutes): the guard, not a target
TOKENIZE_S = 5.0


class SlowTokenizer(ScriptedHandler):
    """A server with a tokenizer that takes TOKENIZE_S per call: llama.cpp's /tokenize under load, or a hostile
    one. Every call is recorded in ``server.tokenize_calls``."""

    def do_POST(self) -> None:
        if not self.path.endswith("/tokenize"):
            super().do_POST()
            return
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.tokenize_calls.append(time.monotonic())
        time.sleep(TOKENIZE_S)  # headers held back too: nothing for the client to cut but its own wait
        self._send(200, b'{"tokens": [1, 2, 3]}')


class SlowModelList(ScriptedHandler):
    """A server that holds back its answer to GET /models (headers too) until the test releases it: a server
    still loading its own model, or a hostile one. ``server.answered`` says whether it has answered."""

    def do_GET(self) -> None:
        if not self.path.endswith("/models"):
            super().do_GET()
            return
        self.server.gets.append(self.path)
        self.server.release.wait(GUARD_S / 2)
        self.server.answered.set()
        self._send(200, b'{"object": "list", "data": [{"id": "scripted", "object": "model"}]}')


def wait_until(condition, proc, what: str) -> None:
    deadline = time.monotonic() + GUARD_S
    while not condition() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition(), f"never {what} (exit {proc.poll()})"


def test_ctrl_c_stops_a_sweep_waiting_on_a_slow_tokenize(tmp_path):
    with running_scripted_server(reply_script("A")) as server:
        server.RequestHandlerClass = SlowTokenizer
        server.tokenize_calls = []
        proc = start_cli(["sweep", "--models", server.url, "--input-tokens", "64", "--output-tokens", "2",
                          "--warmup", "0", "--out", str(tmp_path), "--no-plots"])
        wait_until(lambda: server.tokenize_calls, proc, "asked the server's tokenizer")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=GUARD_S)
        calls = len(server.tokenize_calls)
    assert proc.returncode == 130, stderr
    assert "interrupted: no rows yet" in stderr and "Traceback" not in stderr
    assert calls == 1 and not server.requests  # no second count asked, no turn sent


def test_ctrl_c_while_a_run_of_a_million_rows_is_planned(tmp_path):
    """The largest plan a run may hold (100 questions × 10,000 repeats): planned a cell at a time with the cancel
    flag checked, so Ctrl-C as the runner starts ends the run with nothing sent and nothing written."""
    with running_scripted_server(reply_script("A")) as server:
        proc = start_cli(["bench", "--models", server.url, "--tasks", "mc", "--limit", "100", "--repeats",
                          str(values.PLAN_RANGES["repeats"][1]), "--warmup", "0", "--out", str(tmp_path), "--no-plots"])
        head = proc.stderr.readline()  # "run folder: …": the runner starts, and plans for about 0.6 s here
        assert head.startswith("run folder:"), head
        time.sleep(0.2)  # past the moment Ctrl-C starts meaning "stop the run" (run_interruptibly), not a bound
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=GUARD_S)
    assert proc.returncode == 130, stderr
    assert "interrupted: no rows yet" in stderr and "Traceback" not in stderr
    assert not server.requests


def test_ctrl_c_stops_a_bench_while_its_model_loads(tmp_path):
    """No backend can stop a load midway; the run kit stops waiting for it, so Ctrl-C ends the run while the
    server still holds back its model list, and the folder resumes later."""
    with running_scripted_server(reply_script("A")) as server:
        server.RequestHandlerClass = SlowModelList
        server.release, server.answered = threading.Event(), threading.Event()
        proc = start_cli(["bench", "--models", server.url, "--tasks", "mc", "--limit", "1", "--warmup", "0",
                          "--out", str(tmp_path), "--no-plots"])
        wait_until(lambda: server.gets, proc, "asked for the model list")
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=GUARD_S)
        answered_before_the_exit = server.answered.is_set()
        server.release.set()
        assert proc.returncode == 130, stderr
        assert "interrupted: no rows yet" in stderr and "Traceback" not in stderr
        assert not answered_before_the_exit and not server.requests  # it did not wait for the load, nor send a turn
        (folder,) = tmp_path.iterdir()
        resumed = run_cli("bench", "--resume", str(folder), "--no-plots")
    assert resumed.returncode == 0, resumed.stderr
    assert len(records_of(folder, "result")) == 1 and len(server.requests) == 1
