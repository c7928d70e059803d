"""A deterministic parallel OpenAI-compatible server on loopback, for `taskclock load`'s tests and the client's
ceiling benchmark.

It serves ``slots`` requests at a time, each on the same fixed script: the first token ``ttft_ms`` after the
request takes a slot, then one token every ``gap_ms`` (``tokens`` in all, fewer where the request's max_tokens
is lower), then the usage and ``[DONE]``. A request that finds every slot busy waits for one, first come first
served, as a serving engine queues what it cannot batch. So its service time is known exactly,
``ttft + (tokens - 1) · gap``, and so is its capacity, ``slots / service time`` requests a second: below it a
request's task time is the service time; above it the queue, and so queue delay and task time, grow without
bound. Times are kept to the schedule by absolute deadlines (``loop.call_at``), so the gaps do not drift.

It runs in a process of its own (``ParallelServer``), so it never shares the load client's interpreter lock:

    python tests/parallel_server.py --port 8123 --slots 4 --ttft-ms 50 --gap-ms 10 --tokens 16

HTTP/1.1 with keep-alive and chunked replies, as llama-server and uvicorn answer; ``GET /stats`` says how many
requests it served and the most it held in slots and in its queue at once.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
MODEL = "parallel"


@dataclass
class Script:
    slots: int = 4
    ttft_ms: float = 50.0
    gap_ms: float = 10.0
    tokens: int = 16

    @property
    def service_s(self) -> float:
        return (self.ttft_ms + (self.tokens - 1) * self.gap_ms) / 1000

    @property
    def capacity(self) -> float:
        """Requests a second the server completes when every slot is busy."""
        return self.slots / self.service_s


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def sse(payload: object) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"


class Server:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.slots = asyncio.Semaphore(script.slots)  # FIFO: waiters are woken in the order they came
        self.served = 0
        self.busy = self.most_busy = 0
        self.waiting = self.most_waiting = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                fields = (line.partition(":") for line in lines[1:] if line)
                headers = {name.strip().lower(): value.strip() for name, _, value in fields}
                body = await reader.readexactly(int(headers.get("content-length", 0) or 0))
                if method == "GET":
                    self.send_json(writer, self.stats() if path.endswith("/stats") else
                                   {"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                elif path.endswith("completions"):
                    await self.complete(json.loads(body), writer, chat=path.endswith("chat/completions"))
                else:
                    self.send_json(writer, {"detail": "Not Found"}, 404)
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def stats(self) -> dict:
        return {"served": self.served, "most_busy": self.most_busy, "most_waiting": self.most_waiting}

    @staticmethod
    def send_json(writer: asyncio.StreamWriter, data: dict, status: int = 200) -> None:
        body = json.dumps(data).encode()
        writer.write(b"HTTP/1.1 %d OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, len(body), body))

    async def complete(self, request: dict, writer: asyncio.StreamWriter, chat: bool) -> None:
        loop = asyncio.get_running_loop()
        tokens = max(1, min(self.script.tokens, int(request.get("max_tokens") or self.script.tokens)))
        self.waiting += 1
        self.most_waiting = max(self.most_waiting, self.waiting)
        async with self.slots:
            self.waiting -= 1
            self.busy += 1
            self.most_busy = max(self.most_busy, self.busy)
            try:
                start = loop.time()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
                for i in range(tokens):
                    await sleep_until(loop, start + (self.script.ttft_ms + i * self.script.gap_ms) / 1000)
                    text = ("w" if i == 0 else " w") + str(i)
                    delta = {"delta": {"content": text}} if chat else {"text": text}
                    writer.write(chunk(sse({"choices": [{"index": 0, **delta, "finish_reason": None}]})))
                    await writer.drain()
                final = {"delta": {}} if chat else {"text": ""}
                writer.write(chunk(sse({"choices": [{"index": 0, **final, "finish_reason": "stop"}],
                                        "usage": {"prompt_tokens": 8, "completion_tokens": tokens}})
                                   + sse(b"[DONE]")) + b"0\r\n\r\n")
                self.served += 1
            finally:
                self.busy -= 1


async def sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


async def serve(script: Script, port: int) -> None:
    server = Server(script)
    listener = await asyncio.start_server(server.handle, HOST, port, backlog=1024)
    async with listener:
        await listener.serve_forever()


# ---- for tests: the server in a process of its own -------------------------------------------------

class ParallelServer:
    """``Script`` served by this file in a subprocess on a free loopback port; ``url`` is its /v1 root."""

    def __init__(self, script: Script) -> None:
        import subprocess
        from pathlib import Path

        from llama_server import free_port

        self.script = script
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}/v1"
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__)), "--port", str(self.port),
                                      "--slots", str(script.slots), "--ttft-ms", str(script.ttft_ms),
                                      "--gap-ms", str(script.gap_ms), "--tokens", str(script.tokens)])
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, limit_s: float = 30) -> None:
        import httpx

        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the parallel server exited ({self.proc.returncode})")
            try:
                if httpx.get(f"{self.url}/models", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("the parallel server did not answer in time")

    def stats(self) -> dict:
        import httpx

        return httpx.get(f"{self.url}/stats", timeout=5).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> ParallelServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--ttft-ms", type=float, default=50.0)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args(argv)
    script = Script(args.slots, args.ttft_ms, args.gap_ms, args.tokens)
    try:
        asyncio.run(serve(script, args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
