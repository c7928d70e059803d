"""Hugging Face transformers on torch: FP32/FP16/BF16 on CPU or CUDA, 8-/4-bit through bitsandbytes.

Tokens are timestamped in the streamer's ``put()``, which ``generate()`` calls on its own thread the moment
each token id exists; text is decoded afterwards on the consuming side, so decoding never delays the clock
or the model.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..backend import Message, ModelSpec, SamplingParams, encode_within_context, first_line
from ..errors import ModelLoadError, ModelNotFound, UnsupportedHardware
from ..events import Done, DoneExtra, Event, StopReason, Submitted, now_ns
from ..gpu import TurnProbe, allocated_mb, free_memory_mb, load_delta_mb, out_of_memory_message
from ..models import local_file
from ..paths import cache_dir
from ..phases import PhaseSplitter, prompt_opens_thinking
from ..reply import Reply
from ..system import version
from ..textstream import IncrementalDetokenizer
from ..threads import ThreadChoice, choose, probe_key, unprobed, user_choice
from .hf_batch import generate_batch
from .hf_worker import END, GenerationWorker, TimestampStreamer, start_generation


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def pick_device(spec: ModelSpec) -> str:
    if spec.device == "cuda" and not cuda_available():
        raise UnsupportedHardware("CUDA was requested but no CUDA GPU is available", "use --device cpu")
    if spec.device not in ("auto", "cuda", "cpu"):
        raise ModelLoadError(f"unknown device {spec.device!r}", "use auto, cuda or cpu")
    if spec.device == "auto":
        return "cuda" if cuda_available() else "cpu"
    return spec.device


HALF_DTYPES = ("float16", "bfloat16")
WARMUP_PROMPTS = ("Warm up.", "Warm up the compiled decode step with a longer prompt than the first one.")


def auto_dtype(device: str, trained_dtype: str | None, bf16_supported: bool) -> str:
    """dtype "auto": float32 on CPU; on CUDA the half type the model was trained in (Llama 3, Gemma and Qwen
    ship bf16, and some overflow in fp16), else bf16 where the card has it, else fp16."""
    if device != "cuda":
        return "float32"
    if trained_dtype == "float16" or (trained_dtype == "bfloat16" and bf16_supported):
        return trained_dtype
    return "bfloat16" if bf16_supported else "float16"


def trained_dtype(config) -> str | None:
    """The dtype a transformers config says the weights were saved in ("bfloat16"...), or None."""
    value = getattr(config, "dtype", None)
    return str(value).removeprefix("torch.") if value is not None else None


def pick_dtype(spec: ModelSpec, device: str, config=None):
    """The torch dtype to load in; ``config`` (the model's transformers config) is read for "auto" on CUDA."""
    import torch

    name = spec.dtype
    if name == "auto":
        name = auto_dtype(device, trained_dtype(config), device == "cuda" and torch.cuda.is_bf16_supported())
    return getattr(torch, name)


def check_options(spec: ModelSpec) -> None:
    """Bad option values, and options that cannot go together, fail before anything is read from disk."""
    if spec.dtype not in ("auto", "float32", *HALF_DTYPES):
        raise ModelLoadError(f"unknown dtype {spec.dtype!r}", "use auto, float16, bfloat16 or float32")
    if spec.quantization == "none":
        return
    if spec.quantization not in ("8bit", "4bit"):
        raise ModelLoadError(f"unknown quantization {spec.quantization!r}", "use none, 8bit or 4bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedHardware(
            f"{spec.quantization} quantization needs bitsandbytes, which is not installed",
            "pip install 'taskclock[quant]' or use --quant none",
        )
    if spec.compile:
        raise ModelLoadError("transformers cannot torch.compile a bitsandbytes model",
                             "drop --compile or use --quant none")


def device_map(device: str, gpu_count: int) -> str | None:
    """Where from_pretrained puts the weights as it reads them: straight onto the GPU (spread by accelerate
    across several), never through host RAM first; None on CPU, where they load in place."""
    if device != "cuda":
        return None
    return "auto" if gpu_count > 1 else "cuda"


def offloaded_parts(placement: dict[str, Any] | None) -> list[str]:
    """Modules accelerate's "auto" placement left on the CPU or disk because the GPUs were full."""
    return [name for name, where in (placement or {}).items() if where in ("cpu", "disk")]


def out_of_memory_fix(spec: ModelSpec) -> str:
    """What to lower when the model does not fit: only the options that apply to this spec."""
    fixes = ["close other models (the chat keeps the current model until the new one has loaded)"]
    if spec.compile:
        fixes.append("lower --ctx (the static cache holds the whole context)")
    elif spec.quantization != "4bit":
        fixes.append("use --quant 4bit")
    return ", ".join(fixes) + ", or use --device cpu"


def quantization_config(spec: ModelSpec, dtype):
    """bitsandbytes settings (checked by ``check_options``); 4-bit computes in the dtype the model loads in."""
    if spec.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if spec.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype)


def _gguf_cache_folder(gguf: Path) -> Path:
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    return cache_dir() / "hf-from-gguf" / f"{gguf.stem}-{key}"


def folder_from_gguf(gguf: Path) -> Path:
    """Dequantize a GGUF through transformers once and cache it as safetensors, which later loads read fast."""
    target = _gguf_cache_folder(gguf)
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except Exception as exc:  # transformers raises many types for a bad GGUF
        raise ModelLoadError(f"transformers cannot read {gguf}: {first_line(exc)}", "check the file") from None
    model.hf_quantizer = None  # type: ignore[assignment]  # stubs say Module; transformers checks for None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial: Path | None = None
    try:
        # a fresh name of its own (mkdtemp), never a guessable one a link could be waiting at
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent))
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    except Exception as exc:  # the disk filled up (safetensors raises its own type): leave no half-written folder
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise ModelLoadError(f"cannot write the converted model to {target.parent}: {reason}",
                             "free some disk space (or set TASKCLOCK_CACHE) and try again") from None
    finally:
        if partial is not None:
            shutil.rmtree(partial, ignore_errors=True)
    return target


def resolve_folder(spec: ModelSpec) -> str:
    """A local folder, a GGUF converted to a cached folder, or a hub id left for from_pretrained."""
    gguf = local_file(spec)
    if gguf is not None:
        return str(folder_from_gguf(gguf))
    path = Path(spec.source).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelLoadError(f"{path} has no config.json", "point at a Hugging Face model folder")
        return str(path)
    return spec.source


class HFModel:
    def __init__(self, spec: ModelSpec, model, tokenizer, device: str, load_s: float, loaded_ns: int) -> None:
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.load_s = load_s
        self.loaded_ns = loaded_ns
        eos = model.generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = set(eos)
        self.has_template = spec.chat and bool(getattr(tokenizer, "chat_template", None))
        self.max_positions = min(getattr(model.config, "max_position_embeddings", None) or spec.n_ctx, spec.n_ctx)
        self.warmup_s: float | None = None
        self.model_mem_mb: float | None = None  # what loading this model added on the GPU (set by the loader)
        self.probe = TurnProbe(device == "cuda", device == "cuda")
        self.worker = GenerationWorker(f"taskclock-hf-{spec.name}")
        self.threads: ThreadChoice | None = None  # set by the loader (thread_choice)

    def torch_threads(self, batched: bool = False) -> tuple[int, int] | None:
        """(prompt, decode) threads for a generate(): a batch's decode steps are batches too, so it keeps the
        prompt count throughout, as llama.cpp's n_threads_batch does."""
        if self.threads is None:
            return None
        return self.threads.prompt, self.threads.prompt if batched else self.threads.decode

    def thread_figures(self, batched: bool = False) -> DoneExtra:
        threads = self.torch_threads(batched)
        return DoneExtra(prompt_threads=threads[0], decode_threads=threads[1]) if threads else DoneExtra()

    def count_tokens(self, text: str, cancel: threading.Event | None = None) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_tokens(self, messages: list[Message], cancel: threading.Event | None = None) -> int:
        return len(self.encode(messages))

    def context_size(self, cancel: threading.Event | None = None) -> int:
        return self.max_positions

    def encode(self, messages: list[Message]) -> list[int]:
        if self.has_template:
            switch = {} if self.spec.thinking is None else {"enable_thinking": self.spec.thinking}
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, **switch)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n\n".join(m["content"] for m in messages)
        return self.tokenizer.encode(text)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def reply(self, params: SamplingParams, prompt: list[int]) -> Reply:
        """A reply for ``prompt``, starting in thinking when the chat template opened the thinking block."""
        tags = self.spec.think_tags
        opened = prompt_opens_thinking(self.tokenizer.decode(prompt[-8:]), tags)
        return Reply(params.stop, IncrementalDetokenizer(self._decode), PhaseSplitter(tags, opened))

    def stream(
        self, messages: list[Message], params: SamplingParams, cancel: threading.Event | None = None
    ) -> Iterator[Event]:
        yield Submitted(now_ns())
        prompt = encode_within_context(self.encode, messages, self.max_positions)
        if isinstance(prompt, Done):
            yield prompt
            return
        room = self.max_positions - len(prompt)
        yield from self._generate(prompt, params, min(params.max_tokens, room), cancel)

    def _generate(self, prompt: list[int], params: SamplingParams, max_new: int,
                  cancel: threading.Event | None) -> Iterator[Event]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        halt = threading.Event()

        class Halt(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                flag = halt.is_set() or (cancel is not None and cancel.is_set())
                return torch.full((input_ids.shape[0],), flag, dtype=torch.bool, device=input_ids.device)

        streamer = TimestampStreamer()
        self.probe.start()
        generated, failure = start_generation(
            self.worker, self.model, params, streamer, self.torch_threads(),
            input_ids=torch.tensor([prompt], device=self.model.device),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long, device=self.model.device),
            max_new_tokens=max_new,
            stopping_criteria=StoppingCriteriaList([Halt()]),
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else next(iter(self.eos_ids), 0),
        )
        reply = self.reply(params, prompt)
        reason: StopReason = "length"
        try:
            while True:
                item = streamer.queue.get()
                if item is END:
                    break
                t, ids = item
                if halt.is_set():
                    continue  # tokens produced after a stop string, before generate() noticed
                tok = ids[0]
                if tok in self.eos_ids:
                    reason = "eos"
                    halt.set()
                    continue
                yield from reply.token(t, tok)
                if reply.stopped:
                    halt.set()
                elif cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    halt.set()
        finally:
            halt.set()  # a consumer that stops early must not leave generate() running ahead of the next turn
        generated.wait()
        extra = DoneExtra(**self.probe.finish(), **self.thread_figures())
        if self.model_mem_mb is not None:
            extra["model_mem_mb"] = self.model_mem_mb
        if cancel is not None and cancel.is_set() and reason == "length" and reply.produced < max_new:
            reason = "cancelled"
        error = f"generation failed: {first_line(failure[0])}" if failure else None
        yield from reply.end(reason, len(prompt), error=error, extra=extra)

    def stream_batch(self, conversations: list[list[Message]], params: SamplingParams,
                     cancel: threading.Event | None = None) -> list[list[Event]]:
        """Several requests as one left-padded batch: one complete event list per request."""
        return generate_batch(self, conversations, params, cancel)

    def compile(self) -> None:
        """Static KV cache + compiled decode step, through transformers' own path; the compile pause is spent
        here and reported as warmup_s, never inside a measured turn.

        transformers compiles the decode step itself when it sees a static cache (``compile_config``) and
        keeps the prefill eager, as its static cache needs for CUDA graphs. The cache is sized once for the
        whole context (``max_cache_len``), so no prompt length or token budget changes a compiled shape; the
        warm-up runs two prompt lengths so that no first measured turn finds a shape still uncompiled.
        """
        from transformers import CompileConfig

        start = time.perf_counter()
        config = self.model.generation_config
        config.cache_implementation = "static"
        config.max_cache_len = self.max_positions
        compile_config = CompileConfig(mode="reduce-overhead" if self.device == "cuda" else "default")
        # transformers compiles on accelerators only unless told (its flag for testing on CPU)
        compile_config._compile_all_devices = True  # type: ignore[assignment]  # a private flag its stubs type as None
        config.compile_config = compile_config
        warm = SamplingParams(max_tokens=16)
        for prompt in WARMUP_PROMPTS:
            for event in self.stream([{"role": "user", "content": prompt}], warm):
                if isinstance(event, Done) and event.stop_reason == "error":
                    raise ModelLoadError(f"torch.compile failed: {event.error}", "drop --compile")
        self.warmup_s = time.perf_counter() - start

    def close(self) -> None:
        import gc

        self.worker.close()
        self.model = None
        gc.collect()
        if self.device == "cuda":
            import torch

            torch.cuda.empty_cache()


class HFBackend:
    name = "hf"
    batching = True
    concurrent = False

    def load(self, spec: ModelSpec) -> HFModel:
        import torch

        start = time.perf_counter()
        device = pick_device(spec)
        check_options(spec)
        source = resolve_folder(spec)
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        cuda = device == "cuda"
        held_mb, (free_mb, total_mb) = allocated_mb(cuda), free_memory_mb(cuda)
        try:
            with _load_errors(spec, source):
                dtype = pick_dtype(spec, device, AutoConfig.from_pretrained(source) if cuda else None)
                kwargs: dict[str, Any] = {"dtype": dtype, "quantization_config": quantization_config(spec, dtype)}
                placement = device_map(device, torch.cuda.device_count() if cuda else 0)
                if placement is not None or kwargs["quantization_config"] is not None:
                    kwargs["device_map"] = placement or device
                tokenizer = AutoTokenizer.from_pretrained(source)
                model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except torch.OutOfMemoryError:
            raise ModelLoadError(out_of_memory_message(spec.name, free_mb, total_mb, held_mb),
                                 out_of_memory_fix(spec)) from None
        spilled = offloaded_parts(getattr(model, "hf_device_map", None))
        if spilled:
            del model  # free what did fit before saying so
            raise ModelLoadError(f"{spec.name} does not fit on the GPU: {len(spilled)} parts would run from the "
                                 "CPU or disk", out_of_memory_fix(spec))
        if "device_map" not in kwargs:
            model.to(device)  # type: ignore[arg-type]  # the stubs of .to on a PreTrainedModel omit the device
        model.eval()
        loaded = HFModel(spec, model, tokenizer, device, time.perf_counter() - start, now_ns())
        loaded.model_mem_mb = load_delta_mb(held_mb, allocated_mb(cuda))
        loaded.threads = thread_choice(loaded, source)
        if spec.compile:
            loaded.compile()
        return loaded


PROBE_PROMPT = "The lighthouse keeper climbed the stairs as the storm came in from the sea."
PROBE_STEPS = 6  # decode steps timed per thread count and round


def decode_rate(loaded: HFModel, threads: int, prompt) -> float:
    """Decode tok/s of plain generate() at ``threads`` torch threads, on the model's generation thread (torch's
    thread count is per thread): the spacing of the last ``PROBE_STEPS`` of its new tokens."""
    import torch

    stamps: list[int] = []

    class Stamp:
        def put(self, value) -> None:
            stamps.append(now_ns())

        def end(self) -> None:
            pass

    def run() -> float:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            loaded.model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), do_sample=False,
                                  max_new_tokens=PROBE_STEPS + 1, min_new_tokens=PROBE_STEPS + 1, streamer=Stamp(),
                                  pad_token_id=next(iter(loaded.eos_ids), 0), temperature=None, top_p=None,
                                  top_k=None)
        steps = stamps[2:]  # past the prompt and the prefill's token; the first step wakes the new count, untimed
        return (len(steps) - 1) * 1e9 / (steps[-1] - steps[0])

    return loaded.worker.call(run)


def model_key(loaded: HFModel, source: str) -> str:
    """The thread cache's key: the weights (folder or hub id, with its config's size and time), how they load,
    and the torch and transformers builds."""
    config = Path(source) / "config.json"
    stamp = (config.stat().st_size, config.stat().st_mtime_ns) if config.is_file() else ()
    spec = loaded.spec
    return probe_key("hf", source, *stamp, loaded.model.dtype, spec.quantization, version("torch"),
                     version("transformers"))


def thread_choice(loaded: HFModel, source: str) -> ThreadChoice:
    """``spec.threads`` where the user set it; on the GPU torch's own CPU count, not probed; else the measured
    decode count (cached per machine, model and build) and all usable CPUs for the prefill."""
    import torch

    if loaded.spec.threads > 0:
        return user_choice(loaded.spec.threads)
    if loaded.device == "cuda":
        count = torch.get_num_threads()
        return unprobed(count, count, "on the GPU: torch's own CPU threads, not probed")
    prompt = torch.tensor([loaded.tokenizer.encode(PROBE_PROMPT)], device=loaded.model.device)
    return choose(model_key(loaded, source), f"transformers {source}", lambda n: decode_rate(loaded, n, prompt))


@contextlib.contextmanager
def _load_errors(spec: ModelSpec, source: str) -> Iterator[None]:
    """transformers' many load failures as one-line errors; a CUDA out-of-memory passes through."""
    import torch

    try:
        yield
    except torch.OutOfMemoryError:
        raise
    except OSError as exc:
        if Path(source).is_dir():
            raise ModelLoadError(f"cannot load {source}: {first_line(exc)}", "check the model folder") from None
        raise ModelNotFound(
            f"cannot get {source!r} from the Hugging Face hub (offline, or no such repo)",
            "download it while online, or pass a local folder or .gguf file",
        ) from None
    except (ValueError, RuntimeError, ImportError) as exc:
        raise ModelLoadError(f"cannot load {spec.name}: {first_line(exc)}", "check the model and options") from None


BACKEND = HFBackend()
