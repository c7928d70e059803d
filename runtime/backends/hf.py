"""Hugging Face transformers on torch: FP32/FP16/BF16 on CPU or CUDA, 8-/4-bit through bitsandbytes.

Tokens are timestamped in the streamer's ``put()``, which ``generate()`` calls on its own thread the moment
each token id exists; text is decoded afterwards on the consuming side, so decoding never delays the clock
or the model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..backend import Message, ModelSpec, SamplingParams, encode_within_context, first_line
from ..errors import ModelLoadError, ModelNotFound, UnsupportedHardware
from ..events import Done, Event, StopReason, Submitted, now_ns
from ..gpu import TurnProbe, model_memory_mb
from ..models import local_file
from ..paths import cache_dir
from ..reply import Reply
from ..textstream import IncrementalDetokenizer
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


def pick_dtype(spec: ModelSpec, device: str):
    import torch

    choices = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
    if spec.dtype == "auto":
        return torch.float16 if device == "cuda" else torch.float32
    try:
        return choices[spec.dtype]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {spec.dtype!r}", "use auto, float16, bfloat16 or float32") from None


def quantization_config(spec: ModelSpec, dtype):
    if spec.quantization == "none":
        return None
    if spec.quantization not in ("8bit", "4bit"):
        raise ModelLoadError(f"unknown quantization {spec.quantization!r}", "use none, 8bit or 4bit")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UnsupportedHardware(
            f"{spec.quantization} quantization needs bitsandbytes, which is not installed",
            "pip install 'taskclock[quant]' or use --quant none",
        )
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
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    partial = target.with_name(f"{target.name}.partial{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(partial, target)
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
        self.model_mem_mb = model_memory_mb(device == "cuda")
        self.probe = TurnProbe(device == "cuda", device == "cuda")
        self.worker = GenerationWorker(f"taskclock-hf-{spec.name}")

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode(self, messages: list[Message]) -> list[int]:
        if self.has_template:
            ids = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            return list(ids)
        text = "\n\n".join(m["content"] for m in messages)
        return self.tokenizer.encode(text)

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

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
            self.worker, self.model, params, streamer,
            input_ids=torch.tensor([prompt], device=self.model.device),
            attention_mask=torch.ones((1, len(prompt)), dtype=torch.long, device=self.model.device),
            max_new_tokens=max_new,
            stopping_criteria=StoppingCriteriaList([Halt()]),
            pad_token_id=self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None
            else next(iter(self.eos_ids), 0),
        )
        reply = Reply(params.stop, IncrementalDetokenizer(self._decode))
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
                yield reply.token(t, tok)
                if reply.stopped:
                    halt.set()
                elif cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    halt.set()
        finally:
            halt.set()  # a consumer that stops early must not leave generate() running ahead of the next turn
        generated.wait()
        gpu = self.probe.finish()
        if self.model_mem_mb is not None:
            gpu["model_mem_mb"] = self.model_mem_mb
        if cancel is not None and cancel.is_set() and reason == "length" and reply.produced < max_new:
            reason = "cancelled"
        error = f"generation failed: {first_line(failure[0])}" if failure else None
        yield from reply.end(reason, len(prompt), error=error, extra=gpu)

    def stream_batch(self, conversations: list[list[Message]], params: SamplingParams,
                     cancel: threading.Event | None = None) -> list[list[Event]]:
        """Several requests as one left-padded batch: one complete event list per request."""
        return generate_batch(self, conversations, params, cancel)

    def compile(self) -> None:
        """Static KV cache + torch.compile; the compile pause is spent here and reported as warmup_s,
        never inside a measured turn."""
        import torch

        start = time.perf_counter()
        self.model.generation_config.cache_implementation = "static"
        mode = "reduce-overhead" if self.device == "cuda" else "default"
        self.model.forward = torch.compile(self.model.forward, mode=mode, fullgraph=True)
        warm = SamplingParams(max_tokens=8)
        for _ in range(2):  # the second pass catches recompiles for the decode-step shapes
            for event in self.stream([{"role": "user", "content": "Warm up."}], warm):
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

    def load(self, spec: ModelSpec) -> HFModel:
        start = time.perf_counter()
        device = pick_device(spec)
        dtype = pick_dtype(spec, device)
        quant = quantization_config(spec, dtype)
        source = resolve_folder(spec)
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        kwargs: dict[str, Any] = {"dtype": dtype}
        if quant is not None:
            if spec.compile:
                raise ModelLoadError("transformers cannot torch.compile a bitsandbytes model",
                                     "drop --compile or use --quant none")
            kwargs["quantization_config"] = quant
            kwargs["device_map"] = device
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
        except OSError as exc:
            if Path(source).is_dir():
                raise ModelLoadError(f"cannot load {source}: {first_line(exc)}", "check the model folder") from None
            raise ModelNotFound(
                f"cannot get {source!r} from the Hugging Face hub (offline, or no such repo)",
                "download it while online, or pass a local folder or .gguf file",
            ) from None
        except (ValueError, RuntimeError, ImportError) as exc:
            raise ModelLoadError(f"cannot load {spec.name}: {first_line(exc)}", "check the model and options") from None
        if quant is None:
            model.to(device)
        model.eval()
        loaded = HFModel(spec, model, tokenizer, device, time.perf_counter() - start, now_ns())
        if spec.compile:
            loaded.compile()
        return loaded


BACKEND = HFBackend()
