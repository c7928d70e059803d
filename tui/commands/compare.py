"""`taskclock compare PROMPT --models A,B,...`: the same prompt on several models, then a row per model."""
from __future__ import annotations

import argparse
import json
import sys
import threading

from taskclock.runtime.untrusted import safe_line

from . import common


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="one prompt on several models: a comparison row per model, winner per column",
        description="Run one prompt on every model (one after another unless --concurrent) and print TTFT, "
                    "decode TPS, task time, output tokens, words and words/s with the winner of each column, "
                    "then a verdict line: fastest to finish, highest tok/s, and why when they differ. Each model's "
                    "turn is logged to the sessions folder.")
    p.add_argument("prompt", nargs="?", help="the prompt (or use --prompt-file)")
    p.add_argument("--prompt-file", help="read the prompt from a UTF-8 file ('-' = stdin)")
    p.add_argument("--system", help="system message")
    p.add_argument("--json", action="store_true", help="print one JSON object: per-model figures, winners, verdict")
    p.add_argument("--concurrent", action="store_true",
                   help="run all models at once (they share the machine, so figures include contention)")
    warm = p.add_mutually_exclusive_group()
    warm.add_argument("--warmup", type=common.whole_number, default=1, metavar="K",
                      help="untimed turns per model before the timed one (default 1), so its figures are warm")
    warm.add_argument("--no-warmup", dest="warmup", action="store_const", const=0,
                      help="measure each model's first turn since its load: cold (docs/METRICS.md)")
    p.add_argument("--repeats", type=common.positive_int, default=1, metavar="N",
                   help="run the prompt N times per model (default 1: one sample, no interval); the rows are means "
                        "and the verdict says whether the gap is more than the repeats' noise")
    p.add_argument("--sessions", metavar="DIR", help="session log folder (default: config, else the default folder)")
    p.add_argument("--no-log", action="store_true", help="do not write the turns to a session log")
    common.add_model_options(p, many=True)
    common.add_sampling_options(p)


def run(args: argparse.Namespace) -> int:
    from taskclock.runtime import values
    from taskclock.runtime.backend import load_model
    from taskclock.runtime.compare import check_model_count, run_compare
    from taskclock.runtime.config import load_config
    from taskclock.runtime.turn import warm_up_note, with_system

    config = load_config(args.config)
    prompt = common.read_prompt(args.prompt, args.prompt_file)
    with common.options_named():
        values.check_plan(warmup=args.warmup, repeats=args.repeats)  # the ranges every plan is held to
    names = common.split_models(args.models)
    check_model_count(names)
    specs = common.resolve_specs(names, args, config)
    params = common.sampling(args, config)
    messages = with_system(args.system or "", [{"role": "user", "content": prompt}])
    models = []
    try:
        for spec in specs:
            common.status(f"loading {safe_line(spec.name)} ({spec.backend})…")
            models.append(load_model(spec))
        cancel = threading.Event()
        comparison, interrupted = common.run_interruptibly(
            lambda: run_compare(models, messages, params, concurrent=args.concurrent, warmup=args.warmup,
                                repeats=args.repeats, cancel=cancel, include_load=True,
                                on_warmup=lambda i: common.status(f"warming up {safe_line(specs[i].name)} "
                                                                  f"({warm_up_note(args.warmup)})…"),
                                on_start=lambda i, repeat: common.status(
                                    f"running {safe_line(specs[i].name)}"
                                    + (f" (repeat {repeat + 1} of {args.repeats})" if args.repeats > 1 else "")
                                    + "…")),
            cancel,
        )
    finally:
        for model in models:
            model.close()
    if not args.no_log:
        _log(comparison, args, config)
    _print(comparison, args.json)
    if interrupted:
        return 130
    return 1 if any(r.done is None or r.done.stop_reason == "error" for r in comparison.results) else 0


def _log(comparison, args: argparse.Namespace, config) -> None:
    """Append one line per model to a session log; a log that cannot be written is a warning, not a failure."""
    from taskclock.runtime.errors import StorageError
    from taskclock.runtime.sessions import SessionLog

    log = SessionLog(common.sessions_dir(args, config), "compare")
    try:
        for record in comparison.session_records():
            log.append(record)
    except StorageError as exc:
        common.status(f"taskclock: warning: compare not logged: {safe_line(exc)}")
        return
    common.status(f"logged to {safe_line(log.path)}")


def _print(comparison, as_json: bool) -> None:
    if as_json:
        out = comparison.as_dict()
        for row, result in zip(out["models"], comparison.results, strict=True):
            row["text"] = result.text
            if result.done is not None and result.done.extra:
                row["backend_figures"] = result.done.extra
        print(json.dumps(out, ensure_ascii=False))
        return
    from rich.console import Console
    from rich.text import Text

    from taskclock.runtime.system import busy_note
    from taskclock.runtime.untrusted import error_line, safe_text

    from ..comparison import comparison_table

    console = Console()
    for label, result in zip(comparison.labels(), comparison.results, strict=True):
        console.rule(Text(safe_line(label)))
        console.print(safe_text(result.text) or "(no output)", markup=False, highlight=False)
    console.print()
    console.print(comparison_table(comparison))
    for row in comparison.rows():
        if row["error"]:
            print(f"{safe_line(row['model'])}: error: {error_line(row['error'])}", file=sys.stderr)
    verdict = comparison.verdict()
    if verdict:
        console.print(f"verdict: {safe_line(verdict)}", markup=False, highlight=False, soft_wrap=True)
    if note := busy_note(comparison.load):
        console.print(f"note: {note}", style="bold yellow", markup=False, highlight=False, soft_wrap=True)
