"""GGUF models through llama-cpp-python.

Uses the low-level token loop (``Llama.generate``) rather than the chat-completion chunk path: every
token id is timestamped the moment llama.cpp returns it, counts are exact, and no per-chunk dict is built.
Chat prompts are rendered with the GGUF's own chat template (the same Jinja formatter that
``create_chat_completion`` uses); models without a template get a plain completion prompt.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..backend import DEFAULT_CTX, Message, ModelSpec, SamplingParams, encode_within_context
from ..errors import ModelLoadError, UnsupportedHardware
from ..events import Done, DoneExtra, Event, StopReason, Submitted, now_ns
from ..gpu import GPU_ERRORS_HELP, TurnProbe
from ..models import local_file
from ..options import LlamaCppOptions
from ..phases import PhaseSplitter, prompt_opens_thinking
from ..reply import Reply
from ..system import physical_cores, version
from ..textstream import ByteDetokenizer
from ..threads import ThreadChoice, choose, probe_key, unprobed, usable_cpus, user_choice
from ..untrusted import safe_line

GGUF_MAGIC = b"GGUF"
GGML_LOG_LEVEL_ERROR = 4  # ggml.h today (llama_cpp/_logger.py's comment still has the older numbering)
PROBE_TEXT = b"The lighthouse keeper climbed the stairs as the storm came in from the sea."
PROBE_STEPS = 6  # decode steps timed per thread count and round


@contextlib.contextmanager
def _quiet_stderr():
    """llama.cpp prints load logs straight to fd 2 even with verbose=False; keep the terminal clean."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def _llama_log(lib) -> Iterator[list[str]]:
    """Collect llama.cpp's error log lines while it loads (a CUDA out-of-memory is only said there, and
    llama-cpp-python silences it with verbose=False), then put llama-cpp-python's logger back."""
    lines: list[str] = []

    @lib.llama_log_callback
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if level == GGML_LOG_LEVEL_ERROR:
            lines.append(text.decode("utf-8", errors="replace").strip())

    lib.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        from llama_cpp._logger import llama_log_callback

        lib.llama_log_set(llama_log_callback, ctypes.c_void_p(0))


def gpu_layers(requested: int | None, supports_offload: bool) -> int:
    """Layers to offload: all of them by default where llama.cpp was built with GPU support (as llama-server
    and ollama do), none otherwise; an explicit --gpu-layers wins, and asking for the GPU without support
    is an error rather than a silent CPU run."""
    if requested is None:
        return -1 if supports_offload else 0
    if requested != 0 and not supports_offload:
        raise UnsupportedHardware(
            f"n_gpu_layers={requested} asks for the GPU but this llama-cpp-python has no GPU support",
            f"use --gpu-layers 0, or rebuild llama-cpp-python with CUDA ({GPU_ERRORS_HELP})",
        )
    return requested


def load_failure(path: Path, exc: Exception, layers: int, log: list[str]) -> ModelLoadError:
    """Why llama.cpp could not load: with layers on the GPU most likely its memory, else the file. Its first
    error line is the cause ("cudaMalloc failed: out of memory"); the later ones only repeat that it failed."""
    said = safe_line(next((line for line in log if line), exc))
    if layers != 0:
        on_gpu = "all" if layers < 0 else str(layers)
        return ModelLoadError(f"llama.cpp cannot load {safe_line(path)} with {on_gpu} layers on the GPU: {said}",
                              "lower --gpu-layers or --ctx (GPU memory), or check the file")
    return ModelLoadError(f"llama.cpp cannot load {safe_line(path)}: {said} (truncated or corrupt file?)",
                          "re-download or reinstall the model")


def check_gguf(path) -> None:
    """Catch missing, random and truncated files before llama.cpp sees them (it would only say 'failed')."""
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{path} is not a GGUF file (bad header)", "pass a .gguf model file")


class LlamaCppModel:
    def __init__(self, spec: ModelSpec, llm, load_s: float, loaded_ns: int, threads: ThreadChoice) -> None:
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.spec = spec
        self.llm = llm
        self.threads = threads
        self.load_s = load_s
        self.loaded_ns = loaded_ns
        self._lib = llama_cpp
        self.probe = TurnProbe(False, llm.model_params.n_gpu_layers != 0)
        template = llm.metadata.get("tokenizer.chat_template")
        self.formatter = None
        if spec.chat and template:
            model = llm._model
            eos, bos = llm.token_eos(), llm.token_bos()
            self.formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )

    def count_tokens(self, text: str, cancel: threading.Event | None = None) -> int:
        return len(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def prompt_tokens(self, messages: list[Message], cancel: threading.Event | None = None) -> int:
        return len(self.encode(messages))

    def context_size(self, cancel: threading.Event | None = None) -> int:
        return self.llm.n_ctx()

    @functools.cached_property
    def end_tokens(self) -> list[int]:
        """The vocabulary's end-of-generation tokens (EOS, end of turn…), which ``ignore_eos`` never samples."""
        vocab = self.llm._model.vocab
        return [t for t in range(self.llm.n_vocab()) if self._lib.llama_vocab_is_eog(vocab, t)]

    def _never_end(self):
        """A logits processor that takes the end tokens out of sampling (llama.cpp's own ``ignore_eos``)."""
        ends = self.end_tokens

        def mask(input_ids, logits):
            logits[ends] = -float("inf")
            return logits

        return self._lib.LogitsProcessorList([mask])

    def encode(self, messages: list[Message]) -> list[int]:
        if self.formatter is not None:
            switch = {} if self.spec.thinking is None else {"enable_thinking": self.spec.thinking}
            result = self.formatter(messages=messages, **switch)  # type: ignore[arg-type]  # the same role/content dicts
            return self.llm.tokenize(result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True)
        text = "\n\n".join(m["content"] for m in messages)
        return self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)

    def perf(self) -> dict[str, float]:
        """llama.cpp's own counters for the last call, kept beside taskclock's figures for cross-checks."""
        data = self._lib.llama_perf_context(self.llm.ctx)
        return {
            "prompt_eval_ms": data.t_p_eval_ms,
            "prompt_tokens": data.n_p_eval,
            "eval_ms": data.t_eval_ms,
            "eval_tokens": data.n_eval,
        }

    def stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        yield Submitted(now_ns())
        n_ctx = self.llm.n_ctx()
        prompt = encode_within_context(self.encode, messages, n_ctx)
        if isinstance(prompt, Done):
            yield prompt
            return
        max_new = min(params.max_tokens, n_ctx - len(prompt))
        yield from self._generate(prompt, params, max_new, cancel)

    def _generate(self, prompt: list[int], params: SamplingParams, max_new: int,
                  cancel: threading.Event | None) -> Iterator[Event]:
        llm, lib = self.llm, self._lib
        vocab = llm._model.vocab
        llm.set_seed(params.seed)
        lib.llama_perf_context_reset(llm.ctx)
        self.probe.start()
        greedy = params.temperature <= 0
        prompt_tail = llm.detokenize(prompt[-8:], special=True).decode("utf-8", errors="replace")
        phases = PhaseSplitter(self.spec.think_tags, prompt_opens_thinking(prompt_tail, self.spec.think_tags))
        reply = Reply(params.stop, ByteDetokenizer(lambda tok: llm._model.detokenize([tok], special=False)), phases)
        reason: StopReason = "length"
        error = None
        tokens = llm.generate(
            prompt,
            temp=params.temperature if not greedy else 0.0,
            top_p=params.top_p if not greedy else 1.0,
            top_k=0 if not greedy else 1,
            min_p=0.0,
            repeat_penalty=1.0,
            reset=True,
            logits_processor=self._never_end() if params.ignore_eos else None,
        )
        try:
            for tok in tokens:
                t = now_ns()
                if lib.llama_vocab_is_eog(vocab, tok):
                    reason = "eos"
                    break
                yield from reply.token(t, tok)
                if reply.stopped or reply.produced >= max_new:
                    break
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
        except Exception as exc:  # llama.cpp decode failures surface as RuntimeError
            error = f"generation failed: {exc}"
        finally:
            tokens.close()
        extra = DoneExtra(llama_perf=self.perf(), decode_threads=self.threads.decode,
                          prompt_threads=self.threads.prompt, **self.probe.finish())
        yield from reply.end(reason, len(prompt), error=error, extra=extra)

    def close(self) -> None:
        self.llm.close()


def build_id(llama_cpp) -> str:
    """llama-cpp-python's version and llama.cpp's CPU features: a rebuild with other kernels may want other threads."""
    return f"{version('llama-cpp-python')}:{llama_cpp.llama_print_system_info().decode('utf-8', 'replace')}"


def model_key(path: Path, llama_cpp) -> str:
    """The thread cache's key for this GGUF (its path, size and modification time) on this llama.cpp build."""
    stat = path.stat()
    return probe_key("llamacpp", path.resolve(), stat.st_size, stat.st_mtime_ns, build_id(llama_cpp))


def decode_rate(llm, lib, threads: int, prompt_threads: int, prompt: list[int]) -> float:
    """Decode tok/s at ``threads``: ``PROBE_STEPS`` single-token steps after ``prompt`` (already evaluated),
    always from the same position, so every count does the same work."""
    lib.llama_set_n_threads(llm.ctx, threads, prompt_threads)
    token = prompt[-1]
    llm.n_tokens = len(prompt)  # the next eval drops the KV cells past the prompt
    llm.eval([token])  # untimed: the first step at a new count wakes its threads
    llm.n_tokens = len(prompt)
    start = now_ns()
    for _ in range(PROBE_STEPS):
        llm.eval([token])
    lib.llama_synchronize(llm.ctx)  # the steps are done (and counted in llama.cpp's perf figures, not the next turn's)
    return PROBE_STEPS * 1e9 / (now_ns() - start)


def measured_threads(llm, lib, key: str, label: str) -> ThreadChoice:
    """The cached choice for ``key``, else a probe on the loaded model; its KV cache is left empty."""
    prompt = llm.tokenize(PROBE_TEXT, add_bos=True, special=False)
    prompt_threads = llm.n_threads_batch

    def measure(threads: int) -> float:
        if llm.n_tokens < len(prompt):  # the first measurement evaluates the prompt once
            llm.eval(prompt)
        return decode_rate(llm, lib, threads, prompt_threads, prompt)

    llm.reset()
    try:
        return choose(key, label, measure)
    finally:
        llm.reset()


def thread_choice(spec: ModelSpec, path: Path, layers: int, llm, lib) -> ThreadChoice:
    """The ``threads`` option for both where the user set it; the engine's own count where the layers run on the
    GPU; else the measured decode count (cached per machine, model and build) and all usable CPUs for prefill."""
    threads = LlamaCppOptions.of(spec).threads
    if threads > 0:
        return user_choice(threads)
    if layers != 0:
        return unprobed(physical_cores(), usable_cpus(), "layers on the GPU: llama.cpp's own decode count (one "
                                                         "per physical core), not probed")
    return measured_threads(llm, lib, model_key(path, lib), f"llama.cpp {path.name}")


def apply_threads(llm, lib, choice: ThreadChoice) -> None:
    lib.llama_set_n_threads(llm.ctx, choice.decode, choice.prompt)
    llm.n_threads, llm.n_threads_batch = choice.decode, choice.prompt


def server_threads(choice: ThreadChoice) -> list[str]:
    """The same threads as llama-server options: decode (-t) and prompt and batch (-tb)."""
    return ["-t", str(choice.decode), "-tb", str(choice.prompt)]


def advised_threads(path: Path) -> ThreadChoice:
    """The threads taskclock chooses for this GGUF on the CPU, for a llama-server started beside it (the tests' and
    the benchmarks'): the cached choice, read through a short load, or measured by it."""
    model = BACKEND.load(ModelSpec("probe", "llamacpp", str(path), n_ctx=512,
                                     backend_options=LlamaCppOptions(n_gpu_layers=0)))
    model.close()
    return model.threads


class LlamaCppBackend:
    name = "llamacpp"
    batching = False
    concurrent = False

    def load(self, spec: ModelSpec) -> LlamaCppModel:
        start = time.perf_counter()
        path = local_file(spec)
        if path is None:
            raise ModelLoadError(f"{spec.source} is not a .gguf file", "the llama.cpp backend needs a .gguf file")
        check_gguf(path)
        try:
            import llama_cpp
        except ImportError:
            raise ModelLoadError("llama-cpp-python is not installed", "run `make install`") from None
        options = LlamaCppOptions.of(spec)
        layers = gpu_layers(options.n_gpu_layers, llama_cpp.llama_supports_gpu_offload())
        prompt_threads = options.threads or usable_cpus()
        try:
            with _quiet_stderr(), _llama_log(llama_cpp) as log:
                llm = llama_cpp.Llama(
                    model_path=str(path),
                    n_ctx=spec.n_ctx,
                    n_gpu_layers=layers,
                    flash_attn=options.flash_attn,
                    n_threads=options.threads or physical_cores(),
                    n_threads_batch=prompt_threads,
                    verbose=False,
                )
        except (ValueError, RuntimeError, OSError) as exc:
            if spec.n_ctx > DEFAULT_CTX and not layers:  # a huge context fails to allocate: the cause, not the file
                raise ModelLoadError(f"llama.cpp cannot load {path} with a context of {spec.n_ctx} tokens: {exc}",
                                     f"use a smaller --ctx (default {DEFAULT_CTX})") from None
            raise load_failure(path, exc, layers, log) from None
        choice = thread_choice(spec, path, layers, llm, llama_cpp)
        apply_threads(llm, llama_cpp, choice)
        return LlamaCppModel(spec, llm, time.perf_counter() - start, now_ns(), choice)


BACKEND = LlamaCppBackend()
