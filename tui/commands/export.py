"""`taskclock export SOURCE --format csv|md|jsonl|vllm|llama [-o OUT]`: a session log as CSV, Markdown or JSONL, or
a session or run in vLLM's bench result or llama.cpp's timings form; or a bench, sweep or load run folder's
results.csv, summary.md, summary.json and plots.txt regenerated in place."""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

FORMATS = ("csv", "md", "jsonl")
TOOL_FORMATS = ("vllm", "llama")  # runtime/importers.py EXPORTERS: what `import` reads back


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a chat session log (CSV, Markdown, JSONL) or a run folder",
                       description="A session log: CSV, one row per turn with metric columns; Markdown, a summary "
                                   "table and the conversation; JSONL, the records as logged. A session log or a "
                                   "bench or sweep run folder: vllm, a `vllm bench serve --save-detailed` result; "
                                   "llama, one llama.cpp server completion with its timings per line (both read "
                                   "back by `taskclock import`, docs/REPLAY.md). A bench, sweep or load run folder "
                                   "with no --format: its results.csv, summary.md, summary.json and plots.txt are "
                                   "rewritten in place.")
    p.add_argument("source",
                   help="a session .jsonl file (see the sessions folder) or a bench, sweep or load run folder")
    p.add_argument("--format", "-f", choices=FORMATS + TOOL_FORMATS,
                   help="the output format (default: csv; a run folder takes vllm or llama)")
    p.add_argument("-o", "--output", help="output file (default: beside the source, NAME.export.FORMAT)")
    p.add_argument("--force", action="store_true",
                   help="replace the output file if it exists (a regular file only: never a link or a device)")


def export_file(source: Path, args: argparse.Namespace) -> Path:
    from taskclock.runtime.sessions import export_session

    return export_session(source, args.format or "csv", Path(args.output) if args.output else None, replace=args.force)


def export_folder(source: Path, args: argparse.Namespace) -> Path:
    """A bench, sweep or load run folder: regenerate its results.csv, summary.md, summary.json and plots.txt."""
    from taskclock.runtime import load, load_summary, sweep
    from taskclock.runtime.errors import DataError
    from taskclock.runtime.runfolder import RUN_FILE, damage_note, folder_kind
    from taskclock.runtime.summary import export

    if not os.path.lexists(source / RUN_FILE):  # a FIFO or a link there is named by the reader
        raise DataError(f"{source} is a folder but not a bench run (no {RUN_FILE})",
                        "pass a session .jsonl file or a runs/<run-id> folder")
    given = [option for option, value in (("--format", args.format), ("-o", args.output), ("--force", args.force))
             if value]
    if given:  # refused, never silently ignored: the folder's own files are what a run folder exports to
        raise DataError(f"{', '.join(given)} apply to session logs (and --format {'/'.join(TOOL_FORMATS)} to run "
                        "folders): a run folder is otherwise exported in place (results.csv, summary.md, "
                        "summary.json, plots.txt)", "drop those options")
    exporters: dict[str, Callable[[Path], Any]] = {sweep.KIND: sweep.export, load.KIND: load_summary.export}
    exporter = exporters.get(str(folder_kind(source)), export)
    note = damage_note(exporter(source).damaged)
    if note:
        print(f"taskclock: warning: {note}", file=sys.stderr)
    return source


def run(args: argparse.Namespace) -> int:
    source = Path(args.source)
    from taskclock.runtime.untrusted import safe_line

    in_place = source.is_dir() and args.format not in TOOL_FORMATS
    target = (export_folder if in_place else export_file)(source, args)
    print(safe_line(target))
    return 0
