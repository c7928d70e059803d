"""`taskclock run PROMPT`: one headless turn, streamed to stdout, then its metrics."""
from __future__ import annotations

import argparse
import json
import sys
import threading

from . import common


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="one prompt, headless: stream the reply, then print its metrics",
                       description="Stream one reply to stdout, then print TTFT, TPS, task time and more. Runs with "
                                   "the settings the app remembers (Ctrl+G: system prompt, sampling) unless flags say "
                                   "otherwise, and appends the turn to a session log, so it can be replayed.")
    p.add_argument("prompt", nargs="?", help="the prompt (or use --prompt-file)")
    p.add_argument("--prompt-file", help="read the prompt from a UTF-8 file ('-' = stdin)")
    p.add_argument("--system", help="system message (default: the app's remembered one; '' for none)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text and metrics")
    p.add_argument("--sessions", metavar="DIR", help="session log folder (default: config, else the default folder)")
    p.add_argument("--no-log", action="store_true", help="do not append the turn to a session log")
    common.add_model_options(p)
    common.add_sampling_options(p)


def run(args: argparse.Namespace) -> int:
    from taskclock.runtime.backend import load_model
    from taskclock.runtime.config import load_config
    from taskclock.runtime.events import Event, Token
    from taskclock.runtime.system import LoadWatch, busy_note
    from taskclock.runtime.turn import run_turn, with_system
    from taskclock.runtime.untrusted import error_line, safe_line, safe_text

    config = load_config(args.config)
    prompt = common.read_prompt(args.prompt, args.prompt_file)
    spec = common.resolve_specs([args.model or config.defaults.model], args, config)[0]
    params, system, _, problem = common.remembered_settings(args, config)
    if problem:
        common.status(f"taskclock: warning: {safe_line(problem)}")
    messages = with_system(system, [{"role": "user", "content": prompt}])
    watch = LoadWatch.for_models([spec])  # the machine's other work while this loads, then during the turn
    common.status(f"loading {safe_line(spec.name)} ({spec.backend})…")
    model = load_model(spec)

    def echo(event: Event) -> None:
        if not args.json and isinstance(event, Token) and event.text:
            out = sys.stderr if event.phase == "thinking" else sys.stdout  # stdout: the answer alone
            out.write(safe_text(event.text))
            out.flush()

    cancel = threading.Event()
    try:
        watch.started()
        result, interrupted = common.run_interruptibly(
            lambda: run_turn(model, messages, params, cancel=cancel, on_event=echo, include_load=True), cancel
        )
        watch.finished()
    finally:
        model.close()
    load = watch.record()
    if not args.no_log:
        _log(result, args, config, load)
    figures = result.metrics.as_dict()
    done = result.done
    if args.json:
        out = {"model": spec.name, "backend": spec.backend, "text": result.text, **figures,
               "cold": result.cold}
        if result.thinking:
            out["thinking"] = result.thinking
        if done is not None and done.error:
            out["error"] = done.error
        if done is not None and done.extra:
            out["backend_figures"] = done.extra
        out["load"] = load
        print(json.dumps(out, ensure_ascii=False))
    else:
        from ..format import metrics_block

        print(flush=True)
        print("\n" + metrics_block(figures, result.cold), file=sys.stderr)
    if note := busy_note(load):
        common.status(f"note: {note}")
    if interrupted:
        return 130
    if done is not None and done.stop_reason == "error":
        print(f"taskclock: error: {error_line(done.error)}", file=sys.stderr)
        return 1
    return 0


def _log(result, args: argparse.Namespace, config, load: dict) -> None:
    """Append the turn to a new session log, as the Chat tab would; one that cannot be written is a warning."""
    from taskclock.runtime.errors import StorageError
    from taskclock.runtime.sessions import SessionLog, turn_record
    from taskclock.runtime.untrusted import safe_line

    log = SessionLog(common.sessions_dir(args, config), result.model)
    try:
        log.append(turn_record(result, kind="run", load=load))
    except StorageError as exc:
        common.status(f"taskclock: warning: turn not logged: {safe_line(exc)}")
        return
    common.status(f"logged to {safe_line(log.path)}")
