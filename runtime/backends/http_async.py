"""One streamed turn of an HTTP model on asyncio: how `taskclock load` keeps hundreds of requests in flight on one
thread without the client becoming what it measures.

The HTTP backend's own ``stream()`` reads one turn on its own thread (with a guard thread) through httpx, which is
right for a chat and for bench's few requests in flight. An open-loop load at hundreds of requests a second
with one thread a request would spend the client's CPU on thread switches and on the interpreter lock, delaying
the very arrivals it times; and httpx's asyncio client costs about three times the CPU per streamed token of
this one (docs/BENCHMARKS.md, "Load client"). So this is HTTP/1.1 over asyncio streams, no more than a server's
SSE reply needs: keep-alive connections, chunked and sized bodies, gzip, TLS. Everything above the bytes is the
HTTP backend's: the request body, the line limits, the SSE parser (``_StreamState``), the error lines, the
turn's end. Each line is timestamped with ``time.perf_counter_ns()`` as it is read, as there.

No proxy is used (HTTP_PROXY is not read): point the URL at the server, or at the proxy's own address.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from ..backend import Message, SamplingParams
from ..events import Event, Submitted, now_ns
from .http import (
    MAX_ERROR_BYTES,
    HttpModel,
    LineSplitter,
    StreamError,
    error_text,
    one_line,
    status_error,
)

MAX_HEAD_BYTES = 64 << 10  # a response's status line and headers
READ_BYTES = 64 << 10


@dataclass
class Answer:
    """One request's events and when the response's first byte (its status line) arrived (None: none did)."""

    events: list[Event]
    first_byte_ns: int | None


class Connections:
    """Keep-alive connections to one server, each carrying one request at a time; a request takes an idle one or
    opens its own, so as many are open as requests are in flight."""

    def __init__(self, model: HttpModel) -> None:
        url = urlsplit(model.url)
        self.host = url.hostname or "127.0.0.1"
        self.tls = url.scheme == "https"
        self.port = url.port or (443 if self.tls else 80)
        self.host_header = url.netloc.rpartition("@")[2]
        self.ssl_context: ssl.SSLContext | None = None
        if self.tls:
            import httpx

            self.ssl_context = httpx.create_ssl_context()  # the same trust the HTTP backend's client has
        self.authorization = model.client.headers.get("Authorization")
        if not self.authorization and url.username:  # http://user:password@host/v1, as httpx sends it
            pair = f"{unquote(url.username)}:{unquote(url.password or '')}".encode()
            self.authorization = "Basic " + base64.b64encode(pair).decode()
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def take(self) -> tuple[tuple[asyncio.StreamReader, asyncio.StreamWriter], bool]:
        """A connection, and whether it was kept from an earlier request (it may have been closed since)."""
        while self.idle:
            reader, writer = self.idle.pop()
            if not writer.is_closing() and not reader.at_eof():
                return (reader, writer), True
            writer.close()
        connection = await asyncio.open_connection(self.host, self.port, ssl=self.ssl_context, limit=MAX_HEAD_BYTES,
                                                   server_hostname=self.host if self.tls else None)
        return connection, False

    def put_back(self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        self.idle.append(connection)

    def request(self, path: str, body: bytes) -> bytes:
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host_header}", "User-Agent: taskclock",
                "Accept: text/event-stream", "Accept-Encoding: gzip, deflate", "Content-Type: application/json",
                f"Content-Length: {len(body)}"]
        if self.authorization:
            head.append(f"Authorization: {self.authorization}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + body

    def close(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class _Response:
    """A response's status, headers and body, read from a connection as it arrives."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.status = 0
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.reusable = False  # the body was read to its end and the server keeps the connection open
        self._decoder: Any = None  # a zlib decompressor, for a compressed body

    async def read_head(self) -> None:
        try:
            head = await self.reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise StreamError(f"the server sent response headers longer than {MAX_HEAD_BYTES >> 10} KiB") from None
        lines = head.decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code, _, self.reason = rest.partition(" ")
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise StreamError(f"the server did not answer in HTTP/1.1 ({one_line(lines[0], 60)!r})")
        self.status = int(code)
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if colon:
                self.headers[name.strip().lower()] = value.strip()
        encoding = self.headers.get("content-encoding", "identity").lower()
        if encoding in ("gzip", "deflate"):
            self._decoder = zlib.decompressobj(wbits=47)  # gzip or zlib, told apart by their header
        elif encoding != "identity":
            raise StreamError(f"the server compressed its reply with {one_line(encoding, 40)!r}, which taskclock "
                              "load cannot read")

    async def body(self) -> AsyncIterator[bytes]:
        """The body's bytes as they arrive (decompressed); ``reusable`` once it ended where its framing says."""
        chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        if chunked:
            raw = self._chunked()
        elif length is not None and length.isdigit():
            raw = self._sized(int(length))
        else:
            raw = self._to_close()
        async for data in raw:
            if self._decoder is None:
                yield data
                continue
            try:
                while data:  # a few bytes may inflate to gigabytes: READ_BYTES at a time, so the line cap stops it
                    out = self._decoder.decompress(data, READ_BYTES)
                    data = self._decoder.unconsumed_tail
                    if out:
                        yield out
            except zlib.error:
                raise StreamError("the server's compressed reply is damaged") from None
        self.reusable = (chunked or length is not None) and self.headers.get("connection", "").lower() != "close"

    async def _sized(self, length: int) -> AsyncIterator[bytes]:
        while length > 0:
            data = await self.reader.read(min(length, READ_BYTES))
            if not data:
                raise asyncio.IncompleteReadError(b"", length)
            length -= len(data)
            yield data

    async def _chunked(self) -> AsyncIterator[bytes]:
        while True:
            line = await self.reader.readuntil(b"\r\n")
            size_text = line.split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise StreamError(f"the server sent a malformed chunk size ({one_line(size_text, 20)!r})") from None
            if size == 0:
                while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, until the blank line
                    pass
                return
            async for data in self._sized(size):  # a chunk's bytes as they come: a slow chunk is timed as it arrives
                yield data
            await self.reader.readexactly(2)

    async def _to_close(self) -> AsyncIterator[bytes]:
        while data := await self.reader.read(READ_BYTES):
            yield data

    async def read_capped(self, limit: int) -> bytes:
        body = bytearray()
        async for data in self.body():
            body += data
            if len(body) > limit:
                self.reusable = False
                break
        return bytes(body[:limit])


class _Watch:
    """Ends a turn from the event loop: past its deadline (turn_timeout_s), or when the server has sent no event
    for ``idle_s`` (timeout_s; the connect included). One timer a request, re-armed only when it fires."""

    def __init__(self, idle_s: float, turn_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.idle_s = idle_s
        self.last = self.loop.time()
        self.deadline = self.last + turn_s
        self.turn_s = turn_s
        self.reason: str | None = None
        self.handle = self.loop.call_at(min(self.last + idle_s, self.deadline), self._check)

    def event_arrived(self) -> None:
        self.last = self.loop.time()

    def _check(self) -> None:
        now = self.loop.time()
        if now >= self.deadline:
            self.reason = f"the turn took longer than turn_timeout_s ({self.turn_s:g} s)"
        elif now - self.last >= self.idle_s:
            self.reason = f"the server sent no event for {self.idle_s:g} s (timeout_s)"
        else:
            self.handle = self.loop.call_at(min(self.last + self.idle_s, self.deadline), self._check)
            return
        if self.task is not None:
            self.task.cancel()  # the turn's await raises CancelledError; stream_turn tells it from a stop by reason

    def close(self) -> None:
        """Stop watching (again: a no-op)."""
        self.handle.cancel()
        if self.reason and self.task is not None and hasattr(self.task, "uncancel"):
            self.task.uncancel()  # the cancel was this watch's: the turn ends with its error, not cancelled
        self.task = None


async def stream_turn(model: HttpModel, connections: Connections, messages: list[Message],
                      params: SamplingParams) -> Answer:
    """One turn of ``model``'s stream, read on the running event loop; its events are those ``model.stream()``
    gives for the same reply. Cancelling the task ends it at once (the caller drops it)."""
    sent = now_ns()
    url = model.endpoint()
    state = model.stream_state(params)
    events: list[Event] = [Submitted(sent)]
    request = connections.request(urlsplit(url).path, json.dumps(model.request_body(messages, params)).encode())
    watch = _Watch(model.spec.timeout_s, model.spec.turn_timeout_s)
    end_ns: int | None = None
    first_byte: int | None = None
    try:
        for attempt in range(2):
            (reader, writer), kept = await connections.take()
            try:
                writer.write(request)
                await writer.drain()
                response = _Response(reader)
                await response.read_head()
                break
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                if not kept or attempt:  # a kept connection the server closed meanwhile: once more on a new one
                    raise
        first_byte = now_ns()
        watch.event_arrived()
        try:
            if response.status >= 400:
                raise StreamError(status_error(url, response.status,
                                               error_text(await response.read_capped(MAX_ERROR_BYTES),
                                                          response.reason)))
            lines = LineSplitter()
            body = response.body()
            async for data in body:
                t = now_ns()
                for line in lines.feed(data):
                    if line.startswith("data:"):  # ": ping" comments and blank separators keep no turn alive
                        watch.event_arrived()
                    events += state.feed(line, model.spec.chat, t)
                    if state.finished:
                        end_ns = t
                        break
                if end_ns is not None:
                    break
            end_ns = end_ns or now_ns()
            state.check_finished(url)
            watch.close()
            await _drain(body)  # the framing's end, usually in the same read: then the connection is kept
        finally:
            if response.reusable:
                connections.put_back((reader, writer))
            else:
                writer.close()
    except asyncio.CancelledError:
        if watch.reason is None:
            raise  # the run stopped: the caller drops this turn
        state.error = f"{url}: {watch.reason}"
    except StreamError as exc:
        state.error = str(exc)
    except ConnectionRefusedError:
        state.error = f"cannot reach {url}: connection refused"
    except asyncio.IncompleteReadError:
        state.error = f"{url} closed the connection mid-reply"
    except (OSError, asyncio.LimitOverrunError, ValueError) as exc:
        state.error = f"{url}: {one_line(exc) or type(exc).__name__}"
    finally:
        watch.close()
    if state.error and end_ns is None:
        end_ns = now_ns()
    events += model.end(state, end_ns, cancelled=False)
    return Answer(events, first_byte)


DRAIN_S = 0.1  # how long a finished reply's framing may take to end before its connection is dropped instead


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what is left of a finished reply's body (its end), briefly: a server that holds the stream open after
    [DONE] only loses its connection's reuse."""
    async def rest() -> None:
        async for _ in body:
            pass

    with contextlib.suppress(asyncio.TimeoutError, OSError, StreamError, asyncio.IncompleteReadError,
                             asyncio.LimitOverrunError):
        await asyncio.wait_for(rest(), DRAIN_S)
