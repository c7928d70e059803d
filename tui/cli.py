"""`taskclock` command line. Subcommands live in tui/commands/, each cheap to import so --help is instant.

Every TaskclockError becomes one line on stderr and a non-zero exit; anything unexpected is written with
its traceback to a log file whose path is printed.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import NoReturn

COMMANDS = ("chat", "run", "models", "export", "bench", "sweep", "load", "compare", "doctor", "replay", "pace",
            "import")


class Parser(argparse.ArgumentParser):
    """Every parser, subcommands included (argparse makes subparsers of the parent's class): a bad option is one
    `taskclock: error:` line and exit 2 like every other error, not a usage block."""

    def error(self, message: str) -> NoReturn:
        from taskclock.runtime.untrusted import error_line

        self.exit(2, f"taskclock: error: {error_line(message)}; see `{error_line(self.prog)} --help`\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="taskclock",
        description="Chat with local LLMs and measure what you wait for: TTFT, tokens/s and task time.",
        epilog="With no command, opens the app (same as `taskclock chat`).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"taskclock.tui.commands.{name}").add_parser(sub)
    return parser


def crash_log(exc: BaseException) -> str:
    from taskclock.runtime import storage
    from taskclock.runtime.errors import StorageError
    from taskclock.runtime.paths import log_dir

    try:
        path = storage.ensure_dir(log_dir()) / "crash.log"
        storage.append_bytes(path, ("".join(traceback.format_exception(exc)) + "\n").encode("utf-8", "replace"))
        return str(path)
    except StorageError as error:
        return f"(no log: {error.problem})"


def undecodable_argument(argv: list[str]) -> int | None:
    """The position of an argument that is not valid UTF-8 (Python smuggles such bytes in as surrogates, which
    then fail wherever the text is printed or logged), or None."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            return position
    return None


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:  # `taskclock run ... | head -c 10`: the reader left; say nothing more to it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # as if killed by SIGPIPE, like other command-line tools


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    bad = undecodable_argument(argv)
    if bad is not None:
        from taskclock.runtime.untrusted import error_line

        print(f"taskclock: error: argument {bad} ({error_line(argv[bad - 1].encode('utf-8', 'replace').decode())}) "
              "is not valid UTF-8; pass UTF-8 text", file=sys.stderr)
        return 2
    parser = build_parser()
    if "chat" in COMMANDS and (not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["chat", *argv]
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from taskclock.runtime.errors import TaskclockError
    from taskclock.runtime.untrusted import error_line

    try:
        return importlib.import_module(f"taskclock.tui.commands.{args.command}").run(args) or 0
    except TaskclockError as exc:
        print(f"taskclock: error: {error_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("taskclock: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug: one line here, the traceback in the log
        print(f"taskclock: internal error: {type(exc).__name__}: {error_line(exc)} (details: {crash_log(exc)})",
              file=sys.stderr)
        return 1
