"""`taskclock export SOURCE --format csv|md|jsonl [-o OUT]`: a session log as CSV, Markdown or JSONL."""
from __future__ import annotations

import argparse
from pathlib import Path

FORMATS = ("csv", "md", "jsonl")


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a chat session log as CSV, Markdown or JSONL",
                       description="CSV: one row per turn with metric columns; Markdown: a summary table and "
                                   "the conversation; JSONL: the records as logged.")
    p.add_argument("source", help="a session .jsonl file (see the sessions folder)")
    p.add_argument("--format", "-f", choices=FORMATS, default="csv")
    p.add_argument("-o", "--output", help="output file (default: beside the source, NAME.export.FORMAT)")


def export_file(source: Path, args: argparse.Namespace) -> Path:
    from runtime.sessions import export_session

    return export_session(source, args.format, Path(args.output) if args.output else None)


def export_folder(source: Path, args: argparse.Namespace) -> Path:
    from runtime.errors import DataError

    raise DataError(f"{source} is a folder, not a session file", "pass one .jsonl file from the sessions folder")


def run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    target = (export_folder if source.is_dir() else export_file)(source, args)
    print(target)
    return 0
