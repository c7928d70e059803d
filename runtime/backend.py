"""The one backend contract: load a model from a spec, then stream timestamped events for a turn.

Backends live one per module in ``runtime/backends/`` and are looked up by name, so importing this
module never imports torch, transformers or llama_cpp.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from typing import Any, Protocol

from .errors import ModelLoadError
from .events import Done, Event, now_ns
from .threads import ThreadChoice
from .values import check_sampling, check_spec

DEFAULT_CTX = 4096
Message = dict[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}

BACKENDS = {
    "llamacpp": "taskclock.runtime.backends.llamacpp",
    "hf": "taskclock.runtime.backends.hf",
    "http": "taskclock.runtime.backends.http",
}


@dataclass(frozen=True)
class SamplingParams:
    """Shared by every backend. temperature 0 means greedy, so task lengths are reproducible."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    # a fixed output length (bench --output-tokens): the end-of-sequence token is never sampled, so every reply
    # runs to max_tokens; each backend says how (docs/TASKS.md, "Fixed-length workload")
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        check_sampling(self)

    def with_overrides(self, **values: Any) -> SamplingParams:
        return replace(self, **{k: v for k, v in values.items() if v is not None})


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to load one model; aliases and config entries both resolve to this."""

    name: str
    backend: str
    source: str
    chat: bool = True  # False: plain completion (base models without a chat template)
    dtype: str = "auto"  # hf: auto|float16|bfloat16|float32
    device: str = "auto"  # hf: auto|cuda|cpu
    quantization: str = "none"  # hf: none|8bit|4bit
    compile: bool = False  # hf: static cache + torch.compile
    n_ctx: int = DEFAULT_CTX
    n_gpu_layers: int | None = None  # llamacpp: None = all where llama.cpp has GPU offload, else 0; -1 = all
    flash_attn: bool = True  # llamacpp
    threads: int = 0  # llamacpp, hf on CPU: threads for decode and prefill; 0 = measured (runtime/threads.py)
    api_model: str = ""  # http: the server's model name
    api_key_env: str = ""  # http: environment variable holding the API key
    timeout_s: float = 60.0  # http: give up on a server that sends no data for this long (pings do not count)
    turn_timeout_s: float = 900.0  # http: give up on a turn that takes longer than this overall
    description: str = ""
    # reasoning models: True/False sends the engine's thinking switch (docs/CONFIG.md); None sends nothing
    thinking: bool | None = None
    think_tags: tuple[str, ...] = ("<think>", "</think>")  # opening and closing tag in the text; () = none
    options: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        check_spec(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


def first_line(exc: BaseException) -> str:
    """An exception as one line: libraries often raise multi-line messages."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def encode_within_context(encode: Callable[[list[Message]], list[int]], messages: list[Message],
                          n_ctx: int) -> list[int] | Done:
    """The prompt's token ids, or the Done that ends the turn at once: the chat template failed, or the
    prompt leaves no room in the context for a single new token."""
    try:
        ids = encode(messages)
    except Exception as exc:  # templates and tokenizers raise many types
        return Done(now_ns(), "error", error=f"cannot apply the chat template: {first_line(exc)}")
    if len(ids) >= n_ctx:
        return Done(now_ns(), "error", input_tokens=len(ids),
                    error=f"the prompt is {len(ids)} tokens but the context holds {n_ctx}; "
                          "shorten it or raise --ctx")
    return ids


class LoadedModel(Protocol):
    spec: ModelSpec
    load_s: float
    loaded_ns: int  # perf_counter_ns when loading finished
    threads: ThreadChoice | None  # the CPU threads it runs with and why; None where a server runs it

    def stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        """Yield Submitted, Token..., Done for one turn. Never raises once Submitted is yielded:
        failures end the stream with Done(stop_reason="error")."""

    # Asked outside a turn (the sweep fits prompts with them). ``cancel``: a backend whose answer can take long
    # (a server's /tokenize) raises errors.Cancelled as soon as it is set; in-process ones answer in
    # milliseconds and leave the check to the caller, between calls.
    def count_tokens(self, text: str, cancel: threading.Event | None = None) -> int: ...

    def prompt_tokens(self, messages: list[Message], cancel: threading.Event | None = None) -> int | None:
        """The tokens the model will read for this conversation, chat template included (what
        ``Done.input_tokens`` reports after the turn), or None where the backend cannot tell beforehand."""

    def context_size(self, cancel: threading.Event | None = None) -> int | None:
        """The most tokens a turn may hold, prompt and reply together, or None where it is not known."""

    def close(self) -> None: ...


class BatchingModel(LoadedModel, Protocol):
    """The optional capability: a model whose backend declares ``batching = True`` runs several requests as
    one real (padded) batch. Ask ``supports_batching(spec)`` before relying on it."""

    def stream_batch(self, conversations: list[list[Message]], params: SamplingParams,
                     cancel: threading.Event | None = None) -> list[list[Event]]:
        """One complete event list (Submitted, Token..., Done) per request, in order."""
        ...


class Backend(Protocol):
    name: str
    batching: bool  # its models are BatchingModels
    concurrent: bool  # a batch of size N is N requests in flight at once (a serving engine)

    def load(self, spec: ModelSpec) -> LoadedModel: ...


def get_backend(name: str) -> Backend:
    """Import the backend module on demand; a missing library is a one-line error, not a traceback."""
    try:
        module_name = BACKENDS[name]
    except KeyError:
        raise ModelLoadError(f"unknown backend {name!r}", f"use one of: {', '.join(BACKENDS)}") from None
    module = importlib.import_module(module_name)
    return module.BACKEND


def supports_batching(spec: ModelSpec) -> bool:
    """Whether the spec's model runs real batches (``BatchingModel.stream_batch``); otherwise one request at a
    time. The one place the runner, the summary and the CLI learn it."""
    return get_backend(spec.backend).batching


def supports_concurrency(spec: ModelSpec) -> bool:
    """Whether a bench batch of size N runs as N concurrent requests (HTTP servers with parallel slots)."""
    return get_backend(spec.backend).concurrent


def load_model(spec: ModelSpec) -> LoadedModel:
    return get_backend(spec.backend).load(spec)
