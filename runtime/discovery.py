"""What a model name can reach beyond the names taskclock knows: the models a server serves, the ``.gguf`` files
and model folders on disk, and the known name a typo was meant to be. The app's model picker and
`taskclock models URL` both ask here, so they list the same things; nothing here imports Textual.

A server is outside data: each request has a deadline shared by the whole listing and can be cancelled (the
socket is shut from outside the reading thread), bodies are read up to MAX_LIST_BYTES, at most MAX_SERVED
models are kept, an id longer than MAX_ID_CHARS is left out, and every detail is one safe line.
"""
from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BackendError, TaskclockError
from .untrusted import parse_json, redact, safe_line

DEADLINE_S = 5.0  # the whole listing: OpenAI list, Ollama list, llama-server props
MAX_LIST_BYTES = 1 << 20
MAX_SERVED = 200
MAX_ID_CHARS = 200
MAX_COMPLETIONS = 50
WATCH_POLL_S = 0.05


class Cancelled(TaskclockError):
    """The listing was cancelled (the picker's text changed, or it closed)."""


@dataclass(frozen=True)
class ServedModel:
    """One model a server serves: its id as the server spells it (outside text: shown only through safe_line),
    the context one request gets where the server says, and a detail (size and quantization, or the owner)."""

    id: str
    context: int | None = None
    detail: str = ""


@dataclass(frozen=True)
class ServerListing:
    url: str  # the API root the models are reached at (…/v1), credentials redacted
    server: str  # "llama-server", "ollama" or "openai" (any other OpenAI-compatible server)
    models: tuple[ServedModel, ...]
    more: int = 0  # models left out beyond MAX_SERVED

    def name(self, model: ServedModel) -> str:
        """What to pass as a model name (`--model`, the picker) to chat with ``model``."""
        return f"{self.url}#{model.id}"


def _short(text: object) -> str:
    line = safe_line(text)
    return line if len(line) <= MAX_ID_CHARS else line[:MAX_ID_CHARS - 1] + "…"


def _usable_id(value: Any) -> bool:
    """An id the picker can send back as it came (shown through safe_line wherever it is shown)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_ID_CHARS


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 40 else None


class _Fetch:
    """GET requests against one server under one deadline, each read cut short on cancel or at the deadline."""

    def __init__(self, headers: dict[str, str], deadline_s: float, cancel: threading.Event | None) -> None:
        import httpx

        self.httpx = httpx
        self.deadline = time.monotonic() + deadline_s
        self.deadline_s = deadline_s
        self.cancel = cancel or threading.Event()
        self.client = httpx.Client(headers=headers, timeout=httpx.Timeout(deadline_s), follow_redirects=False)

    def remaining(self) -> float:
        if self.cancel.is_set():
            raise Cancelled("the model listing was cancelled")
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise BackendError(f"no model list within {self.deadline_s:g} s", "check the server, or try again")
        return left

    def json(self, url: str) -> Any:
        """The JSON body at ``url``; BackendError (one line) for any failure, Cancelled when cancelled."""
        from .backends.http import http_error, read_capped, transport_error

        timeout = self.httpx.Timeout(self.remaining())
        try:
            with self.client.stream("GET", url, timeout=timeout) as response:
                ended = self._watch(response)
                try:
                    if response.status_code >= 400:
                        raise BackendError(http_error(url, response), "check the URL (it usually ends in /v1)")
                    body, cut = read_capped(response, MAX_LIST_BYTES)
                finally:
                    ended.set()
        except self.httpx.HTTPError as exc:
            self.remaining()  # a read cut short by cancel or the deadline says so
            raise BackendError(transport_error(url, exc, self.deadline_s), "start the server or check the URL") \
                from None
        except OSError as exc:
            self.remaining()
            raise BackendError(f"{url}: {_short(exc)}", "check the server") from None
        self.remaining()
        if cut:
            raise BackendError(f"{url} sent more than {MAX_LIST_BYTES >> 20} MiB", "check the URL")
        try:
            return parse_json(body)
        except ValueError:
            raise BackendError(f"{url} did not answer with JSON", "point the URL at an OpenAI-compatible API") \
                from None

    def _watch(self, response: Any) -> threading.Event:
        """Shut the response's socket on cancel or at the deadline (a body that trickles in never ends a read)."""
        ended = threading.Event()
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None

        def watch() -> None:
            while not ended.wait(WATCH_POLL_S):
                if self.cancel.is_set() or time.monotonic() > self.deadline:
                    if sock is not None:
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                    return

        threading.Thread(target=watch, name="taskclock-discovery", daemon=True).start()
        return ended

    def close(self) -> None:
        self.client.close()


def _openai_models(data: Any) -> list[ServedModel] | None:
    """``{"data": [{"id": ...}]}``: llama.cpp's ``meta.n_ctx`` or vLLM's ``max_model_len`` as the context."""
    entries = data.get("data") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    models = []
    for entry in entries:
        if not isinstance(entry, dict) or not _usable_id(entry.get("id")):
            continue
        meta = entry.get("meta")
        context = _count(meta.get("n_ctx")) if isinstance(meta, dict) else _count(entry.get("max_model_len"))
        models.append(ServedModel(entry["id"], context, _short(_openai_detail(entry, meta))))
    return models


def _openai_detail(entry: dict[str, Any], meta: Any) -> str:
    """llama-server's ``meta`` (quantization, file size), else the list's ``owned_by``."""
    if isinstance(meta, dict):
        size = _count(meta.get("size"))
        words = [meta["ftype"]] if isinstance(meta.get("ftype"), str) else []
        if words or size:
            return " ".join(words + ([f"{size / 1e6:.0f} MB"] if size else []))
    owner = entry.get("owned_by")
    return owner if isinstance(owner, str) else ""


def _ollama_models(data: Any) -> list[ServedModel] | None:
    """Ollama's ``/api/tags``: ``{"models": [{"name", "size", "details": {"parameter_size", ...}}]}``."""
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    models = []
    for entry in entries:
        if not isinstance(entry, dict) or not _usable_id(entry.get("name")):
            continue
        details = entry.get("details")
        parts = [details.get(key) for key in ("parameter_size", "quantization_level")] if isinstance(details, dict) \
            else []
        size = _count(entry.get("size"))
        words = [str(p) for p in parts if isinstance(p, str) and p] + ([f"{size / 1e9:.1f} GB"] if size else [])
        models.append(ServedModel(entry["name"], None, _short(" ".join(words))))
    return models


def _props_context(data: Any) -> int | None:
    """llama-server's ``/props``: the context of one slot (``default_generation_settings.n_ctx``)."""
    if not isinstance(data, dict):
        return None
    settings = data.get("default_generation_settings")
    return _count(settings.get("n_ctx")) if isinstance(settings, dict) else None


def api_root(source: str) -> str:
    """The OpenAI API root of a server URL (``#model`` dropped, ``/v1`` added when it names only a host)."""
    from .backends.http import base_url

    return base_url(source.partition("#")[0])


def list_served(source: str, *, api_key: str = "", deadline_s: float = DEADLINE_S,
                cancel: threading.Event | None = None) -> ServerListing:
    """The models the server at ``source`` serves: its OpenAI list (``/v1/models``), Ollama's own list where
    the server is Ollama (``/api/tags``: sizes and quantization), and llama-server's context size
    (``/props``). Raises BackendError (one line, credentials redacted) when there is no list, Cancelled when
    ``cancel`` is set first."""
    url = api_root(source)
    root = url.removesuffix("/v1")
    secrets = (api_key,) if api_key else ()
    fetch = _Fetch({"Authorization": f"Bearer {api_key}"} if api_key else {}, deadline_s, cancel)
    try:
        try:
            models = _openai_models(fetch.json(f"{url}/models"))
            problem: BackendError | None = None if models is not None else BackendError(
                f"{url}/models did not return an OpenAI model list",
                "point the URL at an OpenAI-compatible API (usually ending in /v1)")
        except BackendError as exc:
            models, problem = None, exc
        server = "openai"
        with contextlib.suppress(BackendError):
            ollama = _ollama_models(fetch.json(f"{root}/api/tags"))
            if ollama is not None:
                models, server = ollama, "ollama"
        if models is None:
            assert problem is not None
            raise problem
        with contextlib.suppress(BackendError):
            context = _props_context(fetch.json(f"{root}/props"))
            if context is not None:
                server = "llama-server"
                models = [m if m.context else ServedModel(m.id, context, m.detail) for m in models]
    except TaskclockError as exc:
        raise type(exc)(redact(exc.problem, secrets), redact(exc.fix, secrets)) from None
    finally:
        fetch.close()
    return ServerListing(redact(url), server, tuple(models[:MAX_SERVED]), max(len(models) - MAX_SERVED, 0))


# ---- paths -------------------------------------------------------------------------------------------

def looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or text.endswith(".gguf") or text in (".", "..")


def is_model_folder(path: Path) -> bool:
    """A transformers model folder: it has a config.json."""
    return (path / "config.json").is_file()


def complete_path(text: str) -> list[str]:
    """The folders and ``.gguf`` files that ``text`` can be completed to, as the user would type them (``~``
    kept), folders ending in ``/``; hidden entries only when the typed part starts with a dot."""
    typed = text or "./"
    folder_part, _, prefix = typed.rpartition("/")
    folder = Path(os.path.expanduser(folder_part + "/" if folder_part or typed.startswith("/") else "."))
    shown = f"{folder_part}/" if folder_part or typed.startswith("/") else ""
    out = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(prefix) or (entry.name.startswith(".") and not prefix.startswith(".")):
                    continue
                with contextlib.suppress(OSError):
                    if entry.is_dir():
                        out.append(f"{shown}{entry.name}/")
                    elif entry.name.endswith(".gguf") and entry.is_file():
                        out.append(f"{shown}{entry.name}")
    except OSError:
        return []
    return sorted(out)[:MAX_COMPLETIONS]


def common_prefix(options: list[str]) -> str:
    return os.path.commonprefix(options) if options else ""


# ---- what the picker lists for what is typed ---------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """One line of the model picker: ``name`` is what resolve() takes; ``kind`` says what it is."""

    name: str
    kind: str  # recent, model, served, url, gguf, model folder, folder, hub, suggestion
    detail: str = ""

    @property
    def descends(self) -> bool:
        """A plain folder: picking it opens it (as Tab does) rather than loading it."""
        return self.kind == "folder"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def choices(text: str, known: dict[str, str], recent: tuple[str, ...] | list[str] = (),
            listing: ServerListing | None = None) -> list[Choice]:
    """What the picker lists for ``text``: a server URL and the models it serves (``listing``, once fetched);
    the folders and ``.gguf`` files a path completes to; else the recent and known names (``known``: name →
    description) that contain the text, recent first, a Hugging Face repo id as typed, and when nothing
    matches, the known name the text is closest to."""
    from .models import did_you_mean, is_hub_id

    typed = text.strip()
    if is_url(typed):
        out = [Choice(typed, "url", "the server's first model" if listing is None else f"{listing.server} server")]
        if listing is not None:
            out += [Choice(listing.name(m), "served", " · ".join(
                [*([f"context {m.context}"] if m.context else []), *([m.detail] if m.detail else [])]))
                for m in listing.models]
        return out
    if looks_like_path(typed):
        out = []
        for option in complete_path(typed):
            path = Path(os.path.expanduser(option))
            kind = "gguf" if option.endswith(".gguf") else "model folder" if is_model_folder(path) else "folder"
            out.append(Choice(option.rstrip("/") if kind == "model folder" else option, kind,
                              {"gguf": "llama.cpp", "model folder": "transformers", "folder": "Tab opens it"}[kind]))
        return out
    needle = typed.lower()
    out = [Choice(name, "recent", known.get(name, "")) for name in recent if needle in name.lower()]
    out += [Choice(name, "model", description) for name, description in known.items()
            if needle in name.lower() and name not in recent]
    if typed and typed not in known and is_hub_id(typed):
        out.append(Choice(typed, "hub", "Hugging Face repo id (downloaded on load: needs the network)"))
    if not out and typed:
        close = did_you_mean(typed, known)
        if close:
            out.append(Choice(close, "suggestion", f"did you mean {close}?"))
    return out
