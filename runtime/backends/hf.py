"""Hugging Face transformers on torch: FP32/FP16/BF16 on CPU or CUDA, 8-/4-bit through bitsandbytes.

Tokens are timestamped in the streamer's ``put()``, which ``generate()`` calls on its own thread the moment
each token id exists; text is decoded afterwards on the consuming side, so decoding never delays the clock
or the model.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import queue
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..backend import Message, ModelSpec, SamplingParams, encode_within_context, first_line
from ..errors import ModelLoadError, ModelNotFound, UnsupportedHardware
from ..events import Done, Event, Submitted, Token, now_ns
from ..gpu import TurnProbe, model_memory_mb
from ..models import local_file
from ..paths import cache_dir
from ..stops import StopMatcher
from ..textstream import IncrementalDetokenizer

_END = object()


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
    """Dequantize a GGUF through transformers once and cache it as safetensors (later loads take ~0.1 s)."""
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
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(partial, target)
    except Exception as exc:  # the disk filled up (safetensors raises its own type): leave no half-written folder
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else first_line(exc)
        raise ModelLoadError(f"cannot write the converted model to {target.parent}: {reason}",
                             "free some disk space (or set TASKCLOCK_CACHE) and try again") from None
    finally:
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


class TimestampStreamer:
    """A generate() streamer that records (perf_counter_ns, token ids) as each step's tokens appear."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self._prompt_seen = False

    def put(self, value) -> None:
        t = now_ns()
        if not self._prompt_seen:  # generate() first hands over the prompt
            self._prompt_seen = True
            return
        self.queue.put((t, value.reshape(-1).tolist()))

    def end(self) -> None:
        self.queue.put(_END)


class GenerationWorker:
    """One long-lived thread that runs every generate() of a model, one after another.

    torch keeps state per thread: the OpenMP thread team on CPU, and under torch.compile's
    "reduce-overhead" mode the CUDA graph trees, which are thread-local. A fresh thread per turn would
    re-record the graphs that compile() warmed up, and on CPU measured ~5% slower than a reused one.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, job) -> threading.Event:
        """Queue ``job``; the returned event is set when it has run (or failed)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        done = threading.Event()
        self._jobs.put((job, done))
        return done

    def _run(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, done = item
            try:
                job()
            finally:
                done.set()

    def close(self) -> None:
        """Ends the thread once queued work is done, and waits for it: a thread torch has worked in that is
        still alive when the interpreter exits aborts the process ("terminate called without an active
        exception")."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread.join()
            self._thread = None


def start_generation(worker: GenerationWorker, model, params: SamplingParams, streamer: TimestampStreamer,
                     **kwargs: Any) -> tuple[threading.Event, list[BaseException]]:
    """Run ``model.generate(**kwargs)`` on the model's generation thread with the shared sampling settings.

    A failure is collected in the returned list and ends the streamer, so the consumer never waits forever.
    """
    import torch

    if params.temperature > 0:
        kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p)
        torch.manual_seed(params.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            with torch.inference_mode():
                model.generate(streamer=streamer, **kwargs)
        except BaseException as exc:  # reported through the stream, never lost in the thread
            failure.append(exc)
            streamer.end()

    return worker.submit(work), failure


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
        detok = IncrementalDetokenizer(self._decode)
        stops = StopMatcher(params.stop)
        produced, reason = 0, "length"
        try:
            while True:
                item = streamer.queue.get()
                if item is _END:
                    break
                t, ids = item
                if halt.is_set():
                    continue  # tokens produced after a stop string, before generate() noticed
                tok = ids[0]
                if tok in self.eos_ids:
                    reason = "eos"
                    halt.set()
                    continue
                produced += 1
                shown, hit = stops.feed(detok.push(tok))
                yield Token(t, shown, tok)
                if hit:
                    reason = "stop"
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
        if failure:
            yield Done(now_ns(), "error", len(prompt), produced, error=f"generation failed: {first_line(failure[0])}",
                       extra=gpu)
            return
        if cancel is not None and cancel.is_set() and reason == "length" and produced < max_new:
            reason = "cancelled"
        if reason not in ("stop",):
            tail = stops.feed(detok.flush())[0] + stops.flush()
            if tail:
                yield Token(now_ns(), tail, None, count=0)
        yield Done(now_ns(), reason, len(prompt), produced)

    def stream_batch(self, conversations: list[list[Message]], params: SamplingParams,
                     cancel: threading.Event | None = None) -> list[list[Event]]:
        """Several requests as one left-padded batch: one complete event list per request."""
        from .hf_batch import generate_batch

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
