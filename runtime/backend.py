"""The one backend contract: load a model from a spec, then stream timestamped events for a turn.

Backends live one per module in ``runtime/backends/`` and are looked up by name, so importing this
module never imports torch, transformers or llama_cpp.
"""
from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from .errors import ModelLoadError
from .events import Done, Event, now_ns
from .options import NO_OPTIONS, BackendOptions, block_type, declared
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
    """Everything needed to load one model; aliases and config entries both resolve to this. The fields every
    backend reads, plus ``backend_options``: the block of options the backend declares (runtime/options.py),
    its defaults unless given."""

    name: str
    backend: str
    source: str
    chat: bool = True  # False: plain completion (base models without a chat template)
    n_ctx: int = DEFAULT_CTX
    description: str = ""
    # reasoning models: True/False sends the engine's thinking switch (docs/CONFIG.md); None sends nothing
    thinking: bool | None = None
    think_tags: tuple[str, ...] = ("<think>", "</think>")  # opening and closing tag in the text; () = none
    backend_options: BackendOptions = NO_OPTIONS  # left out: the backend's defaults

    def __post_init__(self) -> None:
        check_spec(self)
        if self.backend_options is NO_OPTIONS:
            object.__setattr__(self, "backend_options", block_type(self.backend)())
        elif not isinstance(self.backend_options, block_type(self.backend)):
            raise TypeError(f"{type(self.backend_options).__name__} is not the {self.backend} backend's options")

    @classmethod
    def shared_fields(cls) -> set[str]:
        """What every backend reads: the keys of ``[models.NAME]`` besides the backend's options."""
        return {f.name for f in fields(cls)} - {"name", "backend_options"}

    def values(self) -> dict[str, Any]:
        """The shared fields and the backend's options as one flat table, as config.toml and run.toml keep them."""
        shared = {key: getattr(self, key) for key in sorted(self.shared_fields(), key=_FIELD_ORDER.index)}
        return {**shared, **self.backend_options.values()}

    def with_overrides(self, **values: Any) -> ModelSpec:
        """This spec with some shared fields or backend options replaced; None leaves a value as it is, and an
        option the backend does not declare is not its concern (the CLI names flags no model takes)."""
        given = {k: v for k, v in values.items() if v is not None}
        block = self.backend_options
        own = {k: v for k, v in given.items() if k in {o.name for o in declared(self.backend)}}
        if own:
            block = replace(block, **own)
        return replace(self, backend_options=block,
                       **{k: v for k, v in given.items() if k in self.shared_fields()})


_FIELD_ORDER = [f.name for f in fields(ModelSpec)]


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
