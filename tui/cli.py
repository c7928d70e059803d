"""`taskclock` command line. Subcommands live in tui/commands/, each cheap to import so --help is instant.

Every TaskclockError becomes one line on stderr and a non-zero exit; anything unexpected is written with
its traceback to a log file whose path is printed.
"""
from __future__ import annotations

import argparse
import importlib
import sys
import traceback

COMMANDS = ("chat", "run", "models", "export", "bench", "compare", "doctor")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskclock",
        description="Chat with local LLMs and measure what you wait for: TTFT, tokens/s and task time.",
        epilog="With no command, opens the app (same as `taskclock chat`).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"taskclock.tui.commands.{name}").add_parser(sub)
    return parser


def crash_log(exc: BaseException) -> str:
    from taskclock.runtime.paths import log_dir

    try:
        folder = log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "crash.log"
        with open(path, "a", encoding="utf-8") as handle:
            handle.write("".join(traceback.format_exception(exc)) + "\n")
        return str(path)
    except OSError:
        return "(no log: the log folder is not writable)"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if "chat" in COMMANDS and (not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["chat", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from taskclock.runtime.errors import TaskclockError

    try:
        return importlib.import_module(f"taskclock.tui.commands.{args.command}").run(args) or 0
    except TaskclockError as exc:
        print(f"taskclock: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("taskclock: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line here, the traceback in the log
        print(f"taskclock: internal error: {type(exc).__name__}: {exc} (details: {crash_log(exc)})", file=sys.stderr)
        return 1
