"""Any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama, TGI) over HTTP, streamed as SSE.

Each server-sent ``data:`` line is parsed as it arrives and timestamped then, so TTFT and TPS include the
network and the server's queueing, which is what a user of a remote model waits for. Token counts come
from the server's ``usage`` when it sends one (``stream_options.include_usage``), otherwise every content
chunk counts as one token, and ``Done.extra["token_count_source"]`` says which. A server's own timings
(llama.cpp's ``timings``) are kept in ``Done.extra["server_timings"]`` next to the client-side figures.
See docs/HTTP.md.
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from ..backend import Message, ModelSpec, SamplingParams
from ..errors import BackendError, ModelNotFound
from ..events import Done, Event, Submitted, Token, now_ns
from ..stops import StopMatcher

FINISH_REASONS = {"stop": "eos", "length": "length"}
# POST bodies of the tokenizer endpoints servers offer, tried in order (llama.cpp and vLLM, llama-cpp-python).
TOKENIZE_ENDPOINTS = {
    "/tokenize": lambda text, model: {"content": text, "prompt": text, "model": model,
                                      "add_special": False, "add_special_tokens": False},
    "/extras/tokenize": lambda text, model: {"input": text, "model": model},
}


def one_line(text: str, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def base_url(source: str) -> str:
    """The API root: the URL as given, with ``/v1`` added when it names only a host."""
    url = source.rstrip("/")
    return url if urlsplit(url).path else url + "/v1"


def server_message(response: httpx.Response) -> str:
    """The error text a server put in its reply body ({"error": {"message"}}, {"error": "..."}, {"detail"})."""
    try:
        data = response.json()
    except ValueError:
        return one_line(response.text) or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message", error)
        if error:
            return one_line(error)
    return one_line(response.text)


def http_error(url: str, response: httpx.Response) -> str:
    response.read()
    return f"{url} answered HTTP {response.status_code}: {server_message(response)}"


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


class HttpModel:
    def __init__(self, spec: ModelSpec, client: httpx.Client, url: str, api_model: str,
                 load_s: float, loaded_ns: int) -> None:
        self.spec = spec
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
            "stream_options": {"include_usage": True},
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
        if self.spec.chat:
            body["messages"] = messages
        else:
            body["prompt"] = "\n\n".join(m["content"] for m in messages)
        body.update(self.spec.options)
        return body

    def stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        yield Submitted(now_ns())
        url = f"{self.url}/chat/completions" if self.spec.chat else f"{self.url}/completions"
        state = _StreamState(StopMatcher(params.stop))
        try:
            with self.client.stream("POST", url, json=self.request_body(messages, params)) as response:
                if response.status_code >= 400:
                    raise StreamError(http_error(url, response))
                for line in response.iter_lines():
                    t = now_ns()
                    for text in state.feed(line, self.spec.chat):
                        yield Token(t, text)
                    if state.finished or (cancel is not None and cancel.is_set()):
                        break
            if not (state.finished or state.finish_seen) and not (cancel is not None and cancel.is_set()):
                raise StreamError(f"{url} ended the stream without finishing the reply")
        except httpx.HTTPError as exc:
            state.error = transport_error(url, exc, self.spec.timeout_s)
        except StreamError as exc:
            state.error = str(exc)
        tail = "" if state.reason == "stop" else state.stops.flush()
        if tail:
            yield Token(now_ns(), tail, None, count=0)
        reason = "error" if state.error else state.reason
        if reason != "error" and cancel is not None and cancel.is_set() and not state.finished:
            reason = "cancelled"
        yield Done(now_ns(), reason, state.input_tokens, state.output_tokens, error=state.error,
                   extra=state.extra())

    def count_tokens(self, text: str) -> int | None:
        """The server's own tokenizer count (llama.cpp / vLLM ``/tokenize``, llama-cpp-python
        ``/extras/tokenize``), or None when the server offers no tokenizer endpoint: a guess from words
        would be wrong by a factor that differs per tokenizer."""
        root = self.url.removesuffix("/v1")
        for path in [self._tokenize_path] if self._tokenize_path else TOKENIZE_ENDPOINTS:
            make_body = TOKENIZE_ENDPOINTS[path]
            try:
                tokens = self._tokenize(root + path, make_body, text)
                if self._tokenize_path is None:  # BOS and the like, added to every request
                    self._tokenize_overhead = len(self._tokenize(root + path, make_body, ""))
                    self._tokenize_path = path
            except (httpx.HTTPError, ValueError, KeyError, TypeError):
                continue
            return max(len(tokens) - self._tokenize_overhead, 0)
        return None

    def _tokenize(self, url: str, make_body, text: str) -> list:
        response = self.client.post(url, json=make_body(text, self.api_model))
        response.raise_for_status()
        tokens = response.json()["tokens"]
        if not isinstance(tokens, list):
            raise TypeError("tokens is not a list")
        return tokens

    def close(self) -> None:
        self.client.close()


class _StreamState:
    """What one SSE stream has said so far: parses lines, keeps usage, timings and the finish reason."""

    def __init__(self, stops: StopMatcher) -> None:
        self.stops = stops
        self.reason = "eos"
        self.finished = False
        self.finish_seen = False  # a choice's finish_reason; [DONE] may still follow with usage
        self.error: str | None = None
        self.usage: dict[str, Any] | None = None
        self.timings: dict[str, Any] | None = None

    def feed(self, line: str, chat: bool) -> list[str]:
        """Text pieces carried by one SSE line (usually none or one)."""
        if not line.startswith("data:"):
            return []  # blank separators, ": ping" comments, event:/id:/retry: fields
        data = line[5:].strip()
        if data == "[DONE]":
            self.finished = True
            return []
        try:
            chunk = json.loads(data)
        except json.JSONDecodeError:
            raise StreamError(f"malformed SSE line from the server: {one_line(data, 80)!r}") from None
        if not isinstance(chunk, dict):
            raise StreamError(f"malformed SSE line from the server: {one_line(data, 80)!r}")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise StreamError(f"the server reported an error mid-reply: {one_line(message)}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        if isinstance(chunk.get("timings"), dict):
            self.timings = chunk["timings"]
        pieces = []
        for choice in chunk.get("choices") or []:
            text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
            if text:
                shown, hit = self.stops.feed(text)
                pieces.append(shown)
                if hit:
                    self.reason, self.finished = "stop", True
                    return pieces
            if choice.get("finish_reason"):
                self.reason = FINISH_REASONS.get(choice["finish_reason"], "eos")
                self.finish_seen = True
        return pieces

    @property
    def input_tokens(self) -> int | None:
        return self.usage.get("prompt_tokens") if self.usage else None

    @property
    def output_tokens(self) -> int | None:
        return self.usage.get("completion_tokens") if self.usage else None

    @property
    def cached_prompt_tokens(self) -> int | None:
        """Prompt tokens the server took from its prefix cache: vLLM / OpenAI
        ``usage.prompt_tokens_details.cached_tokens``, llama.cpp ``timings.cache_n``."""
        details = (self.usage or {}).get("prompt_tokens_details")
        if isinstance(details, dict) and isinstance(details.get("cached_tokens"), int):
            return details["cached_tokens"]
        cache_n = (self.timings or {}).get("cache_n")
        return cache_n if isinstance(cache_n, int) else None

    def extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"token_count_source": "usage" if self.output_tokens is not None else "chunks"}
        if self.timings is not None:
            extra["server_timings"] = self.timings
        if self.cached_prompt_tokens is not None:
            extra["cached_prompt_tokens"] = self.cached_prompt_tokens
        return extra


class HttpBackend:
    name = "http"

    def load(self, spec: ModelSpec) -> HttpModel:
        """Check the server answers GET /models and serves the model; pick its first model if none is named."""
        start = time.perf_counter()
        url = base_url(spec.source)
        headers = {}
        if spec.api_key_env:
            key = os.environ.get(spec.api_key_env)
            if not key:
                raise BackendError(f"the environment variable {spec.api_key_env} (API key for {spec.name}) is not set",
                                   f"export {spec.api_key_env}=...")
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(spec.timeout_s, connect=min(spec.timeout_s, 10.0))
        client = httpx.Client(headers=headers, timeout=timeout)
        try:
            api_model = self._check_models(client, url, spec)
        except BaseException:
            client.close()
            raise
        return HttpModel(spec, client, url, api_model, time.perf_counter() - start, now_ns())

    @staticmethod
    def _check_models(client: httpx.Client, url: str, spec: ModelSpec) -> str:
        try:
            response = client.get(f"{url}/models")
        except httpx.HTTPError as exc:
            raise BackendError(transport_error(url, exc, spec.timeout_s), "start the server or check the URL") from None
        if response.status_code in (401, 403):
            fix = f"check ${spec.api_key_env}" if spec.api_key_env else "set api_key_env for this model in the config"
            raise BackendError(http_error(f"{url}/models", response), fix)
        if response.status_code >= 400:
            raise BackendError(http_error(f"{url}/models", response),
                               "check the URL (it usually ends in /v1)")
        try:
            ids = [m["id"] for m in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise BackendError(f"{url}/models did not return an OpenAI model list",
                               "point the URL at an OpenAI-compatible API (usually ending in /v1)") from None
        if spec.api_model:
            if ids and spec.api_model not in ids:
                raise ModelNotFound(f"{url} does not serve {spec.api_model!r}", f"it serves: {', '.join(ids)}")
            return spec.api_model
        if not ids:
            raise ModelNotFound(f"{url} serves no models", "load a model into the server")
        return ids[0]


BACKEND = HttpBackend()
