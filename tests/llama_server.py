"""Real OpenAI-compatible servers on loopback for the HTTP backend's tests.

``LlamaServer`` runs llama-cpp-python's own server (``python -m llama_cpp.server``) on SmolLM2;
``scripted_server`` runs a tiny http.server that misbehaves on purpose (HTTP 500, a malformed SSE line, a
stall), because a healthy server cannot be asked to fail in those ways.
"""
from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from taskclock.runtime.backends.llamacpp import advised_threads, server_threads

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class LlamaServer:
    """llama-cpp-python's server serving one GGUF on 127.0.0.1 and a free port."""

    name = "llama_cpp.server"

    def __init__(self, gguf, n_ctx: int = 2048) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/v1"
        self.log = tempfile.TemporaryFile("w+")  # llama.cpp's load log would fill a pipe and block the server
        self.proc = subprocess.Popen(self.command(gguf, n_ctx), stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def command(self, gguf, n_ctx: int) -> list[str]:
        threads = advised_threads(gguf)  # what taskclock runs the same GGUF with in process
        return [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", HOST,
                "--port", str(self.port), "--n_ctx", str(n_ctx), "--flash_attn", "true",
                "--n_threads", str(threads.decode), "--n_threads_batch", str(threads.prompt)]

    def _wait_ready(self, limit_s: float = 120) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer /v1/models in time")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


def llama_server_binary() -> Path | None:
    """llama.cpp's own ``llama-server``: $TASKCLOCK_LLAMA_SERVER, else the one `make install` builds into
    the venv's bin, else one on PATH."""
    named = os.environ.get("TASKCLOCK_LLAMA_SERVER")
    if named:
        return Path(named) if Path(named).is_file() else None
    beside = Path(sys.executable).parent / "llama-server"
    if beside.is_file():
        return beside
    found = shutil.which("llama-server")
    return Path(found) if found else None


class NativeLlamaServer(LlamaServer):
    """llama.cpp's own ``llama-server`` with ``slots`` parallel slots (continuous batching) on loopback."""

    name = "llama-server"

    def __init__(self, gguf, slots: int = 4, n_ctx: int = 4096) -> None:
        self.slots = slots
        super().__init__(gguf, n_ctx)

    def command(self, gguf, n_ctx: int) -> list[str]:
        binary = llama_server_binary()
        assert binary is not None, "no llama-server binary"
        return [str(binary), "-m", str(gguf), "--host", HOST, "--port", str(self.port), "-np", str(self.slots),
                "-c", str(n_ctx), *server_threads(advised_threads(gguf))]

    def slots_busy(self) -> int:
        """How many slots are generating now (llama-server's /slots monitoring endpoint)."""
        slots = httpx.get(f"http://{HOST}:{self.port}/slots", timeout=5).json()
        return sum(1 for slot in slots if slot.get("is_processing"))


def native_server_or_skip(gguf, **options) -> NativeLlamaServer:
    """llama-server on ``gguf``, or the test skipped where no binary was built."""
    if llama_server_binary() is None:
        pytest.skip("no llama-server binary: `make install` builds it into .venv/bin "
                    "(or set TASKCLOCK_LLAMA_SERVER to one)")
    return NativeLlamaServer(gguf, **options)


def smollm2_gguf():
    from taskclock.runtime.models import local_file, resolve

    return local_file(resolve("smollm2"))


@pytest.fixture(scope="session")
def llama_server():
    server = LlamaServer(smollm2_gguf())
    yield server
    server.stop()


@pytest.fixture(scope="module")
def one_slot_llama_server():
    """llama.cpp's own llama-server on SmolLM2: one slot, a 2048-token context."""
    server = native_server_or_skip(smollm2_gguf(), slots=1, n_ctx=2048)
    yield server
    server.stop()


def sse(chunk: dict | str) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def content_chunk(text: str, finish: str | None = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text} if text else {}, "finish_reason": finish}]}


def reasoning_chunk(text: str, finish: str | None = None, key: str = "reasoning_content") -> dict:
    """A delta carrying reasoning the server parsed out (vLLM/SGLang ``reasoning_content``, newer ``reasoning``)."""
    return {"choices": [{"index": 0, "delta": {key: text, "content": None}, "finish_reason": finish}]}


def thinking_script(thinking: list[str], answer: list[str], gap_s: float, *, tagged: bool = False,
                    finish: str = "stop", usage: dict | None = None) -> list:
    """A stream that thinks, then answers: ``thinking`` pieces (reasoning deltas, or plain content when
    ``tagged``: the test puts the tags in), then ``answer`` pieces as content, ``gap_s`` before every piece
    after the first; then the finish reason, optional usage, and [DONE]."""
    pieces = [sse(content_chunk(t) if tagged else reasoning_chunk(t)) for t in thinking]
    pieces += [sse(content_chunk(a)) for a in answer]
    script: list = [pieces[0]]
    for piece in pieces[1:]:
        script += [gap_s, piece]
    script.append(sse(content_chunk("", finish)))
    if usage is not None:
        script.append(sse({"choices": [], "usage": usage}))
    return script + [sse("[DONE]")]


class ScriptedHandler(http.server.BaseHTTPRequestHandler):
    """Answers a GET of a path in ``server.routes`` with that JSON (404 for any other path but /v1/models), GET
    /v1/models with ``server.models`` (one model, "scripted", unless a test sets others) and POST
    /v1/chat/completions with ``server.script``:
    a status code and body, or a list of SSE byte strings and float pauses (seconds) to send in order; the time
    each string is sent is appended to ``server.sent``."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.gets.append(self.path)
        if self.path in self.server.routes:
            self._send(200, json.dumps(self.server.routes[self.path]).encode())
        elif self.path.endswith("/models"):
            self._send(200, json.dumps({"object": "list", "data": [{"id": model, "object": "model"}
                                                                   for model in self.server.models]}).encode())
        else:
            self._send(404, b'{"detail": "Not Found"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        if not self.path.endswith("completions"):
            self._send(404, b'{"detail": "Not Found"}')
            return
        self.server.requests.append(body)
        self.server.auth = self.headers.get("Authorization")
        script = self.server.script
        if isinstance(script, tuple):
            status, body = script
            self._send(status, json.dumps(body).encode())
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for step in script:
                if isinstance(step, float):
                    time.sleep(step)
                else:
                    self.server.sent.append(time.perf_counter_ns())  # taskclock's clock; just before, so the
                    self.wfile.write(step)  # client's arrival can never come first
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up, which is what some tests want
        self.close_connection = True


class PromptHandler(ScriptedHandler):
    """Sends each small SSE write at once (TCP_NODELAY, as uvicorn and llama-server do), where Nagle's algorithm
    would hold it until the client ACKs the previous one (~40 ms with delayed ACKs): for tests that hold
    arrival times to the server's schedule within milliseconds."""

    disable_nagle_algorithm = True


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve ``server`` on a daemon thread for the block, then shut it down and close its socket."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def running_scripted_server(script=None, *, prompt: bool = False):
    """A real HTTP server on loopback whose replies a test sets via ``server.script`` (``prompt``: PromptHandler)."""
    server = http.server.ThreadingHTTPServer((HOST, 0), PromptHandler if prompt else ScriptedHandler)
    server.daemon_threads = True
    server.script = script or [sse(content_chunk("", "stop")), sse("[DONE]")]
    server.requests = []
    server.routes = {}  # GET path → JSON answer (Ollama's /api/tags, llama-server's /props)
    server.models = ["scripted"]
    server.gets = []
    server.sent = []  # perf_counter_ns as each scripted write starts: when the server really sent it
    server.url = f"http://{HOST}:{server.server_address[1]}/v1"
    with serving(server):
        yield server


@pytest.fixture
def scripted_server():
    with running_scripted_server() as server:
        yield server


def reply_script(*texts: str) -> list[bytes]:
    return [*(sse(content_chunk(text)) for text in texts), sse(content_chunk("", "stop")), sse("[DONE]")]
