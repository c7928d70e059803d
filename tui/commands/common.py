"""Options and loading shared by the subcommands that run models."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def add_model_options(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument("--models", required=True, help="comma-separated model names (see `taskclock models`)")
    else:
        parser.add_argument("--model", "-m", help="alias, configured name, .gguf path, HF folder or repo id, or http://HOST:PORT/v1#MODEL")
    parser.add_argument("--config", help="config TOML (default: $TASKCLOCK_CONFIG or the user config dir)")
    group = parser.add_argument_group("model options (override the model's config)")
    group.add_argument("--dtype", choices=["auto", "float16", "bfloat16", "float32"])
    group.add_argument("--device", choices=["auto", "cuda", "cpu"])
    group.add_argument("--quant", dest="quantization", choices=["none", "8bit", "4bit"])
    group.add_argument("--ctx", dest="n_ctx", type=positive_int, help="context size in tokens")
    group.add_argument("--gpu-layers", dest="n_gpu_layers", type=int, help="llama.cpp layers on the GPU (-1 = all)")
    group.add_argument("--compile", action="store_const", const=True, default=None,
                       help="transformers: static cache + torch.compile (warm-up reported apart)")
    group.add_argument("--threads", type=positive_int,
                       help="llama.cpp: CPU threads (default: physical cores, as llama.cpp chooses)")
    group.add_argument("--no-flash-attn", dest="flash_attn", action="store_const", const=False, default=None,
                       help="llama.cpp: turn flash attention off")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (defaults: greedy, from config)")
    group.add_argument("--max-tokens", type=positive_int)
    group.add_argument("--temperature", type=non_negative_float)
    group.add_argument("--top-p", type=non_negative_float)
    group.add_argument("--seed", type=int)
    group.add_argument("--stop", action="append", help="stop string (repeatable)")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def model_overrides(args: argparse.Namespace) -> dict:
    keys = ("dtype", "device", "quantization", "n_ctx", "n_gpu_layers", "compile", "flash_attn", "threads")
    return {k: getattr(args, k, None) for k in keys}


def sampling(args: argparse.Namespace, config):
    stop = tuple(args.stop) if getattr(args, "stop", None) else None
    return config.sampling.with_overrides(
        max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed, stop=stop
    )


def resolve_specs(names: list[str], args: argparse.Namespace, config):
    from taskclock.runtime.models import resolve, with_overrides

    return [with_overrides(resolve(name, config.models), **model_overrides(args)) for name in names]


def split_models(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from taskclock.runtime.errors import ModelNotFound

        raise ModelNotFound("no model names given", "pass --models A,B")
    return names


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    from taskclock.runtime.errors import PromptError

    if prompt_file:
        try:
            data = sys.stdin.buffer.read() if prompt_file == "-" else Path(prompt_file).read_bytes()
        except OSError as exc:
            raise PromptError(f"cannot read prompt file {prompt_file}: {exc.strerror}", "check the path") from None
        try:
            prompt = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PromptError(f"prompt file {prompt_file} is not valid UTF-8 (byte {exc.start})",
                              "save it as UTF-8") from None
    if prompt is None or not prompt.strip():
        raise PromptError("the prompt is empty", "pass a prompt or --prompt-file")
    return prompt


def status(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def run_interruptibly(work, cancel: threading.Event):
    """Run ``work()`` on a thread while Ctrl-C only sets ``cancel``, so the turn ends cleanly between
    tokens with its partial figures (a KeyboardInterrupt could land anywhere, even mid-cleanup).

    Returns (result, interrupted).
    """
    import signal

    box: dict = {}

    def target() -> None:
        try:
            box["result"] = work()
        except BaseException as exc:
            box["error"] = exc

    def on_sigint(signum, frame) -> None:
        cancel.set()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        thread = threading.Thread(target=target, name="taskclock-turn", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.1)
    finally:
        signal.signal(signal.SIGINT, previous)
    if "error" in box:
        raise box["error"]
    return box.get("result"), cancel.is_set()
