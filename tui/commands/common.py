"""Options and loading shared by the subcommands that run models."""
from __future__ import annotations

import argparse
import contextlib
import sys
import threading
from pathlib import Path

from taskclock.runtime import values
from taskclock.runtime.untrusted import safe_line


def add_model_options(parser: argparse.ArgumentParser, *, many: bool = False) -> None:
    if many:
        parser.add_argument("--models", required=True, help="comma-separated model names (see `taskclock models`)")
    else:
        parser.add_argument("--model", "-m", help="alias, configured name, .gguf path, HF folder or repo id, or http://HOST:PORT/v1#MODEL")
    parser.add_argument("--config", help="config TOML (default: $TASKCLOCK_CONFIG or the user config dir)")
    group = parser.add_argument_group("model options (override the model's config)")
    group.add_argument("--dtype", choices=values.CHOICES["dtype"])
    group.add_argument("--device", choices=values.CHOICES["device"])
    group.add_argument("--quant", dest="quantization", choices=values.CHOICES["quantization"])
    group.add_argument("--ctx", dest="n_ctx", type=whole_number, help="context size in tokens")
    group.add_argument("--gpu-layers", dest="n_gpu_layers", type=whole_number,
                       help="llama.cpp layers on the GPU (-1 = all)")
    group.add_argument("--compile", action="store_const", const=True, default=None,
                       help="transformers: static cache + torch.compile (warm-up reported apart)")
    group.add_argument("--threads", type=whole_number,
                       help="CPU threads for decode and prefill (default: decode measured per machine and model, "
                            "prefill on every CPU; `taskclock doctor` shows the choice)")
    group.add_argument("--no-flash-attn", dest="flash_attn", action="store_const", const=False, default=None,
                       help="llama.cpp: turn flash attention off")


def add_sampling_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling (defaults: greedy, from config)")
    group.add_argument("--max-tokens", type=whole_number, help=f"1 to {values.TOKENS_MAX}")
    group.add_argument("--temperature", type=number, help=f"0 (greedy) to {values.TEMPERATURE_MAX:g}")
    group.add_argument("--top-p", type=number, help="more than 0, at most 1")
    group.add_argument("--seed", type=whole_number, help=f"0 to {values.SEED_MAX}")
    group.add_argument("--stop", action="append", help="stop string (repeatable)")


def whole_number(text: str) -> int:
    """Parse only, ASCII digits only (values.parse_whole): ranges are checked where the values are used
    (runtime/values.py), for config and CLI alike."""
    try:
        return values.parse_whole(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{safe_line(text)!r} is not a whole number") from None


def number(text: str) -> float:
    try:
        return values.parse_number(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{safe_line(text)!r} is not a number") from None


def positive_int(text: str) -> int:
    """For options that are not model or sampling settings (replay's --turn)."""
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


OPTIONS = {"n_ctx": "--ctx", "n_gpu_layers": "--gpu-layers", "max_tokens": "--max-tokens", "top_p": "--top-p"}


@contextlib.contextmanager
def options_named():
    """A value refused by runtime/values.py is reported under its option's name (--top-p, not top_p)."""
    from taskclock.runtime.values import InvalidValue

    try:
        yield
    except InvalidValue as exc:
        option = OPTIONS.get(exc.key, "--" + exc.key.replace("_", "-"))
        raise InvalidValue(option, exc.problem.removeprefix(exc.key).strip(), exc.fix) from None


def model_overrides(args: argparse.Namespace) -> dict:
    keys = ("dtype", "device", "quantization", "n_ctx", "n_gpu_layers", "compile", "flash_attn", "threads")
    return {k: getattr(args, k, None) for k in keys}


def sampling(args: argparse.Namespace, config):
    stop = tuple(args.stop) if getattr(args, "stop", None) else None
    with options_named():
        return config.sampling.with_overrides(
            max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed, stop=stop
        )


def remembered_settings(args: argparse.Namespace, config):
    """The sampling and system prompt a turn runs with, as the app would: the flags, else what the app remembered
    (Ctrl+G), else the config; returns (params, system prompt, the remembered values, a problem reading them)."""
    from dataclasses import replace

    from taskclock.runtime import remembered

    kept, problem = remembered.load(remembered.default_path())
    params = sampling(args, replace(config, sampling=kept.sampling(config.sampling)))
    system = args.system if getattr(args, "system", None) is not None else kept.system
    return params, system, kept, problem


def sessions_dir(args: argparse.Namespace, config):
    """--sessions, else the config's, else the default sessions folder."""
    from pathlib import Path

    from taskclock.runtime.paths import default_sessions_dir

    return Path(args.sessions or config.defaults.sessions_dir or default_sessions_dir()).expanduser()


def resolve_specs(names: list[str], args: argparse.Namespace, config):
    from taskclock.runtime.models import resolve, with_overrides

    specs = [resolve(name, config.models) for name in names]
    with options_named():
        return [with_overrides(spec, **model_overrides(args)) for spec in specs]


def split_models(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        from taskclock.runtime.errors import ModelNotFound

        raise ModelNotFound("no model names given", "pass --models A,B")
    return names


def read_prompt(prompt: str | None, prompt_file: str | None) -> str:
    """The prompt text, from the argument or a UTF-8 file ('-' = stdin), through the outside-file gate
    (runtime/storage.py: a regular file of at most TEXT_MAX_BYTES; stdin is held to the same cap)."""
    from taskclock.runtime import storage
    from taskclock.runtime.errors import PromptError

    if prompt_file == "-":
        prompt = storage.read_all(sys.stdin.buffer, "prompt file -", storage.TEXT_MAX_BYTES, PromptError)
    elif prompt_file:
        prompt = storage.read_text(Path(prompt_file), "prompt file", error=PromptError)
    if prompt is None or not prompt.strip():
        raise PromptError("the prompt is empty", "pass a prompt or --prompt-file")
    return prompt


def refuse_plan_options(args: argparse.Namespace, options: dict[str, str]) -> None:
    """--resume with an option (dest → flag in ``options``) that run.toml fixed: refused, never ignored."""
    from taskclock.runtime.errors import DataError

    given = [option for dest, option in options.items() if getattr(args, dest) is not None]
    if given:
        raise DataError(f"--resume continues a run as it was planned, so {', '.join(given)} cannot change it",
                        "drop those options, or start a new run without --resume")


def interrupted_note(command: str, kept: int, total: int, shown: str) -> str:
    """What an interrupted bench or sweep says (its tables are left out when no row was kept: they would be
    empty): how many rows it kept and how to go on."""
    if not kept:
        return f"interrupted: no rows yet: taskclock {command} --resume {shown} continues"
    return f"interrupted: {kept} of {total} rows kept in {shown}\nresume with: taskclock {command} --resume {shown}"


def finish_run(err, command: str, shown: str, failures: dict[str, str], rows: list[dict], expected: int,
               interrupted: bool, errored_note: str, files: str, system_block: dict | None = None) -> int:
    """The end of a bench or sweep on the console: failed models, rows that ended in an error, whether the machine
    was busy (``system_block``: the folder's system.json), then where the results are or how to go on; returns
    the exit status (130 interrupted, 1 a model failed, else 0)."""
    from rich.text import Text

    from taskclock.runtime.system import run_busy_note
    from taskclock.runtime.untrusted import error_line

    if note := run_busy_note(system_block):
        err.print(Text(f"note: {note}", style="bold yellow"))

    for model, error in failures.items():
        err.print(Text.assemble((f"model {safe_line(model)} failed:", "red"), " ", error_line(error)))
    errored = [row for row in rows if row.get("stop_reason") == "error"]
    if errored:  # the console tables leave errors out: say so, or these rows go unnoticed
        err.print(f"{len(errored)} row(s) ended in an error (first: {error_line(errored[0]['error'])}); "
                  f"{errored_note}")
    if interrupted:
        err.print(interrupted_note(command, len(rows), expected, shown))
        return 130
    err.print(f"results: {shown} ({files})")
    return 1 if failures else 0


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
