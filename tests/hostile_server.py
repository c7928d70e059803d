"""A hostile OpenAI-compatible server on loopback: every way a server can misbehave that taskclock must survive.

One server serves every mode; the mode is the first path segment, so ``http://127.0.0.1:PORT/MODE/v1`` is a
model URL (``#m`` names the model). It speaks HTTP/1.1 over a raw socket rather than through http.server,
because several modes break HTTP itself (headers that come late, a body cut mid-chunk, one byte every few
hundred milliseconds). ``EXPECT[mode]`` says what a client must do with it: ``"reply"`` (a clean reply, exit 0),
``"turn-error"`` (the turn ends with one error line, exit 1) or ``"load-error"`` (loading fails with one line,
exit 2).

    python tests/hostile_server.py [PORT]    # serve every mode until Ctrl-C, for trying them by hand
"""
from __future__ import annotations

import contextlib
import functools
import gzip
import json
import socketserver
import sys
import time
import zlib
from collections.abc import Callable, Iterator

from llama_server import serving

HOST = "127.0.0.1"
ESC = "\x1b"
# OSC 0 (window title), clear screen, OSC 52 (clipboard write), an OSC 8 link, SGR colour, a bell, C1 CSI.
ESCAPES = (f"{ESC}]0;pwned{ESC}\\ {ESC}[2J{ESC}[H {ESC}]52;c;cHduZWQ={ESC}\\ {ESC}]8;;http://evil/{ESC}\\link"
           f"{ESC}]8;;{ESC}\\ {ESC}[31mred{ESC}[0m \x07 \x9b31m")
MARKUP = "[/x] [bold]not markup[/bold] [link=http://evil]x[/link]"
TICK_S = 0.2  # the pace of slow modes


def sse(chunk: object) -> bytes:
    data = chunk if isinstance(chunk, str) else json.dumps(chunk)
    return f"data: {data}\n\n".encode()


def piece(text: object, finish: object = None) -> dict:
    return {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


FINISH = [sse(piece("", "stop")), sse("[DONE]")]
HELLO = [sse(piece("Hello")), sse(piece(" there"))]


class Handler(socketserver.StreamRequestHandler):
    server: HostileServer

    def handle(self) -> None:
        with contextlib.suppress(OSError):
            method, path, headers = self._read_request()
            parts = path.strip("/").split("/")
            mode = parts[0] if parts else ""
            self.server.requests.append((mode, method, path))
            if mode not in MODES:
                self.reply(404, b'{"error": "unknown mode"}')
            elif path.endswith("/models"):
                MODELS.get(mode, models_ok)(self)
            elif path.endswith("/completions"):
                MODES[mode](self)
            else:
                self.reply(404, b'{"detail": "Not Found"}')

    def _read_request(self) -> tuple[str, str, dict[str, str]]:
        method, path, _ = self.rfile.readline(65536).decode("latin-1").split(" ", 2)
        headers = {}
        while (line := self.rfile.readline(65536).decode("latin-1").strip()):
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.rfile.read(int(headers.get("content-length", 0)))
        return method, path, headers

    def head(self, status: int = 200, content_type: str = "text/event-stream", extra: str = "") -> None:
        self.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nConnection: close\r\n{extra}\r\n"
                         .encode())
        self.wfile.flush()

    def reply(self, status: int, body: bytes, content_type: str = "application/json", extra: str = "") -> None:
        self.head(status, content_type, f"Content-Length: {len(body)}\r\n{extra}")
        self.wfile.write(body)

    def stream(self, steps: list[bytes] | Iterator[bytes], pause_s: float = 0.0) -> None:
        self.head()
        for step in steps:
            self.wfile.write(step)
            self.wfile.flush()
            self.server.streamed += 1
            if pause_s:
                time.sleep(pause_s)


# ---- /models answers ---------------------------------------------------------------------------------

def models_ok(h: Handler) -> None:
    h.reply(200, json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode())


MODELS: dict[str, Callable[[Handler], None]] = {
    "int_model_id": lambda h: h.reply(200, b'{"data": [{"id": 5}, {"id": 7}]}'),
    "models_html": lambda h: h.reply(200, b"<html>" + MARKUP.encode() + ESC.encode() + b"[2J</html>", "text/html"),
    "models_deep": lambda h: h.reply(200, b"[" * 100_000 + b"]" * 100_000),
    "models_401_markup": lambda h: h.reply(401, json.dumps({"error": {"message": MARKUP + ESCAPES}}).encode()),
}


# ---- chat completion answers ---------------------------------------------------------------------------

def endless(h: Handler) -> None:
    """Ignores max_tokens: content for ever."""
    h.stream(sse(piece("word ")) for _ in iter(int, 1))


def trickle(h: Handler) -> None:
    """Starts an event and then sends one byte per tick, never ending the line."""
    h.stream([b"data: {\"choices\": "] + [b" " for _ in range(100_000)], pause_s=TICK_S)


def ping_only(h: Handler) -> None:
    """Keep-alive comments for ever and never an event."""
    h.stream((b": ping\n\n" for _ in iter(int, 1)), pause_s=TICK_S)


def pings_then_nothing(h: Handler) -> None:
    h.stream(HELLO + [b": ping\n\n"] * 100_000, pause_s=TICK_S)


@functools.cache
def bomb(line_breaks: bool) -> bytes:
    """About 200 KB of gzip that inflates to 200 MB: one endless line, or endless blank lines."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = (b"\n" if line_breaks else b"0") * (1 << 20)
    body = packer.compress(b"data: ")
    for _ in range(200):
        body += packer.compress(block)
    return body + packer.flush()


GZIP = "Content-Encoding: gzip\r\n"


def gzip_bomb(h: Handler, line_breaks: bool = False) -> None:
    h.head(extra=GZIP)
    h.wfile.write(bomb(line_breaks))


def slow_headers(h: Handler) -> None:
    time.sleep(5 * TICK_S)
    h.stream(HELLO + FINISH)


def early_close(h: Handler) -> None:
    h.stream(HELLO + [b"data: {\"choi"])


def chunked_cut(h: Handler) -> None:
    """Chunked transfer encoding, cut in the middle of a chunk."""
    h.head(extra="Transfer-Encoding: chunked\r\n")
    h.wfile.write(b"100\r\n" + sse(piece("Hello")))


def huge_line(h: Handler) -> None:
    h.stream(HELLO + [b"data: " + b"x" * 2_700_000 + b"\n\n"] + FINISH)


def error_status(status: int, body: bytes, content_type: str = "application/json") -> Callable[[Handler], None]:
    return lambda h: h.reply(status, body, content_type)


def steps(*items: bytes) -> Callable[[Handler], None]:
    return lambda h: h.stream(list(items))


def chunks(*chunks: object) -> Callable[[Handler], None]:
    """HELLO, then the given events, then a normal finish."""
    return steps(*HELLO, *(sse(c) for c in chunks), *FINISH)


MODES: dict[str, Callable[[Handler], None]] = {
    "ok": steps(*HELLO, *FINISH),
    "crlf": steps(*(s.replace(b"\n", b"\r\n") for s in HELLO + FINISH)),
    "escapes": chunks(piece(ESCAPES)),
    "markup": chunks(piece(MARKUP)),
    "endless": endless,
    "trickle": trickle,
    "ping_only": ping_only,
    "pings_then_nothing": pings_then_nothing,
    "gzip_bomb": gzip_bomb,
    "gzip_bomb_lines": functools.partial(gzip_bomb, line_breaks=True),
    "gzip_ok": lambda h: h.reply(200, gzip.compress(b"".join(HELLO + FINISH)), "text/event-stream", GZIP),
    "slow_headers": slow_headers,
    "early_close": early_close,
    "chunked_cut": chunked_cut,
    "no_finish": steps(*HELLO),
    "empty_200": error_status(200, b"", "text/event-stream"),
    "html_200": error_status(200, b"<html><body>" + MARKUP.encode() + b"</body></html>", "text/html"),
    "huge_line": huge_line,
    "deep_json": steps(*HELLO, b"data: " + b"[" * 100_000 + b"]" * 100_000 + b"\n\n", *FINISH),
    "not_json": chunks("{not json " + ESCAPES),
    "not_object": chunks([1, 2, 3]),
    "usage_string": chunks({"choices": [], "usage": "lots"}),
    "usage_scalar": chunks({"choices": [], "usage": 5}),
    "usage_huge": steps(*HELLO, b'data: {"choices": [], "usage": {"completion_tokens": 1' + b"0" * 400 + b"}}\n\n",
                        *FINISH),
    "usage_negative": chunks({"choices": [], "usage": {"prompt_tokens": -3, "completion_tokens": -5}}),
    "usage_nan": steps(*HELLO, b'data: {"choices": [], "usage": {"completion_tokens": NaN}}\n\n', *FINISH),
    "usage_bool": chunks({"choices": [], "usage": {"completion_tokens": True}}),
    "timings_nan": steps(*HELLO, b'data: {"choices": [], "timings": {"predicted_ms": NaN, "prompt_ms": Infinity,'
                         b' "predicted_n": 1e400, "x": "[/x]"}}\n\n', *FINISH),
    "choices_string": chunks({"choices": "abc"}),
    "choices_dict": chunks({"choices": {"0": {"delta": {"content": "x"}}}}),
    "choice_not_dict": chunks({"choices": [1, "two"]}),
    "delta_string": chunks({"choices": [{"delta": "x"}]}),
    "delta_list": chunks({"choices": [{"delta": ["x"]}]}),
    "content_int": chunks(piece(5)),
    "content_list": chunks(piece(["a", "b"])),
    "content_dict": chunks(piece({"text": "a"})),
    "finish_int": steps(*HELLO, sse(piece("", 5)), sse("[DONE]")),
    "mid_stream_error": chunks({"error": {"message": ESCAPES + MARKUP}}),
    "error_400_markup": error_status(400, json.dumps({"error": {"message": MARKUP + ESCAPES}}).encode()),
    "error_500_text": error_status(500, (MARKUP + ESCAPES).encode(), "text/plain"),
    "error_502_huge": error_status(502, b"[/x]" * 700_000, "text/plain"),
    "error_503_deep": error_status(503, b"[" * 100_000 + b"]" * 100_000),
    "error_500_gzip_bomb": lambda h: h.reply(500, bomb(False), "text/plain", GZIP),
    "slow_endless": lambda h: h.stream((sse(piece("word ")) for _ in iter(int, 1)), pause_s=TICK_S),
    "int_model_id": steps(*HELLO, *FINISH),
    "models_html": steps(*HELLO, *FINISH),
    "models_deep": steps(*HELLO, *FINISH),
    "models_401_markup": steps(*HELLO, *FINISH),
}

REPLY, TURN_ERROR, LOAD_ERROR = "reply", "turn-error", "load-error"
EXPECT: dict[str, str] = {
    **{mode: TURN_ERROR for mode in MODES},
    **{mode: REPLY for mode in ("ok", "crlf", "escapes", "markup", "endless", "gzip_ok", "slow_headers",
                                "timings_nan", "finish_int")},
    **{mode: LOAD_ERROR for mode in MODELS},
}
SLOW = ("trickle", "ping_only", "pings_then_nothing", "slow_endless")  # modes that end only by a client-side timer
# What the one error line must name, for the modes whose cause is a client-side limit (the CLI's, and taskclock
# load's client's but for one: tests/test_load_client.py).
CAUSE = {
    "trickle": "no event for 1.5 s", "ping_only": "no event for 1.5 s", "pings_then_nothing": "no event for 1.5 s",
    "slow_endless": "turn_timeout_s (3 s)", "gzip_bomb": "stopped reading", "gzip_bomb_lines": "exceeded 64 MiB",
    "huge_line": "longer than 1 MiB", "deep_json": "malformed SSE line", "usage_string": "malformed usage",
    "usage_huge": "completion_tokens", "usage_negative": "prompt_tokens", "choices_string": "choices",
    "delta_string": "delta", "content_int": "content is not a string", "int_model_id": "model list",
}


class HostileServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__((HOST, port), Handler)
        self.requests: list[tuple[str, str, str]] = []
        self.streamed = 0  # stream steps written, over all requests: lets a test wait until bytes are out
        self.root = f"http://{HOST}:{self.server_address[1]}"

    def url(self, mode: str) -> str:
        """The model URL for a mode, as `--model` takes it."""
        return f"{self.root}/{mode}/v1#m"

    def posts(self, mode: str) -> int:
        return sum(1 for m, method, _ in self.requests if m == mode and method == "POST")


@contextlib.contextmanager
def running_hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    with serving(server):
        yield server


def main() -> None:
    server = HostileServer(int(sys.argv[1]) if len(sys.argv) > 1 else 8765)
    for mode in MODES:
        print(f"{EXPECT[mode]:<11} {server.url(mode)}")
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
