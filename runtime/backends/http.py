"""Any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, TGI) over HTTP, streamed as SSE.

Each server-sent ``data:`` line is parsed as it arrives and timestamped then, so TTFT and TPS include the
network and the server's queueing, which is what a user of a remote model waits for; the turn ends when
the stream's last line arrives. Token counts come from the server's ``usage`` when it sends one
(``stream_options.include_usage``), otherwise every content chunk counts as one token. A server that packs
several tokens into a chunk has them attributed to the chunks: by its running count on every chunk where it
sends one (vLLM's ``continuous_usage_stats``), else its final count spread evenly over the chunks
(``Done.extra["arrival_counts"]``; ``token_count_source`` says which). Reasoning the server parses
out (``reasoning_content`` / ``reasoning`` deltas) is thinking; tags left in the content are split by
runtime/phases.py; thinking is counted from ``usage.completion_tokens_details.reasoning_tokens`` when sent,
else by chunk (``Done.extra["thinking_count_source"]``). A server's own timings
(llama.cpp's ``timings``) are kept in ``Done.extra["server_timings"]`` next to the client-side figures.
A server is outside data: every read is capped, every chunk's shape is checked, and a guard thread ends a
turn on cancel, on its deadline or when the server goes idle, from the cancelling side. See docs/HTTP.md.
"""
from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..backend import Message, ModelSpec, SamplingParams
from ..errors import BackendError, Cancelled, ModelNotFound, TaskclockError
from ..events import DoneExtra, Event, StopReason, Submitted, Token, now_ns
from ..phases import PhaseSplitter
from ..reply import Reply
from ..threads import ThreadChoice
from ..untrusted import parse_json, redact, safe_line

FINISH_REASONS: dict[str, StopReason] = {"stop": "eos", "length": "length"}
# POST bodies of the tokenizer endpoints servers offer, tried in order (llama.cpp and vLLM, llama-cpp-python).
TOKENIZE_ENDPOINTS = {
    "/tokenize": lambda text, model: {"content": text, "prompt": text, "model": model,
                                      "add_special": False, "add_special_tokens": False},
    "/extras/tokenize": lambda text, model: {"input": text, "model": model},
}
# Client-side limits, so a server that misbehaves cannot make a turn read or hold without end (docs/RELIABILITY.md).
MAX_LINE_BYTES = 1 << 20  # one SSE line
MAX_REPLY_BYTES = 64 << 20  # one streamed reply, after decompression
MAX_BODY_BYTES = 4 << 20  # a non-streamed answer (/models, /tokenize)
MAX_ERROR_BYTES = 64 << 10  # an error body: enough for any message, never a whole dump
MAX_TOKEN_COUNT = 10**9  # a usage count above this is not a count
GUARD_POLL_S = 0.05  # how often the guard looks at the clocks and the cancel flag (the end wakes it at once)


def one_line(text: object, limit: int = 200) -> str:
    """Server or exception text as one safe line of at most ``limit`` characters."""
    line = safe_line(text)
    return line if len(line) <= limit else line[: limit - 1] + "…"


def base_url(source: str) -> str:
    """The API root: the URL as given, with ``/v1`` added when it names only a host."""
    url = source.rstrip("/")
    return url if urlsplit(url).path else url + "/v1"


def read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """At most ``limit`` bytes of the (decompressed) body, and whether there was more: a gzip bomb or an endless
    body is cut, not read."""
    body = bytearray()
    for chunk in response.iter_bytes():
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


def server_message(response: httpx.Response) -> str:
    """The error text a server put in its reply body, read up to MAX_ERROR_BYTES (``error_text``)."""
    body, _ = read_capped(response, MAX_ERROR_BYTES)
    return error_text(body, response.reason_phrase)


def error_text(body: bytes, reason: str) -> str:
    """The error text of an error reply's body ({"error": {"message"}}, {"error": "..."}, {"detail"}) as one safe
    line; ``reason`` (the status's phrase) where the body says nothing."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = parse_json(text)
    except ValueError:
        return one_line(text) or reason
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return one_line(error)
    return one_line(text)


def http_error(url: str, response: httpx.Response) -> str:
    return status_error(url, response.status_code, server_message(response))


def status_error(url: str, status: int, message: str) -> str:
    return f"{url} answered HTTP {status}: {message}"


def transport_error(url: str, exc: httpx.HTTPError, timeout_s: float) -> str:
    """One line for a network failure, naming what happened rather than the exception class."""
    if isinstance(exc, httpx.ConnectTimeout):
        return f"cannot reach {url}: no answer within {timeout_s:g} s"
    if isinstance(exc, httpx.ConnectError):
        reason = "connection refused" if "refused" in str(exc).lower() else one_line(exc)
        return f"cannot reach {url}: {reason}"
    if isinstance(exc, httpx.ReadTimeout):
        return f"{url} sent nothing for {timeout_s:g} s (read timeout)"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return f"{url} closed the connection mid-reply ({one_line(exc) or type(exc).__name__})"
    return f"{url}: {one_line(exc) or type(exc).__name__}"


class StreamError(Exception):
    """A stream that cannot go on; str() is the one-line reason for Done.error."""


class _Guard:
    """Ends a turn's stream from outside the reading thread: on cancel, past the turn deadline, or when the
    server has sent no event for ``idle_s`` (keep-alive comments do not count). It shuts the socket down, so
    a read blocked on a server that trickles bytes without ever ending a line returns at once."""

    def __init__(self, cancel: threading.Event | None, idle_s: float, turn_s: float) -> None:
        self.cancel = cancel or threading.Event()
        self.idle_s, self.turn_s = idle_s, turn_s
        self.started = self.last_event = time.monotonic()
        self.reason: str | None = None  # why the guard ended the stream; None while it has not
        self._ended = threading.Event()
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def watch(self, response: httpx.Response) -> None:
        """Start watching the connection ``response`` is read from."""
        stream = response.extensions.get("network_stream")
        self._socket = stream.get_extra_info("socket") if stream is not None else None
        self._thread = threading.Thread(target=self._run, name="taskclock-http-guard", daemon=True)
        self._thread.start()

    def event_arrived(self) -> None:
        self.last_event = time.monotonic()

    def check(self) -> None:
        """Raise StreamError when the turn is over its deadline or idle limit (the reader calls this too)."""
        reason = self.overdue()
        if reason:
            self.reason = reason
            raise StreamError(reason)

    def overdue(self) -> str | None:
        now = time.monotonic()
        if now - self.started > self.turn_s:
            return f"the turn took longer than turn_timeout_s ({self.turn_s:g} s)"
        if now - self.last_event > self.idle_s:
            return f"the server sent no event for {self.idle_s:g} s (timeout_s)"
        return None

    def _run(self) -> None:
        """Wakes when the turn ends (so joining it costs nothing) or every GUARD_POLL_S to look at the cancel flag
        and the clocks; a reader that is not blocked sees a cancel itself after the next line."""
        while not self._ended.wait(GUARD_POLL_S):
            if self.cancel.is_set():
                self._stop("cancelled")
                return
            reason = self.overdue()
            if reason:
                self._stop(reason)
                return

    def _stop(self, reason: str) -> None:
        if self._ended.is_set():
            return
        self.reason = reason
        if self._socket is not None:
            with contextlib.suppress(OSError):
                self._socket.shutdown(socket.SHUT_RDWR)

    def end(self) -> None:
        self._ended.set()
        if self._thread is not None:
            self._thread.join()


class LineSplitter:
    """A reply's bytes as its complete lines, each at most MAX_LINE_BYTES and all together at most MAX_REPLY_BYTES
    after decompression; CRLF and LF both end a line. A line the stream ends inside is never returned, as the SSE
    spec says: it is an event that never completed."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.total = 0

    def feed(self, chunk: bytes) -> list[str]:
        self.total += len(chunk)
        if self.total > MAX_REPLY_BYTES:
            raise StreamError(f"the reply exceeded {MAX_REPLY_BYTES >> 20} MiB (a decompression bomb or an "
                              "endless stream); stopped reading")
        buffer = self.buffer
        buffer += chunk
        lines, start = [], 0
        while (end := buffer.find(b"\n", start)) >= 0:
            lines.append(buffer[start:end].rstrip(b"\r").decode("utf-8", errors="replace"))
            start = end + 1
        del buffer[:start]
        if len(buffer) > MAX_LINE_BYTES:
            raise StreamError(f"the server sent a line longer than {MAX_LINE_BYTES >> 20} MiB; stopped reading")
        return lines


def sse_lines(response: httpx.Response) -> Iterator[str]:
    """The response's complete lines (LineSplitter)."""
    splitter = LineSplitter()
    for chunk in response.iter_bytes():
        yield from splitter.feed(chunk)


class HttpModel:
    threads: ThreadChoice | None = None  # the server runs it on threads of its own

    def __init__(self, spec: ModelSpec, client: httpx.Client, url: str, api_model: str,
                 load_s: float, loaded_ns: int, secrets: tuple[str, ...] = ()) -> None:
        self.spec = spec
        self.secrets = secrets  # the API key: kept out of every error line
        self.client = client
        self.url = url
        self.api_model = api_model
        self.load_s = load_s
        self.loaded_ns = loaded_ns
        self._tokenize_path: str | None = None
        self._tokenize_overhead = 0

    def request_body(self, messages: list[Message], params: SamplingParams) -> dict[str, Any]:
        """OpenAI fields plus neutral llama.cpp-style extras, so a greedy request samples the way taskclock's
        in-process backends do (llama-cpp-python's server defaults to repeat_penalty 1.1 and min_p 0.05);
        ``spec.options`` are merged last for server-specific fields."""
        body: dict[str, Any] = {
            "model": self.api_model,
            "stream": True,
            # continuous_usage_stats: vLLM's running count on every chunk, so a chunk's tokens are known as it arrives
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "seed": params.seed,
            "min_p": 0.0,
            "repeat_penalty": 1.0,
        }
        if params.temperature <= 0:
            body["top_k"] = 1
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:  # llama.cpp's server and vLLM; vLLM also takes min_tokens; others ignore both
            body.update(ignore_eos=True, min_tokens=params.max_tokens)
        if self.spec.chat:
            body["messages"] = messages
            if self.spec.thinking is not None:  # Qwen3-style templates on vLLM, SGLang and llama.cpp's server
                body["chat_template_kwargs"] = {"enable_thinking": self.spec.thinking}
        else:
            body["prompt"] = "\n\n".join(m["content"] for m in messages)
        options = dict(self.spec.options)
        if isinstance(options.get("chat_template_kwargs"), dict) and "chat_template_kwargs" in body:
            options["chat_template_kwargs"] = {**body["chat_template_kwargs"], **options["chat_template_kwargs"]}
        body.update(options)
        return body

    def stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        yield Submitted(now_ns())
        url = self.endpoint()
        state = self.stream_state(params)
        guard = _Guard(cancel, self.spec.timeout_s, self.spec.turn_timeout_s)
        end_ns: int | None = None  # when the stream's last line arrived: the end of the turn
        try:
            with self.client.stream("POST", url, json=self.request_body(messages, params)) as response:
                if response.status_code >= 400:
                    raise StreamError(http_error(url, response))
                guard.watch(response)
                for line in sse_lines(response):
                    t = now_ns()
                    if line.startswith("data:"):  # ": ping" comments and blank separators keep no turn alive
                        guard.event_arrived()
                    yield from state.feed(line, self.spec.chat, t)
                    if state.finished or guard.cancel.is_set():
                        end_ns = t
                        break
                    guard.check()
                end_ns = end_ns or now_ns()  # the server closed the stream (after its finish, or cut short)
            if not (guard.reason or guard.cancel.is_set()):
                state.check_finished(url)
        except (httpx.HTTPError, OSError) as exc:  # a read the guard cut short ends here too
            if not (guard.reason or guard.cancel.is_set()):
                state.error = transport_error(url, exc, self.spec.timeout_s) if isinstance(exc, httpx.HTTPError) \
                    else f"{url}: {one_line(exc)}"
        except StreamError as exc:
            if not guard.reason:  # a line cut short by the guard is the guard's doing, not a malformed line
                state.error = str(exc)
        finally:
            guard.end()
        if guard.reason and guard.reason != "cancelled" and not state.error:
            state.error = f"{url}: {guard.reason}"
        yield from self.end(state, end_ns, cancelled=guard.cancel.is_set())

    async def stream_async(self, connections: Any, messages: list[Message], params: SamplingParams) -> Any:
        """The same turn on the running asyncio loop, for many in flight at once (taskclock load):
        runtime/backends/http_async.py's ``stream_turn`` over ``connections``, giving its ``Answer``."""
        from .http_async import stream_turn

        return await stream_turn(self, connections, messages, params)

    def endpoint(self) -> str:
        return f"{self.url}/chat/completions" if self.spec.chat else f"{self.url}/completions"

    def stream_state(self, params: SamplingParams) -> _StreamState:
        """A turn's parser, its reply holding the stop strings and the thinking split."""
        return _StreamState(Reply(params.stop, phases=PhaseSplitter(self.spec.think_tags)), params.max_tokens)

    def end(self, state: _StreamState, end_ns: int | None, cancelled: bool) -> Iterator[Event]:
        """The turn's last events, whichever transport read it (this model's thread, or taskclock load's asyncio
        client: runtime/backends/http_async.py); ``end_ns`` is when its last line arrived."""
        reason: StopReason = "cancelled" if cancelled and not state.finished else state.reason
        error = redact(state.error, self.secrets) if state.error else None
        yield from state.reply.end(reason, state.input_tokens, state.output_tokens, error=error, extra=state.extra(),
                                   t_ns=end_ns)

    def _json(self, method: str, url: str, cancel: threading.Event | None, **kwargs: Any) -> Any:
        """A non-streamed JSON answer asked outside a turn, held to a turn's limits (guarded_json)."""
        return guarded_json(self.client, method, url, _Guard(cancel, self.spec.timeout_s, self.spec.turn_timeout_s),
                            **kwargs)

    def count_tokens(self, text: str, cancel: threading.Event | None = None) -> int | None:
        """The server's own tokenizer count (llama.cpp / vLLM ``/tokenize``, llama-cpp-python
        ``/extras/tokenize``), or None when the server offers no tokenizer endpoint: a guess from words
        would be wrong by a factor that differs per tokenizer."""
        root = self.url.removesuffix("/v1")
        for path in [self._tokenize_path] if self._tokenize_path else TOKENIZE_ENDPOINTS:
            make_body = TOKENIZE_ENDPOINTS[path]
            try:
                tokens = self._tokenize(root + path, make_body, text, cancel)
                if self._tokenize_path is None:  # BOS and the like, added to every request
                    self._tokenize_overhead = len(self._tokenize(root + path, make_body, "", cancel))
                    self._tokenize_path = path
            except (httpx.HTTPError, ValueError, KeyError, TypeError):  # no such endpoint, or a malformed answer
                continue
            return max(len(tokens) - self._tokenize_overhead, 0)
        return None

    def prompt_tokens(self, messages: list[Message], cancel: threading.Event | None = None) -> int | None:
        """The prompt's tokens as llama.cpp's server will read them: its own chat template (``/apply-template``)
        and tokenizer with BOS (``/tokenize``); None from servers without these endpoints."""
        root = self.url.removesuffix("/v1")
        try:
            if self.spec.chat:
                prompt = self._json("POST", f"{root}/apply-template", cancel, json={"messages": messages})["prompt"]
            else:
                prompt = "\n\n".join(m["content"] for m in messages)
            tokens = self._json("POST", f"{root}/tokenize", cancel,
                                json={"content": prompt, "add_special": True, "parse_special": True})["tokens"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError):  # no such endpoint, or a malformed answer
            return None
        return len(tokens) if isinstance(prompt, str) and isinstance(tokens, list) else None

    def context_size(self, cancel: threading.Event | None = None) -> int | None:
        """The context the server gives one request, from its model list: llama.cpp's ``meta.n_ctx`` (per
        slot) or vLLM's ``max_model_len``; None where the server does not say."""
        try:
            entries = self._json("GET", f"{self.url}/models", cancel)["data"]
            entry = next(e for e in entries if isinstance(e, dict) and e.get("id") == self.api_model)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, StopIteration):
            return None
        meta = entry.get("meta")
        size = meta.get("n_ctx") if isinstance(meta, dict) else entry.get("max_model_len")
        return size if isinstance(size, int) and _is_count(size) and size > 0 else None

    def _tokenize(self, url: str, make_body, text: str, cancel: threading.Event | None) -> list:
        data = self._json("POST", url, cancel, json=make_body(text, self.api_model))
        tokens = data["tokens"]
        if not isinstance(tokens, list):
            raise TypeError("tokens is not a list")
        return tokens

    def close(self) -> None:
        self.client.close()


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKEN_COUNT


def _is_figure(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and abs(value) < 1e15


class _StreamState:
    """What one SSE stream has said so far: parses and validates lines, keeps usage, timings and the finish
    reason, and ends the reply after ``max_tokens`` pieces (content or reasoning) whether or not the server
    does."""

    def __init__(self, reply: Reply, max_tokens: int) -> None:
        self.reply = reply
        self.max_tokens = max_tokens
        self.pieces = 0
        self.thought = False  # a thinking piece arrived (reasoning deltas, or thinking tags in the content)
        self.reason: StopReason = "eos"
        self.finished = False
        self.finish_seen = False  # a choice's finish_reason; [DONE] may still follow with usage
        self.error: str | None = None
        self.usage: dict[str, int] = {}
        self.timings: dict[str, Any] | None = None
        # per piece fed to the reply, in order: its text length, whether the server parsed it out as reasoning,
        # and the server's running completion count on its chunk (None where the chunk carried none)
        self.piece_chars: list[int] = []
        self.piece_thinking: list[bool] = []
        self.piece_running: list[int | None] = []

    def feed(self, line: str, chat: bool, t_ns: int) -> list[Token]:
        """The token events one SSE line carries (usually none or one), timed ``t_ns``."""
        if not line.startswith("data:"):
            return []  # blank separators, ": ping" comments, event:/id:/retry: fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.finished = True
            return []
        try:
            chunk = parse_json(data)
        except ValueError:
            raise StreamError(f"malformed SSE line from the server: {one_line(data, 80)!r}") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"malformed SSE line from the server: {one_line(data, 80)!r}")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamError(f"the server reported an error mid-reply: {one_line(message)}")
        running = self._keep_usage(chunk.get("usage"))
        if isinstance(chunk.get("timings"), dict):
            self.timings = {str(k): v for k, v in chunk["timings"].items() if _is_figure(v)}
        choices = chunk.get("choices") or []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise StreamError(f"malformed chunk from the server: choices is not a list of objects "
                              f"({one_line(data, 80)})")
        pieces: list[Token] = []
        for choice in choices:
            reasoning, text = self._text_of(choice, chat, data)
            for thinking, piece in ((True, reasoning), (False, text)):
                if not piece:
                    continue
                self.pieces += 1
                if self.pieces > self.max_tokens:  # the server ignored max_tokens: end the reply here
                    self.reason, self.finished = "length", True
                    return pieces
                self.piece_chars.append(len(piece))
                self.piece_thinking.append(thinking)
                self.piece_running.append(running)
                if thinking:  # parsed out by the server: no tags, no stop strings (they apply to the answer)
                    pieces.append(Token(t_ns, piece, phase="thinking"))
                else:
                    pieces += self.reply.text(t_ns, piece)
                self.thought = self.thought or any(p.phase == "thinking" for p in pieces)
                if self.reply.stopped:
                    self.reason, self.finished = "stop", True
                    return pieces
            finish = choice.get("finish_reason")
            if finish:
                self.reason = FINISH_REASONS.get(finish, "eos") if isinstance(finish, str) else "eos"
                self.finish_seen = True
        return pieces

    @staticmethod
    def _text_of(choice: dict[str, Any], chat: bool, data: str) -> tuple[str | None, str | None]:
        """(reasoning, content) of one choice: the reasoning a server parsed out of the text (vLLM and SGLang
        ``reasoning_content``, newer vLLM and Ollama ``reasoning``, llama.cpp's server with
        ``--reasoning-format``), and the text itself."""
        reasoning = None
        if chat:
            delta = choice.get("delta") or {}
            if not isinstance(delta, dict):
                raise StreamError(f"malformed chunk from the server: delta is not an object ({one_line(data, 80)})")
            text = delta.get("content")
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")  # some send both, or one as null
        else:
            text = choice.get("text")
        for key, value in (("content", text), ("reasoning", reasoning)):
            if value is not None and not isinstance(value, str):
                raise StreamError(f"malformed chunk from the server: {key} is not a string ({one_line(data, 80)})")
        return reasoning, text

    def _keep_usage(self, usage: object) -> int | None:
        """Keep a chunk's usage; returns its completion count (a running count, on servers that send one per
        chunk), or None when the chunk carried none."""
        if usage is None:
            return None
        if not isinstance(usage, dict):
            raise StreamError(f"malformed usage from the server: a {type(usage).__name__}, not an object")
        for key in ("prompt_tokens", "completion_tokens"):
            if usage.get(key) is None:
                continue
            if not _is_count(usage[key]):
                raise StreamError(f"malformed usage from the server: {key} = {one_line(repr(usage[key]), 40)} "
                                  f"is not a count between 0 and {MAX_TOKEN_COUNT}")
            self.usage[key] = usage[key]
        details = usage.get("prompt_tokens_details")
        if isinstance(details, dict) and _is_count(details.get("cached_tokens")):
            self.usage["cached_tokens"] = details["cached_tokens"]
        details = usage.get("completion_tokens_details")
        if isinstance(details, dict) and _is_count(details.get("reasoning_tokens")):
            self.usage["reasoning_tokens"] = details["reasoning_tokens"]
        return usage.get("completion_tokens")

    def check_finished(self, url: str) -> None:
        """A stream that closed before its finish (no [DONE], no finish reason) was cut short."""
        if not (self.finished or self.finish_seen):
            raise StreamError(f"{url} ended the stream without finishing the reply")

    @property
    def input_tokens(self) -> int | None:
        return self.usage.get("prompt_tokens")

    @property
    def output_tokens(self) -> int | None:
        return self.usage.get("completion_tokens")

    @property
    def cached_prompt_tokens(self) -> int | None:
        """Prompt tokens the server took from its prefix cache: vLLM / OpenAI
        ``usage.prompt_tokens_details.cached_tokens``, llama.cpp ``timings.cache_n``."""
        if "cached_tokens" in self.usage:  # kept from usage.prompt_tokens_details by _keep_usage
            return self.usage["cached_tokens"]
        cache_n = (self.timings or {}).get("cache_n")
        return cache_n if isinstance(cache_n, int) else None

    def arrival_counts(self) -> tuple[list[int] | None, str]:
        """The tokens each piece held, and how that is known (``token_count_source``): the server's running count
        where every piece's chunk carried one ("usage-per-chunk"); else its final count spread evenly over the
        pieces, the remainder to those with the most text ("usage-spread"; reasoning and answer apart when the
        server counts its reasoning); else one per piece ("usage" when the server's count is no larger than the
        pieces, "chunks" when it sent none)."""
        total = self.output_tokens
        if total is None:
            return None, "chunks"
        running = [r for r in self.piece_running if r is not None]
        if running and len(running) == len(self.piece_running):
            counts = [b - a for a, b in zip([0, *running], running, strict=False)]
            if min(counts) >= 1:
                return counts, "usage-per-chunk"
        if total <= len(self.piece_chars):
            return None, "usage"
        reasoning = self.usage.get("reasoning_tokens")
        thinking = [i for i, t in enumerate(self.piece_thinking) if t]
        answer = [i for i, t in enumerate(self.piece_thinking) if not t]
        groups = [(list(range(len(self.piece_chars))), total)]
        if reasoning is not None and thinking and answer and reasoning >= len(thinking) \
                and total - reasoning >= len(answer):
            groups = [(thinking, reasoning), (answer, total - reasoning)]
        counts = [1] * len(self.piece_chars)
        for pieces, tokens in groups:
            share, rest = divmod(tokens, len(pieces))
            most_text = sorted(pieces, key=lambda i: (-self.piece_chars[i], -i))[:rest]
            for i in pieces:
                counts[i] = share + (i in most_text)
        return counts, "usage-spread"

    def extra(self) -> DoneExtra:
        counts, source = self.arrival_counts()
        extra = DoneExtra(token_count_source=source)
        if counts is not None:
            extra["arrival_counts"] = counts
        reasoning = self.usage.get("reasoning_tokens")
        if reasoning is not None and (reasoning or self.thought):  # hidden reasoning counts, streamed or not
            extra["thinking_tokens"] = reasoning
            extra["thinking_count_source"] = "usage"
        elif self.thought:
            extra["thinking_count_source"] = "chunks"
        if self.timings is not None:
            extra["server_timings"] = self.timings
        if self.cached_prompt_tokens is not None:
            extra["cached_prompt_tokens"] = self.cached_prompt_tokens
        return extra


def get_json(client: httpx.Client, method: str, url: str, guard: _Guard, **kwargs: Any) -> Any:
    """A non-streamed JSON answer, read up to MAX_BODY_BYTES under ``guard`` (which cuts the read on cancel, past
    the deadline or when idle); raises httpx.HTTPStatusError for an error status and ValueError for a body that
    is too large or not JSON."""
    try:
        with client.stream(method, url, **kwargs) as response:
            guard.watch(response)
            response.raise_for_status()
            body, cut = read_capped(response, MAX_BODY_BYTES)
    finally:
        guard.end()
    if cut:
        raise ValueError(f"the answer is larger than {MAX_BODY_BYTES >> 20} MiB")
    return parse_json(body)


def guarded_json(client: httpx.Client, method: str, url: str, guard: _Guard, **kwargs: Any) -> Any:
    """get_json held to a turn's limits, for the calls made outside a turn (``/tokenize``, ``/models``): it raises
    Cancelled as soon as the guard's cancel is set and ValueError naming the limit past turn_timeout_s or
    timeout_s, even while the server holds back its headers (when nothing can be cut yet): the request runs on
    a thread of its own, which the guard (once the answer has begun) or httpx's read timeout then ends."""
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def request() -> None:
        try:
            outcome["value"] = get_json(client, method, url, guard, **kwargs)
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=request, name="taskclock-http-call", daemon=True).start()
    while not finished.wait(GUARD_POLL_S) and not guard.cancel.is_set() and not guard.overdue():
        pass
    if guard.cancel.is_set():
        raise Cancelled(f"{url}: cancelled")
    reason = guard.reason if guard.reason else guard.overdue() if not finished.is_set() else None
    if reason:
        raise ValueError(f"{url}: {reason}")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
def api_key(spec: ModelSpec) -> str:
    """The key from ``spec.api_key_env`` ("" when none is configured). A key an HTTP header cannot carry is
    rejected here, without echoing it: httpx would otherwise put it in an error line."""
    if not spec.api_key_env:
        return ""
    key = os.environ.get(spec.api_key_env)
    if not key:
        raise BackendError(f"the environment variable {spec.api_key_env} (API key for {spec.name}) is not set",
                           f"export {spec.api_key_env}=...")
    if not (key.isascii() and key.isprintable()) or any(char.isspace() for char in key):
        raise BackendError(f"the API key in {spec.api_key_env} holds characters an HTTP header cannot carry "
                           "(non-ASCII, spaces, line breaks or control codes)",
                           f"check the value of {spec.api_key_env}")
    return key


class HttpBackend:
    name = "http"
    batching = False
    concurrent = True  # a batch of N is N requests in flight on the server

    def load(self, spec: ModelSpec) -> HttpModel:
        """Check the server answers GET /models and serves the model; pick its first model if none is named."""
        start = time.perf_counter()
        url = base_url(spec.source)
        headers = {}
        key = api_key(spec)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        secrets = (key,) if key else ()
        timeout = httpx.Timeout(spec.timeout_s, connect=min(spec.timeout_s, 10.0))
        client = httpx.Client(headers=headers, timeout=timeout)
        try:
            api_model = self._check_models(client, url, spec)
        except TaskclockError as exc:  # messages name the URL: never with its password or the key
            client.close()
            raise type(exc)(redact(exc.problem, secrets), redact(exc.fix, secrets)) from None
        except BaseException:
            client.close()
            raise
        return HttpModel(spec, client, url, api_model, time.perf_counter() - start, now_ns(), secrets)

    @staticmethod
    def _check_models(client: httpx.Client, url: str, spec: ModelSpec) -> str:
        guard = _Guard(None, spec.timeout_s, spec.turn_timeout_s)  # a model list that trickles in ends, too
        try:
            with client.stream("GET", f"{url}/models") as response:
                guard.watch(response)
                if response.status_code in (401, 403):
                    fix = f"check ${spec.api_key_env}" if spec.api_key_env else \
                        "set api_key_env for this model in the config"
                    raise BackendError(http_error(f"{url}/models", response), fix)
                if response.status_code >= 400:
                    raise BackendError(http_error(f"{url}/models", response),
                                       "check the URL (it usually ends in /v1)")
                body, cut = read_capped(response, MAX_BODY_BYTES)
        except httpx.HTTPError as exc:
            problem = f"{url}/models: {guard.reason}" if guard.reason else transport_error(url, exc, spec.timeout_s)
            raise BackendError(problem, "start the server or check the URL") from None
        finally:
            guard.end()
        try:
            if cut:
                raise ValueError("too large")
            ids = [m["id"] for m in parse_json(body)["data"]]
            if not all(isinstance(i, str) for i in ids):
                raise TypeError("a model id is not a string")
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"{url}/models did not return an OpenAI model list",
                               "point the URL at an OpenAI-compatible API (usually ending in /v1)") from None
        if spec.api_model:
            if ids and spec.api_model not in ids:
                raise ModelNotFound(f"{url} does not serve {spec.api_model!r}",
                                    f"it serves: {one_line(', '.join(ids[:20]))}")
            return spec.api_model
        if not ids:
            raise ModelNotFound(f"{url} serves no models", "load a model into the server")
        return ids[0]


BACKEND = HttpBackend()
